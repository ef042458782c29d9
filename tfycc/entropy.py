"""Context-adaptive entropy model for importance levels and kept code bits.

Probabilities are a learned lookup table over *discrete* contexts only, so the
encoder and the decoder always pick the same table row, whatever the float
precision or machine that ran the networks.

Five context sets exist (``context``, a model hyperparameter saved with it): 1, the
first shipped models', 2, which adds more of what the decoder already knows, 3,
which decodes each channel in four phases instead of two and conditions on more,
4, whose bits are set 3's and whose levels also see their left neighbours, and 5,
set 4 with every bit's table logit corrected by *all* earlier channels of its stream
("channel mixing", below).

Bit contexts of sets 1 and 2 (channel k of a stream, latent position (i, j), level l):
  * g     -- global channel index (luma channels first, then colour channels),
  * l     -- the importance level at (i, j), in {0, ..., L},
  * phase -- checkerboard parity (i + j) mod 2; phase-0 bits of a channel are
             decoded first, all at once, then phase-1 bits,
  * a     -- bit of channel k - 1 at (i, j) (0 for k = 0),
  * s     -- sum of the 4 neighbours' bits in channel k - 1, in {0, ..., 4},
  * t     -- for phase 1: sum of the 4 neighbours' bits in channel k (all phase 0,
             hence already decoded), in {0, ..., 4}; 0 for phase 0;
  * a2, a3 -- context 2 only: bits of channels k - 2 and k - 3 at (i, j) (0 below
             channel 0).
Context 3 and 4 (``channel_context`` and ``bit_index``):
  * g, a, s as above; a2, a3 and a4 (channel k - 4);
  * four phases per channel, each decoded at once: 0 = (even row, even column),
    1 = (odd, odd), 2 = (even, odd), 3 = (odd, even); the own-channel context is
    then 0 for phase 0, the sum of the 4 diagonal neighbours (all phase 0) for phase
    1, of the 4 orthogonal ones (phases 0 and 1) for phase 2, and of all 8 (phases
    0-2) for phase 3: 1 + 5 + 5 + 9 = 20 values;
  * dl = min(l - l_k, 3), how far the level lies above l_k, the lowest level that
    keeps channel k (in place of l itself: as good in a prototype, 4x fewer rows);
  * e -- 1 when a 4-neighbour inside the image does not keep channel k.
Masked-out bits count as 0 in every context (they are 0 in the decoder too).

Level contexts: the level of the position above (context 1), or the levels above,
above-left and above-right (contexts 2 and 3); L + 1 outside the image.  Either way
only the row above is needed, so a whole row of levels decodes in one call.
Context 4: the levels above (A) and to the left (B, for "before") in full, and three
small differences: above-right minus above clipped to -2...2, above-left minus above
and left-of-left minus left clipped to -1...1 (a fifth value where the neighbour lies
outside the image).  Every one of them lies on an earlier anti-diagonal t = 2i + j, so
the levels decode one such wavefront per call, 2h + w - 2 calls (``wavefronts``).
On the session-23 model's Kodak levels (tables counted on 120 training images at
offsets -2...+3) it codes the levels in 24 / 12 / 12 / 12 / 12 / 11 / 10 % fewer bits
than context 3 at offsets -3 ... +3; the files shrank by 17 / 6 / 3.5 / 2.4 / 1.9 / 1.4 /
1.0 %.

Measured on the session-10 model (Kodak latents, tables counted on training images):
context 2 codes the kept bits in 0.723 bits each (context 1: 0.754) and the levels in
0.0195 bpp (0.0223); its Kodak files are 5.5-7.9 % smaller at level offsets -3...+3.
Context 3, on the session-12 model (the same latents, tables counted on 120 training
images at offsets -2...+3, ``tfycc calibrate --context 3``): its Kodak files are 2.1 /
4.5 / 7.3 / 7.0 / 8.1 / 8.0 / 7.9 % smaller than context 2's at offsets -3...+3.

Context 5 (channel mixing): a bit of channel k at (i, j) has the logit
    z = T[row] + sum over earlier channels j < k of its stream of
        A[k, j] * b_j(i, j) + S[k, j] * s_j(i, j)
(row: its set-3/4 table row; b_j the bit of channel j at the position, s_j the sum of
channel j's 4 neighbours' bits), all integers in units of 1 / MIX_UNIT nat, clipped to
+-MIX_CLIP nats.  The range coder's row is z itself (2 * MIX_CLIP * MIX_UNIT + 1 rows
of P(1) = sigmoid(z), stored int32), so the row is still an integer function of
decoded bits: no float reaches the coder.  ``fit_mixing`` fits A, S and a bias per
channel (folded into T) by logistic regression on sampled bits of training images,
with T fixed.  Measured on the session-32 model's latents (``T`` its calibrated
set-4 tables; A, S fitted to 40 training images): Kodak's kept bits cost 0.607 bits
each instead of 0.661 (-8.2 %); A alone: 0.617.  Moved to set 5 by ``tfycc calibrate
--context 5`` (session 37), the same model's Kodak files were 6.4 / 8.7 / 11.4 / 13.6 %
smaller at offsets 0 / +1 / +2 / +3 (0.5-3.3 % at -2 ... -1, where the levels are most
of the file).

Coding tables are int32 variables filled from the float tables by
``update_tables`` (NumPy, explicit, deterministic) and saved with the model; the
coder never recomputes them from floats.
"""
import numpy as np
import tensorflow as tf

