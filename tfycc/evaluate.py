"""``tfycc evaluate``: rate-distortion of tfycc models and classic codecs, from real files.

tfycc models: each image is compressed to a real bitstream and decoded, once per rate
setting (``--offsets``, importance-level offsets).  Classic anchors (``--anchors``): for
each image and target bpp (``--bpp``) the codec's setting is searched for the largest
file at or under the target (see ``tfycc.anchors``); an image whose smallest file
still overshoots is recorded with ``reached: false`` and left out of that target's
averages, and every average says over how many images it was taken.  bpp is always
8 * whole-file bytes / pixels.

Metrics on RGB uint8: PSNR (peak 255), MS-SSIM (5 scales, standard weights, also in dB),
PSNR of Y and of CbCr (BT.601 full range), mean CIEDE2000 and mean signed Δa*/Δb* (Lab,
reconstruction minus original: a colour-bias measure).

Writes to --out: one JSON per codec in CompressAI's results schema plus per-image rows,
``summary.md`` (averages, values at the --bpp targets, Bjontegaard deltas of each
tfycc model against each anchor) and ``rd.png`` / ``rd-*.png`` plots.
"""
import argparse
import glob
import json
import os
import sys
import time

import numpy as np

__all__ = ["main", "image_metrics", "evaluate_model", "evaluate_anchor", "model_result_name",
           "num_images", "rd_curve", "rising_rd_curve", "clip_rd_curve", "BD_METRICS", "bd_deltas",
           "at_bpp", "summarize", "plot"]

METRIC_KEYS = ("psnr-rgb", "ms-ssim-rgb", "ms-ssim-db", "psnr-y", "psnr-cbcr", "ciede2000",
               "delta-a", "delta-b")
PARTIAL = ".partial"  # suffix of a model's rows so far, written after each image (see --reuse)
PLOTS = (("psnr-rgb", "PSNR-RGB (dB)"), ("ms-ssim-db", "MS-SSIM (dB)"),
         ("ciede2000", "mean CIEDE2000 (lower is better)"))


def image_metrics(ref, out):
    """Every metric of one reconstruction: a dict keyed by METRIC_KEYS."""
    from .metrics import ciede2000, delta_ab, ms_ssim, ms_ssim_db, psnr, ycbcr_psnr

    y, c = ycbcr_psnr(ref, out)
    ms = ms_ssim(ref, out)
    da, db = delta_ab(ref, out)
    return {"psnr-rgb": psnr(ref, out), "ms-ssim-rgb": ms, "ms-ssim-db": ms_ssim_db(ms),
            "psnr-y": y, "psnr-cbcr": c, "ciede2000": ciede2000(ref, out), "delta-a": da,
            "delta-b": db}


def _average(rows, point_key, points, keys):
    """Per point: mean of each key over its rows with ``reached`` (and their count)."""
    results = {k: [] for k in keys}
    results["images"] = []
    for p in points:
        sel = [r for r in rows if r[point_key] == p and r.get("reached", True)]
        results["images"].append(len(sel))
        for k in keys:
            results[k].append(float(np.mean([r[k] for r in sel])) if sel else None)
    results[point_key] = list(points)
    return results


def model_result_name(model, refine=0, tune="psnr"):
    """Result name of a tfycc model (shipped name or directory): ``tfycc-<basename>``, plus
    ``-refine<N>`` for files made with N steps of encoder-side search, and ``-<tune>`` when
    that search was tuned for other than PSNR."""
    suffix = f"-refine{refine}" if refine else ""
    suffix += f"-{tune}" if refine and tune != "psnr" else ""
    return f"tfycc-{os.path.basename(os.path.normpath(model))}{suffix}"


def num_images(result):
    """How many distinct images a result covers."""
    return len({row["image"] for row in result["per_image"]})


