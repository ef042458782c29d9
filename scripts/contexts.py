"""How many bits each entropy-model context set needs for the same latents.

    python scripts/contexts.py [--model NAME_OR_DIR] [--train ../shared/data/train] \
        [--data ../shared/data/kodak] [--contexts 4,5] [--images 120] [--offsets=-1,0,1] \
        [--json OUT]

The model's encoder runs once per image and level offset; its latents (levels and
kept bits) are counted under each context set.  Every set's tables are fitted to the
counts of ``--images`` random training images (``EntropyModel.fit_tables``, as
``tfycc calibrate`` does) and then charged for the latents of the evaluation images
(held out: never the images they were fitted to).  Printed per set: bits per kept
bit, the levels' share in bits per pixel, the total in bits per pixel (payload only:
no header) and the change against the first set.  Context set 5's mixing weights are
fitted as ``tfycc calibrate`` fits them (to a sampled share of the training latents)
and charged for every held-out kept bit.  Context sets smaller than the model's own are
skipped (they have no tables to start from).
"""
import argparse
import json
import os
import random
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")


def measure(model, contexts, train_images, eval_images, offsets, seed=0):
    """Rows of dict(context, bits_per_kept_bit, level_bpp, bpp) on ``eval_images``."""
    import numpy as np

    from tfycc.model import with_context
    from tfycc.train import MIX_RATE, concat_samples, context_sums

    models = [model if c == model.entropy.context else with_context(model, c) for c in contexts]
    ems = [m.entropy for m in models]
    # Set 5's mixing samples come from the same passes: a share of the training bits, as
    # calibrate takes them, to fit; every held-out kept bit to charge.
    fit_samples, held_samples = ([], []) if any(em.mixing for em in ems) else (None, None)
    fit, _ = context_sums(model, train_images, offsets, ems, fit_samples, MIX_RATE,
                          np.random.default_rng(seed))
    for em, sums in zip(ems, fit):
        em.fit_tables(*sums)
        if em.mixing:
            em.fit_mixing(concat_samples(fit_samples), seed=seed)
    held, pixels = context_sums(model, eval_images, offsets, ems, held_samples)
    rows = []
    for c, em, (bit_rows, bit_ones, level_counts) in zip(contexts, ems, held):
        total = em.counts_cost(bit_rows, bit_ones, level_counts)
        levels_only = em.counts_cost(np.zeros_like(bit_rows), np.zeros_like(bit_ones), level_counts)
        if em.mixing:
            total = levels_only + em.mixing_cost(concat_samples(held_samples)) * bit_rows.sum()
        rows.append({"context": c, "bits_per_kept_bit": (total - levels_only) / bit_rows.sum(),
                     "level_bpp": levels_only / pixels, "bpp": total / pixels,
                     "kept_bpp": bit_rows.sum() / pixels})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="shipped model name or directory (default: the shipped default)")
    p.add_argument("--train", default=os.path.join(SHARED, "train"),
                   help="images the tables are fitted to (never the evaluation set)")
    p.add_argument("--data", default=os.path.join(SHARED, "kodak"), help="evaluation images")
    p.add_argument("--contexts", default="4,5", help="context sets to compare (default %(default)s)")
    p.add_argument("--images", type=int, default=120, help="random training images (default 120)")
    p.add_argument("--offsets", default="-1,0,1", help="level offsets (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    from tfycc.cli import CliError, read_image, resolve_model
    from tfycc.data import centre_crop, list_images
    from tfycc.entropy import CONTEXTS
    from tfycc.evaluate import load_images
    from tfycc.model import load_model

    try:
        contexts = [int(v) for v in args.contexts.split(",") if v.strip()]
        offsets = [float(v) for v in args.offsets.split(",") if v.strip()]
    except ValueError as e:
        p.error(str(e))
    if not contexts or any(c not in CONTEXTS for c in contexts):
        p.error(f"--contexts: each one of {CONTEXTS}")
    try:
        train = list_images([args.train])
        named = load_images(args.data)
    except ValueError as e:
        p.error(str(e))
    # The same images and crops that tfycc calibrate picks with this seed.
    train = sorted(random.Random(args.seed).sample(train, min(args.images, len(train))))
    train = [centre_crop(read_image(f), 768) for f in train]
    try:
        model = load_model(resolve_model(args.model))
    except CliError as e:
        p.error(str(e))
    skipped = [c for c in contexts if c < model.entropy.context]
    contexts = [c for c in contexts if c >= model.entropy.context]
    if not contexts:
        p.error(f"{model.model_id} uses context set {model.entropy.context}: nothing to compare")
    rows = measure(model, contexts, train, [im for _, im in named], offsets, args.seed)
    print(f"{model.model_id}: tables fitted to {len(train)} images of {args.train}, charged for "
          f"{len(named)} images of {args.data}, offsets {args.offsets}"
          + (f" (skipped context sets {skipped}: below the model's)" if skipped else "") + "\n")
    print("| context set | bits per kept bit | level bpp | payload bpp | change |")
    print("|---|---|---|---|---|")
    for r in rows:
        change = 100.0 * (r["bpp"] / rows[0]["bpp"] - 1.0)
        print(f"| {r['context']} | {r['bits_per_kept_bit']:.4f} | {r['level_bpp']:.4f} | "
              f"{r['bpp']:.4f} | {change:+.1f} % |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(model_id=model.model_id, offsets=offsets, train_images=len(train),
                           images=[name for name, _ in named], rows=rows), f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
