"""Image quality metrics on uint8 RGB arrays [H, W, 3] (NumPy in, Python floats out),
and Bjontegaard deltas between rate-distortion curves."""
import numpy as np

__all__ = ["psnr", "ms_ssim", "ms_ssim_db", "ycbcr_psnr", "ciede2000", "ciede2000_split", "delta_ab",
           "bd_rate", "bd_quality"]


def psnr(a, b, peak=255.0):
    """PSNR in dB (inf for identical images)."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak ** 2 / mse))


def ms_ssim(a, b):
    """5-scale MS-SSIM (standard weights) via tf.image.ssim_multiscale (sides >= 176).

    Smaller images use as many scales as fit, with the first of the standard weights as
    they are (not renormalised; training's ``losses.ms_ssim`` renormalises them).
    """
    import tensorflow as tf

    from .losses import ms_ssim_scales

    w = ms_ssim_scales(min(np.shape(a)[:2]), normalise=False)
    x = tf.constant(np.asarray(a)[None], tf.float32)
    y = tf.constant(np.asarray(b)[None], tf.float32)
    return float(tf.image.ssim_multiscale(x, y, 255.0, power_factors=w)[0])


def ycbcr_psnr(a, b):
    """(PSNR of Y, PSNR of CbCr) in dB, BT.601 full range on the 0..255 scale."""
    from .colour import RGB_TO_YCBCR

    m = np.asarray(RGB_TO_YCBCR, np.float64)
    ya = np.asarray(a, np.float64) @ m.T
    yb = np.asarray(b, np.float64) @ m.T
    return psnr(ya[..., 0], yb[..., 0]), psnr(ya[..., 1:], yb[..., 1:])


def ms_ssim_db(value):
    """MS-SSIM on a dB scale, -10 log10(1 - MS-SSIM) (inf for 1)."""
    return float("inf") if value >= 1.0 else float(-10.0 * np.log10(1.0 - value))


def _lab(a):
    from skimage.color import rgb2lab

    return rgb2lab(np.asarray(a, np.uint8))


def ciede2000(a, b):
    """Mean CIEDE2000 colour difference between two sRGB uint8 images (D65 Lab)."""
    from skimage.color import deltaE_ciede2000

    return float(np.mean(deltaE_ciede2000(_lab(a), _lab(b))))


def ciede2000_split(a, b):
    """(mean CIEDE2000, its colour part, its lightness part) of ``b`` against ``a`` (sRGB uint8).

    The colour part is the mean CIEDE2000 of ``b``'s a*, b* under ``a``'s L* (only the
    colour errors left), the lightness part that of ``b``'s L* under ``a``'s a*, b*.
    They do not add up to the whole (CIEDE2000 is a root of a sum of squares, with
    weights that depend on both), but they say which of the two errors drives it.
    """
    from skimage.color import deltaE_ciede2000

    la, lb = _lab(a), _lab(b)
    colour = np.concatenate([la[..., :1], lb[..., 1:]], -1)
    lightness = np.concatenate([lb[..., :1], la[..., 1:]], -1)
    return tuple(float(np.mean(deltaE_ciede2000(la, x))) for x in (lb, colour, lightness))


def delta_ab(a, b):
    """Mean signed (a*, b*) shift of ``b`` relative to ``a`` (Lab units): a colour-bias measure.

    Positive Δa = redder / less green, positive Δb = yellower / less blue.
    """
    d = _lab(b) - _lab(a)
    return float(np.mean(d[..., 1])), float(np.mean(d[..., 2]))


def _pchip_integral(x, y, lo, hi):
    from scipy.interpolate import PchipInterpolator

    order = np.argsort(x)
    x, y = np.asarray(x, np.float64)[order], np.asarray(y, np.float64)[order]
    return PchipInterpolator(x, y).integrate(lo, hi)


def _overlap(x1, x2):
    lo, hi = max(min(x1), min(x2)), min(max(x1), max(x2))
    return (lo, hi) if hi > lo else None


def bd_rate(rate_ref, quality_ref, rate_test, quality_test):
    """Bjontegaard delta rate (%) of the test curve against the reference curve.

    Average bitrate difference at equal quality over the overlapping quality interval,
    with piecewise-cubic Hermite (PCHIP) interpolation of log-rate over quality, as in
    the JVET common test conditions.  Negative = the test codec needs fewer bits.
    Returns None when the curves' quality ranges do not overlap (or a curve has fewer
    than two points / repeated qualities): there is no honest number then.
    """
    q1, q2 = np.asarray(quality_ref, float), np.asarray(quality_test, float)
    if len(q1) < 2 or len(q2) < 2 or len(set(q1)) < len(q1) or len(set(q2)) < len(q2):
        return None
    span = _overlap(q1, q2)
    if span is None:
        return None
    i1 = _pchip_integral(q1, np.log(rate_ref), *span)
    i2 = _pchip_integral(q2, np.log(rate_test), *span)
    return float((np.exp((i2 - i1) / (span[1] - span[0])) - 1.0) * 100.0)


def bd_quality(rate_ref, quality_ref, rate_test, quality_test):
    """Bjontegaard delta quality (e.g. BD-PSNR in dB) of the test curve at equal rate.

    Average quality difference over the overlapping log-rate interval (PCHIP);
    positive = the test codec is better.  None when the rate ranges do not overlap.
    """
    r1, r2 = np.log(np.asarray(rate_ref, float)), np.log(np.asarray(rate_test, float))
    if len(r1) < 2 or len(r2) < 2 or len(set(r1)) < len(r1) or len(set(r2)) < len(r2):
        return None
    span = _overlap(r1, r2)
    if span is None:
        return None
    i1 = _pchip_integral(r1, quality_ref, *span)
    i2 = _pchip_integral(r2, quality_test, *span)
    return float((i2 - i1) / (span[1] - span[0]))