__all__ = [
    "PRECISION",
    "EntropyModel",
    "neighbour_sum",
    "checkerboard",
    "quad_phases",
    "diagonal_sum",
    "quantize_pmf",
]

PRECISION = 16
_LOGIT_SCALE = 10.0  # table logits are stored divided by this: a 10x learning rate for the table
# Bit-table rows per channel and level (sets 1, 2: phase, a, s, t (, a2, a3)) or per
# channel (set 3: dl, e, a and s, a2 a3 a4, phase and own-channel sum).
_NCTX = {1: 2 * 2 * 5 * 5, 2: 2 * 2 * 5 * 5 * 2 * 2, 3: 4 * 20 * 10 * 8 * 2}
_NCTX[4] = _NCTX[3]  # set 4 codes bits as set 3 does
_NCTX[5] = _NCTX[3]  # set 5: set 4's rows, plus the mixing of earlier channels
MIX_UNIT = 32  # context 5's integer logits are in units of 1 / MIX_UNIT nat
MIX_CLIP = 10  # ... clipped to +-MIX_CLIP nats (P(1) from 4.5e-5 to 1 - 4.5e-5)
_BACKOFF3 = (_NCTX[3], 2 * 10 * 8 * 20, 10 * 8 * 20, 8 * 20, 20, 1)  # set 3's row prefixes
CONTEXTS = tuple(_NCTX)  # context sets (the CLI lists them too)
_LEVEL_DIFFS = (6, 4, 4)  # set 4's level rows: (A, B) then these clipped differences


def neighbour_sum(x):
    """Sum of the 4 neighbours over the last two axes (zero padded); int or float."""
    pad = [[0, 0]] * (len(x.shape) - 2) + [[1, 1], [1, 1]]
    p = tf.pad(x, pad)
    return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]


def checkerboard(h, w):
    """[h, w] int32 parity map (i + j) mod 2."""
    return (tf.range(h)[:, None] + tf.range(w)[None, :]) % 2


def quad_phases(h, w):
    """[h, w] int32 phase of context set 3: 0 (even row, even column), 1 (odd, odd),
    2 (even, odd), 3 (odd, even)."""
    i, j = tf.range(h)[:, None] % 2, tf.range(w)[None, :] % 2
    return tf.where(tf.equal(i, j), i, 2 + i)


def diagonal_sum(x):
    """Sum of the 4 diagonal neighbours over the last two axes (zero padded)."""
    pad = [[0, 0]] * (len(x.shape) - 2) + [[1, 1], [1, 1]]
    p = tf.pad(x, pad)
    return p[..., :-2, :-2] + p[..., :-2, 2:] + p[..., 2:, :-2] + p[..., 2:, 2:]


def wavefronts(h, w):
    """[h, w] int32 anti-diagonal index t = 2i + j: the order in which context set 4
    decodes levels (all positions of one t at once, t = 0 ... 2h + w - 3)."""
    return 2 * tf.range(h)[:, None] + tf.range(w)[None, :]


def _shift(x, dy, dx, fill):
    """x [..., h, w] moved down by dy >= 0 and right by dx (any sign); ``fill`` enters."""
    pad = [[0, 0]] * (len(x.shape) - 2) + [[dy, 0], [max(dx, 0), max(-dx, 0)]]
    p = tf.pad(x, pad, constant_values=fill)
    h, w = tf.shape(x)[-2], tf.shape(x)[-1]
    return p[..., :h, max(-dx, 0):max(-dx, 0) + w]


def quantize_pmf(pmf, precision=PRECISION):
    """Rows of probabilities [R, S] -> integer frequencies [R, S] summing to 2**precision.

    Every symbol keeps a frequency >= 1 (so any symbol stays codable); the rounding
    error is taken from (or given to) the most probable symbol.  Pure NumPy.
    """
    pmf = np.asarray(pmf, np.float64)
    total = 1 << precision
    freq = np.maximum(1, np.round(pmf / pmf.sum(-1, keepdims=True) * total)).astype(np.int64)
    top = np.argmax(freq, axis=-1)
    rows = np.arange(freq.shape[0])
    freq[rows, top] += total - freq.sum(-1)
    if (freq < 1).any():
        raise ValueError("distribution too peaked for the coder precision")
    return freq


