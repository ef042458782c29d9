"""Bjontegaard deltas of ``tfycc evaluate`` results against a reference result.

    python scripts/compare.py results/previous/tfycc-rgb-88b2ff3a.json results/kodak/tfycc-rgb.json
    python scripts/compare.py REF.json TEST.json [TEST2.json ...] [--at 0.1,0.15,0.25]
    python scripts/compare.py REF.json TEST.json --bpp-range 0.05,0.25

For every test result: BD-rate and BD-quality against the reference in PSNR-RGB,
PSNR-Y, PSNR-CbCr, MS-SSIM (dB) and CIEDE2000 (PCHIP over the overlapping part of each
curve up to its best point, as in ``summary.md``, or with ``--bpp-range LO,HI`` over
the part of each within LO–HI bpp, ends interpolated; negative BD-rate = the test needs
fewer bits; BD-quality positive = better, for CIEDE2000 negative = better), then
PSNR / MS-SSIM / CIEDE2000 of both at each ``--at`` rate (log-bpp interpolation).
``--per-image ANCHOR.json ...`` adds, per ``--at`` rate, each anchor's files against each
result's per-image curve at the file's own bpp (``--metric``, default MS-SSIM), over the
images whose curve spans it: for anchors that not every image reaches.
This is how the model cards' "against the previous models" tables are made.
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def deltas(ref, test, bpp_range=None):
    """{metric key: (BD-rate %, BD-quality)} of ``test`` against ``ref`` (None: no overlap),
    over the whole curves or their parts within ``bpp_range`` (lo, hi).

    BD-quality is in the metric's own sense (CIEDE2000: negative = better)."""
    from tfycc.evaluate import BD_METRICS, bd_deltas

    out = {}
    for key, _, sign in BD_METRICS:
        rate, quality = bd_deltas(ref, test, key, sign, bpp_range)
        out[key] = (rate, None if quality is None else sign * quality)
    return out


def labels(results):
    """A row label per result: its model id, or its name (e.g. tfycc-rgb-refine10) where
    two results share a model id (the same model encoded two ways)."""
    ids = [r.get("model_id", r["name"]) for r in results]
    return [r["name"] if ids.count(i) > 1 else i for r, i in zip(results, ids)]


def report(ref, tests, targets, bpp_range=None):
    from tfycc.evaluate import BD_METRICS, at_bpp

    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)

    names = labels([ref] + tests)
    span = "whole curves" if bpp_range is None else f"{bpp_range[0]:g}–{bpp_range[1]:g} bpp"
    lines = [f"Reference: {ref['name']} ({ref.get('model_id', ref['name'])}); "
             f"Bjontegaard deltas over the {span}", "",
             "| test | metric | BD-rate | BD-quality |", "|---|---|---|---|"]
    for test, name in zip(tests, names[1:]):
        found = deltas(ref, test, bpp_range)
        for key, label, sign in BD_METRICS:
            rate, quality = found[key]
            lines.append(f"| {name} | {label} | "
                         f"{fmt(rate, '+.1f')} % | {fmt(quality, '+.2f')}{' dB' if sign > 0 else ''} |")
    lines += ["", "| bpp | result | PSNR-RGB | MS-SSIM | CIEDE2000 |", "|---|---|---|---|---|"]
    for t in targets:
        for res, name in zip([ref] + tests, names):
            cells = [fmt(at_bpp(res, k, t), d) for k, d in
                     (("psnr-rgb", ".2f"), ("ms-ssim-rgb", ".3f"), ("ciede2000", ".2f"))]
            lines.append(f"| {t:g} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_image(anchor, res, target, key="ms-ssim-rgb"):
    """``anchor``'s files for ``target`` bpp against ``res``'s per-image curve at each
    file's own bpp (log-bpp interpolation), over the images whose curve spans it and
    whose file reached the target: (images, anchor mean, tfycc mean, images where tfycc
    is higher, standard error of the mean paired difference, nan for one image); None
    where no image qualifies.  A check that does not average first."""
    import numpy as np

    from tfycc.evaluate import interp_log_bpp

    pairs = []
    for row in anchor["per_image"]:
        if row["target_bpp"] != target or not row.get("reached", True):
            continue
        curve = sorted((r["bpp"], r[key]) for r in res["per_image"] if r["image"] == row["image"])
        tfycc = interp_log_bpp(*zip(*curve), row["bpp"]) if curve else None
        if tfycc is not None:
            pairs.append((row[key], tfycc))
    if not pairs:
        return None
    a, t = np.array(pairs).T
    se = float(np.std(t - a, ddof=1) / np.sqrt(len(t))) if len(t) > 1 else float("nan")
    return len(pairs), float(a.mean()), float(t.mean()), int((t > a).sum()), se


def per_image_report(anchors, results, targets, key="ms-ssim-rgb"):
    lines = [f"Per image, {key} at each anchor file's own bpp:", "",
             "| bpp | anchor | result | images | anchor | result | result higher "
             "| difference ± standard error |",
             "|---|---|---|---|---|---|---|---|"]
    for t in targets:
        for anchor in anchors:
            for res, name in zip(results, labels(results)):
                found = per_image(anchor, res, t, key)
                cells = ["0", "—", "—", "—", "—"] if found is None else [
                    str(found[0]), f"{found[1]:.4f}", f"{found[2]:.4f}", str(found[3]),
                    f"{found[2] - found[1]:+.4f} ± {found[4]:.4f}"]
                lines.append(f"| {t:g} | {anchor['name']} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reference", help="result JSON of the reference (e.g. the previous default)")
    p.add_argument("tests", nargs="+", help="result JSON(s) to compare with it")
    p.add_argument("--at", default="0.1,0.15,0.25", help="bpp for the value table (default %(default)s)")
    p.add_argument("--bpp-range", metavar="LO,HI",
                   help="Bjontegaard deltas over this part of the curves only (e.g. 0.05,0.25: "
                        "the product's range; default: the whole curves, whose lowest, steepest "
                        "points can dominate them)")
    p.add_argument("--per-image", metavar="ANCHOR_JSON", nargs="+", default=[],
                   help="also compare each tfycc result with these anchors' files image by "
                        "image, at each file's own bpp (--metric; the --at targets)")
    p.add_argument("--metric", default="ms-ssim-rgb", help="metric of --per-image (default %(default)s)")
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    try:
        targets = [float(t) for t in args.at.split(",") if t]
        bpp_range = None
        if args.bpp_range:
            bpp_range = tuple(float(b) for b in args.bpp_range.split(","))
            if len(bpp_range) != 2 or not 0 < bpp_range[0] < bpp_range[1]:
                raise ValueError(f"--bpp-range: want LO,HI with 0 < LO < HI, got {args.bpp_range!r}")
        results = []
        for path in [args.reference] + args.tests + args.per_image:
            with open(path) as f:
                results.append(json.load(f))
    except (OSError, ValueError) as e:
        print(f"compare.py: error: {e}", file=sys.stderr)
        return 2
    anchors = results[len(results) - len(args.per_image):]
    results = results[:len(results) - len(args.per_image)]
    print(report(results[0], results[1:], targets, bpp_range))
    if anchors:
        try:
            print("\n" + per_image_report(anchors, results, targets, args.metric))
        except KeyError as e:
            print(f"compare.py: error: --per-image: a result or anchor has no per-image {e}",
                  file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
