"""Classic codecs ("anchors") for rate-distortion comparisons, and the bpp search.

Every anchor is a real library encoder writing a whole file (container headers
included), never a hand-written codec:

=========  ===============================  ========================================
name       library                          setting searched (file grows with it)
=========  ===============================  ========================================
jpeg       libjpeg-turbo (imagecodecs)      quality 1..100, 4:2:0, optimized Huffman
jpeg2000   OpenJPEG (imagecodecs), JP2      target PSNR 10..60 dB (float)
webp       libwebp (imagecodecs)            quality 0..100, method 6, lossy
avif       libavif + aom (imagecodecs)      quality 0..100, speed 6, 4:4:4
jpegxl     libjxl (imagecodecs)             25 - distance, distance 25..0.1 (float)
hevc       libheif + x265 (pillow-heif)     quality 0..100, 4:4:4 (a stand-in for BPG)
avif420    as avif                          4:2:0 chroma
hevc420    as hevc                          4:2:0 chroma
=========  ===============================  ========================================

``fit_to_bpp`` searches the setting for the largest file at or under a target bpp
(8 * bytes / pixels).  When even the lowest setting overshoots, it returns that
file with ``reached=False`` so callers can report it honestly.
"""
import dataclasses
import io
import math
import time
from typing import Callable

import numpy as np

__all__ = ["Anchor", "ANCHORS", "DEFAULT_ANCHORS", "Fit", "fit_to_bpp", "get_anchor"]

DEFAULT_ANCHORS = ("jpeg", "jpeg2000", "webp", "avif", "jpegxl", "hevc")


@dataclasses.dataclass(frozen=True)
class Anchor:
    """A classic codec: ``encode(image, x)`` -> file bytes, ``decode(bytes)`` -> image.

    ``x`` is the searched setting in [low, high]; files grow (roughly monotonically)
    with it.  ``integer`` settings are searched over integers, others by bisection.
    ``describe(x)`` turns a setting into the codec's own words for the results.
    """

    name: str
    label: str
    encode: Callable[[np.ndarray, float], bytes]
    decode: Callable[[bytes], np.ndarray]
    low: float
    high: float
    integer: bool
    describe: Callable[[float], str]


def _imagecodecs():
    try:
        import imagecodecs
    except ImportError as e:  # pragma: no cover - depends on the install
        raise RuntimeError("classic anchors need the 'eval' extra: "
                           "pip install 'tfycc[eval]'") from e
    return imagecodecs


def _rgb(a):
    a = np.asarray(a)
    if a.ndim == 3 and a.shape[-1] == 4:
        a = a[..., :3]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, -1)
    return np.ascontiguousarray(a, np.uint8)


def _jpeg(image, x):
    return _imagecodecs().jpeg8_encode(image, level=int(x), optimize=True)


def _jpeg2000(image, x):
    return _imagecodecs().jpeg2k_encode(image, level=float(x), codecformat="jp2")


def _webp(image, x):
    return _imagecodecs().webp_encode(image, level=int(x), lossless=False, method=6)


def _avif(chroma):
    def encode(image, x):
        return _imagecodecs().avif_encode(image, level=int(x), speed=6, pixelformat=chroma)
    return encode


def _jpegxl(image, x):
    return _imagecodecs().jpegxl_encode(image, distance=25.0 - float(x))


def _hevc(chroma):
    def encode(image, x):
        import pillow_heif
        from PIL import Image

        buf = io.BytesIO()
        pillow_heif.from_pillow(Image.fromarray(image)).save(buf, quality=int(x), chroma=chroma)
        return buf.getvalue()
    return encode


def _decode_with(fn_name):
    def decode(data):
        return _rgb(getattr(_imagecodecs(), fn_name)(data))
    return decode


def _decode_heif(data):
    import pillow_heif

    heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
    return _rgb(np.asarray(heif.to_pillow().convert("RGB")))


def _quality(x):
    return f"quality {int(x)}"


ANCHORS = {a.name: a for a in [
    Anchor("jpeg", "JPEG (libjpeg-turbo, 4:2:0)", _jpeg, _decode_with("jpeg8_decode"),
           1, 100, True, _quality),
    Anchor("jpeg2000", "JPEG 2000 (OpenJPEG)", _jpeg2000, _decode_with("jpeg2k_decode"),
           10.0, 60.0, False, lambda x: f"target PSNR {x:.3f} dB"),
    Anchor("webp", "WebP (libwebp)", _webp, _decode_with("webp_decode"), 0, 100, True, _quality),
    Anchor("avif", "AVIF (libavif/aom, 4:4:4)", _avif("444"), _decode_with("avif_decode"),
           0, 100, True, _quality),
    Anchor("jpegxl", "JPEG XL (libjxl)", _jpegxl, _decode_with("jpegxl_decode"),
           0.0, 24.9, False, lambda x: f"distance {25.0 - x:.3f}"),
    Anchor("hevc", "HEVC (libheif/x265, 4:4:4)", _hevc("444"), _decode_heif, 0, 100, True,
           _quality),
    Anchor("avif420", "AVIF (libavif/aom, 4:2:0)", _avif("420"), _decode_with("avif_decode"),
           0, 100, True, _quality),
    Anchor("hevc420", "HEVC (libheif/x265, 4:2:0)", _hevc("420"), _decode_heif, 0, 100, True,
           _quality),
]}


def get_anchor(name):
    """The anchor called ``name``; ValueError listing the known ones otherwise."""
    try:
        return ANCHORS[name]
    except KeyError:
        raise ValueError(f"unknown anchor {name!r} (known: {', '.join(ANCHORS)})") from None


@dataclasses.dataclass
class Fit:
    """Result of ``fit_to_bpp``: the chosen file, its setting, whether it met the target,
    the seconds its encode took and how many encodes the search ran."""

    data: bytes
    setting: float
    reached: bool
    encode_time: float
    encodes: int


def fit_to_bpp(anchor, image, target_bpp, cache=None, float_steps=14):
    """The largest ``anchor`` file of ``image`` at or under ``target_bpp``.

    Integer settings: bisection for the largest x whose file fits (files are assumed to
    grow with x; every tried setting is remembered and the largest fitting file wins,
    so a non-monotone step can only help).  Float settings: ``float_steps`` bisection
    steps.  ``cache`` (a dict, one per image and anchor) shares encodes between
    targets.  When even the lowest setting overshoots, ``reached`` is False and the
    lowest setting's file is returned.
    """
    image = _rgb(image)
    budget = math.floor(target_bpp * image.shape[0] * image.shape[1] / 8.0)
    cache = {} if cache is None else cache
    encodes = 0

    def size(x):
        nonlocal encodes
        if x not in cache:
            t = time.perf_counter()
            data = anchor.encode(image, x)
            cache[x] = (data, time.perf_counter() - t)
            encodes += 1
        return len(cache[x][0])

    def fit(x, reached):
        return Fit(cache[x][0], x, reached, cache[x][1], encodes)

    lo, hi = anchor.low, anchor.high
    if size(lo) > budget:
        return fit(lo, False)
    if size(hi) <= budget:
        return fit(hi, True)
    if anchor.integer:
        lo, hi = int(lo), int(hi)  # size(lo) fits, size(hi) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if size(mid) <= budget:
                lo = mid
            else:
                hi = mid
    else:
        for _ in range(float_steps):
            mid = (lo + hi) / 2.0
            if size(mid) <= budget:
                lo = mid
            else:
                hi = mid
    fitting = [x for x, (d, _) in cache.items() if len(d) <= budget]
    return fit(max(fitting, key=lambda x: len(cache[x][0])), True)
