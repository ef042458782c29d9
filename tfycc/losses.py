"""Differentiable image-quality terms for training (TensorFlow in, TensorFlow out).

``ms_ssim`` is the multi-scale SSIM of Wang, Simoncelli and Bovik (2003) with the
constants of ``tf.image.ssim_multiscale`` (11x11 Gaussian, sigma 1.5, k1 0.01,
k2 0.03, 2x2 average pooling between scales), written out so that its gradient
stays finite: TensorFlow's version clips negative contrast-structure terms to 0
and then raises them to powers below 1, whose derivative at 0 is infinite -- one
anti-correlated patch would turn a whole training step's gradient into NaN.  Here
the terms are clipped to a small positive floor instead.  For positive terms the
value equals ``tf.image.ssim_multiscale``'s (tested).
"""
import tensorflow as tf

__all__ = ["MS_SSIM_WEIGHTS", "ms_ssim_scales", "ms_ssim"]

#: The standard 5-scale exponents (Wang et al. 2003), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_FILTER, _SIGMA, _K1, _K2 = 11, 1.5, 0.01, 0.03
_FLOOR = 1e-6


def ms_ssim_scales(side, normalise=True):
    """The exponents for an image whose shorter side is ``side`` pixels: as many of the
    standard scales as leave the coarsest one at least 11 pixels (5 from 176 pixels up),
    renormalised to sum to 1 (unless ``normalise`` is false) so that fewer scales keep
    the value on the same footing."""
    scales = len(MS_SSIM_WEIGHTS)
    while scales > 1 and side < _FILTER * 2 ** (scales - 1):
        scales -= 1
    if side < _FILTER:
        raise ValueError(f"MS-SSIM needs images of at least {_FILTER} pixels a side, not {side}")
    weights = MS_SSIM_WEIGHTS[:scales]
    return tuple(w / sum(weights) for w in weights) if normalise else weights


def _gaussian(channels):
    x = tf.range(_FILTER, dtype=tf.float32) - (_FILTER - 1) / 2.0
    g = tf.exp(-0.5 * tf.square(x) / _SIGMA ** 2)
    g = g / tf.reduce_sum(g)
    kernel = g[:, None] * g[None, :]
    return tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])


def _luminance_and_cs(x, y, kernel, max_val):
    """Per image and channel: (mean luminance x contrast-structure, mean contrast-structure)."""
    def blur(t):
        return tf.nn.depthwise_conv2d(t, kernel, [1, 1, 1, 1], "VALID")

    c1, c2 = (_K1 * max_val) ** 2, (_K2 * max_val) ** 2
    mx, my = blur(x), blur(y)
    luminance = (2.0 * mx * my + c1) / (tf.square(mx) + tf.square(my) + c1)
    cs = (2.0 * (blur(x * y) - mx * my) + c2) / (
        blur(tf.square(x) + tf.square(y)) - tf.square(mx) - tf.square(my) + c2)
    return tf.reduce_mean(luminance * cs, [1, 2]), tf.reduce_mean(cs, [1, 2])


def ms_ssim(x, y, max_val=1.0, weights=None):
    """MS-SSIM of two image batches [B, H, W, C] (float, static H and W) -> [B] in (0, 1].

    ``weights`` are the per-scale exponents, finest first (default: ``ms_ssim_scales``
    of the shorter side; needed when the sides are not static).  Computed in float32
    whatever the inputs' dtype.
    """
    x = tf.cast(x, tf.float32)
    y = tf.cast(y, tf.float32)
    if weights is None:
        height, width = x.shape[1], x.shape[2]
        if height is None or width is None:
            raise ValueError("ms_ssim needs static image sides to choose its scales; pass weights")
        weights = ms_ssim_scales(min(height, width))
    kernel = _gaussian(x.shape[-1])
    terms = []
    for k in range(len(weights)):
        if k:
            static = None not in x.shape[1:3]
            sides = x.shape[1:3] if static else tf.shape(x)[1:3]  # dynamic: pad by 0 or 1
            if not static or sides[0] % 2 or sides[1] % 2:
                pad = [[0, 0], [0, sides[0] % 2], [0, sides[1] % 2], [0, 0]]
                x, y = tf.pad(x, pad, "SYMMETRIC"), tf.pad(y, pad, "SYMMETRIC")
            x = tf.nn.avg_pool2d(x, 2, 2, "VALID")
            y = tf.nn.avg_pool2d(y, 2, 2, "VALID")
        ssim, cs = _luminance_and_cs(x, y, kernel, max_val)
        terms.append(ssim if k == len(weights) - 1 else cs)
    terms = tf.maximum(tf.stack(terms, -1), _FLOOR)
    per_channel = tf.reduce_prod(tf.pow(terms, tf.constant(weights, tf.float32)), -1)
    return tf.reduce_mean(per_channel, -1)
