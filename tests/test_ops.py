import numpy as np
import pytest
import tensorflow as tf

from tfycc import ops


def test_binarizer_outputs_zero_or_one():
    x = tf.random.uniform([3, 8, 8, 16])
    b = ops.binarize(x).numpy()
    assert set(np.unique(b)) <= {0.0, 1.0}
    np.testing.assert_array_equal(b, (x.numpy() > 0.5).astype(np.float32))


def test_binarizer_gradient_is_straight_through():
    x = tf.random.uniform([2, 5, 5, 4])
    upstream = tf.random.normal(x.shape)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = ops.binarize(x)
    np.testing.assert_array_equal(tape.gradient(y, x, output_gradients=upstream).numpy(),
                                  upstream.numpy())


@pytest.mark.parametrize("channels,levels", [(64, 16), (16, 16), (8, 4), (10, 4)])
def test_mask_keeps_ceil_n_l_over_L_channels_per_level(channels, levels):
    for level in range(levels + 1):
        u = tf.fill([1, 1, 1, 1], level + 0.5)
        m = ops.channel_mask(u, channels, levels).numpy()[0, 0, 0]
        kept = int(np.ceil(channels * level / levels))
        np.testing.assert_array_equal(m, [1.0] * kept + [0.0] * (channels - kept))
        assert int(ops.kept_channels(level, channels, levels)) == kept


def test_mask_matches_integer_mask_used_by_the_coder():
    u = tf.random.uniform([2, 6, 7, 1], -2.0, 20.0)
    level = ops.quantize_level(u[..., 0], 16)
    assert level.numpy().min() >= 0 and level.numpy().max() <= 16
    np.testing.assert_array_equal(ops.channel_mask(u, 64, 16).numpy(),
                                  ops.keep_mask_int(level, 64, 16).numpy().astype(np.float32))


def test_mask_passes_a_nonzero_gradient_to_the_importance_map():
    p = tf.Variable(tf.random.uniform([1, 4, 4, 1], 0.05, 0.95))
    with tf.GradientTape() as tape:
        m = ops.channel_mask(ops.continuous_level(p, 16), 64, 16)
        loss = tf.reduce_sum(m * tf.range(64, dtype=tf.float32))
    g = tape.gradient(loss, p).numpy()
    assert np.all(g > 0), "raising the importance must raise a cost that grows with kept channels"


def test_level_offset_raises_levels():
    p = tf.random.uniform([1, 8, 8, 1])
    low = ops.quantize_level(ops.continuous_level(p, 16, -3.0)[..., 0], 16).numpy()
    high = ops.quantize_level(ops.continuous_level(p, 16, 3.0)[..., 0], 16).numpy()
    assert (high >= low).all() and high.sum() > low.sum()
