"""``tfycc train``: fit a codec with Keras under a tf.distribute strategy.

* MirroredStrategy over all local GPUs, or over ``--cpu-replicas N`` logical CPU
  devices (exercises the distributed path on a CPU-only machine);
* MultiWorkerMirroredStrategy when TF_CONFIG names more than one worker;
* resumable: BackupAndRestore in ``--checkpoint-dir`` (default OUT/backup) -- rerun
  the same command after a kill and it continues from the last saved step;
* warm start from a saved or shipped model with ``--init-from DIR``;
* at the end: OUT/config.json + OUT/weights (Keras), OUT/codec and OUT/servable
  (SavedModels, see ``tfycc export``).
"""
import argparse
import json
import math
import os
import sys
import time

__all__ = ["main", "make_strategy", "learning_rate", "calibrate", "context_sums",
           "calibrate_main", "cpu_info", "cpu_has_bf16"]

# --train-only: the sub-networks held fixed.  "encoder" keeps the decoder, so the retrained
# encoder writes files for the same decoder (e.g. to close the amortisation gap that
# encoder-side search, --refine, measures).
FROZEN = {"all": (), "importance": ("enc_y", "enc_c", "dec_y", "dec_c"),
          "encoder": ("dec_y", "dec_c")}


def make_strategy(cpu_replicas=1):
    """Pick the distribution strategy; must run before any other TensorFlow op."""
    import tensorflow as tf

    tf_config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    if len(tf_config.get("cluster", {}).get("worker", [])) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and cpu_replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(cpu_replicas)])
    return tf.distribute.MirroredStrategy()


def cpu_info(field, cpuinfo="/proc/cpuinfo"):
    """The first value of ``field`` ("flags", "model name", ...) in cpuinfo, or None."""
    try:
        with open(cpuinfo) as f:
            return next((line.split(":", 1)[1].strip() for line in f
                         if line.split(":", 1)[0].strip() == field), None)
    except OSError:
        return None


