"""What the encoder-side search's colour share buys, measured on training crops.

    python scripts/colour_share.py [--model NAME_OR_DIR] [--data ../shared/data/train] \
        [--images 8] [--crop 384x512] [--tune ms-ssim] [--shares 0,0.07,0.15,0.3] \
        [--offsets=-1,1] [--steps 10] [--seed 27] [--json OUT]

The "-colour" tunes of ``tfycc compress --refine`` add ``REFINE_COLOUR_SHARE`` * ln(MSE
of Cb and Cr) to the search's objective (``Codec.refine_objective``).  This script
encodes ``--images`` random training photos (centre crops of at most ``--crop``; never
the evaluation set) with ``--steps`` steps of the ``--tune``-colour search for each
share in ``--shares`` (share 0 is the plain ``--tune`` search), decodes the real files
and prints, per share and offset, the averages of bpp, PSNR-RGB, MS-SSIM, PSNR-CbCr,
CIEDE2000 and the mean a*/b* shift, with the change against the first share.
"""
import argparse
import json
import os
import random
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")
KEYS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "psnr-cbcr", "ciede2000", "delta-a", "delta-b")


def measure(model_dir, images, tune, shares, offsets, steps):
    """Rows of dict(share, offset, **means of KEYS) over ``images`` (uint8 arrays)."""
    import numpy as np
    import tensorflow as tf

    import tfycc.model as model_module
    from tfycc.evaluate import image_metrics

    signature = {"psnr": "compress_refined_colour", "ms-ssim": "compress_refined_ms_ssim_colour"}[tune]
    kept, rows = model_module.REFINE_COLOUR_SHARE, []
    try:
        for share in shares:
            # The share is read when the search is traced: a fresh model for each one.
            model_module.REFINE_COLOUR_SHARE = share
            model = model_module.load_model(model_dir)
            search = getattr(model, signature)
            for offset in offsets:
                found = []
                for image in images:
                    data = search(tf.constant(image), tf.constant(offset, tf.float32),
                                  tf.constant(steps, tf.int32)).numpy()
                    m = image_metrics(image, model.decompress(tf.constant(data)).numpy())
                    m["bpp"] = 8.0 * len(data) / (image.shape[0] * image.shape[1])
                    found.append(m)
                rows.append(dict(share=share, offset=offset,
                                 **{k: float(np.mean([m[k] for m in found])) for k in KEYS}))
    finally:
        model_module.REFINE_COLOUR_SHARE = kept
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="shipped model name or directory (default: the shipped default)")
    p.add_argument("--data", default=os.path.join(SHARED, "train"), help="training images")
    p.add_argument("--images", type=int, default=8, help="random images (default %(default)s)")
    p.add_argument("--crop", default="384x512", help="largest centre crop, HxW (default %(default)s)")
    p.add_argument("--tune", choices=("psnr", "ms-ssim"), default="ms-ssim",
                   help="the search the colour share is added to (default %(default)s)")
    p.add_argument("--shares", default="0,0.07,0.15,0.3", help="colour shares (default %(default)s)")
    p.add_argument("--offsets", default="-1,1", help="level offsets (default %(default)s)")
    p.add_argument("--steps", type=int, default=10, help="search steps (default %(default)s)")
    p.add_argument("--seed", type=int, default=27)
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    from tfycc.cli import CliError, read_image, resolve_model
    from tfycc.data import list_images

    try:
        shares = [float(v) for v in args.shares.split(",") if v.strip()]
        offsets = [float(v) for v in args.offsets.split(",") if v.strip()]
        crop_h, crop_w = (int(v) for v in args.crop.lower().split("x"))
    except ValueError as e:
        p.error(str(e))
    if not shares or not offsets or min(shares) < 0 or args.images < 1 or args.steps < 1:
        p.error("--shares (each >= 0), --offsets, --images and --steps must be non-empty / positive")
    try:
        files = list_images([args.data])
        model_dir = resolve_model(args.model)
    except (ValueError, CliError) as e:
        p.error(str(e))
    random.Random(args.seed).shuffle(files)
    images = []
    for f in files[:args.images]:
        im = read_image(f)
        h, w = min(im.shape[0], crop_h), min(im.shape[1], crop_w)
        y0, x0 = (im.shape[0] - h) // 2, (im.shape[1] - w) // 2
        images.append(im[y0:y0 + h, x0:x0 + w])
    rows = measure(model_dir, images, args.tune, shares, offsets, args.steps)
    print(f"{model_dir}: {len(images)} images of {args.data} (centre crops of at most {args.crop}), "
          f"{args.steps} steps of the {args.tune}-colour search\n")
    print("| share | offset | bpp | PSNR-RGB | MS-SSIM | PSNR-CbCr | CIEDE2000 | Δa* / Δb* |"
          " vs first share: bpp, CIEDE2000 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        base = next(b for b in rows if b["offset"] == r["offset"])
        print(f"| {r['share']:g} | {r['offset']:+g} | {r['bpp']:.4f} | {r['psnr-rgb']:.2f} | "
              f"{r['ms-ssim-rgb']:.4f} | {r['psnr-cbcr']:.2f} | {r['ciede2000']:.3f} | "
              f"{r['delta-a']:+.2f} / {r['delta-b']:+.2f} | "
              f"{100 * (r['bpp'] / base['bpp'] - 1):+.1f} %, "
              f"{100 * (r['ciede2000'] / base['ciede2000'] - 1):+.1f} % |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(model=model_dir, tune=args.tune, steps=args.steps,
                           images=[os.path.basename(f) for f in files[:args.images]], rows=rows),
                      f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
