import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_python
from tfycc.layers import ResidualStack
from tfycc.model import CONFIGS, TwoStreamCodec, build_model


@pytest.mark.parametrize("config", ["compact", "paper"])
def test_configuration_builds_and_runs_forward_on_64x96(config):
    model = build_model(config)
    out = model(tf.random.uniform([1, 64, 96, 3]), training=False)
    assert out["rgb"].shape == (1, 64, 96, 3)
    for key in ("loss", "distortion", "bpp", "kept_bpp", "psnr"):
        assert np.isfinite(out[key].numpy()), key
    lat = model.analyze(tf.random.uniform([1, 64, 96, 3]))
    assert lat["bits_y"].shape == (1, 8, 12, CONFIGS[config]["code_y"])
    assert lat["bits_c"].shape == (1, 8, 12, CONFIGS[config]["code_c"])


def test_paper_configuration_has_16_blocks_and_5_long_skips():
    model = build_model("paper")
    for stream in (model.enc_y, model.enc_c, model.dec_y, model.dec_c):
        stack = stream.stack
        assert isinstance(stack, ResidualStack)
        assert sum(len(g) for g in stack.groups) == 16
        assert stack.num_long_skips == 5


def test_colour_stream_uses_fewer_code_channels_than_luma():
    for name in ("compact", "paper"):
        assert CONFIGS[name]["code_c"] < CONFIGS[name]["code_y"]


def test_from_config_round_trip_gives_identical_outputs():
    model = build_model("tiny", lmbda=0.3, gamma=2.0, model_id="tfycc-test-cfg")
    config = json.loads(json.dumps(model.get_config()))
    clone = TwoStreamCodec.from_config(config)
    clone(tf.zeros([1, 16, 16, 3]))
    clone.set_weights(model.get_weights())
    assert clone.get_config() == model.get_config()
    x = tf.random.uniform([1, 32, 40, 3])
    np.testing.assert_array_equal(model(x)["rgb"].numpy(), clone(x)["rgb"].numpy())


def test_keras_serialization_of_every_custom_layer():
    model = build_model("tiny")
    for layer in [model.enc_y, model.enc_c, model.dec_y, model.dec_c, model.importance,
                  model.entropy, model.enc_y.stack]:
        restored = tf.keras.layers.deserialize(tf.keras.layers.serialize(layer))
        assert type(restored) is type(layer)
        assert restored.get_config() == layer.get_config()


def test_save_and_load_model_restores_weights(tmp_path):
    from tfycc.model import load_model, save_model

    model = build_model("tiny", model_id="tfycc-test-save")
    save_model(model, str(tmp_path / "m"))
    loaded = load_model(str(tmp_path / "m"))
    assert loaded.model_id == "tfycc-test-save"
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_tiny_model_overfits_one_image():
    from PIL import Image

    from conftest import DATA

    tf.keras.utils.set_random_seed(0)
    image = np.asarray(Image.open(os.path.join(DATA, "crop64.png")).convert("RGB"))
    model = build_model("tiny", lmbda=0.0, offset_range=0.0, random_level_prob=0.0,
                        rate_warmup_steps=0)
    model.importance.head.bias.assign([5.0])  # all channels kept
    model.compile(optimizer=tf.keras.optimizers.Adam(2e-3))
    data = tf.data.Dataset.from_tensors(image[None]).repeat()
    first = model.evaluate(data, steps=1, verbose=0, return_dict=True)["distortion"]
    model.fit(data, steps_per_epoch=150, epochs=1, verbose=0)
    last = model.evaluate(data, steps=1, verbose=0, return_dict=True)
    assert last["distortion"] < 0.5 * first, (first, last)
    assert last["psnr"] > 18.0, last


def test_train_step_reports_the_documented_metrics():
    model = build_model("tiny")
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-4))
    data = tf.data.Dataset.from_tensors(
        tf.cast(tf.random.uniform([2, 32, 32, 3], 0, 255), tf.uint8)).repeat()
    history = model.fit(data, steps_per_epoch=2, epochs=1, verbose=0).history
    for key in ("loss", "distortion", "bpp", "kept_bpp", "importance_bpp", "psnr", "level"):
        assert key in history and np.isfinite(history[key][0]), key


