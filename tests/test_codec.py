"""The model as a codec: real bitstreams, determinism, odd sizes, precision independence."""
import numpy as np
import pytest
import tensorflow as tf

from conftest import run_python, varied_tiny
from tfycc import bitstream
from tfycc.colour import ycbcr_to_rgb
from tfycc.entropy import quantize_pmf
from tfycc.model import REFINE_COLOUR_SHARE, _pad_to_grid, build_model


def _latents(model, image):
    lat = model.analyze(_pad_to_grid(tf.cast(image[None], tf.float32) / 255.0))
    return (lat["level"][0].numpy(), lat["bits_y"][0].numpy().astype(np.int32),
            lat["bits_c"][0].numpy().astype(np.int32))


def test_quantized_pmf_sums_to_precision_and_keeps_every_symbol():
    freq = quantize_pmf(np.array([[0.5, 0.5], [1e-9, 1.0], [0.7, 0.3]]))
    assert (freq.sum(-1) == 1 << 16).all() and (freq >= 1).all()
    assert freq[2, 0] > freq[2, 1]


def test_decoded_latents_equal_the_encoder_latents(tiny_model, photo):
    image = photo[:45, :70]
    level, bits_y, bits_c = _latents(tiny_model, image)
    assert len(np.unique(level)) > 1, "test needs varying levels"
    decoded = tiny_model.latents(tiny_model.compress(image))
    assert bool(decoded["ok"])
    np.testing.assert_array_equal(decoded["level"].numpy(), level)
    np.testing.assert_array_equal(decoded["bits_y"].numpy(), bits_y)
    np.testing.assert_array_equal(decoded["bits_c"].numpy(), bits_c)


def test_round_trip_and_bpp_is_the_file_size(tiny_model, photo):
    data = tiny_model.compress(photo).numpy()
    image = tiny_model.decompress(data).numpy()
    assert image.shape == photo.shape and image.dtype == np.uint8
    header = bitstream.parse_header(data)
    assert (header.height, header.width) == photo.shape[:2]
    assert header.bpp == pytest.approx(8 * len(data) / (photo.shape[0] * photo.shape[1]))
    assert header.model_id == tiny_model.model_id


def test_compressing_twice_gives_identical_bytes(tiny_model, photo):
    assert tiny_model.compress(photo).numpy() == tiny_model.compress(photo).numpy()


@pytest.mark.parametrize("shape", [(1, 1), (17, 33), (513, 769)])
def test_odd_sizes_round_trip(tiny_model, shape):
    image = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    out = tiny_model.decompress(tiny_model.compress(image)).numpy()
    assert out.shape == image.shape


def test_entropy_coding_matches_the_models_rate_estimate(tiny_model, photo):
    """The file's payload is within a few percent (+ fixed overhead) of the trained rate term."""
    lat = tiny_model.analyze(_pad_to_grid(tf.cast(photo[None], tf.float32) / 255.0))
    tiny_model.entropy.update_tables()
    estimate_bits = float(tiny_model.rate(lat)[0])
    payload_bits = 8 * (len(tiny_model.compress(photo).numpy())
                        - bitstream.header_size(tiny_model.model_id) - bitstream.CHECKSUM_BYTES)
    assert abs(payload_bits - estimate_bits) < 0.02 * estimate_bits + 64


def test_learned_tables_beat_uniform_tables_on_skewed_bits(photo):
    """Fitting the context tables to the data shrinks the file (the context model works)."""
    model = varied_tiny("tfycc-test-tables")
    before = len(model.compress(photo).numpy())
    x = _pad_to_grid(tf.cast(photo[None], tf.float32) / 255.0)
    opt = tf.keras.optimizers.Adam(0.05)
    for _ in range(60):
        with tf.GradientTape() as tape:
            bits = tf.reduce_sum(model.rate(model.analyze(x)))
        variables = [model.entropy.bit_logits, model.entropy.level_logits]
        opt.apply_gradients(zip(tape.gradient(bits, variables), variables))
    model.entropy.update_tables()
    after = len(model.compress(photo).numpy())
    assert after < 0.9 * before, (before, after)
    np.testing.assert_array_equal(model.decompress(model.compress(photo)).numpy().shape, photo.shape)


def test_decoding_in_another_process_is_bit_identical(exported_tiny, photo, tmp_path):
    codec = tf.saved_model.load(str(exported_tiny / "tiny" / "codec"))
    data = codec.compress(photo).numpy()
    here = codec.decompress(data).numpy()
    (tmp_path / "x.tfycc").write_bytes(data)
    code = f"""
import numpy as np, tensorflow as tf
from tfycc.export import load_codec
codec = load_codec({str(exported_tiny / "tiny" / "codec")!r})
data = open({str(tmp_path / "x.tfycc")!r}, "rb").read()
np.save({str(tmp_path / "there.npy")!r}, codec.decompress(data).numpy())
"""
    r = run_python(code)
    assert r.returncode == 0, r.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "there.npy"), here)


