"""Does a model shift colours?  The mean signed error of its decoded images.

    python scripts/colour_bias.py [--model NAME_OR_DIR] [--data ../shared/data/kodak] \
        [--offsets=-2,0,2] [--images 24] [--seed 0] [--max-side 0] [--subtract R,G,B] \
        [--json OUT]

Each image is compressed to a real file at each level offset and decoded again
(``compress_at`` / ``decompress``, exactly what ``tfycc compress`` writes).  Per offset
it prints the mean signed error of the decoded pixels, R, G and B (decoded −
original, in 1/255 units, averaged over all pixels of all images), the mean Lab
shift Δa*, Δb* (positive Δb* = yellower, negative = bluer) with the number of
images whose Δb* is negative, and the mean PSNR-RGB and CIEDE2000.  A constant bias
would show the same numbers on training images and on Kodak; ``--subtract R,G,B``
shows what removing such a constant from every decoded pixel would do.  With more
files than ``--images``, a seeded random sample of them is used; ``--max-side N``
centre-crops every image to at most N×N (large training photos); 0 keeps them whole.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")


def _stats(pairs):
    """(original, decoded) uint8 pairs -> dict(error_rgb, delta_a, delta_b, bluer, psnr, ciede2000)."""
    import numpy as np

    from tfycc import metrics

    err = sum((out.astype(np.float64) - image).sum(axis=(0, 1)) for image, out in pairs)
    pixels = sum(image.shape[0] * image.shape[1] for image, _ in pairs)
    shifts = [metrics.delta_ab(image, out) for image, out in pairs]
    da, db = np.mean(shifts, axis=0)
    return dict(error_rgb=list(err / pixels), delta_a=float(da), delta_b=float(db),
                bluer=sum(1 for _, b in shifts if b < 0),
                psnr=float(np.mean([metrics.psnr(image, out) for image, out in pairs])),
                ciede2000=float(np.mean([metrics.ciede2000(image, out) for image, out in pairs])))


def measure(codec, images, offsets, subtract=None):
    """Rows of dict(offset, bpp, images, error_rgb [3], delta_a, delta_b, bluer, psnr,
    ciede2000) per offset; with ``subtract`` (R, G, B) also ``corrected``: the same
    measures after subtracting it from every decoded pixel (rounded, clipped to 0..255).

    error_rgb is the pixel-weighted mean of decoded − original (uint8 units); delta_a,
    delta_b the image-averaged Lab shifts (``tfycc.metrics.delta_ab``); bluer the
    number of images with delta_b < 0; psnr (RGB) and ciede2000 image means.
    """
    import numpy as np
    import tensorflow as tf

    rows = []
    for offset in offsets:
        pairs, bits = [], 0
        for image in images:
            data = codec.compress_at(tf.constant(image), tf.constant(offset, tf.float32)).numpy()
            pairs.append((image, codec.decompress(data).numpy()))
            bits += 8 * len(data)
        pixels = sum(image.shape[0] * image.shape[1] for image in images)
        row = dict(offset=offset, bpp=bits / pixels, images=len(images), **_stats(pairs))
        if subtract is not None:
            fix = np.asarray(subtract, np.float64)
            row["corrected"] = _stats([(image, np.clip(np.round(out - fix), 0, 255).astype(np.uint8))
                                       for image, out in pairs])
        rows.append(row)
    return rows


def _table(rows, key=None):
    print("| offset | bpp | mean error R | G | B (of 255) | Δa* | Δb* | images with Δb* < 0 | "
          "PSNR-RGB | CIEDE2000 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        r = row[key] if key else row
        e = r["error_rgb"]
        print(f"| {row['offset']:+g} | {row['bpp']:.3f} | {e[0]:+.2f} | {e[1]:+.2f} | {e[2]:+.2f} | "
              f"{r['delta_a']:+.2f} | {r['delta_b']:+.2f} | {r['bluer']}/{row['images']} | "
              f"{r['psnr']:.3f} | {r['ciede2000']:.3f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="shipped model name or directory (default: the shipped default)")
    p.add_argument("--data", default=os.path.join(SHARED, "kodak"), help="folder or glob of images")
    p.add_argument("--offsets", default="-2,0,2", help="level offsets (default %(default)s)")
    p.add_argument("--images", type=int, default=24,
                   help="at most this many images (a seeded random sample of more; default 24)")
    p.add_argument("--seed", type=int, default=0, help="seed of that sample")
    p.add_argument("--max-side", type=int, default=0, help="centre-crop to at most N×N (0: whole)")
    p.add_argument("--subtract", metavar="R,G,B",
                   help="also measure the decoded images after subtracting this constant "
                   "(e.g. the error measured on training images)")
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    import random

    from tfycc.cli import CliError, load_codec, read_image
    from tfycc.data import centre_crop, list_images

    try:
        offsets = [float(v) for v in args.offsets.split(",") if v.strip()]
        subtract = None
        if args.subtract:
            subtract = [float(v) for v in args.subtract.split(",")]
            if len(subtract) != 3:
                raise ValueError
    except ValueError:
        p.error("--offsets / --subtract: not a list of numbers (three for --subtract)")
    try:
        files = list_images(args.data)
    except ValueError as e:
        p.error(str(e))
    try:
        codec, model_id = load_codec(args.model)
    except CliError as e:
        p.error(str(e))
    if len(files) > args.images:
        files = sorted(random.Random(args.seed).sample(files, args.images))
    try:
        images = [centre_crop(read_image(f), args.max_side) for f in files]
    except CliError as e:
        p.error(str(e))
    rows = measure(codec, images, offsets, subtract)
    print(f"{model_id}, {len(images)} images from {args.data}"
          + (f", centre {args.max_side}² crops" if args.max_side else "") + "\n")
    _table(rows)
    if subtract is not None:
        print(f"\nAfter subtracting R, G, B = {', '.join(f'{v:+g}' for v in subtract)} "
              "from every decoded pixel:\n")
        _table(rows, "corrected")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(model_id=model_id, data=args.data, max_side=args.max_side,
                           images=[os.path.relpath(f, args.data) if os.path.isdir(args.data) else f
                                   for f in files], rows=rows), f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
