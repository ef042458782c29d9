"""Training throughput of each configuration: steps/s at batch B x P^2 on random images.

    python scripts/benchmark_train.py [--configs compact,paper] [--precisions float32,mixed_bfloat16]

Prints one line per (configuration, precision): parameters and median steps/s
over timed chunks, after a warm-up chunk (graph tracing excluded).  A configuration
may carry model overrides after a colon, joined by "+", e.g. the ablation variants
``compact:streams=rgb`` or ``compact:fuse_encoder=false+fuse_decoder=false``.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_config(spec):
    """``"name:key=value+key=value"`` -> (name, overrides); values int, bool or str."""
    name, _, rest = spec.partition(":")
    overrides = {}
    for item in filter(None, rest.split("+")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value")
        if value.lower() in ("true", "false"):
            overrides[key] = value.lower() == "true"
        else:
            try:
                overrides[key] = int(value)
            except ValueError:
                overrides[key] = value
    return name, overrides


def measure(config, precision, batch, patch, steps, chunks):
    import numpy as np
    import tensorflow as tf

    from tfycc.model import build_model

    tf.keras.mixed_precision.set_global_policy(precision)
    name, overrides = parse_config(config)
    model = build_model(name, **overrides)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-4))
    data = tf.data.Dataset.from_tensors(
        tf.cast(tf.random.uniform([batch, patch, patch, 3], 0, 255), tf.uint8)).repeat()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)  # warm-up, tracing
    rates = []
    for _ in range(chunks):
        t = time.perf_counter()
        model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
        rates.append(steps / (time.perf_counter() - t))
    tf.keras.mixed_precision.set_global_policy("float32")
    return model.count_params(), float(np.median(rates))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="compact,paper")
    p.add_argument("--precisions", default="float32,mixed_bfloat16")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--patch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="steps per timed chunk")
    p.add_argument("--chunks", type=int, default=3)
    args = p.parse_args(argv)
    print(f"| config | params | precision | steps/s (batch {args.batch_size} x {args.patch_size}^2) |")
    print("|---|---|---|---|")
    for config in args.configs.split(","):
        for precision in args.precisions.split(","):
            params, rate = measure(config, precision, args.batch_size, args.patch_size,
                                   args.steps, args.chunks)
            print(f"| {config} | {params / 1e6:.2f} M | {precision} | {rate:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
