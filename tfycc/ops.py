"""Compression-module ops of Li et al. (CVPR 2018): binarizer, importance levels, channel mask.

Conventions: a latent grid has n code channels and the importance map has L + 1
levels {0, ..., L}.  Level l keeps the first ceil(n * l / L) channels, so level 0
sends nothing and level L sends all n channels.  An integer test for "channel k is
kept at level l" is ``l * n > k * L``; coding and training both use it.
"""
import tensorflow as tf

__all__ = [
    "binarize",
    "continuous_level",
    "quantize_level",
    "channel_mask",
    "kept_channels",
    "keep_mask_int",
]


@tf.custom_gradient
def binarize(x):
    """Deterministic binarizer: 1 where x > 0.5 else 0 (training and inference alike).

    Backward pass is straight-through (identity), as in Li et al. 2018.
    x: float tensor in [0, 1] (a sigmoid output); returns the same shape and dtype.
    """
    y = tf.cast(x > 0.5, x.dtype)

    def grad(dy):
        return dy

    return y, grad


def continuous_level(p, levels, offset=0.0):
    """Importance p in (0, 1) -> continuous level u = (L + 1) * p + offset (float32).

    ``offset`` (in levels, broadcastable to p) steers the rate at encode time.
    """
    p = tf.cast(p, tf.float32)
    return (levels + 1.0) * p + tf.cast(offset, tf.float32)


def quantize_level(u, levels):
    """Continuous level u -> integer level in {0, ..., L} (int32, no gradient)."""
    return tf.cast(tf.clip_by_value(tf.floor(u), 0.0, float(levels)), tf.int32)


def kept_channels(level, channels, levels):
    """Number of kept channels ceil(n * l / L) for integer level(s) l (int32)."""
    level = tf.convert_to_tensor(level, tf.int32)
    return (level * channels + levels - 1) // levels


def keep_mask_int(level, channels, levels):
    """Integer levels [...] -> bool mask [..., n]: channel k kept iff l * n > k * L."""
    k = tf.range(channels, dtype=tf.int32)
    return tf.expand_dims(level, -1) * channels > k * levels


def channel_mask(u, channels, levels):
    """Hard channel mask from continuous levels, with Li et al.'s windowed gradient.

    u: [..., 1] float32 continuous level (see ``continuous_level``).
    Returns a float32 mask [..., n] in {0, 1} equal to ``keep_mask_int(quantize_level(u))``.
    Backward: channel k switches on when u crosses s_k = floor(k * L / n) + 1; the
    gradient of m_k with respect to u is 1 inside the window |u - s_k| < 1 and 0
    elsewhere, so the importance map learns from every channel near its threshold.
    """
    k = tf.range(channels, dtype=tf.float32)
    switch = tf.floor(k * levels / channels) + 1.0  # [n]

    @tf.custom_gradient
    def _mask(u):
        level = quantize_level(u[..., 0], levels)
        m = tf.cast(keep_mask_int(level, channels, levels), tf.float32)

        def grad(dm):
            window = tf.cast(tf.abs(u - switch) < 1.0, tf.float32)
            return tf.reduce_sum(dm * window, axis=-1, keepdims=True)

        return m, grad

    return _mask(tf.cast(u, tf.float32))
