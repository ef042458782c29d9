"""The ``tfycc`` command line: compress, decompress, info, demo, train, calibrate, export,
evaluate.

Every subcommand is ``main(argv)``-testable.  Bad input (missing or unreadable
files, foreign or damaged bitstreams, existing outputs without --force) ends in
a one-line error on stderr and exit code 2, never a traceback or a partial file.
"""
import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__all__ = ["main", "CliError", "DEFAULT_MODEL", "models_dir", "resolve_model", "read_image"]

DEFAULT_MODEL = "rgb"
DEFAULT_MAX_PIXELS = 64_000_000
_BUNDLED_PHOTO = os.path.join(os.path.dirname(__file__), "assets", "photo.png")


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def models_dir():
    """Directory of shipped models: $TFYCC_MODELS or the repository's saved_models/."""
    return os.environ.get("TFYCC_MODELS") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "saved_models")


def resolve_model(name_or_dir):
    """A shipped model name or a path -> directory holding codec/ (a SavedModel)."""
    name_or_dir = name_or_dir or DEFAULT_MODEL
    for candidate in (name_or_dir, os.path.join(models_dir(), name_or_dir)):
        if os.path.isfile(os.path.join(candidate, "codec", "saved_model.pb")):
            return candidate
        if os.path.isfile(os.path.join(candidate, "saved_model.pb")):
            return os.path.dirname(os.path.abspath(candidate))
    shipped = sorted(d for d in os.listdir(models_dir())
                     if os.path.isdir(os.path.join(models_dir(), d))) if os.path.isdir(models_dir()) else []
    raise CliError(f"no model {name_or_dir!r} (shipped: {', '.join(shipped) or 'none'}; "
                   "or give a directory holding codec/saved_model.pb)")


_MODELS = {}


def load_codec(name_or_dir):
    """Load (once per process) the codec SavedModel of a model; returns (module, model_id)."""
    directory = resolve_model(name_or_dir)
    if directory not in _MODELS:
        from .export import load_codec as load

        codec = load(os.path.join(directory, "codec"))
        with open(os.path.join(directory, "config.json")) as f:
            model_id = json.load(f)["model_id"]
        _MODELS[directory] = (codec, model_id)
    return _MODELS[directory]