@pytest.mark.parametrize("context", [2, 3, 5])
def test_bfloat16_encoder_and_float32_decoder_agree_on_the_bitstream(photo, context):
    """Files made under mixed_bfloat16 decode under float32 (and the reverse): the coder's
    tables and contexts are integers, so only the pixels' float rounding differs."""
    f32 = varied_tiny("tfycc-test-mixed", context=context)
    if context == 5:  # mixing weights in use (fitted to these latents)
        _fit_mixing_to(f32, photo[:96, :128])
    tf.keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        bf16 = build_model("tiny", model_id="tfycc-test-mixed", context=context)
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    bf16.set_weights(f32.get_weights())
    image = photo[:96, :128]
    for enc, dec in ((bf16, f32), (f32, bf16)):
        data = enc.compress(image)
        lat = dec.latents(data)
        assert bool(lat["ok"])
        level, bits_y, bits_c = _latents(enc, image)
        np.testing.assert_array_equal(lat["level"].numpy(), level)
        np.testing.assert_array_equal(lat["bits_y"].numpy(), bits_y)
        np.testing.assert_array_equal(lat["bits_c"].numpy(), bits_c)
        a, b = enc.decompress(data).numpy(), dec.decompress(data).numpy()
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0


def test_wrong_model_and_corrupt_files_raise_clear_errors(tiny_model, photo):
    other = build_model("tiny", model_id="tfycc-test-other")
    data = tiny_model.compress(photo[:32, :32]).numpy()
    with pytest.raises(tf.errors.InvalidArgumentError, match="another model"):
        other.decompress(data)
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x10
    with pytest.raises(tf.errors.InvalidArgumentError, match="checksum"):
        tiny_model.decompress(bytes(flipped))
    with pytest.raises(tf.errors.InvalidArgumentError, match="bad magic"):
        tiny_model.decompress(b"XXXX" + data[4:])
    with pytest.raises(tf.errors.InvalidArgumentError):
        tiny_model.decompress(data[:7])