def evaluate_model(model, images, offsets, progress=None, refine=0, previous=(), tune="psnr",
                   checkpoint=None):
    """A tfycc model (shipped name or directory) on ``images`` [(name, uint8 HxWx3)];
    ``refine`` > 0: files made with that many steps of encoder-side search, tuned for
    ``tune`` (``cli.TUNES``).  ``previous``:
    per-image rows of an earlier result of the same model and search, kept for the
    (image, offset) pairs they cover instead of being measured again.  ``checkpoint``:
    called after each measured row with the result so far (the same document as the
    return value, over the rows measured or kept up to then)."""
    import tensorflow as tf

    from . import ops
    from .cli import load_codec, refined_compressor, resolve_model

    done = {(r["image"], r["offset"]): r for r in previous}
    codec, model_id = load_codec(model)
    encode = refined_compressor(codec, refine, tune)
    with open(os.path.join(resolve_model(model), "config.json")) as f:
        config = json.load(f)
    levels = config["levels"]
    keys = ("bpp", "raw_bpp", "mean_level") + METRIC_KEYS + ("encoding_time", "decoding_time")
    search = f", {refine} steps of encoder-side search" if refine else ""
    search += f" tuned for {tune}" if refine and tune != "psnr" else ""

    def result():
        return dict(name=model_result_name(model, refine, tune), model_id=model_id,
                    refine_steps=refine, tune=tune if refine else None,
                    description=f"tfycc model {model_id}, real files{search}, {len(images)} images",
                    kind="tfycc", results=_average(rows, "offset", offsets, keys), per_image=rows)

    rows = []
    for offset in offsets:
        for name, image in images:
            if (name, offset) in done:
                rows.append(done[(name, offset)])
                if progress is not None:
                    progress.update()
                continue
            t = time.perf_counter()
            data = encode(image, offset)
            t_enc = time.perf_counter() - t
            t = time.perf_counter()
            out = codec.decompress(data).numpy()
            t_dec = time.perf_counter() - t
            # What sending the kept bits raw would cost (levels at log2(L + 1) bits each).
            level = codec.latents(data)["level"]
            kept = sum(int(tf.reduce_sum(ops.kept_channels(level, n, levels)))
                       for n in (config["code_y"], config["code_c"]))
            pixels = image.shape[0] * image.shape[1]
            rows.append(dict(image=name, offset=offset, bytes=len(data),
                             bpp=8.0 * len(data) / pixels,
                             raw_bpp=float(kept + level.numpy().size * np.log2(levels + 1)) / pixels,
                             mean_level=float(tf.reduce_mean(tf.cast(level, tf.float32))),
                             **image_metrics(image, out),
                             encoding_time=t_enc, decoding_time=t_dec))
            if checkpoint is not None:
                checkpoint(result())
            if progress is not None:
                progress.update()
    return result()


def evaluate_anchor(anchor_name, images, targets, progress=None):
    """A classic codec on ``images`` at each target bpp (largest file at or under it)."""
    from .anchors import fit_to_bpp, get_anchor

    anchor = get_anchor(anchor_name)
    rows = []
    for name, image in images:
        cache = {}
        pixels = image.shape[0] * image.shape[1]
        for target in targets:
            fit = fit_to_bpp(anchor, image, target, cache)
            t = time.perf_counter()
            out = anchor.decode(fit.data)
            t_dec = time.perf_counter() - t
            rows.append(dict(image=name, target_bpp=target, setting=anchor.describe(fit.setting),
                             reached=fit.reached, bytes=len(fit.data),
                             bpp=8.0 * len(fit.data) / pixels, **image_metrics(image, out),
                             encoding_time=fit.encode_time, decoding_time=t_dec,
                             search_encodes=fit.encodes))
        if progress is not None:
            progress.update()
    keys = ("bpp",) + METRIC_KEYS + ("encoding_time", "decoding_time")
    return dict(name=anchor.name, description=f"{anchor.label}, largest file at or under each "
                f"target bpp, {len(images)} images", kind="anchor",
                results=_average(rows, "target_bpp", targets, keys), per_image=rows)


# ----- reporting ------------------------------------------------------------------
def rd_curve(result, key, complete_only=True):
    """(bpp, metric) arrays of a result's points, sorted by bpp.

    Anchor points where some image missed the target are left out when
    ``complete_only``: their averages are over a different (easier) image subset.
    """
    r = result["results"]
    total = num_images(result)
    pts = [(b, v) for b, v, n in zip(r["bpp"], r[key], r["images"])
           if b is not None and v is not None and (n == total or not complete_only)]
    pts.sort()
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def rising_rd_curve(result, key, sign=1):
    """(bpp, sign * metric) of a result up to its best point (sign -1: lower is better).

    Past the best point more bits buy nothing (channels above the trained level are
    untrained), and a falling tail would make log-rate a non-function of quality, so
    Bjontegaard deltas over quality use this part of a curve.
    """
    rate, quality = rd_curve(result, key)
    best = int(np.argmax(sign * quality))
    return rate[:best + 1], sign * quality[:best + 1]


