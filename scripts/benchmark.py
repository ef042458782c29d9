"""Speed benchmark: tfycc models and classic codecs on the same images, in one run.

    python scripts/benchmark.py [--data ../shared/data/kodak] [--models NAME,DIR,...]
        [--anchors jpeg,jpeg2000,webp,avif,jpegxl,hevc] [--bpp 0.15] [--runs 5]
        [--images N] [--train] [--json OUT.json]

Each codec runs in its own fresh Python process, so its peak RSS (resident memory,
``ru_maxrss``) is its own.  Per image: one warm-up encode/decode, then the median of
``--runs`` timed encodes and decodes.  tfycc: ``compress``/``decompress`` of the
shipped SavedModel (offset 0); model load time is measured separately.  Anchors:
encode at the setting whose file is the largest at or under ``--bpp`` for that image
(the search itself is not timed).  Printed: median over images of the per-image
medians, and each codec's time as a ratio to the first tfycc model.  ``--train`` adds
training throughput (steps/s at batch 8 x 128^2, float32 and mixed_bfloat16, via
scripts/benchmark_train.py).
"""
import argparse
import glob
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "kodak")
sys.path.insert(0, ROOT)
from tfycc.cli import DEFAULT_MODEL  # noqa: E402  (light: no TensorFlow)


def _timed(fn, runs):
    fn()  # warm-up (tracing, caches)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def worker(kind, name, files, bpp, runs):
    """Runs in a child process: times one codec on ``files``; returns a dict."""
    import numpy as np
    from PIL import Image

    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    load = 0.0
    if kind == "model":
        import tensorflow  # noqa: F401  (import time is not model load time)

        from tfycc.cli import load_codec

        t = time.perf_counter()
        codec, _ = load_codec(name)
        load = time.perf_counter() - t
        encode = codec.compress
        decode = codec.decompress

        def encoder(image):
            return lambda: encode(image).numpy()
    else:
        from tfycc.anchors import fit_to_bpp, get_anchor

        anchor = get_anchor(name)
        decode = anchor.decode

        def encoder(image):
            setting = fit_to_bpp(anchor, image, bpp).setting
            return lambda: anchor.encode(image, setting)
    enc, dec, sizes = [], [], []
    for image in images:
        t_enc, data = _timed(encoder(image), runs)
        t_dec, _ = _timed(lambda: decode(data), runs)
        enc.append(t_enc)
        dec.append(t_dec)
        sizes.append(8.0 * len(data) / (image.shape[0] * image.shape[1]))
    return dict(codec=name, kind=kind, load_s=load, encode_s=statistics.median(enc),
                decode_s=statistics.median(dec), bpp=statistics.mean(sizes),
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                images=len(images))


def _child(kind, name, files, args):
    spec = json.dumps(dict(kind=kind, name=name, files=files, bpp=args.bpp, runs=args.runs))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, __file__, "--worker", spec], capture_output=True,
                          text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"benchmark: {name} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA, help="directory or glob of images")
    p.add_argument("--models", default=DEFAULT_MODEL,
                   help="tfycc models, comma-separated (default: the shipped default, %(default)s)")
    p.add_argument("--anchors", default="jpeg,jpeg2000,webp,avif,jpegxl,hevc")
    p.add_argument("--bpp", type=float, default=0.15, help="anchor rate (largest file under it)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per image (after a warm-up)")
    p.add_argument("--images", type=int, help="only the first N images")
    p.add_argument("--train", action="store_true", help="also measure training steps/s")
    p.add_argument("--json", help="write the measurements here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(worker(spec["kind"], spec["name"], spec["files"], spec["bpp"],
                                spec["runs"])))
        return 0

    pattern = os.path.join(args.data, "*") if os.path.isdir(args.data) else args.data
    files = sorted(f for f in glob.glob(pattern)
                   if f.lower().endswith((".png", ".jpg", ".jpeg")))[: args.images]
    if not files:
        print(f"benchmark: no images in {args.data}", file=sys.stderr)
        return 2
    jobs = [("model", m) for m in args.models.split(",") if m] + [
        ("anchor", a) for a in args.anchors.split(",") if a]
    rows = []
    for kind, name in jobs:
        print(f"benchmark: {name} on {len(files)} images ...", file=sys.stderr, flush=True)
        rows.append(_child(kind, name, files, args))
    base = rows[0]
    print(f"Median per image over {len(files)} images ({args.runs} timed runs each after a "
          f"warm-up); anchors at the largest file <= {args.bpp:g} bpp; ratios to {base['codec']}.")
    print("| codec | bpp | encode s | decode s | encode ratio | decode ratio | model load s | "
          "peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['codec']} | {r['bpp']:.3f} | {r['encode_s']:.4f} | {r['decode_s']:.4f} | "
              f"{r['encode_s'] / base['encode_s']:.3g} | {r['decode_s'] / base['decode_s']:.3g} | "
              f"{r['load_s']:.2f} | {r['peak_rss_mb']:.0f} |")
    if args.train:
        print()
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "benchmark_train.py")],
                       check=True, env=dict(os.environ, PYTHONPATH=ROOT))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
