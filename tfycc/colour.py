"""RGB <-> YCbCr conversion, ITU-R BT.601 full range (JPEG/JFIF convention).

All functions work on float tensors in [0, 1] with channels last; Cb and Cr are
offset by 0.5 so that neutral grey has Cb = Cr = 0.5.
"""
import numpy as np
import tensorflow as tf

__all__ = ["rgb_to_ycbcr", "ycbcr_to_rgb", "RGB_TO_YCBCR", "YCBCR_TO_RGB"]

# Rows: Y, Cb, Cr as linear combinations of R, G, B (BT.601, full range).
RGB_TO_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168735892, -0.331264108, 0.5),
    (0.5, -0.418687589, -0.081312411),
)
# Inverse of the matrix above, to float64 precision (rows: R, G, B from Y, Cb, Cr):
# about (1, 0, 1.402), (1, -0.344136, -0.714136), (1, 1.772, 0).
YCBCR_TO_RGB = tuple(map(tuple, np.linalg.inv(np.array(RGB_TO_YCBCR, np.float64))))
_OFFSET = (0.0, 0.5, 0.5)


def rgb_to_ycbcr(rgb):
    """[..., 3] RGB in [0, 1] -> [..., 3] YCbCr in [0, 1] (Cb, Cr centred on 0.5)."""
    rgb = tf.convert_to_tensor(rgb)
    m = tf.constant(RGB_TO_YCBCR, dtype=rgb.dtype)
    return tf.linalg.matvec(m, rgb) + tf.constant(_OFFSET, dtype=rgb.dtype)


def ycbcr_to_rgb(ycbcr):
    """[..., 3] YCbCr (Cb, Cr centred on 0.5) -> [..., 3] RGB; not clipped."""
    ycbcr = tf.convert_to_tensor(ycbcr)
    m = tf.constant(YCBCR_TO_RGB, dtype=ycbcr.dtype)
    return tf.linalg.matvec(m, ycbcr - tf.constant(_OFFSET, dtype=ycbcr.dtype))