def test_rmse_distortions_measure_what_they_say_and_are_saved(tmp_path):
    from tfycc.colour import rgb_to_ycbcr, ycbcr_to_rgb
    from tfycc.model import load_model, save_model

    tf.keras.utils.set_random_seed(3)
    x = tf.random.uniform([2, 32, 32, 3])
    model = build_model("tiny", distortion="rmse")
    lat = model.analyze(x)
    rgb_hat = ycbcr_to_rgb(model.synthesize(lat["bits_y"], lat["bits_c"], lat["mask_y"],
                                            lat["mask_c"]))
    expected = np.sqrt(np.mean(np.square(x.numpy() - rgb_hat.numpy())))
    np.testing.assert_allclose(model(x, training=False)["distortion"].numpy(), expected, rtol=1e-5)
    l1 = build_model("tiny")
    l1.set_weights(model.get_weights())
    assert abs(float(l1(x, training=False)["distortion"]) - expected) > 1e-3  # a different loss
    save_model(model, str(tmp_path))
    assert load_model(str(tmp_path)).hparams["distortion"] == "rmse"
    assert load_model(str(tmp_path), distortion="l1").hparams["distortion"] == "l1"
    mixed = build_model("tiny", distortion="rmse-y")
    mixed.set_weights(model.get_weights())
    ycc, ycc_hat = rgb_to_ycbcr(x).numpy(), rgb_to_ycbcr(rgb_hat).numpy()
    want = (np.sqrt(np.mean(np.square(ycc[..., 0] - ycc_hat[..., 0])))
            + np.abs(ycc[..., 1:] - ycc_hat[..., 1:]).mean(axis=(0, 1, 2)).sum())
    np.testing.assert_allclose(mixed(x, training=False)["distortion"].numpy(), want, rtol=1e-4)
    with pytest.raises(ValueError, match="distortion"):
        build_model("tiny", distortion="ssim")


def test_ms_ssim_weight_adds_its_term_trains_and_is_saved(tmp_path):
    from tfycc.colour import ycbcr_to_rgb
    from tfycc.losses import ms_ssim_scales
    from tfycc.model import load_model, save_model

    tf.keras.utils.set_random_seed(5)
    x = tf.random.uniform([2, 64, 64, 3])
    plain = build_model("tiny", distortion="rmse-y")
    weighted = build_model("tiny", distortion="rmse-y", ms_ssim_weight=0.5)
    weighted.set_weights(plain.get_weights())
    lat = plain.analyze(x)
    rgb_hat = ycbcr_to_rgb(plain.synthesize(lat["bits_y"], lat["bits_c"], lat["mask_y"],
                                            lat["mask_c"]))
    # An independent reference: TensorFlow's own MS-SSIM with the scales 64^2 allows (3).
    reference = tf.image.ssim_multiscale(x, rgb_hat, 1.0, power_factors=ms_ssim_scales(64))
    extra = float(weighted(x, training=False)["distortion"] - plain(x, training=False)["distortion"])
    np.testing.assert_allclose(extra, 0.5 * (1.0 - float(tf.reduce_mean(reference))), rtol=1e-3)
    assert extra > 0.01
    weighted.compile(optimizer=tf.keras.optimizers.Adam(1e-4))
    data = tf.data.Dataset.from_tensors(
        tf.cast(tf.random.uniform([2, 32, 32, 3], 0, 255), tf.uint8)).repeat()
    history = weighted.fit(data, steps_per_epoch=2, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    save_model(weighted, str(tmp_path / "w"))
    assert load_model(str(tmp_path / "w")).hparams["ms_ssim_weight"] == 0.5
    assert load_model(str(tmp_path / "w"), ms_ssim_weight=0.0).hparams["ms_ssim_weight"] == 0.0
    # A model saved before the weight existed loads with the term off.
    save_model(plain, str(tmp_path / "old"))
    with open(tmp_path / "old" / "config.json") as f:
        config = json.load(f)
    config.pop("ms_ssim_weight")
    with open(tmp_path / "old" / "config.json", "w") as f:
        json.dump(config, f)
    assert load_model(str(tmp_path / "old")).hparams["ms_ssim_weight"] == 0.0
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="ms_ssim_weight"):
            build_model("tiny", ms_ssim_weight=bad)


