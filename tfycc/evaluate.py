"""``tfycc evaluate``: rate-distortion of tfycc models on a set of images, from real files.

Each image is compressed to a real bitstream and decoded; bpp is 8 * file bytes / pixels.
Metrics on RGB uint8: PSNR, MS-SSIM, PSNR of Y and of CbCr (BT.601).  Results are
written in CompressAI's JSON schema, one file per model, with per-image values and
averages per rate setting (``--offsets``).
"""
import argparse
import json
import os
import sys
import time

__all__ = ["main", "evaluate_model"]


def evaluate_model(model, files, offsets, progress=True):
    """Returns {"name", "description", "results": {...averages per offset}, "per_image": [...]}."""
    import tensorflow as tf
    from tqdm import tqdm

    import numpy as np

    from .cli import load_codec, read_image, resolve_model
    from .metrics import ms_ssim, psnr, ycbcr_psnr

    codec, model_id = load_codec(model)
    with open(os.path.join(resolve_model(model), "config.json")) as f:
        config = json.load(f)
    levels = config["levels"]
    rows = []
    jobs = [(o, f) for o in offsets for f in files]
    for offset, path in tqdm(jobs, desc=f"tfycc {model}", disable=not progress, unit="image"):
        image = read_image(path)
        t = time.perf_counter()
        data = codec.compress_at(image, tf.constant(offset, tf.float32)).numpy()
        t_enc = time.perf_counter() - t
        t = time.perf_counter()
        out = codec.decompress(data).numpy()
        t_dec = time.perf_counter() - t
        y, c = ycbcr_psnr(image, out)
        # What sending the kept bits raw would cost (levels at log2(L + 1) bits each).
        level = codec.latents(data)["level"].numpy().astype(np.int64)
        kept = sum(((level * n + levels - 1) // levels).sum()
                   for n in (config["code_y"], config["code_c"]))
        pixels = image.shape[0] * image.shape[1]
        rows.append(dict(image=os.path.basename(path), offset=offset, bytes=len(data),
                         bpp=8.0 * len(data) / pixels,
                         raw_bpp=(kept + level.size * np.log2(levels + 1)) / pixels,
                         mean_level=float(level.mean()),
                         **{"psnr-rgb": psnr(image, out), "ms-ssim-rgb": ms_ssim(image, out),
                            "psnr-y": y, "psnr-cbcr": c, "encoding_time": t_enc,
                            "decoding_time": t_dec}))
    keys = ["bpp", "raw_bpp", "mean_level", "psnr-rgb", "ms-ssim-rgb", "psnr-y", "psnr-cbcr",
            "encoding_time", "decoding_time"]
    results = {k: [] for k in keys}
    for offset in offsets:
        sel = [r for r in rows if r["offset"] == offset]
        for k in keys:
            results[k].append(sum(r[k] for r in sel) / len(sel))
    results["offset"] = list(offsets)
    return dict(name=f"tfycc-{model}", description=f"tfycc model {model_id}, real files, "
                f"{len(files)} images", results=results, per_image=rows)


def main(argv=None):
    p = argparse.ArgumentParser(prog="tfycc evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, action="append", help="images: directory or glob")
    p.add_argument("--models", nargs="+", default=["compact"])
    p.add_argument("--offsets", default="-3,-2,-1,0,1,2", help="importance level offsets")
    p.add_argument("--out", required=True, help="output directory for the JSON results")
    args = p.parse_args(argv)
    from .cli import CliError
    from .data import list_images

    try:
        files = list_images(args.data)
        offsets = [float(o) for o in args.offsets.split(",")]
        os.makedirs(args.out, exist_ok=True)
        for model in args.models:
            result = evaluate_model(model, files, offsets)
            path = os.path.join(args.out, f"{result['name']}.json")
            with open(path + ".tmp", "w") as f:
                json.dump(result, f, indent=1)
            os.replace(path + ".tmp", path)
            r = result["results"]
            print(f"{result['name']} ({result['description']}):")
            print("| offset | bpp (file) | bpp (raw kept bits) | mean level | PSNR-RGB | MS-SSIM | "
                  "PSNR-Y | PSNR-CbCr | encode s | decode s |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for i, o in enumerate(r["offset"]):
                print(f"| {o:+g} | {r['bpp'][i]:.4f} | {r['raw_bpp'][i]:.4f} | "
                      f"{r['mean_level'][i]:.2f} | {r['psnr-rgb'][i]:.2f} | "
                      f"{r['ms-ssim-rgb'][i]:.4f} | {r['psnr-y'][i]:.2f} | {r['psnr-cbcr'][i]:.2f} | "
                      f"{r['encoding_time'][i]:.2f} | {r['decoding_time'][i]:.2f} |")
    except (CliError, ValueError) as e:
        print(f"tfycc evaluate: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
