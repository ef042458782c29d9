"""Fusion ablation: train model variants with the same budget, evaluate them on Kodak.

    python scripts/ablation.py [--steps 2000] [--variants fusion,nofusion] \
        [--data ../shared/data/train] [--kodak ../shared/data/kodak] \
        [--runs runs/ablation] [--out results/ablation]

Each variant is the ``compact`` configuration trained from scratch with identical
settings, seed and number of steps (the budget); only the variant's own flags differ:

    fusion      two streams, colour stream fused with luma features (encoder and decoder)
    nofusion    two streams, no fusion, same code channels
    nofusion32  two streams, no fusion, twice the colour code channels (32)
    fusion8     two streams with fusion, half the colour code channels (8)
    rgb         one stream: RGB in, RGB out, 64 code channels, same loss (on YCbCr)

Then ``tfycc evaluate`` (real files, several level offsets) and a Markdown table at
matched bpp (each curve interpolated in log bpp) of every variant in OUT/ablation.md.
Work already done is kept: a variant whose RUNS/NAME holds a finished model is not
trained again, and one whose OUT/tfycc-NAME.json exists is not evaluated again
(``--again`` redoes both), so variants can be added one at a time.
"""
import argparse
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")
VARIANTS = {  # model overrides of the compact configuration
    "fusion": {},
    "nofusion": dict(fuse_encoder=False, fuse_decoder=False),
    "nofusion32": dict(fuse_encoder=False, fuse_decoder=False, code_c=32),
    "fusion8": dict(code_c=8),
    "rgb": dict(streams="rgb"),
}


def variant_flags(overrides):
    """``tfycc train`` flags giving a variant's model overrides."""
    flags = []
    for key, value in overrides.items():
        if key in ("fuse_encoder", "fuse_decoder"):
            flags += [] if value else [f"--no-{key.split('_')[1]}-fusion"]
        else:
            flags += [f"--{key.replace('_', '-')}", str(value)]
    return flags


COMMON = ["--config", "compact", "--lmbda", "1", "--target-bpp", "0.15", "--rate-penalty",
          "absolute", "--rate-warmup-steps", "500", "--offset-range", "1", "--random-level-prob",
          "0.1", "--learning-rate", "3e-4", "--steps-per-epoch", "250", "--seed", "7"]
METRICS = (("psnr-rgb", "PSNR-RGB", 2), ("ms-ssim-rgb", "MS-SSIM", 4), ("psnr-y", "PSNR-Y", 2),
           ("psnr-cbcr", "PSNR-CbCr", 2), ("ciede2000", "CIEDE2000", 2))


def bd_table(results):
    """Markdown rows: Bjontegaard delta rate of every variant against the first one."""
    from tfycc.evaluate import BD_METRICS, bd_deltas

    (ref_name, ref), *others = results.items()
    lines = [f"Bjontegaard delta rate against {ref_name} (PCHIP, each curve up to its best point; "
             "negative = fewer bits for the same quality; n/a = no overlap).", "",
             "| variant | " + " | ".join(m[1] for m in BD_METRICS) + " |",
             "|---|" + "---|" * len(BD_METRICS)]
    for name, res in others:
        cells = []
        for key, _, sign in BD_METRICS:
            v = bd_deltas(ref, res, key, sign)[0]
            cells.append("n/a" if v is None else f"{v:+.1f} %")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _machine():
    """CPU model and core count (Linux), else the architecture."""
    from tfycc.train import cpu_info

    name = cpu_info("model name")
    return f"{name}, {os.cpu_count()} cores" if name else platform.machine()


def _tfycc(*args):
    cmd = [sys.executable, "-m", "tfycc.cli", *args]
    print("+ tfycc " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=2000, help="training steps per variant")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="comma-separated (default: %(default)s)")
    p.add_argument("--data", default=os.path.join(SHARED, "train"))
    p.add_argument("--kodak", default=os.path.join(SHARED, "kodak"))
    p.add_argument("--runs", default=os.path.join(ROOT, "runs", "ablation"))
    p.add_argument("--out", default=os.path.join(ROOT, "results", "ablation"))
    p.add_argument("--offsets", default="-3,-2,-1,0,1,2")
    p.add_argument("--at", default="0.1,0.15,0.2", help="bpp at which the table compares")
    p.add_argument("--again", action="store_true", help="retrain and re-evaluate every variant")
    p.add_argument("--mixed-precision", action="store_true",
                   help="train in mixed_bfloat16 (faster only on CPUs with AVX512_BF16/AMX)")
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    from tfycc.evaluate import at_bpp
    from tfycc.model import build_model

    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variant(s) {','.join(unknown)}; known: {','.join(VARIANTS)}")
    os.makedirs(args.out, exist_ok=True)
    for name in names:
        run = os.path.join(args.runs, name)
        done = os.path.exists(os.path.join(run, "codec", "saved_model.pb"))
        have = os.path.exists(os.path.join(args.out, f"tfycc-{name}.json"))
        if args.again or not (done or have):
            _tfycc("train", "--data", args.data, "--out", run, "--steps", str(args.steps),
                   "--model-id", f"tfycc-ablation-{name}", *COMMON,
                   *(["--mixed-precision"] if args.mixed_precision else []),
                   *variant_flags(VARIANTS[name]), *(["--force"] if args.again else []))
            with open(os.path.join(run, "train_info.json")) as f:
                info = json.load(f)
            with open(os.path.join(args.out, f"{name}-train.json"), "w") as f:
                json.dump(dict(info, machine=_machine()), f, indent=2)
    # --reuse keeps the results of variants evaluated before (their runs may be gone).
    _tfycc("evaluate", "--data", args.kodak, "--models",
           *[os.path.join(args.runs, n) for n in names], "--anchors", "none",
           f"--offsets={args.offsets}", "--out", args.out, "--no-plots", "--quiet",
           *([] if args.again else ["--reuse"]))
    targets = [float(t) for t in args.at.split(",")]
    lines = [f"Variants trained {args.steps} steps each (batch 8 x 128^2, same seed and settings); "
             "Kodak, real files, values interpolated at each bpp (— outside the curve).", "",
             "| variant | parameters | training | bpp | " + " | ".join(m[1] for m in METRICS) + " |",
             "|---|---|---|---|" + "---|" * len(METRICS)]
    results = {}
    for name in names:
        with open(os.path.join(args.out, f"tfycc-{name}.json")) as f:
            res = results[name] = json.load(f)
        params = build_model("compact", **VARIANTS[name]).count_params()
        trained = "—"  # variants trained before this record existed: see docs/ablation.md
        if os.path.exists(os.path.join(args.out, f"{name}-train.json")):
            with open(os.path.join(args.out, f"{name}-train.json")) as f:
                info = json.load(f)
            trained = f"{info['steps']} steps, {info['wall_seconds']:.0f} s, {info['precision']}"
        for t in targets:
            cells = []
            for key, _, digits in METRICS:
                v = at_bpp(res, key, t)
                cells.append("—" if v is None else f"{v:.{digits}f}")
            lines.append(f"| {name} | {params / 1e6:.2f} M | {trained} | {t:g} | "
                         + " | ".join(cells) + " |")
    if len(results) > 1:
        lines += [""] + bd_table(results)
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "ablation.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
