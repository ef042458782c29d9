"""Bjontegaard deltas of ``tfycc evaluate`` results against a reference result.

    python scripts/compare.py results/previous/tfycc-rgb-88b2ff3a.json results/kodak/tfycc-rgb.json
    python scripts/compare.py REF.json TEST.json [TEST2.json ...] [--at 0.1,0.15,0.25]

For every test result: BD-rate and BD-quality against the reference in PSNR-RGB,
PSNR-Y, PSNR-CbCr, MS-SSIM (dB) and CIEDE2000 (PCHIP over the overlapping part of each
curve up to its best point, as in ``summary.md``; negative BD-rate = the test needs
fewer bits; BD-quality positive = better, for CIEDE2000 negative = better), then
PSNR / MS-SSIM / CIEDE2000 of both at each ``--at`` rate (log-bpp interpolation).
This is how the model cards' "against the previous models" tables are made.
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def deltas(ref, test):
    """{metric key: (BD-rate %, BD-quality)} of ``test`` against ``ref`` (None: no overlap).

    BD-quality is in the metric's own sense (CIEDE2000: negative = better)."""
    from tfycc.evaluate import BD_METRICS, bd_deltas

    out = {}
    for key, _, sign in BD_METRICS:
        rate, quality = bd_deltas(ref, test, key, sign)
        out[key] = (rate, None if quality is None else sign * quality)
    return out


def labels(results):
    """A row label per result: its model id, or its name (e.g. tfycc-rgb-refine10) where
    two results share a model id (the same model encoded two ways)."""
    ids = [r.get("model_id", r["name"]) for r in results]
    return [r["name"] if ids.count(i) > 1 else i for r, i in zip(results, ids)]


def report(ref, tests, targets):
    from tfycc.evaluate import BD_METRICS, at_bpp

    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)

    label_of = dict(zip(map(id, [ref] + tests), labels([ref] + tests)))

    lines = [f"Reference: {ref['name']} ({ref.get('model_id', ref['name'])})", "",
             "| test | metric | BD-rate | BD-quality |", "|---|---|---|---|"]
    for test in tests:
        found = deltas(ref, test)
        for key, label, sign in BD_METRICS:
            rate, quality = found[key]
            lines.append(f"| {label_of[id(test)]} | {label} | "
                         f"{fmt(rate, '+.1f')} % | {fmt(quality, '+.2f')}{' dB' if sign > 0 else ''} |")
    lines += ["", "| bpp | result | PSNR-RGB | MS-SSIM | CIEDE2000 |", "|---|---|---|---|---|"]
    for t in targets:
        for res in [ref] + tests:
            cells = [fmt(at_bpp(res, k, t), d) for k, d in
                     (("psnr-rgb", ".2f"), ("ms-ssim-rgb", ".3f"), ("ciede2000", ".2f"))]
            lines.append(f"| {t:g} | {label_of[id(res)]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reference", help="result JSON of the reference (e.g. the previous default)")
    p.add_argument("tests", nargs="+", help="result JSON(s) to compare with it")
    p.add_argument("--at", default="0.1,0.15,0.25", help="bpp for the value table (default %(default)s)")
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    try:
        targets = [float(t) for t in args.at.split(",") if t]
        results = []
        for path in [args.reference] + args.tests:
            with open(path) as f:
                results.append(json.load(f))
    except (OSError, ValueError) as e:
        print(f"compare.py: error: {e}", file=sys.stderr)
        return 2
    print(report(results[0], results[1:], targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