# Metrics of Bjontegaard comparisons between results: (key, label, sign), sign -1 = lower is better.
BD_METRICS = (("psnr-rgb", "PSNR-RGB", 1), ("psnr-y", "PSNR-Y", 1), ("psnr-cbcr", "PSNR-CbCr", 1),
              ("ms-ssim-db", "MS-SSIM dB", 1), ("ciede2000", "CIEDE2000", -1))


def clip_rd_curve(rate, quality, lo, hi):
    """The part of a curve (ascending ``rate``) between ``lo`` and ``hi`` bpp, with end
    points interpolated linearly in log bpp at ``lo`` / ``hi`` where the curve spans them."""
    if not len(rate):
        return rate, quality
    r = np.concatenate([[lo], rate[(rate > lo) & (rate < hi)], [hi]])
    r = r[(r >= rate[0]) & (r <= rate[-1])]
    return r, np.array([interp_log_bpp(rate, quality, x) for x in r])


def bd_deltas(ref, test, key, sign=1, bpp_range=None):
    """(BD-rate %, BD-quality) of ``test`` against ``ref`` in metric ``key``, over each
    curve up to its best point (sign -1: lower is better; BD-quality is then in units
    of -metric, so positive = better either way), or only its part within ``bpp_range``
    (lo, hi) when given.  None where the curves do not overlap."""
    from .metrics import bd_quality, bd_rate

    curves = [rising_rd_curve(ref, key, sign), rising_rd_curve(test, key, sign)]
    if bpp_range is not None:
        curves = [clip_rd_curve(*c, *bpp_range) for c in curves]
    return bd_rate(*curves[0], *curves[1]), bd_quality(*curves[0], *curves[1])


def at_bpp(result, key, target):
    """The metric at ``target`` bpp: an anchor's own point for that target when every
    image reached it, else the average curve interpolated linearly in log bpp (None
    outside the curve)."""
    r = result["results"]
    if result["kind"] == "anchor" and target in r["target_bpp"]:
        i = r["target_bpp"].index(target)
        return r[key][i] if r["images"][i] == num_images(result) else None
    return interp_log_bpp(*rd_curve(result, key), target)


def interp_log_bpp(bpp, values, target):
    """``values`` over ascending ``bpp`` at ``target`` bpp, interpolated linearly in log
    bpp; None outside the curve."""
    if len(bpp) == 0 or not bpp[0] <= target <= bpp[-1]:
        return None
    return float(np.interp(np.log(target), np.log(bpp), values))


def _fmt(v, digits=2, suffix=""):
    return "—" if v is None else f"{v:.{digits}f}{suffix}"