def cpu_has_bf16(cpuinfo="/proc/cpuinfo"):
    """Whether the CPU computes bfloat16 natively (AVX512_BF16 or AMX); True if unknown."""
    flags = cpu_info("flags", cpuinfo)
    return flags is None or bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def build_parser():
    p = argparse.ArgumentParser(
        prog="tfycc train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("data")
    src.add_argument("--data", action="append", metavar="GLOB",
                     help="training images: glob or directory (repeatable)")
    src.add_argument("--tfds", metavar="NAME", help="train on a TFDS dataset with an 'image' feature")
    src.add_argument("--val-data", metavar="GLOB", action="append",
                     help="images for validation PSNR/bpp at the end of each epoch (full size)")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--force", action="store_true", help="overwrite a finished model in --out")
    m = p.add_argument_group("model (ignored with --init-from, which brings its own)")
    m.add_argument("--config", default="compact", choices=["compact", "paper", "tiny"])
    m.add_argument("--no-encoder-fusion", action="store_true")
    m.add_argument("--no-decoder-fusion", action="store_true")
    m.add_argument("--code-y", type=int, help="luma code channels (default: the configuration's)")
    m.add_argument("--code-c", type=int, help="colour code channels (default: the configuration's)")
    m.add_argument("--stage-blocks", type=int,
                   help="ResNet blocks at 1/4 resolution in every encoder and decoder "
                        "(default 0); with --init-from this grows the "
                        "warm-started model, the new blocks starting as the identity")
    m.add_argument("--fine-blocks", type=int,
                   help="ResNet blocks at 1/2 resolution in every decoder (default 0); "
                        "grows an --init-from model like --stage-blocks")
    m.add_argument("--deep-blocks", type=int,
                   help="ResNet blocks at 1/8 resolution after every encoder's stack "
                        "(default 0; encoder capacity the decoder does not pay for); "
                        "grows an --init-from model like --stage-blocks")
    m.add_argument("--streams", choices=["ycbcr", "rgb"], default="ycbcr",
                   help="ycbcr: the two-stream codec; rgb: one RGB stream (ablation baseline)")
    h = p.add_argument_group("loss (default: the model's own, or the configuration's)")
    h.add_argument("--lmbda", type=float, help="rate weight lambda (default 0.1)")
    h.add_argument("--gamma", type=float, help="chroma L1 weight gamma (default 1)")
    h.add_argument("--target-bpp", type=float, help="rate below this is free (Li's threshold r)")
    h.add_argument("--rate-term", choices=["entropy", "importance"])
    h.add_argument("--rate-penalty", choices=["hinge", "absolute"],
                   help="hinge: lambda*max(0, R-target); absolute: lambda*|R-target|")
    h.add_argument("--distortion", choices=["l1", "rmse", "rmse-y"],
                   help="l1: |Y-Y^| + gamma(|Cb-Cb^| + |Cr-Cr^|) (default); rmse: root-mean-square "
                        "RGB error (what PSNR measures; gamma unused); rmse-y: rms(Y-Y^) + "
                        "gamma(|Cb-Cb^| + |Cr-Cr^|)")
    h.add_argument("--ms-ssim-weight", type=float, metavar="W",
                   help="add W*(1 - MS-SSIM) of the RGB patches to the distortion (default 0: off)")
    h.add_argument("--level-weight", type=float, metavar="W",
                   help="gradient of the importance levels' own coding cost to the map, "
                        "W times that of the code bits (their bits always count in the rate; "
                        "default 0: the map is not charged for them, as in models before "
                        "session 15)")
    # A real default, unlike the other loss settings (None: an --init-from model's own): the
    # search is what a run costs, not what the model is, and a warm start from a model
    # trained with it (the shipped one) would otherwise run ~3x slower unasked.
    h.add_argument("--search-steps", type=int, default=0, metavar="K",
                   help="distil the encoder-side search: K search steps on every batch "
                        "(no gradient) and a loss pulling the encoder's kept codes to what "
                        "the search found (default 0: off, with --init-from too, whatever "
                        "the model was trained with; each step costs about half a "
                        "training step)")
    h.add_argument("--search-weight", type=float, metavar="W",
                   help="weight of that loss: W times the mean squared code distance")
    h.add_argument("--search-tune", choices=("psnr", "psnr-colour"),
                   help="what that search raises (default psnr; psnr-colour also weighs the "
                        "Cb and Cr error, as --tune psnr-colour does at encode time)")
    h.add_argument("--search-colour-share", type=float, metavar="S",
                   help="psnr-colour's weight of ln(Cb, Cr MSE) in that search (default 0.15, "
                        "what --tune psnr-colour uses at encode time)")
    h.add_argument("--rate-warmup-steps", type=int, help="lambda warm-up (default 2000)")
    h.add_argument("--offset-range", type=float, help="random level offset range in training")
    h.add_argument("--random-level-prob", type=float,
                   help="fraction of patches trained with one random level (default 0.5)")
    t = p.add_argument_group("schedule")
    t.add_argument("--steps", type=int, help="total training steps")
    t.add_argument("--epochs", type=int, help="epochs (with --steps-per-epoch)")
    t.add_argument("--steps-per-epoch", type=int, default=100)
    t.add_argument("--batch-size", type=int, default=8, help="global batch size")
    t.add_argument("--patch-size", type=int, default=128)
    t.add_argument("--min-scale", type=float, default=1.0, metavar="S",
                   help="show each patch at a random scale in [S, 1]: a window of up to "
                        "patch/S pixels shrunk to the patch (default 1: plain crops)")
    t.add_argument("--learning-rate", type=float, default=1e-4,
                   help="Adam rate; /3 after 80%% and /10 after 95%% of the steps")
    t.add_argument("--warmup-steps", type=int, default=0,
                   help="ramp the rate up linearly over the first N steps (default 0; a "
                        "100-step ramp only delayed a warm start's initial loss: README)")
    t.add_argument("--clipnorm", type=float, default=1.0,
                   help="clip the global gradient norm (seen: a warm start at 2e-4 without "
                        "clipping diverged to a constant output within 150 steps)")
    t.add_argument("--ema", type=float, metavar="MOMENTUM",
                   help="save an exponential moving average of the weights instead of the "
                        "last step's (Adam's use_ema; e.g. 0.999 averages over ~1,000 steps; "
                        "default: off)")
    t.add_argument("--mixed-precision", action="store_true", help="mixed_bfloat16 (CPU) compute")
    t.add_argument("--train-only", choices=sorted(FROZEN), default="all",
                   help="importance: train the importance map (and the tables) alone, the "
                        "encoder and decoder frozen; encoder: train the encoder, importance "
                        "map and tables for the frozen decoder (default all)")
    t.add_argument("--cpu-replicas", type=int, default=1)
    t.add_argument("--init-from", metavar="DIR", help="warm start from a saved/shipped model")
    t.add_argument("--checkpoint-dir", help="BackupAndRestore directory (default OUT/backup)")
    t.add_argument("--tensorboard", help="TensorBoard log directory (default OUT/logs)")
    t.add_argument("--model-id", help="id written into files (default tfycc-CONFIG-DATE-HASH)")
    t.add_argument("--no-export", action="store_true", help="skip the codec SavedModel export")
    t.add_argument("--seed", type=int)
    return p


def _schedule(args):
    if args.steps:
        spe = min(args.steps, args.steps_per_epoch)
        return spe, math.ceil(args.steps / spe)
    if args.epochs:
        return args.steps_per_epoch, args.epochs
    raise SystemExit("tfycc train: error: give --steps N or --epochs N")


def learning_rate(rate, total, warmup=0):
    """Adam's schedule: ``rate`` ramped up linearly over the first ``warmup`` steps, then
    /3 after 80 % and /10 after 95 % of ``total`` steps (a Keras LearningRateSchedule).

    Meant for warm starts: Adam's first updates have size ~``rate`` in every weight
    whatever the gradient (seen: warm-starting a trained model at 2e-4, the training
    PSNR fell by ~1 dB within two steps).  Measured on the shipped model, a 100-step
    warm-up only delays that loss (README, "Training").
    """
    import tensorflow as tf

    class Schedule(tf.keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            decay = tf.where(step < int(0.8 * total), 1.0,
                             tf.where(step < int(0.95 * total), 1.0 / 3.0, 0.1))
            ramp = tf.minimum(1.0, (step + 1.0) / float(max(warmup, 1)))
            return float(rate) * decay * ramp

        def get_config(self):
            return dict(rate=float(rate), total=int(total), warmup=int(warmup))

    return Schedule()


def context_sums(model, images, offsets, entropy_models=None, samples=None, rate=1.0, rng=None):
    """Summed ``context_counts`` of ``model``'s latents of uint8 ``images`` at each level
    offset, under each of ``entropy_models`` (default: the model's own): a list of
    [bit rows, bit ones, level counts] per entropy model, and the pixels counted.
    With a list ``samples``, also appends the ``mixing_samples`` of every latent (each
    bit with probability ``rate``, ``rng``) under the first of them that mixes (set 5:
    the samples are the same for every such model)."""
    import numpy as np
    import tensorflow as tf

    from .model import _pad_to_grid

    ems = entropy_models or [model.entropy]
    mixer = next((em for em in ems if em.mixing), None)
    if samples is not None and mixer is None:
        raise ValueError("mixing samples need an entropy model that mixes (context set 5)")
    analyze = tf.function(lambda x, off: model.analyze(x, off), reduce_retracing=True)
    sums = [[np.zeros(em.num_bit_rows), np.zeros(em.num_bit_rows),
             np.zeros([em.num_level_rows, em.levels + 1])] for em in ems]
    pixels = 0
    for image in images:
        x = _pad_to_grid(tf.cast(tf.convert_to_tensor(image)[None], tf.float32) / 255.0)
        for off in offsets:
            lat = analyze(x, tf.constant(float(off)))
            bits = [tf.cast(lat[f"bits_{s}"][0], tf.int32) for s in ("y", "c")]
            for em, total in zip(ems, sums):
                for t, part in zip(total, em.context_counts(lat["level"][0], bits)):
                    t += part
            if samples is not None:
                samples.append(mixer.mixing_samples(lat["level"][0], bits, rate, rng))
            pixels += int(image.shape[0]) * int(image.shape[1])
    return sums, pixels


MIX_RATE = 0.08  # share of the kept bits that calibrate fits context 5's mixing to


def concat_samples(parts):
    """One dict of ``EntropyModel.mixing_samples`` from a list of them."""
    import numpy as np

    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def calibrate(model, files, offsets=(-2, -1, 0, 1, 2), max_side=768, progress=False,
              mix_rate=MIX_RATE, seed=0):
    """Refit the entropy model's tables exactly to counts on whole images (``files``).

    Training fits the tables by gradient on 128^2 patches, mixed with random level
    offsets; counting the contexts of whole images at each of ``offsets`` (level
    shifts that ``compress --bpp`` uses) gives the tables those files need.  Images
    are centre-cropped to at most ``max_side``.  Context set 5 then fits its mixing
    weights (``EntropyModel.fit_mixing``) to a random ``mix_rate`` share of the same
    latents' kept bits.  Returns the model's own estimate of the mean bits per pixel
    over those images and offsets, before and after (context 5's "before" without the
    mixing; its "after" charges every kept bit the sampled bits' mean cost).
    """
    import numpy as np
    import tensorflow as tf
    from tqdm import tqdm

    from . import data as data_lib

    em = model.entropy
    images = (data_lib.centre_crop(data_lib.decode_image(tf.io.read_file(f)), max_side)
              for f in tqdm(files, desc="calibrate", unit="image", disable=not progress))
    samples = [] if em.mixing else None
    (sums,), pixels = context_sums(model, images, offsets, samples=samples, rate=mix_rate,
                                   rng=np.random.default_rng(seed))
    before = em.counts_cost(*sums) / pixels
    em.fit_tables(*sums)
    if not em.mixing:
        return before, em.counts_cost(*sums) / pixels
    _, per_bit = em.fit_mixing(concat_samples(samples), seed=seed)
    levels = em.counts_cost(np.zeros_like(sums[0]), np.zeros_like(sums[1]), sums[2])
    return before, (levels + per_bit * sums[0].sum()) / pixels


def calibrate_main(argv=None):
    """tfycc calibrate MODEL OUT --data GLOB: refit the coding tables, save and export."""
    p = argparse.ArgumentParser(
        prog="tfycc calibrate", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Refit a trained model's entropy-coding tables to the symbol counts of "
        "whole training\nimages at several level offsets, then save and export the result "
        "under a new model id\n(files of the old model stay decodable by the old model only).",
        epilog="example: tfycc calibrate runs/c7 runs/c7-cal --data ../shared/data/train")
    p.add_argument("model", help="a trained or shipped model directory")
    p.add_argument("out", help="output model directory (config, weights, codec, servable)")
    p.add_argument("--data", action="append", required=True, metavar="GLOB",
                   help="training images (never the evaluation set); repeatable")
    p.add_argument("--images", type=int, default=120, help="random images used (default 120)")
    p.add_argument("--offsets", default="-2,-1,0,1,2", help="level offsets (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model-id", help="id of the result (default: a new tfycc-CONFIG-DATE-HASH)")
    p.add_argument("--context", type=int, choices=(1, 2, 3, 4, 5),  # entropy.CONTEXTS (no TF import)
                   help="entropy-model context set of the result (default: the model's own; "
                   "2 codes the same latents in fewer bits than 1, 3 in fewer than 2, 4 in "
                   "fewer than 3, 5 in fewer than 4)")
    p.add_argument("--force", action="store_true", help="overwrite a model in OUT")
    args = p.parse_args(argv)
    try:
        offsets = [float(v) for v in args.offsets.split(",") if v.strip()]
        from . import data as data_lib

        files = data_lib.list_images(args.data)
        if not os.path.isfile(os.path.join(args.model, "config.json")):
            raise ValueError(f"{args.model} holds no config.json")
        if os.path.exists(os.path.join(args.out, "config.json")) and not args.force:
            raise ValueError(f"{args.out} already holds a model (use --force)")
    except ValueError as e:
        print(f"tfycc calibrate: error: {e}", file=sys.stderr)
        return 2
    import random

    from . import export
    from .model import load_model, save_model, with_context

    files = sorted(random.Random(args.seed).sample(files, min(args.images, len(files))))
    model = load_model(args.model)
    old_id = model.model_id
    if args.context and args.context != model.entropy.context:
        try:
            model = with_context(model, args.context)
        except ValueError as e:  # e.g. back to a smaller context set: no tables for it
            print(f"tfycc calibrate: error: {args.model}: {e}", file=sys.stderr)
            return 2
    before, after = calibrate(model, files, offsets, progress=True, seed=args.seed)
    model.model_id = args.model_id or export.default_model_id(model, export.model_family(old_id))
    save_model(model, args.out)
    export.export_codec(model, os.path.join(args.out, "codec"))
    export.export_servable(model, os.path.join(args.out, "servable"))
    print(f"tfycc calibrate: {old_id} -> {model.model_id} in {args.out}: estimated "
          f"{before:.4f} -> {after:.4f} bpp on {len(files)} images x {len(offsets)} offsets")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.data and not args.tfds:
        print("tfycc train: error: give --data GLOB or --tfds NAME", file=sys.stderr)
        return 2
    if os.path.exists(os.path.join(args.out, "config.json")) and not args.force:
        print(f"tfycc train: error: {args.out} already holds a model (use --force)", file=sys.stderr)
        return 2
    if args.ema is not None and not 0 <= args.ema < 1:
        print(f"tfycc train: error: --ema must be in [0, 1), not {args.ema}", file=sys.stderr)
        return 2
    if not 0 < args.min_scale <= 1:
        print(f"tfycc train: error: --min-scale must be in (0, 1], not {args.min_scale}",
              file=sys.stderr)
        return 2
    spe, epochs = _schedule(args)

    strategy = make_strategy(args.cpu_replicas)  # before any other TensorFlow op

    import tensorflow as tf

    from . import data as data_lib
    from . import export
    from .model import CONFIGS, build_model, load_model, save_model

    if args.seed is not None:
        tf.keras.utils.set_random_seed(args.seed)
    if args.mixed_precision:
        tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
        if not tf.config.list_physical_devices("GPU") and not cpu_has_bf16():
            print("tfycc train: warning: this CPU has no AVX512_BF16/AMX: bfloat16 is emulated "
                  "and trains far slower than float32 (seen: ~100x); drop --mixed-precision",
                  file=sys.stderr, flush=True)

    try:
        if args.tfds:
            dataset = data_lib.tfds_patch_dataset(args.tfds, patch_size=args.patch_size,
                                                  batch_size=args.batch_size, seed=args.seed,
                                                  min_scale=args.min_scale)
        else:
            dataset = data_lib.patch_dataset(args.data, patch_size=args.patch_size,
                                             batch_size=args.batch_size, seed=args.seed,
                                             min_scale=args.min_scale)
        val = None
        if args.val_data:
            val = (tf.data.Dataset.from_tensor_slices(data_lib.list_images(args.val_data))
                   .map(lambda f: data_lib.decode_image(tf.io.read_file(f)))
                   .map(lambda x: x[:tf.shape(x)[0] // 8 * 8, :tf.shape(x)[1] // 8 * 8])
                   .batch(1))
    except ValueError as e:
        print(f"tfycc train: error: {e}", file=sys.stderr)
        return 2
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        dataset = dataset.with_options(options)

    overrides = {k: v for k, v in dict(
        lmbda=args.lmbda, gamma=args.gamma, target_bpp=args.target_bpp, rate_term=args.rate_term,
        offset_range=args.offset_range, random_level_prob=args.random_level_prob,
        rate_penalty=args.rate_penalty, distortion=args.distortion, stage_blocks=args.stage_blocks,
        fine_blocks=args.fine_blocks, deep_blocks=args.deep_blocks,
        rate_warmup_steps=args.rate_warmup_steps,
        ms_ssim_weight=args.ms_ssim_weight, level_weight=args.level_weight,
        search_steps=args.search_steps, search_weight=args.search_weight,
        search_tune=args.search_tune, search_colour_share=args.search_colour_share).items()
        if v is not None}
    total = spe * epochs
    with strategy.scope():
        try:
            if args.init_from:
                model = load_model(args.init_from, **overrides)
            else:
                config = dict(CONFIGS[args.config], fuse_encoder=not args.no_encoder_fusion,
                              fuse_decoder=not args.no_decoder_fusion, streams=args.streams,
                              **overrides)
                config.update({k: v for k, v in (("code_y", args.code_y), ("code_c", args.code_c))
                               if v is not None})
                model = build_model(config)
        except ValueError as e:
            print(f"tfycc train: error: {e}", file=sys.stderr)
            return 2
        for layer in (getattr(model, name) for name in FROZEN[args.train_only]):
            if layer is not None:  # (enc_c and dec_c are None in the single RGB stream)
                layer.trainable = False
        lr = learning_rate(args.learning_rate, total, args.warmup_steps)
        # With --ema, fit ends by writing the averages into the weights (finalize_variable_values).
        ema = {} if args.ema is None else dict(use_ema=True, ema_momentum=args.ema)
        model.compile(optimizer=tf.keras.optimizers.Adam(lr, global_clipnorm=args.clipnorm, **ema))

    trainable = sum(int(tf.size(v)) for v in model.trainable_variables)
    print(f"tfycc train: {model.count_params():,} parameters ({trainable:,} trained), "
          f"{strategy.num_replicas_in_sync} "
          f"replica(s), {epochs} epoch(s) x {spe} steps, batch {args.batch_size} x "
          f"{args.patch_size}^2, {tf.keras.mixed_precision.global_policy().name}", flush=True)
    callbacks = [
        tf.keras.callbacks.BackupAndRestore(args.checkpoint_dir or os.path.join(args.out, "backup")),
        tf.keras.callbacks.TensorBoard(args.tensorboard or os.path.join(args.out, "logs")),
        tf.keras.callbacks.CSVLogger(os.path.join(args.out, "history.csv"), append=True),
        tf.keras.callbacks.TerminateOnNaN(),
    ]
    # OUT/last always holds a loadable model (config.json + weights of the last epoch).
    last = os.path.join(args.out, "last")
    os.makedirs(last, exist_ok=True)
    with open(os.path.join(last, "config.json"), "w") as f:
        json.dump(model.get_config(), f, indent=2, sort_keys=True)
    callbacks.append(tf.keras.callbacks.ModelCheckpoint(
        os.path.join(last, "weights"), save_weights_only=True))
    start = time.time()
    model.fit(dataset, epochs=epochs, steps_per_epoch=spe, validation_data=val,
              callbacks=callbacks, verbose="auto")
    wall = time.time() - start

    # Every worker saves (reading distributed variables may need all workers); only the
    # chief keeps its copy and exports.
    chief = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0) == 0
    # A warm start keeps its family (tfycc-rgb-... stays rgb), whatever --config says; a new
    # model (id tfycc-untrained-HEX) is named after its configuration.
    family = export.model_family(model.model_id, "rgb" if model.rgb_stream else args.config)
    model.model_id = args.model_id or export.default_model_id(model, family)
    if not chief:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            save_model(model, tmp)
        return 0
    save_model(model, args.out)
    if not args.no_export:
        # A fresh process: float32, no strategy, no state left by fit (an in-process export
        # after a --init-from run failed while tracing decompress).
        import subprocess

        subprocess.run([sys.executable, "-m", "tfycc.export", args.out, args.out, "--force"],
                       check=True)
    with open(os.path.join(args.out, "train_info.json"), "w") as f:
        json.dump({"argv": sys.argv if argv is None else ["tfycc", "train", *argv],
                   "steps": total, "wall_seconds": round(wall, 1),
                   "replicas": strategy.num_replicas_in_sync,
                   "precision": "mixed_bfloat16" if args.mixed_precision else "float32"}, f, indent=2)
    print(f"tfycc train: saved {model.model_id} to {args.out} ({total} steps, {wall:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
