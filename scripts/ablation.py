"""Fusion ablation: train model variants with the same budget, evaluate them on Kodak.

    python scripts/ablation.py [--steps 2000] [--variants fusion,nofusion] \
        [--data ../shared/data/train] [--kodak ../shared/data/kodak] \
        [--runs runs/ablation] [--out results/ablation]

Each variant is the ``compact`` configuration trained from scratch with identical
settings, seed and number of steps (the budget); only the variant's own flags differ:

    fusion      two streams, colour stream fused with luma features (encoder and decoder)
    nofusion    two streams, no fusion, same code channels
    nofusion32  two streams, no fusion, twice the colour code channels (32)

Then ``tfycc evaluate`` (real files, several level offsets) and a Markdown table at
matched bpp (each curve interpolated in log bpp) in OUT/ablation.md.  Training is
skipped for a variant whose RUNS/NAME already holds a finished model.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")
VARIANTS = {
    "fusion": [],
    "nofusion": ["--no-encoder-fusion", "--no-decoder-fusion"],
    "nofusion32": ["--no-encoder-fusion", "--no-decoder-fusion", "--code-c", "32"],
}
COMMON = ["--config", "compact", "--lmbda", "1", "--target-bpp", "0.15", "--rate-penalty",
          "absolute", "--rate-warmup-steps", "500", "--offset-range", "1", "--random-level-prob",
          "0.1", "--learning-rate", "3e-4", "--steps-per-epoch", "250", "--mixed-precision",
          "--seed", "7"]
METRICS = (("psnr-rgb", "PSNR-RGB", 2), ("ms-ssim-rgb", "MS-SSIM", 4), ("psnr-cbcr", "PSNR-CbCr", 2),
           ("ciede2000", "CIEDE2000", 2))


def _tfycc(*args):
    cmd = [sys.executable, "-m", "tfycc.cli", *args]
    print("+ tfycc " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000, help="training steps per variant")
    p.add_argument("--variants", default="fusion,nofusion")
    p.add_argument("--data", default=os.path.join(SHARED, "train"))
    p.add_argument("--kodak", default=os.path.join(SHARED, "kodak"))
    p.add_argument("--runs", default=os.path.join(ROOT, "runs", "ablation"))
    p.add_argument("--out", default=os.path.join(ROOT, "results", "ablation"))
    p.add_argument("--offsets", default="-3,-2,-1,0,1,2")
    p.add_argument("--at", default="0.1,0.15,0.2", help="bpp at which the table compares")
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    from tfycc.evaluate import at_bpp
    from tfycc.model import build_model

    names = args.variants.split(",")
    for name in names:
        run = os.path.join(args.runs, name)
        if not os.path.exists(os.path.join(run, "codec", "saved_model.pb")):
            _tfycc("train", "--data", args.data, "--out", run, "--steps", str(args.steps),
                   "--model-id", f"tfycc-ablation-{name}", *COMMON, *VARIANTS[name])
    _tfycc("evaluate", "--data", args.kodak, "--models",
           *[os.path.join(args.runs, n) for n in names], "--anchors", "none",
           f"--offsets={args.offsets}", "--out", args.out, "--no-plots", "--quiet")
    targets = [float(t) for t in args.at.split(",")]
    lines = [f"Variants trained {args.steps} steps each (batch 8 x 128^2, same seed and settings); "
             "Kodak, real files, values interpolated at each bpp (— outside the curve).", "",
             "| variant | parameters | bpp | " + " | ".join(m[1] for m in METRICS) + " |",
             "|---|---|---|" + "---|" * len(METRICS)]
    for name in names:
        with open(os.path.join(args.out, f"tfycc-{name}.json")) as f:
            res = json.load(f)
        with open(os.path.join(args.runs, name, "config.json")) as f:
            params = build_model(json.load(f)).count_params()
        for t in targets:
            cells = []
            for key, _, digits in METRICS:
                v = at_bpp(res, key, t)
                cells.append("—" if v is None else f"{v:.{digits}f}")
            lines.append(f"| {name} | {params / 1e6:.2f} M | {t:g} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "ablation.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