def summarize(results, targets):
    """Markdown: averages of every point, values at the targets, Bjontegaard deltas."""
    lines = ["## Averages per rate point", "",
             "Anchors: one point per target bpp, averaged over the images that reached it "
             "(`n`). tfycc: one point per importance-level offset.", "",
             "| codec | point | n | bpp | PSNR-RGB | MS-SSIM | MS-SSIM dB | PSNR-Y | PSNR-CbCr "
             "| CIEDE2000 | Δa* | Δb* | encode s | decode s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        r = res["results"]
        point_key = "offset" if res["kind"] == "tfycc" else "target_bpp"
        for i, p in enumerate(r[point_key]):
            label = f"offset {p:+g}" if point_key == "offset" else f"≤ {p:g} bpp"
            v = {k: r[k][i] for k in r if k not in (point_key,)}
            lines.append(
                f"| {res['name']} | {label} | {v['images']} | {_fmt(v['bpp'], 4)} | "
                f"{_fmt(v['psnr-rgb'])} | {_fmt(v['ms-ssim-rgb'], 4)} | {_fmt(v['ms-ssim-db'])} | "
                f"{_fmt(v['psnr-y'])} | {_fmt(v['psnr-cbcr'])} | {_fmt(v['ciede2000'])} | "
                f"{_fmt(v['delta-a'])} | {_fmt(v['delta-b'])} | {_fmt(v['encoding_time'], 3)} | "
                f"{_fmt(v['decoding_time'], 3)} |")
    lines += ["", "## At the target rates", "",
              "Anchors: their own point for that target (the largest file at or under it), when "
              "every image reached it. tfycc: its average curve interpolated linearly in log bpp. "
              "— where the target was not reached by every image or lies outside the curve.", "",
              "| codec | " + " | ".join(f"{t:g} bpp: PSNR / MS-SSIM / CIEDE2000" for t in targets)
              + " |", "|---|" + "---|" * len(targets)]
    for res in results:
        cells = [f"{_fmt(at_bpp(res, 'psnr-rgb', t))} / {_fmt(at_bpp(res, 'ms-ssim-rgb', t), 3)}"
                 f" / {_fmt(at_bpp(res, 'ciede2000', t))}" for t in targets]
        lines.append(f"| {res['name']} | " + " | ".join(cells) + " |")
    models = [r for r in results if r["kind"] == "tfycc"]
    anchors = [r for r in results if r["kind"] == "anchor"]
    if models and anchors:
        lines += ["", "## Bjontegaard deltas (tfycc model vs anchor)", "",
                  "PCHIP over the overlapping interval of each curve up to its best point; "
                  "negative BD-rate = tfycc needs fewer bits for the same quality; n/a = the "
                  "curves do not overlap (no honest number).",
                  "", "| model | anchor | BD-rate PSNR | BD-PSNR | BD-rate MS-SSIM dB | "
                  "BD-rate CIEDE2000 |", "|---|---|---|---|---|---|"]
        for m in models:
            for a in anchors:
                psnr = bd_deltas(a, m, "psnr-rgb")
                values = (psnr[0], psnr[1], bd_deltas(a, m, "ms-ssim-db")[0],
                          bd_deltas(a, m, "ciede2000", -1)[0])
                cells = ["n/a" if v is None else f"{v:+.1f}{unit}"
                         for v, unit in zip(values, (" %", " dB", " %", " %"))]
                lines.append(f"| {m['name']} | {a['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# tfycc curves: solid, round markers, strong colours; classic codecs: dashed, other markers,
# a second palette, so no codec shares a colour with another while each group fits its palette.
TFYCC_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
                 "#e377c2", "#000000", "#bcbd22")
ANCHOR_COLOURS = ("#7f7f7f", "#c49c94", "#98df8a", "#ffbb78", "#aec7e8", "#f7b6d2", "#c5b0d5",
                  "#dbdb8d")
ANCHOR_MARKERS = ("s", "^", "v", "D", "P", "X", "<", ">")


def plot_styles(results):
    """(colour, line style, marker, line width) per result: tfycc curves and classic codecs
    are numbered separately, each from its own palette, which repeats only past its size."""
    styles, n_tfycc, n_anchor = [], 0, 0
    for res in results:
        if res["kind"] == "tfycc":
            styles.append((TFYCC_COLOURS[n_tfycc % len(TFYCC_COLOURS)], "-", "o", 2.2))
            n_tfycc += 1
        else:
            k = n_anchor % len(ANCHOR_COLOURS)
            styles.append((ANCHOR_COLOURS[k], "--", ANCHOR_MARKERS[k], 1.6))
            n_anchor += 1
    return styles


def plot(results, out_dir, title):
    """rd.png (three panels) and rd-<metric>.png: one curve per codec.

    Filled markers: points every image reached; hollow: averages over fewer images.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = plot_styles(results)

    def draw(ax, key, label):
        for res, (color, style, marker, width) in zip(results, styles):
            bpp, val = rd_curve(res, key)
            ax.plot(bpp, val, style, marker=marker, color=color, lw=width, label=res["name"])
            complete = set(bpp)
            all_b, all_v = rd_curve(res, key, complete_only=False)
            partial = [(b, v) for b, v in zip(all_b, all_v) if b not in complete]
            if partial:
                ax.plot(*zip(*partial), "o", mfc="none", color=color)
        ax.set_xlabel("bits per pixel (real files)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)

    paths = []
    fig, axes = plt.subplots(1, len(PLOTS), figsize=(6 * len(PLOTS), 4.6))
    for ax, (key, label) in zip(axes, PLOTS):
        draw(ax, key, label)
    axes[0].legend(fontsize=8)
    fig.suptitle(title + "  (hollow: not every image reached that rate)", fontsize=10)
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "rd.png"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    for key, label in PLOTS:
        fig, ax = plt.subplots(figsize=(6.4, 4.8))
        draw(ax, key, label)
        ax.legend(fontsize=8)
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        paths.append(os.path.join(out_dir, f"rd-{key}.png"))
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


# ----- the command -------------------------------------------------------------------
def _current_model_id(model):
    """The id of a tfycc model (shipped name or directory), or None when it is not there."""
    from .cli import CliError, resolve_model

    try:
        with open(os.path.join(resolve_model(model), "config.json")) as f:
            return json.load(f)["model_id"]
    except (CliError, OSError, KeyError, ValueError):
        return None


def _load_result(path, model_id=None, refine=0, tune="psnr"):
    """The result JSON at ``path`` (given ``model_id``: only if of that model version, made
    with ``refine`` search steps tuned for ``tune``), or None."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        old = json.load(f)
    if model_id is not None and (old.get("model_id") != model_id
                                 or old.get("refine_steps", 0) != refine
                                 or (refine and (old.get("tune") or "psnr") != tune)):
        return None
    return old


def _write_json(path, result):
    """``result`` to ``path`` atomically (a partial or final result; overwritten)."""
    from .cli import _atomic_write

    _atomic_write(path, json.dumps(result, indent=1).encode(), True)


def _covers(old, images, points, point_key):
    """Whether the loaded result ``old`` is for exactly these images and rate points."""
    names = sorted({r["image"] for r in old.get("per_image", [])})
    return names == sorted(n for n, _ in images) and old["results"].get(point_key) == list(points)


def load_images(data=None, tfds_name=None, tfds_data_dir=None, tfds_manual_dir=None):
    """[(name, uint8 HxWx3)] from files (dirs/globs) or a TFDS dataset ('kodak' is built in)."""
    if tfds_name:
        if tfds_name != "kodak":
            raise ValueError(f"--tfds supports 'kodak' (got {tfds_name!r}); use --data for others")
        from .kodak import load_images as kodak_images

        return kodak_images(data_dir=tfds_data_dir, manual_dir=tfds_manual_dir)
    from .cli import read_image
    from .data import list_images

    return [(os.path.splitext(os.path.basename(p))[0], read_image(p)) for p in list_images(data)]


def _floats(text, what):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated numbers, not {text!r}") from None


def build_parser():
    from .anchors import ANCHORS, DEFAULT_ANCHORS
    from .cli import DEFAULT_MODEL, TUNES

    p = argparse.ArgumentParser(prog="tfycc evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", action="append", metavar="DIR_OR_GLOB", help="images (repeatable)")
    src.add_argument("--tfds", metavar="NAME", help="a TFDS dataset: 'kodak' (downloads when "
                     "online, else reads --tfds-manual-dir)")
    p.add_argument("--tfds-data-dir", help="TFDS data directory (default: TFDS's own)")
    p.add_argument("--tfds-manual-dir", help="directory with kodim01.png... (default: "
                   "../shared/data/kodak beside the repository, when it exists)")
    p.add_argument("--models", nargs="*", default=[DEFAULT_MODEL],
                   help=f"tfycc models: shipped names or directories (default: {DEFAULT_MODEL}; "
                        "give the flag alone for none)")
    p.add_argument("--offsets", default="-3,-2,-1,0,1,2",
                   help="importance-level offsets for tfycc models (default: %(default)s)")
    p.add_argument("--refine", type=int, default=0, metavar="STEPS",
                   help="encode with STEPS steps of encoder-side search (as `tfycc compress "
                        "--refine`; results named tfycc-MODEL-refineSTEPS; default: 0)")
    p.add_argument("--tune", choices=tuple(TUNES), default="psnr",
                   help="what that search raises (as `tfycc compress --tune`; other than psnr, "
                        "results named tfycc-MODEL-refineSTEPS-TUNE; default: %(default)s)")
    p.add_argument("--anchors", default=",".join(DEFAULT_ANCHORS),
                   help=f"classic codecs, comma-separated, or 'none' (default: %(default)s; "
                        f"known: {','.join(ANCHORS)})")
    p.add_argument("--bpp", default="0.05,0.1,0.15,0.25,0.5",
                   help="target bpp for the anchors (default: %(default)s)")
    p.add_argument("--out", required=True, help="output directory (JSON, summary.md, plots)")
    p.add_argument("--reuse", action="store_true",
                   help="keep a codec's JSON already in --out when it covers the same images "
                        "and rate points (and, for a tfycc model, the same model id and "
                        "--refine); of a tfycc model's other JSON, and of the rows an "
                        "interrupted run left in NAME.json.partial, keep the (image, offset) "
                        "rows they have and run only the missing ones")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    from .anchors import get_anchor
    from .cli import CliError, _atomic_write

    try:
        offsets = _floats(args.offsets, "--offsets")
        if args.refine < 0:
            raise ValueError(f"--refine must be >= 0, not {args.refine}")
        if args.tune != "psnr" and not args.refine:
            raise ValueError(f"--tune {args.tune} tunes the encoder-side search: add --refine STEPS")
        targets = _floats(args.bpp, "--bpp")
        anchors = [] if args.anchors.strip() in ("", "none") else [
            a.strip() for a in args.anchors.split(",") if a.strip()]
        for a in anchors:
            get_anchor(a)
        if not args.models and not anchors:
            raise ValueError("nothing to evaluate: give --models and/or --anchors")
        images = load_images(args.data, args.tfds, args.tfds_data_dir, args.tfds_manual_dir)
        if not images:
            raise ValueError("no images found")
        os.makedirs(args.out, exist_ok=True)
        jobs = [("model", m) for m in args.models] + [("anchor", a) for a in anchors]
        results, todo = [], []
        previous = {}  # tfycc results to extend (other offsets or images, same model version)
        for kind, name in jobs:
            json_name = model_result_name(name, args.refine, args.tune) if kind == "model" else name
            path = os.path.join(args.out, json_name + ".json")
            model_id = _current_model_id(name) if args.reuse and kind == "model" else None
            # A model's result must be of its current version and --refine; an anchor's any.
            stored = _load_result(path, model_id, args.refine, args.tune) if args.reuse else None
            points, key = (offsets, "offset") if kind == "model" else (targets, "target_bpp")
            done = stored is not None and _covers(stored, images, points, key)
            results.append(stored if done else None)
            if not done:
                todo.append((len(results) - 1, kind, name, path))
                rows = {}
                if model_id:  # --reuse: rows of the JSON and of an interrupted run's partial file
                    for old in (stored, _load_result(path + PARTIAL, model_id, args.refine,
                                                     args.tune)):
                        if old is not None:
                            rows.update(((r["image"], r["offset"]), r) for r in old["per_image"])
                previous[name] = list(rows.values())
        total = sum(len(images) * (len(offsets) if k == "model" else 1) for _, k, _, _ in todo)
        start = time.perf_counter()
        with tqdm(total=total, unit="image", disable=args.quiet, desc="evaluate") as bar:
            for i, kind, name, path in todo:
                bar.set_description(name)
                if kind == "model":
                    res = evaluate_model(name, images, offsets, bar, args.refine,
                                         previous.get(name, ()), args.tune,
                                         lambda partial: _write_json(path + PARTIAL, partial))
                else:
                    res = evaluate_anchor(name, images, targets, bar)
                _write_json(path, res)
                if os.path.exists(path + PARTIAL):
                    os.remove(path + PARTIAL)
                results[i] = res
        summary = summarize(results, targets)
        title = f"{len(images)} images"
        _atomic_write(os.path.join(args.out, "summary.md"),
                      f"# Rate-distortion, {title}\n\n{summary}".encode(), True)
        paths = [] if args.no_plots else plot(results, args.out, title)
        print(summary)
        print(f"tfycc evaluate: {len(images)} images, {len(todo)} codec(s) run, "
              f"{len(results) - len(todo)} reused, {time.perf_counter() - start:.0f} s; wrote "
              f"{args.out}/summary.md" + (f" and {len(paths)} plots" if paths else ""))
    except (CliError, ValueError, OSError, RuntimeError) as e:
        print(f"tfycc evaluate: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = sorted(glob.glob(os.path.join(glob.escape(args.out), "*.json" + PARTIAL)))
        print("tfycc evaluate: interrupted" + (
            f"; the rows measured so far are kept in {', '.join(kept)}: run again with "
            "--reuse to go on" if kept else ""), file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
