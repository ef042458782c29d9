"""Image quality metrics on uint8 RGB arrays [H, W, 3] (NumPy in, Python floats out)."""
import numpy as np

__all__ = ["psnr", "ms_ssim", "ycbcr_psnr"]


def psnr(a, b, peak=255.0):
    """PSNR in dB (inf for identical images)."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(peak ** 2 / mse))


def ms_ssim(a, b):
    """5-scale MS-SSIM (standard weights) via tf.image.ssim_multiscale; needs sides >= 161.

    Smaller images use as many scales as fit (renormalised weights).
    """
    import tensorflow as tf

    weights = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
    side = min(np.shape(a)[:2])
    scales = 5
    while scales > 1 and side < 11 * 2 ** (scales - 1):
        scales -= 1
    w = weights[:scales]
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
