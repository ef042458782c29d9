import numpy as np
import pytest
import tensorflow as tf

from tfycc.losses import MS_SSIM_WEIGHTS, ms_ssim, ms_ssim_scales


def _pair(shape, noise, seed=0):
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.random(shape), tf.float32)
    x = tf.nn.avg_pool2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], "REFLECT"), 3, 1, "VALID")
    y = tf.clip_by_value(x + noise * rng.standard_normal(shape), 0.0, 1.0)
    return x, y


def test_scales_fit_the_image_and_sum_to_one():
    assert len(ms_ssim_scales(176)) == 5 and len(ms_ssim_scales(175)) == 4
    assert len(ms_ssim_scales(128)) == 4 and len(ms_ssim_scales(21)) == 1
    for side in (11, 64, 128, 512):
        assert abs(sum(ms_ssim_scales(side)) - 1.0) < 1e-12
    w = ms_ssim_scales(128)
    np.testing.assert_allclose(np.array(w) / w[0], np.array(MS_SSIM_WEIGHTS[:4]) / MS_SSIM_WEIGHTS[0])
    assert ms_ssim_scales(128, normalise=False) == MS_SSIM_WEIGHTS[:4]
    with pytest.raises(ValueError, match="11 pixels"):
        ms_ssim_scales(10)


@pytest.mark.parametrize("shape", [(2, 192, 192, 3), (1, 181, 200, 3), (2, 128, 128, 1)])
def test_equals_tensorflows_ms_ssim(shape):
    x, y = _pair(shape, 0.05)
    weights = ms_ssim_scales(min(shape[1:3]))
    want = tf.image.ssim_multiscale(x, y, 1.0, power_factors=weights).numpy()
    got = ms_ssim(x, y).numpy()
    assert got.shape == (shape[0],)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.all(got < 1.0)
    np.testing.assert_allclose(ms_ssim(x, x).numpy(), 1.0, atol=1e-6)
    # More noise, lower MS-SSIM.
    assert np.all(ms_ssim(*_pair(shape, 0.2)).numpy() < got)


def test_gradient_stays_finite_for_anti_correlated_images():
    x = tf.Variable(tf.random.stateless_uniform([1, 128, 128, 3], [1, 2]))
    with tf.GradientTape() as tape:
        value = ms_ssim(x, 1.0 - x)
    grad = tape.gradient(value, x).numpy()
    assert 0.0 < float(value[0]) < 1e-3 and np.all(np.isfinite(grad))


def test_bfloat16_inputs_and_dynamic_sides():
    x, y = _pair((1, 96, 96, 3), 0.05)
    v = ms_ssim(tf.cast(x, tf.bfloat16), tf.cast(y, tf.bfloat16))
    assert v.dtype == tf.float32
    np.testing.assert_allclose(v.numpy(), ms_ssim(x, y).numpy(), atol=5e-3)
    fn = tf.function(ms_ssim, input_signature=[tf.TensorSpec([None, None, None, 3])] * 2)
    with pytest.raises(ValueError, match="static"):
        fn.get_concrete_function()


def test_dynamic_sides_with_weights_equal_static_sides():
    x, y = _pair((1, 181, 200, 3), 0.05)
    weights = ms_ssim_scales(181)
    fn = tf.function(lambda a, b: ms_ssim(a, b, weights=weights),
                     input_signature=[tf.TensorSpec([None, None, None, 3])] * 2)
    np.testing.assert_allclose(fn(x, y).numpy(), ms_ssim(x, y).numpy(), atol=1e-6)