def test_rate_offset_steers_the_file_size(tiny_model, photo):
    sizes = [len(tiny_model.compress_at(photo, tf.constant(o, tf.float32)).numpy())
             for o in (-2.0, 0.0, 2.0)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_compress_maps_over_a_tf_data_pipeline(exported_tiny, photo):
    codec = tf.saved_model.load(str(exported_tiny / "tiny" / "codec"))
    images = tf.data.Dataset.from_tensor_slices(np.stack([photo[:64, :64], photo[64:128, :64]]))
    files = list(images.map(codec.compress).as_numpy_iterator())
    assert len(files) == 2 and all(f.startswith(b"TFYC") for f in files)
    decoded = list(tf.data.Dataset.from_tensor_slices(files).map(codec.decompress)
                   .as_numpy_iterator())
    assert decoded[0].shape == (64, 64, 3)


def test_single_stream_rgb_variant_is_a_complete_codec(photo, tmp_path):
    """The ablation's one-stream RGB model: no colour code, same file format and tools."""
    from tfycc import export

    model = varied_tiny("tfycc-test-rgb", streams="rgb", code_c=4)
    assert model.code_channels == (8, 0) and model.enc_c is None and model.dec_c is None
    assert model.get_config()["streams"] == "rgb"
    image = photo[:45, :70]
    level, bits_y, bits_c = _latents(model, image)
    assert bits_c.shape == level.shape + (0,)
    data = model.compress(image)
    decoded = model.latents(data)
    np.testing.assert_array_equal(decoded["level"].numpy(), level)
    np.testing.assert_array_equal(decoded["bits_y"].numpy(), bits_y)
    assert decoded["bits_c"].shape[-1] == 0
    out = model.decompress(data).numpy()
    assert out.shape == image.shape and out.dtype == np.uint8
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    logs = model.train_on_batch(photo[None, :64, :64], return_dict=True)
    assert np.isfinite(logs["loss"]) and logs["bpp"] > 0
    export.export_codec(model, str(tmp_path / "codec"))
    export.export_servable(model, str(tmp_path / "servable"))
    codec = export.load_codec(str(tmp_path / "codec"))
    np.testing.assert_array_equal(codec.decompress(codec.compress(image)).numpy(),
                                  model.decompress(model.compress(image)).numpy())


def test_unknown_stream_layout_is_rejected():
    with pytest.raises(ValueError, match="streams"):
        build_model("tiny", streams="lab")


def test_tables_learn_to_lower_the_rate_even_when_the_penalty_wants_it_higher(photo):
    """Under lambda * |R - target| with R < target, the rate term's gradient says "raise R";
    the probability tables must still fit the latents (minimise R), only the importance map
    may follow the penalty."""
    model = varied_tiny("tfycc-test-split", lmbda=10.0, target_bpp=100.0, rate_penalty="absolute",
                        offset_range=0.0, random_level_prob=0.0, rate_warmup_steps=0)
    x = tf.cast(photo[None, :64, :64], tf.float32) / 255.0
    tables = [model.entropy.bit_logits, model.entropy.level_logits]

    def rate():
        return float(model.rate(model.analyze(x))[0])

    before = rate()
    opt = tf.keras.optimizers.SGD(0.5)
    for _ in range(20):
        with tf.GradientTape() as tape:
            loss = model(x, training=True)["loss"]
        opt.apply_gradients(zip(tape.gradient(loss, tables), tables))
    assert rate() < 0.95 * before, (before, rate())
    lat = model.analyze(x)
    masks_part, tables_part = model.rate(lat, split=True)
    np.testing.assert_allclose(masks_part.numpy(), tables_part.numpy(), rtol=1e-6)


def test_fitting_tables_to_counts_gives_the_counted_rate_minimum(photo):
    model = varied_tiny("tfycc-test-fit")
    em = model.entropy
    image = _pad_to_grid(tf.cast(photo[None], tf.float32) / 255.0)
    lat = model.analyze(image)
    counts = em.context_counts(lat["level"][0], [tf.cast(lat[f"bits_{s}"][0], tf.int32) for s in "yc"])
    rows, ones, levels = counts
    kept = float(tf.reduce_sum(lat["mask_y"]) + tf.reduce_sum(lat["mask_c"]))
    assert rows.sum() == kept and levels.sum() == lat["level"].shape[1] * lat["level"].shape[2]
    # counts_cost is the model's own rate of these latents, and fitting can only lower it.
    model_bits = float(model.rate(lat)[0])
    assert em.counts_cost(*counts) == pytest.approx(model_bits, rel=1e-4)
    em.fit_tables(*counts, prior=1e-3)
    fitted = em.counts_cost(*counts)
    assert fitted < 0.9 * model_bits
    # ... down to the empirical entropy (the tables now hold the counted frequencies).
    p = np.where(rows > 0, ones / np.maximum(rows, 1), 0.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        h_bits = -np.nansum(ones * np.log2(p) + (rows - ones) * np.log2(1 - p))
        q = levels / np.maximum(levels.sum(-1, keepdims=True), 1)
        h_levels = -np.nansum(levels * np.log2(np.where(q > 0, q, 1)))
    assert fitted == pytest.approx(h_bits + h_levels, rel=0.02, abs=8)
    # The coder tables follow: the file shrinks and still decodes.
    data = model.compress(photo).numpy()
    assert model.decompress(data).numpy().shape == photo.shape


@pytest.mark.parametrize("context", [1, 2, 3, 4])
def test_each_context_set_round_trips_the_latents(photo, context):
    model = varied_tiny(f"tfycc-test-context{context}", context=context)
    assert model.entropy.context == context and model.get_config()["context"] == context
    image = photo[:45, :70]
    level, bits_y, bits_c = _latents(model, image)
    # Tables fitted to these very latents: their rows differ, so a decoder that picked
    # another row than the encoder did would decode garbage (uniform tables would not).
    em = model.entropy
    em.fit_tables(*em.context_counts(level, [bits_y, bits_c]), prior=0.1)
    assert len(np.unique(em.level_freq.numpy(), axis=0)) > 3
    decoded = model.latents(model.compress(image))
    assert bool(decoded["ok"])
    np.testing.assert_array_equal(decoded["level"].numpy(), level)
    np.testing.assert_array_equal(decoded["bits_y"].numpy(), bits_y)
    np.testing.assert_array_equal(decoded["bits_c"].numpy(), bits_c)


def test_context_2_sees_channels_k_minus_2_and_the_diagonal_levels():
    """Latents that only context 2's extra conditions predict: channel k repeats channel
    k - 2 (independent of k - 1), and each level repeats the level above-right.  Fitted to
    their counts, context 2 codes them almost for free; context 1 cannot."""
    from tfycc.entropy import EntropyModel

    rng = np.random.default_rng(0)
    h, w, n, L = 24, 24, 8, 4
    level = np.zeros([h, w], np.int32)
    level[0] = rng.integers(0, L + 1, w)
    for i in range(1, h):
        level[i, :-1] = level[i - 1, 1:]
        level[i, -1] = rng.integers(0, L + 1)
    base = rng.integers(0, 2, [h, w, 2])
    bits = np.concatenate([base] * (n // 2), -1).astype(np.int32)  # channel k = channel k - 2
    keep = level[..., None] * n > np.arange(n) * L
    bits = bits * keep
    costs = {}
    for context in (1, 2):
        em = EntropyModel((n, 0), L, context)
        counts = em.context_counts(level, [bits, np.zeros([h, w, 0], np.int32)])
        em.fit_tables(*counts, prior=1e-3)
        costs[context] = em.counts_cost(*counts)
    assert costs[2] < 0.35 * costs[1], costs


def test_context_3_sees_channel_k_minus_4_and_the_diagonals_decoded_first():
    """Latents that only context 3's extra conditions predict: channel k repeats channel
    k - 4 (independent of k - 1 ... k - 3), and at (odd, odd) positions a bit is 1 iff
    two or more of its diagonal neighbours (all (even, even), decoded first in context
    3's four phases; in context 2's checkerboard, not yet decoded) are 1.  Tables fitted
    to one draw code another draw in less than half the bits with context 3."""
    from tfycc.entropy import EntropyModel

    h, w, n, L = 32, 32, 8, 4
    level = np.full([h, w], L, np.int32)  # every channel kept

    def draw(seed):
        base = np.random.default_rng(seed).integers(0, 2, [h + 2, w + 2, n // 2])
        diag = base[:-2, :-2] + base[:-2, 2:] + base[2:, :-2] + base[2:, 2:]
        base = base[1:-1, 1:-1]
        odd = (np.arange(h)[:, None] % 2 == 1) & (np.arange(w)[None] % 2 == 1)
        # (diag uses zero padding at the border, as the context does)
        diag = np.where(odd[..., None], diag, 0)
        base = np.where(odd[..., None], (diag >= 2).astype(base.dtype), base)
        return np.concatenate([base, base], -1).astype(np.int32)  # channel k = channel k - 4

    costs = {}
    for context in (2, 3):
        em = EntropyModel((n, 0), L, context)
        em.fit_tables(*em.context_counts(level, [draw(0), np.zeros([h, w, 0], np.int32)]))
        costs[context] = em.counts_cost(
            *em.context_counts(level, [draw(1), np.zeros([h, w, 0], np.int32)]))
    assert costs[3] < 0.5 * costs[2], costs


def test_context_4_sees_the_level_to_the_left():
    """Levels that repeat the level to their left along each row (a random start per
    row): context 3 (the row above only) cannot predict them, context 4 can.  Tables
    fitted to eight draws code another draw's levels in under 30 % of context 3's bits
    (ideal: ~0.5 bits per level against 2.3)."""
    from tfycc.entropy import EntropyModel

    h, w, L = 32, 32, 4

    def draw(seed):
        rng = np.random.default_rng(seed)
        level = np.repeat(rng.integers(0, L + 1, [h, 1]), w, 1)
        flips = rng.random([h, w]) < 0.05  # with a few changes along the row
        level = np.where(flips, rng.integers(0, L + 1, [h, w]), level)
        return level.astype(np.int32)

    bits = [np.zeros([h, w, 1], np.int32), np.zeros([h, w, 0], np.int32)]
    costs = {}
    for context in (3, 4):
        em = EntropyModel((1, 0), L, context)
        em.fit_tables(*(sum(c) for c in zip(*(em.context_counts(draw(s), bits) for s in range(8)))))
        _, _, levels = em.context_counts(draw(100), bits)
        costs[context] = em.counts_cost(np.zeros(em.num_bit_rows), np.zeros(em.num_bit_rows), levels)
    assert costs[4] < 0.3 * costs[3], costs


def _fit_mixing_to(model, image):
    """Fit a context-5 model's tables and mixing weights to its own latents of ``image``."""
    level, bits_y, bits_c = _latents(model, image)
    em = model.entropy
    em.fit_tables(*em.context_counts(level, [bits_y, bits_c]), prior=0.1)
    em.fit_mixing(em.mixing_samples(level, [bits_y, bits_c]), epochs=20, batch=256)
    assert np.count_nonzero(em.mix_q.numpy()) > 10  # (or the test would not test mixing)
    return level, bits_y, bits_c


def test_context_5_round_trips_the_latents_with_mixing_weights(photo):
    """With mixing weights, each bit's coder row depends on all earlier channels' decoded
    bits and their neighbours: the decoder's running sums (``mix_update``) must pick
    exactly the encoder's rows (``stream_mix``), or the latents would come out garbled."""
    model = varied_tiny("tfycc-test-context5", context=5)
    assert model.get_config()["context"] == 5 and model.entropy.mixing
    image = photo[:45, :70]
    level, bits_y, bits_c = _fit_mixing_to(model, image)
    # The rows the encoder uses really vary with the mixing (not only with the table row).
    em = model.entropy
    b = tf.transpose(tf.constant(bits_y), [2, 0, 1])
    rows = em.stream_bit_index(b, tf.constant(level), 0)
    assert not np.array_equal(em.coder_bit_index(rows, em.stream_mix(b, 0)).numpy(),
                              em.coder_bit_index(rows, tf.zeros_like(rows)).numpy())
    decoded = model.latents(model.compress(image))
    assert bool(decoded["ok"])
    np.testing.assert_array_equal(decoded["level"].numpy(), level)
    np.testing.assert_array_equal(decoded["bits_y"].numpy(), bits_y)
    np.testing.assert_array_equal(decoded["bits_c"].numpy(), bits_c)


def test_context_5_files_hold_what_the_rate_term_charges(photo):
    """With fitted mixing weights, the payload is within a few percent (+ fixed overhead)
    of the training rate term, which charges each bit its table logit plus the float
    mixing (``stream_mix(quantized=False)``): training and coding see the same model."""
    model = varied_tiny("tfycc-test-rate5", context=5)
    image = photo[:128, :192]
    level, bits_y, bits_c = _fit_mixing_to(model, image)
    em = model.entropy  # weights that matter (fitted ones barely do on an untrained model)
    rng = np.random.default_rng(5)
    em.mix_logits.assign(rng.normal(0.0, 1.0, em.mix_logits.shape) * em._mix_mask())
    em.update_tables()
    lat = model.analyze(_pad_to_grid(tf.cast(image[None], tf.float32) / 255.0))
    estimate_bits = float(model.rate(lat)[0])
    payload_bits = 8 * (len(model.compress(image).numpy())
                        - bitstream.header_size(model.model_id) - bitstream.CHECKSUM_BYTES)
    assert abs(payload_bits - estimate_bits) < 0.02 * estimate_bits + 64, (payload_bits, estimate_bits)
    without_mixing = em.counts_cost(*em.context_counts(level, [bits_y, bits_c]))
    assert abs(payload_bits - without_mixing) > 0.1 * payload_bits  # (the mixing is charged)


def test_context_5_sees_channels_beyond_k_minus_4_and_their_neighbours():
    """Bits that only context 5's mixing predicts: channel 4 + m is 1 iff two or more of
    channel m's 4 neighbours are 1 -- beyond set 4's reach (it sees the neighbours of
    channel k - 1 only, and the bits of k - 1 ... k - 4 at the position).  Tables and
    mixing fitted to one draw code another draw's bits in under 80 % of set 4's bits
    (ideal: about half)."""
    from tfycc.entropy import EntropyModel

    h, w, n, L = 32, 32, 8, 4
    level = np.full([h, w], L, np.int32)  # every channel kept
    none = np.zeros([h, w, 0], np.int32)

    def draw(seed):
        base = np.random.default_rng(seed).integers(0, 2, [h, w, n // 2])
        p = np.pad(base, [(1, 1), (1, 1), (0, 0)])  # zero padding, as the contexts' sums
        orth = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]
        return np.concatenate([base, (orth >= 2).astype(base.dtype)], -1).astype(np.int32)

    costs = {}
    for context in (4, 5):
        em = EntropyModel((n, 0), L, context)
        em.fit_tables(*em.context_counts(level, [draw(0), none]))
        if context == 5:
            em.fit_mixing(em.mixing_samples(level, [draw(0), none]), epochs=30, batch=256)
            costs[5] = em.mixing_cost(em.mixing_samples(level, [draw(1), none])) * h * w * n
        else:
            costs[4] = em.counts_cost(*em.context_counts(level, [draw(1), none]))
    assert costs[5] < 0.8 * costs[4], costs


def test_context_4_level_contexts_read_only_earlier_wavefronts():
    """The decoder's invariant: the context of every level on wavefront t = 2i + j is
    the same whether the map holds the true levels or garbage from wavefront t on."""
    from tfycc.entropy import EntropyModel, wavefronts

    h, w, L = 7, 11, 16
    rng = np.random.default_rng(3)
    level = rng.integers(0, L + 1, [h, w]).astype(np.int32)
    em = EntropyModel((0, 0), L, 4)
    true = em.level_index(level).numpy()
    assert true.min() >= 0 and true.max() < em.num_level_rows
    front = wavefronts(h, w).numpy()
    assert sorted(np.unique(front)) == list(range(2 * h + w - 2))
    for t in range(2 * h + w - 2):
        garbage = np.where(front >= t, rng.integers(0, L + 2, [h, w]), level).astype(np.int32)
        at = front == t
        np.testing.assert_array_equal(em.level_index(garbage).numpy()[at], true[at])
        # The decoder's per-wavefront contexts (raster order within the wavefront) agree.
        pos = np.argwhere(at).astype(np.int32)
        np.testing.assert_array_equal(em.level_index_at(garbage, pos).numpy(), true[at])
    order = em.level_order(h, w).numpy()
    assert sorted(order) == list(range(h * w)) and (np.diff(front.ravel()[order]) >= 0).all()


def test_moving_a_model_to_context_4_keeps_its_output_and_bit_tables(photo):
    from tfycc.model import with_context

    old = varied_tiny("tfycc-test-move4", context=3)
    new = with_context(old, 4)
    assert new.entropy.context == 4 and new.entropy.num_phases == 4
    np.testing.assert_array_equal(new.entropy.bit_freq1.numpy(), old.entropy.bit_freq1.numpy())
    np.testing.assert_array_equal(new.decompress(new.compress(photo)).numpy(),
                                  old.decompress(old.compress(photo)).numpy())
    with pytest.raises(ValueError, match="cannot go back"):
        with_context(new, 3)


def test_moving_a_model_to_context_3_keeps_its_output_and_starts_at_one_bit_per_bit(photo):
    from tfycc.model import with_context

    old = varied_tiny("tfycc-test-move3", context=2)
    new = with_context(old, 3)
    assert new.entropy.context == 3 and new.entropy.num_phases == 4
    x = _pad_to_grid(tf.cast(photo[None], tf.float32) / 255.0)
    lat = new.analyze(x)
    kept = float(tf.reduce_sum(lat["mask_y"]) + tf.reduce_sum(lat["mask_c"]))
    level_bits = float(tf.reduce_sum(old.entropy.level_cost(lat["level"])))
    assert float(new.rate(lat)[0]) == pytest.approx(kept + level_bits, rel=1e-5)
    np.testing.assert_array_equal(new.decompress(new.compress(photo)).numpy(),
                                  old.decompress(old.compress(photo)).numpy())
    with pytest.raises(ValueError, match="cannot go back"):
        with_context(new, 2)


def test_moving_a_model_to_context_2_keeps_its_output_and_rate_then_lowers_the_rate(photo):
    from tfycc.model import with_context

    old = varied_tiny("tfycc-test-move", context=1)
    new = with_context(old, 2)
    assert new.entropy.context == 2 and new.model_id == old.model_id
    x = _pad_to_grid(tf.cast(photo[None], tf.float32) / 255.0)
    lat_old, lat_new = old.analyze(x), new.analyze(x)
    for key in ("level", "bits_y", "bits_c"):
        np.testing.assert_array_equal(lat_new[key].numpy(), lat_old[key].numpy())
    # The refined tables start as copies of the old ones: the same rate, to rounding.
    assert float(new.rate(lat_new)[0]) == pytest.approx(float(old.rate(lat_old)[0]), rel=1e-5)
    fitted = {}
    for model, lat in ((old, lat_old), (new, lat_new)):
        counts = model.entropy.context_counts(
            lat["level"][0], [tf.cast(lat[f"bits_{s}"][0], tf.int32) for s in "yc"])
        model.entropy.fit_tables(*counts, prior=1e-3)
        fitted[model.entropy.context] = model.entropy.counts_cost(*counts)
    assert fitted[2] < fitted[1]  # more conditions, lower empirical entropy
    np.testing.assert_array_equal(new.decompress(new.compress(photo)).numpy(),
                                  old.decompress(old.compress(photo)).numpy())


def test_soft_level_cost_is_the_level_cost_with_the_slope_of_its_neighbour_levels():
    from tfycc.entropy import EntropyModel

    em = EntropyModel((8, 0), 4, context=3)
    tf.keras.utils.set_random_seed(11)
    em.level_logits.assign(tf.random.normal(em.level_logits.shape))
    level = tf.constant([[0, 1, 4], [2, 3, 3]], tf.int32)
    u = tf.Variable(tf.cast(level, tf.float32) + 0.25)
    with tf.GradientTape(persistent=True) as tape:
        soft = em.soft_level_cost(level, u)
    np.testing.assert_allclose(soft.numpy(), em.level_cost(level).numpy(), rtol=1e-6)
    # Independent reference: the cost of every level in each position's context, NumPy.
    logits = em.level_logits.numpy() * 10.0  # (_LOGIT_SCALE)
    ctx = em.level_index(level).numpy()
    grad = tape.gradient(soft, u).numpy()
    for (i, j), lv in np.ndenumerate(level.numpy()):
        z = logits[ctx[i, j]]
        bits = -(z - z.max() - np.log(np.exp(z - z.max()).sum())) / np.log(2.0)
        lo, hi = max(lv - 1, 0), min(lv + 1, 4)
        np.testing.assert_allclose(grad[i, j], (bits[hi] - bits[lo]) / (hi - lo), rtol=1e-4, atol=1e-5)
    assert tape.gradient(soft, em.level_logits) is None  # the tables learn from level_cost only


def test_level_weight_lets_the_rate_gradient_lower_the_levels_coding_cost():
    tf.keras.utils.set_random_seed(12)
    x = tf.random.uniform([2, 64, 64, 3])
    plain = build_model("tiny", streams="rgb")
    charged = build_model("tiny", streams="rgb", level_weight=1.0)
    plain(x)
    charged(x)
    charged.set_weights(plain.get_weights())
    # Tables under which the map's levels cost more the further they lie from level 2.
    L = plain.levels
    prefer = -np.abs(np.arange(L + 1) - 2.0)[None] * 0.3
    for m in (plain, charged):
        m.entropy.level_logits.assign(np.repeat(prefer, m.entropy.num_level_rows, 0).astype(np.float32))

    def level_bits(m):
        return float(tf.reduce_sum(m.entropy.level_cost(m.analyze(x, 2.5)["level"])))

    grads = []
    for m in (plain, charged):
        with tf.GradientTape() as tape:
            rate = tf.reduce_sum(m.rate(m.analyze(x, 2.5)))
        grads.append((float(rate), tape.gradient(rate, m.importance.trainable_variables)))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)  # the same rate value
    diff = sum(float(tf.reduce_sum(tf.abs(a - b))) for a, b in zip(grads[0][1], grads[1][1]))
    assert diff > 1e-3  # but a gradient that now sees the levels' own bits
    # Descending the levels' charged cost on the map alone lowers their real (integer) bits.
    before = level_bits(charged)
    opt = tf.keras.optimizers.SGD(0.02)
    for _ in range(30):
        with tf.GradientTape() as tape:
            lat = charged.analyze(x, 2.5)
            rate = tf.reduce_sum(charged.entropy.soft_level_cost(lat["level"], lat["u"][..., 0]))
        opt.apply_gradients(zip(tape.gradient(rate, charged.importance.trainable_variables),
                                charged.importance.trainable_variables))
    assert level_bits(charged) < 0.9 * before
    with pytest.raises(ValueError, match="level_weight"):
        build_model("tiny", level_weight=-1.0)


@pytest.mark.parametrize("streams", ["ycbcr", "rgb"])
def test_encoder_side_search_changes_kept_bits_only_and_the_file_decodes_as_any_other(streams, photo):
    model = varied_tiny("tfycc-test-refine", streams=streams)
    image = photo[:45, :70]
    plain = model.compress_at(image, 0.0).numpy()
    assert model.compress_refined(image, 0.0, 0).numpy() == plain  # no steps: the plain file
    refined = model.compress_refined(image, 0.0, 8).numpy()
    a, b = model.latents(plain), model.latents(refined)
    assert bool(b["ok"])
    np.testing.assert_array_equal(a["level"].numpy(), b["level"].numpy())  # the rate setting stays
    changed = sum(int(np.sum(a[k].numpy() != b[k].numpy())) for k in ("bits_y", "bits_c"))
    assert changed > 0
    assert model.decompress(refined).numpy().shape == image.shape


def test_encoder_side_search_objective_is_log_mse_plus_weighted_log_rate(photo):
    from tfycc.model import REFINE_RATE_WEIGHT

    model = varied_tiny("tfycc-test-refine")
    model.entropy.update_tables()
    x = _pad_to_grid(tf.cast(photo[None, :45, :70], tf.float32) / 255.0)
    lat = model.analyze(x)
    rgb = ycbcr_to_rgb(model.synthesize(lat["bits_y"], lat["bits_c"], lat["mask_y"], lat["mask_c"]))
    err = np.clip(rgb.numpy()[0, :45, :70], 0, 1) - x.numpy()[0, :45, :70]
    expected = np.log(np.mean(err ** 2)) + REFINE_RATE_WEIGHT * np.log(float(model.rate(lat)[0]) + 1)
    assert float(model.refine_objective(x, lat, 45, 70)) == pytest.approx(expected, rel=1e-5)


def _search_case(photo):
    """(model, padded x, its latents, the decoded RGB clipped to the real 45 x 70 pixels)
    for the encoder-side search's objective tests."""
    model = varied_tiny("tfycc-test-refine")
    model.entropy.update_tables()
    x = _pad_to_grid(tf.cast(photo[None, :45, :70], tf.float32) / 255.0)
    lat = model.analyze(x)
    rgb = ycbcr_to_rgb(model.synthesize(lat["bits_y"], lat["bits_c"], lat["mask_y"], lat["mask_c"]))
    return model, x, lat, tf.clip_by_value(rgb[:, :45, :70], 0.0, 1.0)


def test_encoder_side_search_tuned_for_ms_ssim(photo):
    """The "ms-ssim" objective is (1 - s) ln(1 - MS-SSIM) + s ln(MSE) + the rate term, with
    as many scales as the shorter side allows (3 for 45 pixels), and ln(MSE) alone below 11
    pixels -- there the search, and the file, are the psnr-tuned ones."""
    from tfycc.losses import MS_SSIM_WEIGHTS, ms_ssim
    from tfycc.model import REFINE_MSE_SHARE, REFINE_RATE_WEIGHT

    model, x, lat, rgb = _search_case(photo)
    m = float(ms_ssim(rgb, x[:, :45, :70], weights=MS_SSIM_WEIGHTS[:3])[0])
    mse = float(tf.reduce_mean(tf.square(rgb - x[:, :45, :70])))
    expected = ((1 - REFINE_MSE_SHARE) * np.log(1 - m) + REFINE_MSE_SHARE * np.log(mse)
                + REFINE_RATE_WEIGHT * np.log(float(model.rate(lat)[0]) + 1))
    got = model.refine_objective(x, lat, tf.constant(45), tf.constant(70), "ms-ssim")
    assert float(got) == pytest.approx(expected, rel=1e-5)
    assert float(got) != pytest.approx(float(model.refine_objective(x, lat, 45, 70)), rel=1e-3)
    with pytest.raises(ValueError, match="tune"):
        model.refine_objective(x, lat, 45, 70, "ssim")
    image = photo[:45, :70]
    psnr_file = model.compress_refined(image, 0.0, 4).numpy()
    tuned = model.compress_refined_ms_ssim(image, 0.0, 4).numpy()
    assert tuned != psnr_file
    assert bool(model.latents(tuned)["ok"])
    np.testing.assert_array_equal(model.latents(tuned)["level"].numpy(),
                                  model.latents(psnr_file)["level"].numpy())
    tiny = photo[:10, :70]  # too small for one MS-SSIM scale
    assert model.compress_refined_ms_ssim(tiny, 0.0, 4).numpy() == model.compress_refined(
        tiny, 0.0, 4).numpy()


def test_encoder_side_search_colour_tunes_add_a_share_of_log_chroma_mse(photo):
    """The "-colour" tunes are their base tune's objective plus c ln(MSE of Cb, Cr), c =
    REFINE_COLOUR_SHARE; their signatures write valid files at the same levels."""
    from tfycc.colour import rgb_to_ycbcr

    model, x, lat, rgb = _search_case(photo)
    err = (rgb_to_ycbcr(rgb) - rgb_to_ycbcr(x[:, :45, :70])).numpy()[..., 1:]
    colour = REFINE_COLOUR_SHARE * np.log(np.mean(err ** 2))
    assert REFINE_COLOUR_SHARE > 0 and abs(colour) > 1e-3
    h, w = tf.constant(45), tf.constant(70)
    for base in ("psnr", "ms-ssim"):
        expected = float(model.refine_objective(x, lat, h, w, base)) + colour
        got = float(model.refine_objective(x, lat, h, w, base + "-colour"))
        assert got == pytest.approx(expected, rel=1e-5)
    image = photo[:45, :70]
    levels = model.latents(model.compress_refined(image, 0.0, 4).numpy())["level"].numpy()
    files = set()
    for search in (model.compress_refined_colour, model.compress_refined_ms_ssim_colour):
        data = search(image, 0.0, 4).numpy()
        files.add(data)
        lat2 = model.latents(data)
        assert bool(lat2["ok"])
        np.testing.assert_array_equal(lat2["level"].numpy(), levels)
        assert model.decompress(data).numpy().shape == image.shape
    assert len(files) == 2 and model.compress_refined(image, 0.0, 4).numpy() not in files


def test_encoder_side_search_takes_adam_steps_down_the_objectives_gradient(photo):
    """Refine's first step is Adam's first step (about lr * sign(gradient)) on each code."""
    from tfycc.model import REFINE_LEARNING_RATE

    model = varied_tiny("tfycc-test-refine")
    x = _pad_to_grid(tf.cast(photo[None, :45, :70], tf.float32) / 255.0)
    lat = model.analyze(x)
    codes = {s: tf.Variable(lat[f"code_{s}"]) for s in "yc"}
    with tf.GradientTape() as tape:
        loss = model.refine_objective(x, model.with_codes(lat, codes), 45, 70)
    grads = tape.gradient(loss, [codes["y"], codes["c"]])
    out = model.refine(x, lat, 1, 45, 70)
    for s, g in zip("yc", grads):
        g = g.numpy().astype(np.float64)
        assert np.count_nonzero(g) > 0  # (zero where a bit is not kept)
        step = REFINE_LEARNING_RATE * np.sqrt(0.001) / 0.1 * (0.1 * g) / (np.sqrt(0.001 * g * g) + 1e-7)
        expected = np.clip(lat[f"code_{s}"].numpy() - step, 0.0, 1.0)
        np.testing.assert_allclose(out[f"code_{s}"].numpy(), expected, atol=1e-6)


def test_encoder_side_search_per_image_objective_is_the_sum_of_each_images(photo):
    """Training's search (``per_image``) gives every image of a batch its own objective."""
    model = varied_tiny("tfycc-test-refine")
    model.entropy.update_tables()
    x = tf.cast(tf.stack([photo[:48, :64], photo[48:96, 64:128]]), tf.float32) / 255.0
    lat = model.analyze(x)
    each = sum(float(model.refine_objective(x[i:i + 1], {k: v[i:i + 1] for k, v in lat.items()},
                                            48, 64, tune))
               for i in range(2) for tune in ("psnr", "psnr-colour"))
    both = sum(float(model.refine_objective(x, lat, 48, 64, tune, per_image=True))
               for tune in ("psnr", "psnr-colour"))
    assert both == pytest.approx(each, rel=1e-5)
    assert float(model.refine_objective(x, lat, 48, 64)) != pytest.approx(each / 2, rel=1e-3)
    with pytest.raises(ValueError, match="per_image"):
        model.refine_objective(x, lat, 48, 64, "ms-ssim", per_image=True)


def test_search_distillation_pulls_the_encoder_towards_the_search_and_not_the_decoder(photo):
    """With ``search_steps`` the loss gains W * mean over kept codes of (code - searched
    code)^2: its gradient reaches the encoder only; the gap is the share of kept bits the
    search flipped.  Off (the default), both are 0 and training reports a zero gap."""
    x = tf.cast(tf.stack([photo[:48, :64], photo[48:96, 64:128]]), tf.float32) / 255.0
    model = varied_tiny("tfycc-test-distil", search_steps=6, search_weight=2.0)
    model.entropy.update_tables()
    lat = model.analyze(x)
    found = model.refine(x, lat, 6, 48, 64, per_image=True)
    masks = [lat["mask_y"].numpy(), lat["mask_c"].numpy()]
    squares = sum(np.sum(m * (lat[f"code_{s}"].numpy() - found[f"code_{s}"].numpy()) ** 2)
                  for s, m in zip("yc", masks))
    flips = sum(np.sum(m * (lat[f"raw_{s}"].numpy() != found[f"raw_{s}"].numpy()))
                for s, m in zip("yc", masks))
    kept = sum(np.sum(m) for m in masks)
    with tf.GradientTape(persistent=True) as tape:
        lat = model.analyze(x)
        distil, gap = model._search_distillation(x, lat)
    assert float(distil) == pytest.approx(squares / kept, rel=1e-4) and squares > 0
    assert float(gap) == pytest.approx(flips / kept, rel=1e-5) and 0 < flips < kept
    for layer, reached in ((model.enc_y, True), (model.enc_c, True), (model.dec_y, False),
                           (model.dec_c, False), (model.entropy, False)):
        grads = tape.gradient(distil, layer.trainable_variables)
        norm = sum(float(tf.norm(g)) for g in grads if g is not None)
        assert (norm > 0) == reached, layer.name
    # search_tune picks the search's objective: psnr-colour also weighs the chroma error.
    model.hparams["search_tune"] = "psnr-colour"
    colour = model.refine(x, lat, 6, 48, 64, tune="psnr-colour", per_image=True)
    assert any(np.any(colour[f"raw_{s}"].numpy() != found[f"raw_{s}"].numpy()) for s in "yc")
    squares = sum(np.sum(m * (lat[f"code_{s}"].numpy() - colour[f"code_{s}"].numpy()) ** 2)
                  for s, m in zip("yc", masks))
    distil = float(model._search_distillation(x, lat)[0])
    assert distil == pytest.approx(squares / kept, rel=1e-4)
    # ... by search_colour_share (default REFINE_COLOUR_SHARE, the encode-time tune's).
    assert model.hparams["search_colour_share"] == REFINE_COLOUR_SHARE
    model.hparams["search_colour_share"] = 3.0
    more = model.refine(x, lat, 6, 48, 64, tune="psnr-colour", per_image=True, colour_share=3.0)
    assert any(np.any(more[f"raw_{s}"].numpy() != colour[f"raw_{s}"].numpy()) for s in "yc")
    squares = sum(np.sum(m * (lat[f"code_{s}"].numpy() - more[f"code_{s}"].numpy()) ** 2)
                  for s, m in zip("yc", masks))
    assert float(model._search_distillation(x, lat)[0]) == pytest.approx(squares / kept, rel=1e-4)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-4))
    data = tf.data.Dataset.from_tensors(tf.cast(x * 255.0, tf.uint8)).repeat()
    history = model.fit(data, steps_per_epoch=2, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0]) and history["search_gap"][0] > 0
    off = varied_tiny("tfycc-test-distil-off")
    assert off._search_distillation(x, off.analyze(x)) == (0.0, 0.0)
    off.compile(optimizer=tf.keras.optimizers.Adam(1e-4))
    assert off.fit(data, steps_per_epoch=1, epochs=1, verbose=0).history["search_gap"] == [0.0]
    for bad in (dict(search_steps=-1), dict(search_weight=-1.0), dict(search_weight=float("nan")),
                dict(search_tune="ms-ssim"), dict(search_colour_share=-0.1),
                dict(search_colour_share=float("inf"))):
        with pytest.raises(ValueError, match="search"):
            build_model("tiny", **bad)