def _log2_sigmoid_cost(logits, bits):
    """Bits needed for ``bits`` in {0, 1} under P(1) = sigmoid(logits); differentiable."""
    return (bits * tf.nn.softplus(-logits) + (1.0 - bits) * tf.nn.softplus(logits)) / np.log(2.0)


@tf.keras.utils.register_keras_serializable(package="tfycc")
class EntropyModel(tf.keras.layers.Layer):
    """Learned discrete-context probability tables, their rate, and the coder tables."""

    def __init__(self, code_channels, levels, context=1, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if context not in _NCTX:
            raise ValueError(f"context must be one of {CONTEXTS}, not {context!r}")
        self.context = int(context)
        self.code_channels = tuple(int(c) for c in code_channels)  # per stream, e.g. (64, 16)
        self.levels = int(levels)
        self.num_channels = sum(self.code_channels)
        self.channel_offsets = tuple(int(v) for v in np.cumsum((0,) + self.code_channels)[:-1])
        per_level = 1 if self.context >= 3 else self.levels + 1
        self.num_bit_rows = self.num_channels * per_level * _NCTX[self.context]
        if self.context >= 4:
            self.num_level_rows = (self.levels + 2) ** 2 * int(np.prod(_LEVEL_DIFFS))
        else:
            self.num_level_rows = (self.levels + 2) ** (1 if self.context == 1 else 3)
        self.num_phases = 4 if self.context >= 3 else 2
        self.bit_logits = self.add_weight(
            name="bit_logits", shape=[self.num_bit_rows], initializer="zeros", trainable=True)
        self.level_logits = self.add_weight(
            name="level_logits", shape=[self.num_level_rows, self.levels + 1],
            initializer="zeros", trainable=True)
        self.mixing = self.context >= 5
        if self.mixing:  # A and S of every (k, j) pair, float (training) and int (coding)
            c = self.num_channels
            self.mix_logits = self.add_weight(
                name="mix_logits", shape=[2, c, c], initializer="zeros", trainable=True)
            self.mix_q = self.add_weight(
                name="mix_q", shape=[2, c, c], dtype=tf.int32, initializer="zeros",
                trainable=False)
            # Coder tables: the rows' logits (1 / MIX_UNIT nat) and P(1) of each clipped z.
            self.bit_logit_q = self.add_weight(
                name="bit_logit_q", shape=[self.num_bit_rows], dtype=tf.int32,
                initializer="zeros", trainable=False)
            self.mix_freq1 = self.add_weight(
                name="mix_freq1", shape=[2 * MIX_CLIP * MIX_UNIT + 1], dtype=tf.int32,
                initializer=tf.keras.initializers.Constant(1 << (PRECISION - 1)), trainable=False)
        else:
            # Coder tables (int32): P(bit = 1) in units of 2**-PRECISION, and level frequencies.
            self.bit_freq1 = self.add_weight(
                name="bit_freq1", shape=[self.num_bit_rows], dtype=tf.int32,
                initializer=tf.keras.initializers.Constant(1 << (PRECISION - 1)), trainable=False)
        self.level_freq = self.add_weight(
            name="level_freq", shape=[self.num_level_rows, self.levels + 1], dtype=tf.int32,
            initializer=tf.keras.initializers.Constant(
                quantize_pmf(np.ones([self.num_level_rows, self.levels + 1]))),
            trainable=False)

    # ----- contexts (integer functions of decoded values) -------------------------
    def phases(self, h, w):
        """[h, w] int32 decoding phase of each position (channels decode phase by phase)."""
        return quad_phases(h, w) if self.context >= 3 else checkerboard(h, w)

    def own_context(self, bits, phase):
        """Context from channel k's own bits at the neighbours decoded before ``phase``.

        ``bits`` may hold the whole channel (encoder) or only its decoded phases so far,
        with zeros elsewhere (decoder): both give the same values.
        """
        if self.context < 3:
            return neighbour_sum(bits) * phase
        orth, diag = neighbour_sum(bits), diagonal_sum(bits)
        return tf.where(tf.equal(phase, 0), 0, tf.where(
            tf.equal(phase, 1), 1 + diag, tf.where(tf.equal(phase, 2), 6 + orth, 11 + orth + diag)))

    def channel_context(self, stream, k, level, prev):
        """The part of the table rows of channel(s) ``k`` of ``stream`` that the levels and
        the earlier channels fix (the same in every phase: the decoder computes it once
        per channel); ``bit_index`` adds the phase and the channel's own bits.

        level: int32 levels, broadcastable with ``k``; prev: [bits of channels k - 1,
        ..., k - 4] of the same stream (zeros where there is no such channel).
        """
        channel = k + self.channel_offsets[stream]
        a, s = prev[0], neighbour_sum(prev[0])
        if self.context < 3:  # rows ((((g, l), phase), a), s), t)[, a2, a3]; phase, t: 0 here
            idx = (((channel * (self.levels + 1) + level) * 2 * 2 + a) * 5 + s) * 5
            return (idx * 2 + prev[1]) * 2 + prev[2] if self.context == 2 else idx
        # rows ((((((g, dl), e), a, s), a2, a3, a4), own)
        n, L = self.code_channels[stream], self.levels
        dl = tf.clip_by_value(level - (k * L) // n - 1, 0, 3)
        keep = tf.cast(level * n > k * L, tf.int32)
        edge = tf.cast(neighbour_sum(keep) < neighbour_sum(tf.ones_like(keep)), tf.int32)
        idx = ((channel * 4 + dl) * 2 + edge) * 10 + a * 5 + s
        return (((idx * 2 + prev[1]) * 2 + prev[2]) * 2 + prev[3]) * 20

    def bit_index(self, base, phase, own):
        """Table row of each bit: ``base`` from ``channel_context``, the phase and
        ``own_context``; int32, broadcastable."""
        if self.context >= 3:
            return base + own  # (the phase is part of own)
        step = 4 if self.context == 2 else 1  # weight of t; of phase: 2 * 5 * 5 * 2 * t's
        return base + own * step + phase * (2 * 5 * 5 * step)

    def stream_bit_index(self, bits, level, stream):
        """Row index of every bit of one stream at once (training, encoding).

        bits: int32 [..., n, h, w] masked bits; level: int32 [..., h, w].
        """
        n = self.code_channels[stream]
        h, w = tf.shape(bits)[-2], tf.shape(bits)[-1]
        prev = [tf.concat([tf.zeros_like(bits[..., :d, :, :]), bits[..., :-d, :, :]], axis=-3)
                for d in (1, 2, 3, 4)]  # (d >= n: slices clamp to all zeros)
        phase = self.phases(h, w)
        k = tf.reshape(tf.range(n), [n, 1, 1])
        base = self.channel_context(stream, k, level[..., None, :, :], prev)
        return self.bit_index(base, phase, self.own_context(bits, phase))

    # ----- context 5: channel mixing ------------------------------------------------
    def _mix_mask(self):
        """[C, C] float32: 1 where channel j (column) is an earlier channel of the stream
        of channel k (row), else 0."""
        m = np.zeros([self.num_channels] * 2, np.float32)
        for off, n in zip(self.channel_offsets, self.code_channels):
            m[off:off + n, off:off + n] = np.tril(np.ones([n, n]), -1)
        return m

    def _stream_weights(self, stream, quantized):
        off, n = self.channel_offsets[stream], self.code_channels[stream]
        w = self.mix_q if quantized else self.mix_logits * self._mix_mask()
        return w[:, off:off + n, off:off + n]

    def stream_mix(self, bits, stream, quantized=True):
        """Context 5's correction of the logit of every bit of one stream from the
        earlier channels (``bits`` [..., n, h, w], masked): int32 in units of
        1 / MIX_UNIT nat from the int32 weights (coding), or with ``quantized=False``
        float nats from the float weights (training; no gradient to the bits)."""
        w = self._stream_weights(stream, quantized)
        bits = tf.cast(bits, tf.int32) if quantized else tf.stop_gradient(tf.cast(bits, tf.float32))
        return (tf.einsum("kj,...jhw->...khw", w[0], bits)
                + tf.einsum("kj,...jhw->...khw", w[1], neighbour_sum(bits)))

    def mix_update(self, mix, stream, k, cur):
        """The decoder's running ``stream_mix``: add channel ``k``'s decoded bits ``cur``
        [h, w] int32 to the corrections ``mix`` [n, h, w] of the stream's channels (only
        later channels have weights on k).  Integer sums, so the result equals the
        encoder's ``stream_mix`` exactly."""
        w = self._stream_weights(stream, True)
        a, s = (tf.gather(w[i], k, axis=1)[:, None, None] for i in (0, 1))
        return mix + a * cur[None] + s * neighbour_sum(cur)[None]

    def coder_bit_index(self, rows, mix=None):
        """Row of the range coder's table for bits at bit-table rows ``rows`` (int32):
        after the level rows; with context 5, the clipped logit T[rows] + ``mix``."""
        if not self.mixing:
            return rows + self.num_level_rows
        z = tf.clip_by_value(tf.gather(self.bit_logit_q, rows) + mix,
                             -MIX_CLIP * MIX_UNIT, MIX_CLIP * MIX_UNIT)
        return z + (MIX_CLIP * MIX_UNIT + self.num_level_rows)

    def row_context(self, above):
        """Level contexts of a row from the decoded row above, [..., w] -> [..., w] int32."""
        if self.context == 1:
            return above
        out = self.levels + 1
        pad = tf.fill(tf.shape(above[..., :1]), out)
        left = tf.concat([pad, above[..., :-1]], -1)
        right = tf.concat([above[..., 1:], pad], -1)
        return (above * (out + 1) + left) * (out + 1) + right

    def level_index(self, level):
        """Context of each level [..., h, w] int32 (neighbours outside the image: L + 1).

        With context set 4 ``level`` may also be a decoder's partly decoded map: the
        rows of wavefront t only read positions of earlier wavefronts."""
        if self.context >= 4:
            return self._level_index4(level)
        first = tf.fill(tf.shape(level[..., :1, :]), self.levels + 1)
        return self.row_context(tf.concat([first, level[..., :-1, :]], axis=-2))

    def _level_index4(self, level):
        out = self.levels + 1
        return self._combine4(*(_shift(level, dy, dx, out)
                                for dy, dx in ((1, 0), (0, 1), (1, -1), (1, 1), (0, 2))))

    def level_index_at(self, level, pos):
        """Context set 4's level contexts at the positions ``pos`` [N, 2] (i, j) of the
        [h, w] map ``level`` only (the decoder: one wavefront's positions per call, so
        its cost grows with the wavefront, not the image)."""
        out = self.levels + 1
        padded = tf.pad(level, [[1, 0], [2, 1]], constant_values=out)  # (i, j) -> (i + 1, j + 2)
        return self._combine4(*(tf.gather_nd(padded, pos + [[1 - dy, 2 - dx]])
                                for dy, dx in ((1, 0), (0, 1), (1, -1), (1, 1), (0, 2))))

    def _combine4(self, above, before, above_right, above_left, before2):
        """Set 4's row from the neighbours (L + 1 outside the image)."""
        out = self.levels + 1

        def diff(x, ref, lim):  # x - ref clipped to [-lim, lim], 2 lim + 1 outside
            return tf.where(tf.equal(x, out) | tf.equal(ref, out), 2 * lim + 1,
                            tf.clip_by_value(x - ref, -lim, lim) + lim)
        r, d, e = diff(above_right, above, 2), diff(above_left, above, 1), diff(before2, before, 1)
        n_r, n_d, n_e = _LEVEL_DIFFS
        return (((above * (out + 1) + before) * n_r + r) * n_d + d) * n_e + e

    def level_order(self, h, w):
        """The order in which levels are coded: flat raster positions [h * w] int32
        (context sets 1-3: raster order; set 4: wavefront by wavefront, each in raster
        order)."""
        if self.context < 4:
            return tf.range(h * w)
        return tf.argsort(tf.reshape(wavefronts(h, w), [-1]), stable=True)

    # ----- rate (training) --------------------------------------------------------
    def bit_cost(self, bits, index, mix=None):
        """Bits to code each of ``bits`` (float {0,1}, straight-through) at table rows
        ``index`` (context 5: plus the float logit correction ``mix``, ``stream_mix``)."""
        logits = tf.gather(self.bit_logits * _LOGIT_SCALE, index)
        return _log2_sigmoid_cost(logits if mix is None else logits + mix, bits)

    def _level_bits(self, level):
        """Bits that each level 0..L would cost at each position of ``level`` [..., h, w]
        (in the contexts of its decoded neighbours): [..., h, w, L + 1] float32."""
        logits = tf.gather(self.level_logits * _LOGIT_SCALE, self.level_index(level))
        return -tf.nn.log_softmax(logits) / np.log(2.0)

    def level_cost(self, level):
        """Bits to code each integer level [..., h, w]; gradient reaches the table only."""
        return tf.gather(self._level_bits(level), level, batch_dims=len(level.shape))

    def soft_level_cost(self, level, u):
        """``level_cost`` in value, with a gradient to the continuous levels ``u`` (float,
        ``level`` = floor(u) clipped to 0..L): the slope between the costs of the levels
        one below and one above, in the same (fixed, integer) contexts.  The tables get
        no gradient here; neither does the level's part in its neighbours' contexts."""
        cost = tf.stop_gradient(self._level_bits(level))
        below, above = tf.maximum(level - 1, 0), tf.minimum(level + 1, self.levels)
        at = lambda lv: tf.gather(cost, lv, batch_dims=len(level.shape))  # noqa: E731
        slope = (at(above) - at(below)) / tf.cast(above - below, cost.dtype)
        u = tf.cast(u, cost.dtype)
        return at(level) + slope * (u - tf.stop_gradient(u))

    # ----- fitting the tables to counts ----------------------------------------------
    def context_counts(self, level, bits):
        """Symbol counts of one image's latents, per table row (NumPy).

        level: int [h, w]; bits: per stream int [h, w, n] (kept bits; the rest 0).
        Returns (bit_rows [R]: bits seen per row, bit_ones [R]: ones among them,
        level_counts [L + 2, L + 1]: level per level context).
        """
        from .ops import keep_mask_int

        level = tf.convert_to_tensor(level, tf.int32)
        rows, ones = np.zeros(self.num_bit_rows), np.zeros(self.num_bit_rows)
        for s, b in enumerate(bits):
            n = self.code_channels[s]
            if not n:
                continue
            b = tf.transpose(tf.convert_to_tensor(b, tf.int32), [2, 0, 1])
            index = self.stream_bit_index(b, level, s).numpy()
            keep = tf.transpose(keep_mask_int(level, n, self.levels), [2, 0, 1]).numpy()
            rows += np.bincount(index[keep], minlength=self.num_bit_rows)
            ones += np.bincount(index[keep], weights=b.numpy()[keep], minlength=self.num_bit_rows)
        levels = np.zeros([self.num_level_rows, self.levels + 1])
        np.add.at(levels, (self.level_index(level).numpy().ravel(), level.numpy().ravel()), 1)
        return rows, ones, levels

    def _float_tables(self):
        """The float tables (NumPy float64): P(bit = 1) [R] and level weights [C, L + 1]
        (each row proportional to its pmf, largest entry 1; ``update_tables`` quantizes
        exactly these, so the int32 tables of a shipped model never change)."""
        p1 = 1.0 / (1.0 + np.exp(-self.bit_logits.numpy().astype(np.float64) * _LOGIT_SCALE))
        z = self.level_logits.numpy().astype(np.float64) * _LOGIT_SCALE
        return p1, np.exp(z - z.max(-1, keepdims=True))

    def counts_cost(self, bit_rows, bit_ones, level_counts):
        """Bits that the float tables spend on symbols with these counts (NumPy float;
        context 5: without the mixing, which counts per row cannot see)."""
        p1, weights = self._float_tables()
        log_pmf = np.log(weights / weights.sum(-1, keepdims=True))
        nats = -(bit_ones * np.log(p1) + (bit_rows - bit_ones) * np.log1p(-p1)).sum()
        return float(nats - (level_counts * log_pmf).sum()) / np.log(2.0)

    def fit_tables(self, bit_rows, bit_ones, level_counts, prior=2.0):
        """Set the tables to the counts' frequencies (``context_counts`` summed over images).

        Each row's current probabilities act as ``prior`` pseudo-counts, so rows seen
        rarely (or never) keep what training taught them.  Context sets 3 and 4's many bit
        rows back off instead: each row's prior is its parent's fitted probability, parents
        being the same counts summed over the row's last conditions (the phase and own
        bits, then a2-a4, then a and s, ...; the coarsest: the channel); so do set 4's
        level rows (parents: without e, without d and e, ..., by the level above, all).
        Context 5's mixing weights are reset to 0 (the rows now hold the bits' marginal
        probabilities): ``fit_mixing`` fits them next.  Then ``update_tables``.
        """
        p1, weights = self._float_tables()
        pmf = weights / weights.sum(-1, keepdims=True)
        if self.context >= 3:
            p1 = np.full(1, 0.5)
            for size in _BACKOFF3:
                rows, ones = (np.reshape(c, [-1, size]).sum(-1) for c in (bit_rows, bit_ones))
                p1 = (ones + prior * np.repeat(p1, len(rows) // len(p1))) / (rows + prior)
        else:
            p1 = (bit_ones + prior * p1) / (bit_rows + prior)
        p1 = np.clip(p1, 1e-4, 1.0 - 1e-4)
        self.bit_logits.assign((np.log(p1 / (1.0 - p1)) / _LOGIT_SCALE).astype(np.float32))
        if self.mixing:
            self.mix_logits.assign(np.zeros(self.mix_logits.shape, np.float32))
        if self.context >= 4:  # back off: all rows, then by A, by (A, B), + r, + d
            v = self.levels + 2
            pmf = np.full([1, self.levels + 1], 1.0 / (self.levels + 1))
            for size in (self.num_level_rows, self.num_level_rows // v) + tuple(
                    int(np.prod(_LEVEL_DIFFS[i:])) for i in range(3)) + (1,):
                counts = np.reshape(level_counts, [-1, size, self.levels + 1]).sum(1)
                pmf = np.repeat(pmf, len(counts) // len(pmf), axis=0)
                pmf = (counts + prior * pmf) / (counts.sum(-1, keepdims=True) + prior)
        else:
            pmf = (level_counts + prior * pmf) / (level_counts.sum(-1, keepdims=True) + prior)
        z = np.log(np.maximum(pmf, 1e-6))
        self.level_logits.assign(((z - z.max(-1, keepdims=True)) / _LOGIT_SCALE).astype(np.float32))
        self.update_tables()

    def mixing_samples(self, level, bits, rate=1.0, rng=None):
        """Kept bits of one image's latents for ``fit_mixing`` (NumPy; ``level`` int
        [h, w], ``bits`` per stream int [h, w, n] as in ``context_counts``), each kept
        with probability ``rate`` (``rng``, a NumPy Generator): a dict of their table
        rows, values, global channels and, at their positions, every channel's bit
        ``b`` and 4-neighbour sum ``s`` [N, C] (``fit_mixing`` masks the channels that
        are not earlier channels of the same stream)."""
        from .ops import keep_mask_int

        level = tf.convert_to_tensor(level, tf.int32)
        chw = [tf.transpose(tf.convert_to_tensor(b, tf.int32), [2, 0, 1]) for b in bits]
        every_b = np.concatenate([b.numpy() for b in chw], 0).astype(np.uint8)
        every_s = np.concatenate([neighbour_sum(b).numpy() for b in chw], 0).astype(np.uint8)
        out = {key: [] for key in ("rows", "bit", "channel", "b", "s")}
        for stream, b in enumerate(chw):
            n = self.code_channels[stream]
            if not n:
                continue
            keep = tf.transpose(keep_mask_int(level, n, self.levels), [2, 0, 1]).numpy() > 0
            if rate < 1.0:
                keep &= rng.random(keep.shape) < rate
            k, i, j = np.nonzero(keep)
            out["rows"].append(self.stream_bit_index(b, level, stream).numpy()[keep])
            out["bit"].append(b.numpy()[keep].astype(np.uint8))
            out["channel"].append((k + self.channel_offsets[stream]).astype(np.int32))
            out["b"].append(every_b[:, i, j].T)
            out["s"].append(every_s[:, i, j].T)
        return {key: np.concatenate(v) for key, v in out.items()}

    def _mixing_logits(self, samples, weights, bias):
        """Float logits of sampled bits (``mixing_samples``) under the float tables,
        mixing ``weights`` [2, C, C] (masked here) and per-channel ``bias``."""
        w = weights * self._mix_mask()
        rows = lambda m, x: tf.reduce_sum(  # noqa: E731
            tf.gather(m, samples["channel"]) * tf.cast(x, tf.float32), -1)
        table = tf.gather(self.bit_logits * _LOGIT_SCALE, samples["rows"])
        return table + rows(w[0], samples["b"]) + rows(w[1], samples["s"]) + tf.gather(
            bias, samples["channel"])

    def mixing_cost(self, samples):
        """Mean bits per sampled bit (``mixing_samples``) under the float tables and
        mixing weights (the coder's integer ones round these to 1 / MIX_UNIT nat)."""
        n, nats = len(samples["bit"]), 0.0
        for i in range(0, n, 1 << 16):
            part = {key: v[i:i + (1 << 16)] for key, v in samples.items()}
            z = self._mixing_logits(part, self.mix_logits, tf.zeros([self.num_channels]))
            nats += float(tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(
                part["bit"].astype(np.float32), z)))
        return nats / np.log(2.0) / max(n, 1)

    def fit_mixing(self, samples, epochs=3, batch=8192, learning_rate=0.01, seed=0):
        """Fit context 5's mixing weights A, S and a bias per channel by logistic
        regression (Adam, ``epochs`` shuffled passes) on ``samples`` (``mixing_samples``
        of many images, concatenated), the table rows T fixed; fold the biases into T
        and ``update_tables``.  Returns ``mixing_cost`` before and after."""
        if not self.mixing:
            raise ValueError(f"context set {self.context} has no channel mixing (set 5 has)")
        before = self.mixing_cost(samples)
        weights = tf.Variable(self.mix_logits.numpy())
        bias = tf.Variable(tf.zeros([self.num_channels]))
        opt = tf.keras.optimizers.Adam(learning_rate)

        @tf.function(reduce_retracing=True)
        def step(part):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
                    tf.cast(part["bit"], tf.float32), self._mixing_logits(part, weights, bias)))
            opt.apply_gradients(zip(tape.gradient(loss, [weights, bias]), [weights, bias]))

        n = len(samples["bit"])
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            order = rng.permutation(n)
            for i in range(0, n, batch):
                step({key: v[order[i:i + batch]] for key, v in samples.items()})
        per_channel = self.num_bit_rows // self.num_channels  # rows are channel-major
        self.bit_logits.assign(self.bit_logits.numpy() + np.repeat(
            bias.numpy() / _LOGIT_SCALE, per_channel).astype(np.float32))
        self.mix_logits.assign((weights * self._mix_mask()).numpy())
        self.update_tables()
        return before, self.mixing_cost(samples)

    # ----- coder tables -----------------------------------------------------------
    def update_tables(self):
        """Freeze the float tables into the int32 coder tables (call before exporting)."""
        p1, weights = self._float_tables()
        self.level_freq.assign(quantize_pmf(weights).astype(np.int32))
        if not self.mixing:
            freq = quantize_pmf(np.stack([1.0 - p1, p1], -1))
            self.bit_freq1.assign(freq[:, 1].astype(np.int32))
            return
        top = 4 * MIX_CLIP * MIX_UNIT  # (no overflow whatever training did to the logits)
        z = self.bit_logits.numpy().astype(np.float64) * _LOGIT_SCALE * MIX_UNIT
        self.bit_logit_q.assign(np.clip(np.round(z), -top, top).astype(np.int32))
        w = self.mix_logits.numpy().astype(np.float64) * self._mix_mask() * MIX_UNIT
        self.mix_q.assign(np.clip(np.round(w), -top, top).astype(np.int32))
        z = np.arange(-MIX_CLIP * MIX_UNIT, MIX_CLIP * MIX_UNIT + 1) / MIX_UNIT
        p1 = 1.0 / (1.0 + np.exp(-z))
        self.mix_freq1.assign(quantize_pmf(np.stack([1.0 - p1, p1], -1))[:, 1].astype(np.int32))

    def lookup(self):
        """Coder table for tfc range coding: [level rows + bit rows, L + 3] int32.

        Level rows come first (row = level context), then the bit rows
        (``coder_bit_index``: one per bit-table row, or with context 5 one per clipped
        logit).  Built from the int32 tables with integer ops only.
        """
        total = 1 << PRECISION
        width = self.levels + 3
        lvl = tf.cumsum(self.level_freq, axis=-1, exclusive=False)
        lvl = tf.concat([tf.fill([self.num_level_rows, 1], PRECISION),
                         tf.zeros([self.num_level_rows, 1], tf.int32), lvl], -1)
        zero = total - (self.mix_freq1 if self.mixing else self.bit_freq1)
        rows = tf.shape(zero)[0]
        bit = tf.stack([tf.fill([rows], PRECISION), tf.zeros([rows], tf.int32), zero], -1)
        bit = tf.concat([bit, tf.fill([rows, width - 3], total)], -1)
        return tf.concat([lvl, bit], 0)

    def init_from(self, other):
        """Set the float tables from ``other`` (same channels and levels, any context):
        each row takes the probabilities of the row of ``other`` that it refines (context 2
        rows only add conditions to context 1 rows), then ``update_tables``.  Context 3's
        bit rows refine no earlier set's: they start at P(1) = 1/2 (``fit_tables`` then
        fits them; its level contexts are context 2's).  Set 4's bit rows are set 3's; its
        level rows refine no earlier set's and start uniform.  Set 5 is set 4 with mixing
        weights, which start at 0 (no mixing) unless ``other`` has them."""
        if (other.code_channels, other.levels) != (self.code_channels, self.levels):
            raise ValueError("entropy models differ in code channels or levels")
        if other.context > self.context:
            raise ValueError(f"context set {other.context} cannot go back to {self.context}")
        if self.context >= 3 and other.context < 3:
            self.bit_logits.assign(np.zeros(self.num_bit_rows, np.float32))
        else:
            k = self.num_bit_rows // other.num_bit_rows
            self.bit_logits.assign(np.repeat(other.bit_logits.numpy(), k))
        if self.mixing and other.mixing:
            self.mix_logits.assign(other.mix_logits.numpy())
        if self.context >= 4 and other.context < 4:
            self.level_logits.assign(np.zeros(self.level_logits.shape, np.float32))
        else:
            k = self.num_level_rows // other.num_level_rows
            self.level_logits.assign(np.repeat(other.level_logits.numpy(), k, axis=0))
        self.update_tables()

    def get_config(self):
        return {**super().get_config(), "code_channels": list(self.code_channels),
                "levels": self.levels, "context": self.context}
