import numpy as np
import tensorflow as tf

from tfycc.colour import rgb_to_ycbcr, ycbcr_to_rgb


def test_round_trip_is_exact_up_to_float_error():
    rgb = np.random.default_rng(0).random((4, 17, 23, 3)).astype(np.float64)
    back = ycbcr_to_rgb(rgb_to_ycbcr(tf.constant(rgb))).numpy()
    np.testing.assert_allclose(back, rgb, atol=1e-12)


def test_bt601_full_range_reference_values():
    rgb = tf.constant([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.5]], tf.float64)
    ycc = rgb_to_ycbcr(rgb).numpy()
    np.testing.assert_allclose(ycc[0], [1.0, 0.5, 0.5], atol=1e-9)
    np.testing.assert_allclose(ycc[1], [0.0, 0.5, 0.5], atol=1e-9)
    # JFIF: pure red is Y = 0.299, Cb = 0.5 - 0.168736, Cr = 1.0
    np.testing.assert_allclose(ycc[2], [0.299, 0.5 - 0.168735892, 1.0], atol=1e-9)
    np.testing.assert_allclose(ycc[3], [0.5, 0.5, 0.5], atol=1e-9)


def test_float32_round_trip_of_uint8_images_is_lossless():
    rgb = np.arange(256 * 3, dtype=np.float32).reshape(256, 3) % 256
    back = ycbcr_to_rgb(rgb_to_ycbcr(tf.constant(rgb / 255.0))).numpy() * 255.0
    np.testing.assert_array_equal(np.round(back), rgb)