def read_image(path, max_pixels=DEFAULT_MAX_PIXELS, note=None):
    """Any Pillow-readable image -> uint8 [H, W, 3] RGB, EXIF orientation applied.

    Greyscale, palette, alpha and 16-bit inputs are converted; ``note`` (a callable)
    receives a one-line description of each conversion.
    """
    import numpy as np
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # our own limit below, checked before decoding pixels
    note = note or (lambda msg: None)
    if not os.path.exists(path):
        raise CliError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h == 0:
                raise CliError(f"{path}: empty image ({w}x{h})")
            if w * h > max_pixels:
                raise CliError(f"{path}: {w}x{h} exceeds the {max_pixels:,}-pixel limit "
                               "(raise it with --max-pixels)")
            if max(w, h) > 65535:
                raise CliError(f"{path}: sides over 65535 pixels are not supported")
            orientation = im.getexif().get(0x0112, 1)
            if orientation != 1:
                note(f"applied EXIF orientation {orientation}")
            im = ImageOps.exif_transpose(im)
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                arr = np.clip(np.round(arr / (65535.0 if arr.max() > 255 else 255.0) * 255.0), 0, 255)
                im = Image.fromarray(arr.astype(np.uint8), "L")
                note(f"converted {mode} (16-bit) to 8-bit")
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                note("converted palette image to RGB")
            if im.mode in ("RGBA", "LA", "PA"):
                background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, im.convert("RGBA")).convert("RGB")
                note(f"dropped alpha channel ({mode}), composited on white")
            elif im.mode != "RGB":
                note(f"converted {im.mode} to RGB")
                im = im.convert("RGB")
            return np.asarray(im, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise CliError(f"{path}: cannot read image ({e.__class__.__name__})") from None


def _atomic_write(path, data, force):
    """Write bytes to ``path`` via a temporary file + rename; refuse to overwrite without force."""
    if os.path.exists(path) and not force:
        raise CliError(f"{path} exists (use --force to overwrite)")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CliError(f"{directory}: no such directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tfycc-", dir=directory)
    except OSError as e:
        raise CliError(f"{path}: cannot write ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _tf_error_line(e):
    """The first meaningful line of a TensorFlow error (our assertion messages)."""
    msg = getattr(e, "message", str(e))
    for marker in ("assertion failed: [", "Assertion failed: ["):
        if marker in msg:
            return msg.split(marker, 1)[1].split("]", 1)[0].strip("'\"")
    return msg.strip().splitlines()[0][:200]


def _png_bytes(image):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


OFFSET_RANGE = 8.0  # --bpp searches importance-level offsets in [-8, 8]
MAX_REFINE = 1000  # --refine: steps of encoder-side search


TUNES = {"psnr": "compress_refined", "ms-ssim": "compress_refined_ms_ssim",  # --tune
         "psnr-colour": "compress_refined_colour",
         "ms-ssim-colour": "compress_refined_ms_ssim_colour"}


def refined_compressor(codec, steps, tune="psnr"):
    """encode(image, offset) -> file bytes: ``codec.compress_at``, or with ``steps`` > 0
    ``codec.compress_refined`` (encoder-side search) or the signature of the search tuned
    for ``tune`` (``TUNES``; models exported before them have none)."""
    import tensorflow as tf

    if tune not in TUNES:
        raise CliError(f"--tune must be one of {', '.join(TUNES)}, not {tune!r}")
    if tune != "psnr" and not steps:
        raise CliError(f"--tune {tune} tunes the encoder-side search: add --refine STEPS")
    search = getattr(codec, TUNES[tune], None) if steps else None
    if steps and search is None:
        raise CliError(f"this model has no encoder-side search tuned for {tune} ({TUNES[tune]}); "
                       "re-export it with `tfycc export` to use --refine"
                       + (f" --tune {tune}" if tune != "psnr" else ""))

    def encode(image, offset):
        offset = tf.constant(offset, tf.float32)
        if steps:
            return search(image, offset, tf.constant(steps, tf.int32)).numpy()
        return codec.compress_at(image, offset).numpy()
    return encode


def compress_to_bpp(codec, image, target_bpp, steps=8, refine=0, tune="psnr"):
    """(file bytes, offset, reached, refined): the largest file at or under ``target_bpp``,
    by bisection over the importance-level offset in [-8, 8] (files grow with it) -- the
    same search the classic anchors use.  When even offset -8 overshoots, its file is
    returned with ``reached`` False.  ``refine`` > 0: the search runs without refinement,
    then the file at the offset found is remade with ``refine`` steps of encoder-side
    search (tuned for ``tune``); should that one overshoot, the unrefined file is kept
    (``refined`` False)."""
    from .anchors import Anchor, fit_to_bpp

    search = Anchor("tfycc", "tfycc", refined_compressor(codec, 0), None, -OFFSET_RANGE,
                    OFFSET_RANGE, False, str)
    fit = fit_to_bpp(search, image, target_bpp, float_steps=steps)
    data, refined = fit.data, False
    if refine:
        better = refined_compressor(codec, refine, tune)(image, fit.setting)
        budget = target_bpp * image.shape[0] * image.shape[1] / 8.0
        if len(better) <= max(budget, len(data)):
            data, refined = better, True
    return data, fit.setting, fit.reached, refined


def compress_file(src, dst, model=None, force=False, max_pixels=DEFAULT_MAX_PIXELS, offset=0.0,
                  note=None, target_bpp=None, refine=0, tune="psnr"):
    """Compress one image file; returns a result dict (bytes, bpp, offset, refine, seconds, ...).

    ``target_bpp`` (instead of ``offset``) picks the offset whose file is the largest at
    or under that rate.  ``refine``: steps of encoder-side search (0: none), tuned for
    ``tune`` (``TUNES``).
    """
    import tensorflow as tf

    if os.path.exists(dst) and not force:
        raise CliError(f"{dst} exists (use --force to overwrite)")
    if target_bpp is not None and not 0 < target_bpp < 64:
        raise CliError(f"--bpp must be in (0, 64), not {target_bpp:g}")
    if not 0 <= refine <= MAX_REFINE:
        raise CliError(f"--refine must be in 0..{MAX_REFINE}, not {refine}")
    image = read_image(src, max_pixels, note)
    codec, model_id = load_codec(model)
    encode = refined_compressor(codec, refine, tune)  # (checks --tune before compressing)
    h, w = image.shape[:2]
    start = time.perf_counter()
    try:
        if target_bpp is not None:
            data, offset, reached, refined = compress_to_bpp(codec, image, target_bpp,
                                                             refine=refine, tune=tune)
            if not reached and note:
                note(f"{target_bpp:g} bpp is below this model's smallest file for this image "
                     f"({8.0 * len(data) / (h * w):.4f} bpp); wrote that")
            if refine and not refined:
                refine, tune = 0, "psnr"
                if note:
                    note("the refined file overshot the target; wrote the unrefined one")
        elif offset or refine:
            data = encode(image, offset)
        else:
            data = codec.compress(image).numpy()
    except tf.errors.OpError as e:
        raise CliError(f"{src}: {_tf_error_line(e)}") from None
    seconds = time.perf_counter() - start
    _atomic_write(dst, data, force)
    return dict(input=src, output=dst, model=model_id, height=h, width=w, bytes=len(data),
                bpp=8.0 * len(data) / (h * w), offset=float(offset), refine=refine,
                tune=tune if refine else None, seconds=round(seconds, 4))


def decompress_file(src, dst, model=None, force=False, max_pixels=DEFAULT_MAX_PIXELS):
    """Decompress one .tfycc file to PNG; returns a result dict."""
    import tensorflow as tf

    from . import bitstream

    if os.path.exists(dst) and not force:
        raise CliError(f"{dst} exists (use --force to overwrite)")
    data = _read_bytes(src)
    try:
        header = bitstream.parse_header(data)
    except bitstream.BitstreamError as e:
        raise CliError(f"{src}: {e}") from None
    if header.height * header.width > max_pixels:
        raise CliError(f"{src}: {header.width}x{header.height} exceeds the {max_pixels:,}-pixel "
                       "limit (raise it with --max-pixels)")
    codec, model_id = load_codec(model or _model_for(header.model_id))
    if header.model_id != model_id:
        raise CliError(f"{src}: made by model {header.model_id!r}, not {model_id!r} "
                       "(choose it with --model)")
    start = time.perf_counter()
    try:
        image = codec.decompress(tf.constant(data)).numpy()
    except tf.errors.OpError as e:
        raise CliError(f"{src}: {_tf_error_line(e)}") from None
    seconds = time.perf_counter() - start
    _atomic_write(dst, _png_bytes(image), force)
    return dict(input=src, output=dst, model=model_id, height=header.height, width=header.width,
                seconds=round(seconds, 4))


def _model_for(model_id):
    """The shipped model whose config.json carries ``model_id`` (default model if none)."""
    root = models_dir()
    if os.path.isdir(root):
        for name in sorted(os.listdir(root)):
            if not os.path.isfile(os.path.join(root, name, "codec", "saved_model.pb")):
                continue
            try:
                with open(os.path.join(root, name, "config.json")) as f:
                    if json.load(f).get("model_id") == model_id:
                        return name
            except (OSError, ValueError):
                continue
    return None


def _read_bytes(path):
    if not os.path.exists(path):
        raise CliError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CliError(f"{path}: cannot read ({e.strerror})") from None


def _print_result(result, as_json, text):
    print(json.dumps(result) if as_json else text)


def cmd_compress(args):
    dst = args.output or args.input + ".tfycc"
    note = (lambda m: print(f"tfycc: note: {m}", file=sys.stderr))
    r = compress_file(args.input, dst, args.model, args.force, args.max_pixels, args.offset, note,
                      args.bpp, args.refine, args.tune)
    offset = f", offset {r['offset']:+.3f}" if args.bpp is not None else ""
    offset += f", {r['refine']} refine steps ({r['tune']})" if r["refine"] else ""
    _print_result(r, args.json, f"{dst}: {r['bytes']} bytes, {r['bpp']:.4f} bpp{offset}, "
                                f"{r['width']}x{r['height']}, {r['seconds']:.2f} s")


def cmd_decompress(args):
    dst = args.output or os.path.splitext(args.input)[0] + ".png"
    if dst == args.input:
        dst = args.input + ".png"
    r = decompress_file(args.input, dst, args.model, args.force, args.max_pixels)
    _print_result(r, args.json, f"{dst}: {r['width']}x{r['height']}, {r['seconds']:.2f} s")


def cmd_info(args):
    from . import bitstream

    data = _read_bytes(args.input)
    try:
        h = bitstream.parse_header(data)
    except bitstream.BitstreamError as e:
        raise CliError(f"{args.input}: {e}") from None
    r = dict(file=args.input, format_version=h.version, model=h.model_id, height=h.height,
             width=h.width, bytes=h.size, bpp=round(h.bpp, 5))
    _print_result(r, args.json, "\n".join(f"{k}: {v}" for k, v in r.items()))


def cmd_demo(args):
    """Compress + decompress the bundled photo with the default model; print bpp and quality."""
    from .metrics import ciede2000, ms_ssim, psnr

    try:  # CIEDE2000 needs scikit-image (the eval and test extras), not the base install
        import skimage.color  # noqa: F401
        colour_metric = ciede2000
    except ImportError:
        colour_metric = None
    src = args.input or _BUNDLED_PHOTO
    with tempfile.TemporaryDirectory() as tmp:
        enc = compress_file(src, os.path.join(tmp, "photo.tfycc"), args.model, offset=args.offset,
                            target_bpp=args.bpp, refine=args.refine, tune=args.tune)
        dec = decompress_file(enc["output"], os.path.join(tmp, "photo.png"), args.model)
        original = read_image(src)
        restored = read_image(dec["output"])
        if args.save:
            _atomic_write(args.save, _png_bytes(restored), True)
    r = dict(model=enc["model"], image=src, width=enc["width"], height=enc["height"],
             bytes=enc["bytes"], bpp=round(enc["bpp"], 4), offset=enc["offset"],
             refine=enc["refine"], tune=enc["tune"], psnr_rgb=round(psnr(original, restored), 2),
             ms_ssim=round(float(ms_ssim(original, restored)), 4),
             ciede2000=round(colour_metric(original, restored), 3) if colour_metric else None,
             compress_s=enc["seconds"], decompress_s=dec["seconds"])
    text = (f"{os.path.basename(src)} ({r['width']}x{r['height']}) with {r['model']}: "
            f"{r['bytes']} bytes = {r['bpp']:.4f} bpp, PSNR {r['psnr_rgb']:.2f} dB, "
            f"MS-SSIM {r['ms_ssim']:.4f}, "
            + (f"CIEDE2000 {r['ciede2000']:.2f}, " if r["ciede2000"] is not None else "")
            + f"compress {r['compress_s']:.2f} s, "
            f"decompress {r['decompress_s']:.2f} s")
    _print_result(r, args.json, text)


REFINE_HELP = ("encoder-side search: STEPS gradient steps on the code bits before writing "
               "the file (better quality at about the same size; each step costs about one "
               "decoder forward and backward pass: ~6 s for a 768x512 image on 2 CPU cores; "
               "10 is a good setting; the file decodes as any other; default: 0, none)")

TUNE_HELP = ("what the encoder-side search (--refine) raises: psnr (default) or ms-ssim "
             "(MS-SSIM, with a 30 %% share of MSE so that PSNR stays close); psnr-colour "
             "and ms-ssim-colour also keep the colours (Cb, Cr) close: a little less PSNR "
             "or MS-SSIM for a lower CIEDE2000")


def build_parser():
    p = argparse.ArgumentParser(prog="tfycc", description="tfycc: a two-stream YCbCr learned image "
                                "codec for ultra-low bit rates.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def common(sp, model=True):
        if model:
            sp.add_argument("--model", help=f"shipped model name or directory (default: {DEFAULT_MODEL})")
        sp.add_argument("--json", action="store_true", help="print the result as JSON")

    c = sub.add_parser("compress", help="image -> .tfycc file")
    c.add_argument("input")
    c.add_argument("output", nargs="?", help="default: INPUT.tfycc")
    c.add_argument("--force", action="store_true", help="overwrite OUTPUT")
    rate = c.add_mutually_exclusive_group()
    rate.add_argument("--offset", type=float, default=0.0,
                      help="importance level offset: <0 smaller files, >0 better quality")
    rate.add_argument("--bpp", type=float, metavar="TARGET",
                      help="largest file at or under TARGET bits per pixel (searches --offset)")
    c.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    c.add_argument("--refine", type=int, default=0, metavar="STEPS", help=REFINE_HELP)
    c.add_argument("--tune", choices=TUNES, default="psnr", help=TUNE_HELP)
    common(c)
    c.set_defaults(func=cmd_compress)

    d = sub.add_parser("decompress", help=".tfycc file -> PNG")
    d.add_argument("input")
    d.add_argument("output", nargs="?", help="default: INPUT with .png")
    d.add_argument("--force", action="store_true", help="overwrite OUTPUT")
    d.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    common(d)
    d.set_defaults(func=cmd_decompress)

    i = sub.add_parser("info", help="describe a .tfycc file")
    i.add_argument("input")
    common(i, model=False)
    i.set_defaults(func=cmd_info)

    m = sub.add_parser("demo", help="compress and decompress a bundled photo; print bpp and quality")
    m.add_argument("input", nargs="?", help="another image instead of the bundled photo")
    rate = m.add_mutually_exclusive_group()
    rate.add_argument("--offset", type=float, default=0.0)
    rate.add_argument("--bpp", type=float, metavar="TARGET", help="as for compress")
    m.add_argument("--refine", type=int, default=0, metavar="STEPS", help="as for compress")
    m.add_argument("--tune", choices=TUNES, default="psnr", help="as for compress")
    m.add_argument("--save", metavar="PNG", help="also write the decoded image here")
    common(m)
    m.set_defaults(func=cmd_demo)

    for name, helptext in (("train", "train a model (tfycc train --help)"),
                           ("export", "export SavedModels (tfycc export --help)"),
                           ("calibrate", "refit a model's coding tables (tfycc calibrate --help)"),
                           ("evaluate", "rate-distortion on an image set (tfycc evaluate --help)"),
                           ("saved-model-cli", "saved_model_cli with the codec's ops loaded")):
        t = sub.add_parser(name, help=helptext, add_help=False)
        t.add_argument("args", nargs=argparse.REMAINDER)
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "train":
        from . import train

        return train.main(argv[1:])
    if argv and argv[0] == "calibrate":
        from . import train

        return train.calibrate_main(argv[1:])
    if argv and argv[0] == "export":
        from . import export

        return export.main(argv[1:])
    if argv and argv[0] == "saved-model-cli":
        # saved_model_cli with tensorflow-compression's ops registered (the codec needs them).
        import tensorflow_compression  # noqa: F401
        from tensorflow.python.tools import saved_model_cli

        sys.argv = ["saved_model_cli", *argv[1:]]
        return saved_model_cli.main()
    if argv and argv[0] == "evaluate":
        from . import evaluate

        return evaluate.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        args.func(args)
    except CliError as e:
        print(f"tfycc {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tfycc {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
