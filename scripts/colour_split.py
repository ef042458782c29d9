"""Is the CIEDE2000 gap to the classic codecs a colour error or a lightness error?

    python scripts/colour_split.py [--model NAME_OR_DIR] [--data ../shared/data/kodak] \
        [--refine 0] [--tune psnr] [--offsets=-1,0.5,3.5] [--anchors avif,jpeg2000,hevc,webp] \
        [--images 24] [--seed 0] [--json OUT]

Each image is compressed to a real tfycc file at each level offset (``--refine`` and
``--tune`` as in ``tfycc compress``) and decoded; every anchor then encodes the same
image at that file's own size (its largest file at or under it, ``anchors.fit_to_bpp``).
For every decoded image it measures the mean CIEDE2000 against the original and its two
parts (``tfycc.metrics.ciede2000_split``): the colour part, with the original's L* (only
a*, b* errors left), and the lightness part, with the original's a*, b*.  Per offset it
prints each codec's means and, per anchor, tfycc minus the anchor averaged over the
images the anchor reached, ± the standard error of that paired difference.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")
PARTS = ("ciede2000", "colour", "lightness")


def measure(encode, decode, images, offsets, anchor_names, progress=None):
    """Per-image rows dict(image, offset, codec, bpp, reached, ciede2000, colour, lightness):
    tfycc's file (``encode(image, offset)`` -> bytes, ``decode(bytes)`` -> uint8) and
    each anchor's at that file's bpp.  ``images``: [(name, uint8 HxWx3)]."""
    from tfycc.anchors import fit_to_bpp, get_anchor
    from tfycc.metrics import ciede2000_split

    anchors = [get_anchor(a) for a in anchor_names]
    rows = []
    for offset in offsets:
        for name, image in images:
            pixels = image.shape[0] * image.shape[1]
            data = encode(image, offset)
            bpp = 8.0 * len(data) / pixels
            found = [("tfycc", data, decode(data), True)]
            for anchor in anchors:
                fit = fit_to_bpp(anchor, image, bpp)
                found.append((anchor.name, fit.data, anchor.decode(fit.data), fit.reached))
            for codec, file, out, reached in found:
                rows.append(dict(image=name, offset=offset, codec=codec, bpp=8.0 * len(file) / pixels,
                                 reached=bool(reached), **dict(zip(PARTS, ciede2000_split(image, out)))))
            if progress is not None:
                progress.update()
    return rows


def summarize(rows, offsets, anchor_names):
    """Per offset: {codec: means of bpp and PARTS over its reached images} and, per
    anchor, {part: (images, mean of tfycc - anchor, standard error)}."""
    import numpy as np

    out = []
    for offset in offsets:
        here = [r for r in rows if r["offset"] == offset]
        tfycc = {r["image"]: r for r in here if r["codec"] == "tfycc"}
        means, diffs = {}, {}
        for codec in ("tfycc",) + tuple(anchor_names):
            mine = [r for r in here if r["codec"] == codec and r["reached"]]
            if not mine:  # no file of this anchor fits under any of tfycc's
                means[codec] = dict(images=0)
                continue
            means[codec] = {k: float(np.mean([r[k] for r in mine])) for k in ("bpp",) + PARTS}
            means[codec]["images"] = len(mine)
            if codec != "tfycc":
                diffs[codec] = {}
                for k in PARTS:
                    d = np.array([tfycc[r["image"]][k] - r[k] for r in mine])
                    se = float(np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
                    diffs[codec][k] = (len(d), float(d.mean()), se)
        out.append(dict(offset=offset, means=means, differences=diffs))
    return out


def report(summary):
    lines = []
    for s in summary:
        lines += [f"Offset {s['offset']:+g} (tfycc {s['means']['tfycc']['bpp']:.4f} bpp):", "",
                  "| codec | images | bpp | CIEDE2000 | colour part | lightness part | "
                  "tfycc − codec: CIEDE2000 | colour | lightness |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for codec, m in s["means"].items():
            if not m["images"]:
                lines.append(f"| {codec} | 0 | (its smallest file is larger than tfycc's) |||||||")
                continue
            d = s["differences"].get(codec)
            cells = ["", "", ""] if d is None else [f"{d[k][1]:+.3f} ± {d[k][2]:.3f}" for k in PARTS]
            lines.append(f"| {codec} | {m['images']} | {m['bpp']:.4f} | {m['ciede2000']:.3f} | "
                         f"{m['colour']:.3f} | {m['lightness']:.3f} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="shipped model name or directory (default: the shipped default)")
    p.add_argument("--data", default=os.path.join(SHARED, "kodak"), help="folder or glob of images")
    p.add_argument("--refine", type=int, default=0, help="encoder-side search steps (default 0)")
    p.add_argument("--tune", default="psnr", help="what the search is tuned for (default %(default)s)")
    p.add_argument("--offsets", default="-1,0.5,3.5", help="level offsets (default %(default)s)")
    p.add_argument("--anchors", default="avif,jpeg2000,hevc,webp",
                   help="classic codecs to compare with (default %(default)s)")
    p.add_argument("--images", type=int, default=24,
                   help="at most this many images (a seeded random sample of more; default 24)")
    p.add_argument("--seed", type=int, default=0, help="seed of that sample")
    p.add_argument("--json", help="also write the per-image rows and the summary here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    import random

    from tqdm import tqdm

    from tfycc.anchors import get_anchor
    from tfycc.cli import CliError, load_codec, read_image, refined_compressor
    from tfycc.data import list_images

    try:
        offsets = [float(v) for v in args.offsets.split(",") if v.strip()]
    except ValueError:
        p.error(f"--offsets: not a list of numbers: {args.offsets!r}")
    anchor_names = [a for a in args.anchors.split(",") if a.strip()]
    if not offsets or args.images < 1 or args.refine < 0:
        p.error("--offsets must not be empty, --images must be >= 1 and --refine >= 0")
    try:
        for a in anchor_names:
            get_anchor(a)
        files = list_images(args.data)
        codec, model_id = load_codec(args.model)
        encode = refined_compressor(codec, args.refine, args.tune)
    except (ValueError, CliError) as e:
        p.error(str(e))
    if len(files) > args.images:
        files = sorted(random.Random(args.seed).sample(files, args.images))
    try:
        images = [(os.path.basename(f), read_image(f)) for f in files]
    except CliError as e:
        p.error(str(e))
    with tqdm(total=len(offsets) * len(images), unit="image", disable=args.quiet) as bar:
        rows = measure(encode, lambda data: codec.decompress(data).numpy(), images, offsets,
                       anchor_names, bar)
    summary = summarize(rows, offsets, anchor_names)
    mode = f", {args.refine} steps of search tuned for {args.tune}" if args.refine else ""
    print(f"{model_id}{mode}, {len(images)} images from {args.data}\n")
    print(report(summary))
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(dict(model_id=model_id, refine=args.refine, tune=args.tune if args.refine else None,
                           data=args.data, summary=summary, per_image=rows), f, indent=1)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