def test_mirrored_strategy_fit_with_two_cpu_replicas(tmp_path):
    code = """
import sys
from tfycc.train import make_strategy
strategy = make_strategy(2)
import tensorflow as tf
from tfycc.model import build_model
assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
with strategy.scope():
    model = build_model("tiny")
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
data = tf.data.Dataset.from_tensors(tf.cast(tf.random.uniform([4, 32, 32, 3], 0, 255), tf.uint8)).repeat()
h = model.fit(data, steps_per_epoch=3, epochs=1, verbose=0).history
print("LOSS", h["loss"][0])
"""
    r = run_python(code, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "LOSS" in r.stdout


def test_growing_a_saved_model_adds_identity_blocks_that_change_nothing_until_trained(tmp_path):
    from conftest import DATA
    from PIL import Image

    from tfycc.model import load_model, save_model

    tf.keras.utils.set_random_seed(3)
    model = build_model("tiny", model_id="tfycc-test-grow")
    save_model(model, str(tmp_path / "m"))
    grown = load_model(str(tmp_path / "m"), stage_blocks=1, fine_blocks=1, deep_blocks=1)
    assert grown.get_config()["stage_blocks"] == 1
    assert grown.get_config()["fine_blocks"] == 1
    assert grown.get_config()["deep_blocks"] == 1
    assert grown.count_params() > model.count_params()
    for stream in (grown.enc_y, grown.enc_c, grown.dec_y, grown.dec_c):
        assert len(stream.stages) == 1
    for stream in (grown.enc_y, grown.enc_c):
        assert len(stream.deep) == 1
    for stream in (grown.dec_y, grown.dec_c):
        assert len(stream.fine) == 1
    # The grown model writes the same file and decodes it to the same pixels.
    image = tf.constant(np.asarray(Image.open(os.path.join(DATA, "crop64.png")).convert("RGB")))
    data = model.compress(image)
    assert grown.compress(image).numpy() == data.numpy()
    np.testing.assert_array_equal(grown.decompress(data).numpy(), model.decompress(data).numpy())
    # ... and the new blocks learn (a zero-initialised conv must still get gradients).
    grown.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    batch = tf.data.Dataset.from_tensors(image[None, :32, :32]).repeat()
    grown.fit(batch, steps_per_epoch=3, epochs=1, verbose=0)
    for stream in (grown.enc_y, grown.dec_y):
        assert np.abs(stream.stages[0].conv2.kernel.numpy()).max() > 0
    assert np.abs(grown.dec_y.fine[0].conv2.kernel.numpy()).max() > 0
    assert np.abs(grown.enc_y.deep[0].conv2.kernel.numpy()).max() > 0
    # A grown model saves and loads like any other.
    save_model(grown, str(tmp_path / "g"))
    again = load_model(str(tmp_path / "g"))
    for a, b in zip(grown.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Shrinking would drop trained blocks: refused.
    for key in ("stage_blocks", "fine_blocks", "deep_blocks"):
        with pytest.raises(ValueError, match="drop trained blocks"):
            load_model(str(tmp_path / "g"), **{key: 0})
    # A negative count is refused, also for a model saved before fine_blocks existed.
    with open(tmp_path / "m" / "config.json") as f:
        old = {k: v for k, v in json.load(f).items() if k != "fine_blocks"}
    with open(tmp_path / "m" / "config.json", "w") as f:
        json.dump(old, f)
    with pytest.raises(ValueError, match="must not be negative"):
        load_model(str(tmp_path / "m"), fine_blocks=-1)
    # Growing again keeps the trained blocks and adds identity ones after them.
    twice = load_model(str(tmp_path / "g"), stage_blocks=2)
    for stream, old in ((twice.enc_y, again.enc_y), (twice.dec_c, again.dec_c)):
        assert len(stream.stages) == 2
        np.testing.assert_array_equal(stream.stages[0].conv2.kernel.numpy(),
                                      old.stages[0].conv2.kernel.numpy())
        assert np.abs(stream.stages[1].conv2.kernel.numpy()).max() == 0
    data = again.compress(image)
    assert twice.compress(image).numpy() == data.numpy()
    np.testing.assert_array_equal(twice.decompress(data).numpy(), again.decompress(data).numpy())
