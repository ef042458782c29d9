"""Short Markdown table of every codec at a few bpp, from ``tfycc evaluate`` results.

    python scripts/rd_table.py results/kodak [--at 0.1,0.15,0.25] [--write]

One row per codec and rate: PSNR-RGB, MS-SSIM, PSNR-CbCr and CIEDE2000.  Anchors use
their own point for that target (largest files at or under it) when every image
reached it; tfycc models their curve interpolated in log bpp (as in summary.md).
``--write`` also rebuilds the directory's summary.md and RD plots from every result JSON
in it (e.g. after adding one made by another ``tfycc evaluate`` run, such as a
``--refine`` curve with its own offsets).
"""
import argparse
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = (("psnr-rgb", "PSNR-RGB (dB)", 2), ("ms-ssim-rgb", "MS-SSIM", 3),
           ("psnr-cbcr", "PSNR-CbCr (dB)", 2), ("ciede2000", "CIEDE2000", 2))


def table(results, targets):
    from tfycc.evaluate import at_bpp, num_images

    lines = ["| bpp | codec | " + " | ".join(c[1] for c in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for t in targets:
        for res in results:
            cells = []
            for key, _, digits in COLUMNS:
                v = at_bpp(res, key, t)
                cells.append("—" if v is None else f"{v:.{digits}f}")
            name = f"**{res['name']}**" if res["kind"] == "tfycc" else res["name"]
            r = res["results"]
            if res["kind"] == "anchor" and t in r["target_bpp"]:
                n, total = r["images"][r["target_bpp"].index(t)], num_images(res)
                if n < total:
                    name += f" ({n}/{total} images reached it)"
            lines.append(f"| {t:g} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", help="a tfycc evaluate --out directory")
    p.add_argument("--at", default="0.1,0.15,0.25")
    p.add_argument("--write", action="store_true",
                   help="also rewrite RESULTS/summary.md and the plots from all its JSONs")
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    results = []
    for path in sorted(glob.glob(os.path.join(args.results, "*.json"))):
        with open(path) as f:
            res = json.load(f)
        if "results" in res and "kind" in res:
            results.append(res)
    results.sort(key=lambda r: r["kind"] != "tfycc")  # tfycc models first
    print(table(results, [float(t) for t in args.at.split(",")]))
    if args.write:
        from tfycc.cli import _atomic_write
        from tfycc.evaluate import num_images, plot, summarize

        targets = sorted({t for r in results if r["kind"] == "anchor" for t in r["results"]["target_bpp"]})
        title = f"{max(num_images(r) for r in results)} images"
        summary = summarize(results, targets or [0.1, 0.15, 0.25])
        _atomic_write(os.path.join(args.results, "summary.md"),
                      f"# Rate-distortion, {title}\n\n{summary}".encode(), True)
        paths = plot(results, args.results, title)
        print(f"wrote {args.results}/summary.md and {len(paths)} plots from {len(results)} results",
              file=sys.stderr)  # stdout is only the table, to paste
    return 0


if __name__ == "__main__":
    sys.exit(main())
