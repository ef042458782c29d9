"""SavedModel export: the codec (compress/decompress signatures) and a core-ops servable."""
import datetime
import hashlib
import os
import shutil
import tempfile

import tensorflow as tf

__all__ = ["default_model_id", "model_family", "export_codec", "export_servable", "load_codec", "main"]


def model_family(model_id, default="model"):
    """The CONFIG part of a ``tfycc-CONFIG-DATE-HASH`` id; ``default`` for any other id."""
    parts = model_id.split("-")
    return parts[1] if len(parts) > 3 and parts[0] == "tfycc" else default


def default_model_id(model, config_name="custom"):
    """tfycc-CONFIG-YYYYMMDD-HASH, HASH from the weights (so retrained models differ)."""
    digest = hashlib.sha1()
    for w in model.get_weights():
        digest.update(w.tobytes())
    day = datetime.date.today().strftime("%Y%m%d")
    return f"tfycc-{config_name}-{day}-{digest.hexdigest()[:8]}"


def _atomic_save(obj, directory, signatures):
    """Save into a temporary sibling directory, then rename into place."""
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-export-", dir=parent)
    try:
        tf.saved_model.save(obj, tmp, signatures=signatures)
        if os.path.exists(directory):
            shutil.rmtree(directory)
        os.rename(tmp, directory)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def load_codec(directory):
    """Load a codec SavedModel.  Its graphs hold tensorflow-compression's range-coding ops,
    so that package must be imported (its ops registered) before tf.saved_model.load."""
    import tensorflow_compression  # noqa: F401  (registers the custom ops)

    return tf.saved_model.load(directory)


def export_codec(model, directory):
    """Codec SavedModel: signatures compress (image uint8 [H,W,3] -> string),
    compress_at (image, rate_offset float), compress_refined (image, rate_offset, steps int:
    encoder-side search), compress_refined_ms_ssim (the same, the search tuned for MS-SSIM),
    compress_refined_colour and compress_refined_ms_ssim_colour (those two searches also
    keeping Cb and Cr close) and decompress (data string -> uint8 [H,W,3])."""
    model.entropy.update_tables()
    _atomic_save(model, directory, {
        "compress": model.compress, "compress_at": model.compress_at,
        "compress_refined": model.compress_refined,
        "compress_refined_ms_ssim": model.compress_refined_ms_ssim,
        "compress_refined_colour": model.compress_refined_colour,
        "compress_refined_ms_ssim_colour": model.compress_refined_ms_ssim_colour,
        "decompress": model.decompress})


class _Servable(tf.Module):
    """Stock-TF-Serving-loadable transform halves, built from core TensorFlow ops only.

    encode(image_bytes: string PNG/JPEG)         -> levels, bits_y, bits_c, height, width
    encode_image(image: uint8 [H, W, 3])         -> the same
    decode(levels, bits_y, bits_c, height, width) -> png: string
    levels int32 [h, w] in 0..L; bits uint8 [h, w, n] in {0, 1} (0 where not kept).
    The range coding of the codec SavedModel is left to the client.
    """

    def __init__(self, model):
        super().__init__(name="tfycc_servable")
        self._model_variables = list(model.variables)
        n_y, n_c = model.code_channels
        levels = model.levels

        def encode_array(image):
            from .model import _pad_to_grid

            height, width = tf.shape(image)[0], tf.shape(image)[1]
            lat = model.analyze(_pad_to_grid(tf.cast(image[None], tf.float32) / 255.0))
            return dict(levels=lat["level"][0], bits_y=tf.cast(lat["bits_y"][0], tf.uint8),
                        bits_c=tf.cast(lat["bits_c"][0], tf.uint8), height=height, width=width)

        @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="image_bytes")])
        def encode(image_bytes):
            image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
            return encode_array(image)

        @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image")])
        def encode_image(image):
            return encode_array(image)

        @tf.function(input_signature=[
            tf.TensorSpec([None, None], tf.int32, name="levels"),
            tf.TensorSpec([None, None, n_y], tf.uint8, name="bits_y"),
            tf.TensorSpec([None, None, n_c], tf.uint8, name="bits_c"),
            tf.TensorSpec([], tf.int32, name="height"),
            tf.TensorSpec([], tf.int32, name="width")])
        def decode(levels, bits_y, bits_c, height, width):
            from . import ops
            from .colour import ycbcr_to_rgb

            levels = tf.clip_by_value(levels, 0, levels_max)
            masks = [tf.cast(ops.keep_mask_int(levels, n, levels_max)[None], tf.float32)
                     for n in (n_y, n_c)]
            bits = [tf.cast(tf.minimum(b, 1)[None], tf.float32) * m
                    for b, m in zip((bits_y, bits_c), masks)]
            ycc = model.synthesize(bits[0], bits[1], masks[0], masks[1])
            rgb = ycbcr_to_rgb(ycc[0, :height, :width])
            rgb = tf.cast(tf.clip_by_value(tf.round(rgb * 255.0), 0.0, 255.0), tf.uint8)
            return dict(png=tf.io.encode_png(rgb))

        levels_max = levels
        self.encode, self.encode_image, self.decode = encode, encode_image, decode


def export_servable(model, directory):
    """Core-ops SavedModel with signatures encode, encode_image and decode (see _Servable)."""
    module = _Servable(model)
    _atomic_save(module, directory, {
        "encode": module.encode, "encode_image": module.encode_image, "decode": module.decode,
        "serving_default": module.encode})


def main(argv=None):
    """tfycc export MODEL_DIR OUT_DIR: write OUT_DIR/{config.json, codec/, servable/}."""
    import argparse
    import json
    import sys

    from .model import load_model

    p = argparse.ArgumentParser(prog="tfycc export", description=main.__doc__)
    p.add_argument("model_dir", help="a trained model (config.json + weights, or a shipped model)")
    p.add_argument("out_dir")
    p.add_argument("--force", action="store_true", help="replace existing exports in OUT_DIR")
    p.add_argument("--model-id", help="set a new model id (default: keep the model's)")
    p.add_argument("--no-servable", action="store_true")
    args = p.parse_args(argv)
    if not os.path.isfile(os.path.join(args.model_dir, "config.json")):
        print(f"tfycc export: error: {args.model_dir} holds no config.json", file=sys.stderr)
        return 2
    if os.path.exists(os.path.join(args.out_dir, "codec")) and not args.force:
        print(f"tfycc export: error: {args.out_dir}/codec exists (use --force)", file=sys.stderr)
        return 2
    model = load_model(args.model_dir)
    if args.model_id:
        model.model_id = args.model_id
    elif model.model_id.startswith("tfycc-untrained-"):
        model.model_id = default_model_id(model, "model")
    os.makedirs(args.out_dir, exist_ok=True)
    export_codec(model, os.path.join(args.out_dir, "codec"))
    if not args.no_servable:
        export_servable(model, os.path.join(args.out_dir, "servable"))
    with open(os.path.join(args.out_dir, "config.json"), "w") as f:
        json.dump(model.get_config(), f, indent=2, sort_keys=True)
    print(f"tfycc export: {model.model_id} -> {args.out_dir}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
