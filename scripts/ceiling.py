"""Where a model's quality is lost: the transform or the rate allocation?

    python scripts/ceiling.py [--model NAME_OR_DIR] [--data ../shared/data/kodak] \
        [--levels 0,1,2,3,4,6,8,12,16] [--offsets=-1,0,1] [--images 24] [--json OUT]

For each whole-image level l (every latent position at level l, no importance map)
the model's encoder and decoder run on each image and the reconstruction is
compared with the original: PSNR-RGB, PSNR-Y, PSNR-CbCr (mean over images) and the
raw kept bits per pixel (channels kept at l / 64, before entropy coding).  Level L
keeps every code channel: its PSNR is the ceiling of the transform, the best the
networks can do at any rate.  The importance map's rows (at the given offsets) show
what the map achieves with the same networks.  No files are written or coded; the
quality is exactly what ``decompress`` returns for the same levels.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")


def measure(model, images, levels, offsets):
    """Rows of dict(setting, level, raw_bpp, psnr-rgb, psnr-y, psnr-cbcr), means over images."""
    import numpy as np
    import tensorflow as tf

    from tfycc import metrics, ops
    from tfycc.model import _pad_to_grid, _ycc_to_uint8

    n_y, n_c = model.code_channels
    settings = [("level", lv) for lv in levels] + [("map", off) for off in offsets]
    sums = {s: np.zeros(5) for s in settings}  # mean level, raw bpp, PSNR RGB, Y, CbCr
    for image in images:
        h, w = image.shape[:2]
        x = _pad_to_grid(tf.constant(image[None], tf.float32) / 255.0)
        for kind, value in settings:
            if kind == "level":
                override = (tf.ones([1, 1, 1, 1], bool), tf.fill([1, 1, 1, 1], value + 0.5))
                lat = model.analyze(x, 0.0, override)
            else:
                lat = model.analyze(x, float(value))
            ycc = model.synthesize(lat["bits_y"], lat["bits_c"], lat["mask_y"], lat["mask_c"])
            out = _ycc_to_uint8(ycc, h, w).numpy()
            level = lat["level"][0]
            kept = tf.reduce_sum(ops.kept_channels(level, n_y, model.levels)
                                 + ops.kept_channels(level, n_c, model.levels))
            sums[(kind, value)] += [float(tf.reduce_mean(tf.cast(level, tf.float32))),
                                    float(kept) / (h * w), metrics.psnr(image, out),
                                    *metrics.ycbcr_psnr(image, out)]
    rows = []
    for kind, value in settings:
        level, raw_bpp, psnr, y, c = sums[(kind, value)] / len(images)
        rows.append({"setting": f"level {value}" if kind == "level" else f"map, offset {value:+g}",
                     "level": level, "raw_bpp": raw_bpp, "psnr-rgb": psnr, "psnr-y": y, "psnr-cbcr": c})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="shipped model name or directory (default: the shipped default)")
    p.add_argument("--data", default=os.path.join(SHARED, "kodak"), help="folder or glob of images")
    p.add_argument("--levels", default="0,1,2,3,4,6,8,12,16", help="whole-image levels to try")
    p.add_argument("--offsets", default="-1,0,1", help="importance-map offsets to compare")
    p.add_argument("--images", type=int, default=24, help="at most this many images (sorted)")
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    from tfycc.cli import CliError, resolve_model
    from tfycc.evaluate import load_images
    from tfycc.model import load_model

    try:
        named = load_images(args.data)[:args.images]
    except ValueError as e:
        p.error(str(e))
    try:
        model = load_model(resolve_model(args.model))
    except CliError as e:
        p.error(str(e))
    levels = [int(v) for v in args.levels.split(",") if v.strip()]
    if any(not 0 <= lv <= model.levels for lv in levels):
        p.error(f"levels must lie in 0..{model.levels}")
    offsets = [float(v) for v in args.offsets.split(",") if v.strip()]
    rows = measure(model, [image for _, image in named], levels, offsets)
    print(f"{model.model_id}, {len(named)} images, no entropy coding (raw kept bits)\n")
    print("| setting | mean level | raw kept bpp | PSNR-RGB | PSNR-Y | PSNR-CbCr |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | {r['level']:.2f} | {r['raw_bpp']:.3f} | {r['psnr-rgb']:.2f} | "
              f"{r['psnr-y']:.2f} | {r['psnr-cbcr']:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(model_id=model.model_id, images=[name for name, _ in named],
                           rows=rows), f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
