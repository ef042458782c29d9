"""The two-stream YCbCr codec: a Keras model that trains with ``fit`` and *is* the codec.

Data flow (H x W RGB image, latent grid h x w = ceil(H/8) x ceil(W/8)):

    RGB -> YCbCr -> Y  -> luma encoder   -> features_Y, code_Y  [h, w, n_Y]
                    CbCr -> colour encoder (+ features_Y: encoder fusion) -> code_C [h, w, n_C]
    [features_Y, features_C] -> importance net -> p [h, w, 1] -> level l in {0..L}
    bits_Y = binarize(code_Y) * mask(l, n_Y);  bits_C = binarize(code_C) * mask(l, n_C)
    bits_Y -> luma decoder -> Y^, luma features at 1/8, 1/4, 1/2, 1
    bits_C + luma features -> colour decoder (decoder fusion) -> CbCr^

``streams="rgb"`` is the single-stream baseline of the ablation: one encoder/decoder
pair on RGB (3 channels in, 3 out), ``code_y`` code channels, no colour code (n_C = 0);
the same loss, importance map, entropy model and file format.

One importance map, computed from both streams' encoder features, masks both
codes: level l keeps ceil(n_Y l / L) luma and ceil(n_C l / L) colour channels, so
the two streams always share one rate allocation and colour cannot starve luma
(or the reverse).  Only the levels and the kept bits go into the file.

Loss: D + lambda * max(0, R - target) + R_tables, with the distortion D either
|Y - Y^| + gamma (|Cb - Cb^| + |Cr - Cr^|) (``distortion="l1"``, the reference design's) or
the root-mean-square RGB error (``"rmse"``: the same minimiser as the MSE that PSNR
measures, and of the same size as the L1 sum, so lambda keeps its meaning) or
rms(Y - Y^) + gamma (|Cb - Cb^| + |Cr - Cr^|) (``"rmse-y"``: luma as PSNR measures it,
colour under L1, whose gradient does not fade with the small colour errors as the
squared error's does -- ``"rmse"`` alone cost 1 dB PSNR-CbCr and 9 % CIEDE2000 BD-rate),
plus ``ms_ssim_weight`` * (1 - MS-SSIM(RGB, RGB^)) when that weight is above 0 (default 0;
``losses.ms_ssim``, as many scales as the patch allows: 4 on 128^2 patches)
(``rate_penalty="hinge"``, Li et al.'s threshold) or lambda * |R - target|
(``"absolute"``: also pushes the rate *up* to the target -- seen needed early in
training, when the distortion gradient alone kept lowering the levels below target),
(lambda, and the gradient reaching the importance map, ramped up from 0 over
``rate_warmup_steps``: with an untrained decoder every kept bit is noise, so the
distortion alone first pushes the map down; warming up lets the bits become
useful before the map and the rate term act)
with R the entropy model's rate in bits per pixel (``rate_term="entropy"``, the
real file cost) or the importance-map proxy sum(p) (n_Y + n_C) / pixels
(``rate_term="importance"``, Li et al.'s term).  R_tables is the same entropy-model
rate with its gradient reaching only the probability tables, which thus always fit
the latents (see ``rate``); after training, ``tfycc calibrate`` refits them exactly
from counts on whole training images.  ``context`` picks the entropy model's context
set (``entropy.py``): 1 in models made before it existed, 2 in the named configurations,
3 (four decoding phases per channel, more conditions) and 4 (set 3's bits, levels
that also see their left neighbours) by ``tfycc calibrate --context 3`` or ``4``, which
moves a trained model to a larger set without retraining it.
"""
import json
import os
import secrets

import tensorflow as tf

from . import bitstream, ops
from .colour import rgb_to_ycbcr, ycbcr_to_rgb
from .entropy import EntropyModel
from .layers import DOWNSAMPLING, ImportanceNet, StreamDecoder, StreamEncoder
from .losses import MS_SSIM_WEIGHTS, ms_ssim

__all__ = ["CONFIGS", "TwoStreamCodec", "build_model", "save_model", "load_model", "with_context"]

CONFIGS = {
    # Unit tests only.
    "tiny": dict(filters_y=16, filters_c=8, num_blocks=2, num_groups=1, code_y=8, code_c=4, levels=4,
                 context=2),
    # CPU training: 4 ResNet blocks (2 groups, 3 long skips) per encoder/decoder.
    "compact": dict(filters_y=128, filters_c=64, num_blocks=4, num_groups=2, code_y=64, code_c=16,
                    levels=16, context=2),
    # Reference design: 16 ResNet blocks, 5 long skips per encoder/decoder.
    "paper": dict(filters_y=128, filters_c=96, num_blocks=16, num_groups=4, code_y=64, code_c=16,
                  levels=16, context=2),
}

# Encoder-side search (``TwoStreamCodec.refine``): Adam's step size on the [0, 1] codes, and
# the weight of ln(rate) against ln(MSE) -- 0.5 kept the rate within ~1 % of the unrefined
# file's on Kodak crops (1 lowered it 2-3 % for a little less PSNR, 0 raised it 1-2 %).
REFINE_LEARNING_RATE = 0.01
REFINE_RATE_WEIGHT = 0.5
# What the search may be tuned for (``tune``): "psnr" lowers ln(MSE); "ms-ssim" lowers
# (1 - s) ln(1 - MS-SSIM) + s ln(MSE), s = REFINE_MSE_SHARE (on six 256^2 training crops,
# 10 steps: s = 0 gave MS-SSIM 0.9125 at 24.03 dB, s = 0.3 0.9123 at 24.83 dB; "psnr":
# 0.9008 at 24.97 dB; unrefined 0.8853 at 24.17 dB).
# "psnr-colour" and "ms-ssim-colour" add REFINE_COLOUR_SHARE * ln(MSE of Cb, Cr): a search
# for MSE or MS-SSIM alone lets colours drift (the ms-ssim one leans green, a* -0.6...-0.8).
# On eight 384x512 training crops at offsets -1 / +1, 10 steps, adding 0.15: ms-ssim
# CIEDE2000 4.30 -> 3.96 / 3.49 -> 3.30, PSNR-CbCr +1.9 / +1.3 dB, MS-SSIM -0.0028 /
# -0.0012, files +0.1 %; psnr: CIEDE2000 -3.6 / -3.5 %, PSNR-RGB -0.05 / -0.01 dB, files
# +0.6 % (0.07 did half as much for ms-ssim, 0.3 little more).
REFINE_TUNES = ("psnr", "ms-ssim", "psnr-colour", "ms-ssim-colour")
REFINE_MSE_SHARE = 0.3
REFINE_COLOUR_SHARE = 0.15

_METRICS = ("loss", "distortion", "bpp", "kept_bpp", "importance_bpp", "psnr", "level", "search_gap")


def _pad_to_grid(x):
    """Replicate the last row/column so H and W become multiples of 8. x: [B, H, W, C]."""
    h, w = tf.shape(x)[1], tf.shape(x)[2]
    ph, pw = (-h) % DOWNSAMPLING, (-w) % DOWNSAMPLING
    x = tf.concat([x, tf.repeat(x[:, -1:], ph, axis=1)], 1)
    return tf.concat([x, tf.repeat(x[:, :, -1:], pw, axis=2)], 2)


def _ms_ssim_objective(rgb, ref, log_mse, side):
    """(1 - s) ln(1 - MS-SSIM(rgb, ref)) + s ``log_mse`` (s = REFINE_MSE_SHARE), with as
    many scales as ``side`` (a scalar tensor: the shorter side) allows -- the standard
    exponents, not renormalised, as ``metrics.ms_ssim`` has them; ``log_mse`` alone below
    11 pixels.  Works on images of any (dynamic) size."""
    def with_scales(k):
        def term():
            value = tf.reduce_mean(ms_ssim(rgb, ref, weights=MS_SSIM_WEIGHTS[:k]))
            return ((1.0 - REFINE_MSE_SHARE) * tf.math.log(1.0 - value + 1e-10)
                    + REFINE_MSE_SHARE * log_mse)
        return term

    scales = tf.add_n([tf.cast(side >= 11 * 2 ** k, tf.int32) for k in range(len(MS_SSIM_WEIGHTS))])
    return tf.switch_case(scales, [lambda: log_mse] + [
        with_scales(k) for k in range(1, len(MS_SSIM_WEIGHTS) + 1)])


def _rms(x):
    """Root-mean-square of a tensor (epsilon: a finite gradient at zero error)."""
    return tf.sqrt(tf.reduce_mean(tf.square(x)) + 1e-12)


def _ycc_to_uint8(ycc, height, width):
    """Decoder output YCbCr [1, H', W', 3] in [0, 1] -> the decoded uint8 RGB [height, width, 3]."""
    rgb = ycbcr_to_rgb(ycc[0, :height, :width])
    return tf.cast(tf.clip_by_value(tf.round(rgb * 255.0), 0.0, 255.0), tf.uint8)


@tf.keras.utils.register_keras_serializable(package="tfycc")
class TwoStreamCodec(tf.keras.Model):
    """Two-stream YCbCr codec with fusion, importance map, binarizer and entropy model."""

    def __init__(self, filters_y, filters_c, num_blocks, num_groups, code_y, code_c, levels,
                 lmbda=0.1, gamma=1.0, rate_term="entropy", target_bpp=0.0, offset_range=3.0,
                 random_level_prob=0.5, rate_warmup_steps=2000, rate_penalty="hinge", distortion="l1",
                 fuse_encoder=True, fuse_decoder=True, streams="ycbcr", stage_blocks=0,
                 fine_blocks=0, deep_blocks=0, context=1, ms_ssim_weight=0.0, level_weight=0.0,
                 search_steps=0, search_weight=0.0, search_tune="psnr",
                 search_colour_share=REFINE_COLOUR_SHARE, model_id=None, **kwargs):
        super().__init__(**kwargs)
        if rate_term not in ("entropy", "importance"):
            raise ValueError(f"rate_term must be 'entropy' or 'importance', not {rate_term!r}")
        if rate_penalty not in ("hinge", "absolute"):
            raise ValueError(f"rate_penalty must be 'hinge' or 'absolute', not {rate_penalty!r}")
        if distortion not in ("l1", "rmse", "rmse-y"):
            raise ValueError(f"distortion must be 'l1', 'rmse' or 'rmse-y', not {distortion!r}")
        if streams not in ("ycbcr", "rgb"):
            raise ValueError(f"streams must be 'ycbcr' or 'rgb', not {streams!r}")
        if min(int(stage_blocks), int(fine_blocks), int(deep_blocks)) < 0:
            raise ValueError("stage_blocks, fine_blocks and deep_blocks must not be negative")
        if not 0.0 <= float(ms_ssim_weight) < float("inf"):
            raise ValueError(f"ms_ssim_weight must be finite and >= 0, not {ms_ssim_weight!r}")
        if not 0.0 <= float(level_weight) < float("inf"):
            raise ValueError(f"level_weight must be finite and >= 0, not {level_weight!r}")
        if int(search_steps) < 0 or not 0.0 <= float(search_weight) < float("inf"):
            raise ValueError("search_steps must be >= 0 and search_weight finite and >= 0")
        if search_tune not in ("psnr", "psnr-colour"):
            raise ValueError(f"search_tune must be 'psnr' or 'psnr-colour', not {search_tune!r}")
        if not 0.0 <= float(search_colour_share) < float("inf"):
            raise ValueError("search_colour_share must be finite and >= 0, "
                             f"not {search_colour_share!r}")
        if streams == "rgb":
            code_c, filters_c, fuse_encoder, fuse_decoder = 0, 0, False, False
        self.hparams = dict(
            filters_y=filters_y, filters_c=filters_c, num_blocks=num_blocks, num_groups=num_groups,
            code_y=code_y, code_c=code_c, levels=levels, lmbda=float(lmbda), gamma=float(gamma),
            rate_term=rate_term, target_bpp=float(target_bpp), offset_range=float(offset_range),
            random_level_prob=float(random_level_prob), rate_warmup_steps=int(rate_warmup_steps),
            rate_penalty=rate_penalty, distortion=distortion, ms_ssim_weight=float(ms_ssim_weight),
            level_weight=float(level_weight), search_steps=int(search_steps),
            search_weight=float(search_weight), search_tune=search_tune,
            search_colour_share=float(search_colour_share),
            fuse_encoder=bool(fuse_encoder), fuse_decoder=bool(fuse_decoder), streams=streams,
            stage_blocks=int(stage_blocks), fine_blocks=int(fine_blocks),
            deep_blocks=int(deep_blocks), context=int(context),
            model_id=model_id or f"tfycc-untrained-{secrets.token_hex(4)}")
        self.levels = levels
        self.code_channels = (code_y, code_c)
        self.rgb_stream = streams == "rgb"
        stacks = dict(num_blocks=num_blocks, num_groups=num_groups, stage_blocks=int(stage_blocks))
        encoders = dict(stacks, deep_blocks=int(deep_blocks))
        self.enc_y = StreamEncoder(filters_y, code_y, name="enc_y", **encoders)
        self.importance = ImportanceNet(max(filters_y // 2, 8), name="importance")
        decoders = dict(stacks, fine_blocks=int(fine_blocks))
        self.dec_y = StreamDecoder(filters_y, 3 if self.rgb_stream else 1, name="dec_y", **decoders)
        self.enc_c = self.dec_c = None
        if not self.rgb_stream:
            self.enc_c = StreamEncoder(filters_c, code_c, fuse=fuse_encoder, name="enc_c", **encoders)
            self.dec_c = StreamDecoder(filters_c, 2, fuse=fuse_decoder, name="dec_c", **decoders)
        self.entropy = EntropyModel(self.code_channels, levels, context, name="entropy")
        self.trackers = {m: tf.keras.metrics.Mean(name=m) for m in _METRICS}

    # ----- configuration ------------------------------------------------------
    @property
    def model_id(self):
        return self.hparams["model_id"]

    @model_id.setter
    def model_id(self, value):
        value.encode("ascii")
        if not 0 < len(value) < 256:
            raise ValueError("model id must be 1..255 ASCII characters")
        self.hparams["model_id"] = value

    def get_config(self):
        return dict(self.hparams)

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @property
    def metrics(self):
        return list(self.trackers.values())

    # ----- the transforms -------------------------------------------------------
    def analyze(self, rgb, offset=0.0, override=None, importance_grad=None):
        """RGB [B, H, W, 3] float in [0, 1] (H, W multiples of 8) -> dict of latent tensors.

        Keys: p [B,h,w,1] importance, u continuous level, level int32 [B,h,w],
        code_y/code_c the encoders' continuous codes in [0, 1] (float32), raw_y/raw_c
        binarized codes, mask_y/mask_c channel masks, bits_y/bits_c kept bits
        (float32 {0,1}, masked).  ``override`` = (use [B,1,1,1] bool, u [B,1,1,1]) replaces
        the continuous level of the chosen images (training with random levels);
        ``importance_grad`` (if given) scales the gradient reaching the importance map.
        """
        dtype = self.enc_y.compute_dtype
        if self.rgb_stream:
            feat_y, code_y = self.enc_y(tf.cast(tf.cast(rgb, tf.float32) - 0.5, dtype))
            features = feat_y
            code_c = tf.zeros(tf.concat([tf.shape(code_y)[:3], [0]], 0))
        else:
            ycc = rgb_to_ycbcr(tf.cast(rgb, tf.float32)) - 0.5
            feat_y, code_y = self.enc_y(tf.cast(ycc[..., :1], dtype))
            feat_c, code_c = self.enc_c(tf.cast(ycc[..., 1:], dtype), side=feat_y)
            features = tf.concat([feat_y, tf.cast(feat_c, feat_y.dtype)], -1)
        # The importance net reads detached encoder features: the rate term's gradient
        # (through the masks) then trains the map alone and never reaches the code
        # features (seen: with lambda * |R - target| flowing into the encoders, the
        # distortion rose steadily from step ~350 until the output was garbage).
        p = self.importance(tf.stop_gradient(features))
        if importance_grad is not None:
            p = tf.stop_gradient(p) + importance_grad * (p - tf.stop_gradient(p))
        u = ops.continuous_level(p, self.levels, offset)
        if override is not None:
            u = tf.where(override[0], override[1], u)
        out = dict(p=p, u=u, level=ops.quantize_level(u[..., 0], self.levels),
                   mask_y=ops.channel_mask(u, self.code_channels[0], self.levels),
                   mask_c=ops.channel_mask(u, self.code_channels[1], self.levels))
        return self.with_codes(out, {"y": tf.cast(code_y, tf.float32), "c": tf.cast(code_c, tf.float32)})

    def refine(self, x, lat, steps, height, width, tune="psnr", per_image=False,
               colour_share=None):
        """Encoder-side search: ``lat`` with better code bits for the image ``x``.

        ``steps`` Adam steps (learning rate ``REFINE_LEARNING_RATE``) on the continuous
        codes (``lat["code_*"]``, kept in [0, 1]; straight-through binarizer) that lower
        ``refine_objective``.  The levels (and masks) stay as they are, so the rate
        moves little; the decoder is unchanged, so any tfycc decoder reads the file.
        It closes part of the amortisation gap of a small, briefly trained encoder.
        ``tune`` (one of ``REFINE_TUNES``): the quality measure that the search raises;
        ``per_image``: each image of a batch its own objective; ``colour_share``: the
        "-colour" tunes' weight of the chroma error (both: ``refine_objective``).
        """
        streams = [s for s, n in zip("yc", self.code_channels) if n]
        beta1, beta2, eps = 0.9, 0.999, 1e-7

        def step(t, codes, m, v):
            with tf.GradientTape() as tape:
                tape.watch(codes)
                loss = self.refine_objective(x, self.with_codes(lat, dict(zip(streams, codes))),
                                             height, width, tune, per_image, colour_share)
            grads = tape.gradient(loss, codes)
            t1 = tf.cast(t + 1, tf.float32)
            rate = REFINE_LEARNING_RATE * tf.sqrt(1.0 - beta2 ** t1) / (1.0 - beta1 ** t1)
            m = [beta1 * a + (1.0 - beta1) * g for a, g in zip(m, grads)]
            v = [beta2 * a + (1.0 - beta2) * g * g for a, g in zip(v, grads)]
            codes = [tf.clip_by_value(c - rate * a / (tf.sqrt(b) + eps), 0.0, 1.0)
                     for c, a, b in zip(codes, m, v)]
            return t + 1, codes, m, v

        codes = [lat[f"code_{s}"] for s in streams]
        zeros = [tf.zeros_like(c) for c in codes]
        _, codes, _, _ = tf.while_loop(lambda t, *_: t < steps, step,
                                       (tf.constant(0), codes, zeros, list(zeros)))
        return self.with_codes(lat, dict(zip(streams, codes)))

    def with_codes(self, lat, codes):
        """``lat`` (which has the masks) with the continuous codes {"y": ..., "c": ...} of
        ``codes`` and the raw and kept bits they binarize to (straight-through)."""
        new = dict(lat)
        for s, code in codes.items():
            raw = ops.binarize(code)
            new.update({f"code_{s}": code, f"raw_{s}": raw, f"bits_{s}": raw * lat[f"mask_{s}"]})
        return new

    def refine_objective(self, x, lat, height, width, tune="psnr", per_image=False,
                         colour_share=None):
        """What ``refine`` lowers: D + ``REFINE_RATE_WEIGHT`` * ln(R + 1).  D, of the
        decoded RGB against ``x`` over its real ``height`` x ``width`` pixels: ln(MSE) for
        ``tune`` "psnr"; for "ms-ssim", (1 - s) ln(1 - MS-SSIM) + s ln(MSE) with
        s = ``REFINE_MSE_SHARE`` (as many MS-SSIM scales as the image's shorter side
        allows, like ``metrics.ms_ssim``; ln(MSE) alone below 11 pixels); the "-colour"
        tunes add ``colour_share`` (None: ``REFINE_COLOUR_SHARE``, read at each call, as
        ``scripts/colour_share.py`` relies on) * ln(MSE of Cb and Cr).  R: the entropy
        model's bits for ``lat`` (each kept bit's cost in its context, with the
        straight-through gradient cost(1) - cost(0); the levels' cost, a constant here).
        ``per_image``: the sum of each image's objective (the MSE tunes only) instead of
        one objective of the whole batch (what training's search uses)."""
        if tune not in REFINE_TUNES:
            raise ValueError(f"tune must be one of {REFINE_TUNES}, not {tune!r}")
        if per_image and tune.startswith("ms-ssim"):
            raise ValueError("per_image works with the MSE tunes only")
        axes = [1, 2, 3] if per_image else None
        rgb = ycbcr_to_rgb(self.synthesize(lat["bits_y"], lat["bits_c"], lat["mask_y"], lat["mask_c"]))
        rgb = tf.clip_by_value(rgb[:, :height, :width], 0.0, 1.0)
        ref = x[:, :height, :width]
        distortion = tf.math.log(tf.reduce_mean(tf.square(rgb - ref), axes) + 1e-10)
        if tune.startswith("ms-ssim"):
            distortion = _ms_ssim_objective(rgb, ref, distortion, tf.minimum(height, width))
        if tune.endswith("-colour"):
            error = rgb_to_ycbcr(rgb)[..., 1:] - rgb_to_ycbcr(ref)[..., 1:]
            share = REFINE_COLOUR_SHARE if colour_share is None else colour_share
            distortion += share * tf.math.log(
                tf.reduce_mean(tf.square(error), axes) + 1e-10)
        bits = tf.reduce_sum(self.entropy.level_cost(lat["level"]), axes and [1, 2])
        for stream in range(2):
            if self.code_channels[stream]:
                cost, mask = self._bit_costs(lat, stream, through_bits=True)
                bits += tf.reduce_sum(cost * mask, axes)
        return tf.reduce_sum(distortion + REFINE_RATE_WEIGHT * tf.math.log(bits + 1.0))

    def synthesize(self, bits_y, bits_c, mask_y, mask_c):
        """Kept bits and masks [B,h,w,n_Y], [B,h,w,n_C] -> YCbCr [B, 8h, 8w, 3] float32.

        The decoders see 2 * bits - mask: +1 / -1 for a kept 1 / 0 and 0 for a bit that
        was not sent, so "not sent" is neutral rather than a confident 0.  (With bits
        fed as {0, 1}, the straight-through mask gradient was biased towards masking:
        the importance map collapsed to level 0 even with lambda = 0.)
        """
        y, features = self.dec_y(2.0 * bits_y - mask_y)
        if self.rgb_stream:  # the single RGB stream: y holds R, G, B
            return rgb_to_ycbcr(y + 0.5)
        c, _ = self.dec_c(2.0 * bits_c - mask_c, side=features)
        return tf.concat([y, c], -1) + 0.5

    def _bit_costs(self, latents, stream, through_bits):
        """(cost, mask) [B, n, h, w] of stream 0 (y) or 1 (c): the bits each raw code bit
        costs in its context (contexts from the kept bits) and the channel mask.
        ``through_bits``: the cost's straight-through gradient, cost(1) - cost(0), reaches
        the raw bits; otherwise only the tables get a gradient."""
        name = "yc"[stream]
        to_chw = lambda t: tf.transpose(t, [0, 3, 1, 2])  # noqa: E731
        bits_int = tf.cast(to_chw(latents[f"bits_{name}"]), tf.int32)
        index = self.entropy.stream_bit_index(bits_int, latents["level"], stream)
        mix = self.entropy.stream_mix(bits_int, stream, quantized=False) if self.entropy.mixing else None
        raw = to_chw(latents[f"raw_{name}"])
        cost = self.entropy.bit_cost(raw if through_bits else tf.stop_gradient(raw), index, mix)
        return cost, to_chw(latents[f"mask_{name}"])

    def rate(self, latents, split=False):
        """Entropy-model rate of each image of a batch, in bits: float32 [B].

        ``split=True`` returns it twice, (for_masks, for_tables), equal in value but not
        in gradient: the first reaches the importance map (through the masks, and with
        ``level_weight`` > 0 through the cost of coding its levels) only, the second the
        probability tables only.  The tables must always *minimise* the rate
        (be the best code for the latents), whatever the rate penalty does: under
        lambda * |R - target| a shared term pushed the tables to *raise* the cost while
        R < target (seen: the shipped model's level table put its mode on level 4 where
        the data had levels 0 and 3, 3.1 bits per level against an entropy of 1.7).
        """
        level = latents["level"]
        table_total = tf.reduce_sum(self.entropy.level_cost(level), axis=[1, 2])
        total = tf.stop_gradient(table_total)  # the levels' bits count in R's value ...
        weight = self.hparams["level_weight"]
        if weight > 0:  # ... and, with level_weight, in its gradient to the importance map
            soft = tf.reduce_sum(self.entropy.soft_level_cost(level, latents["u"][..., 0]), [1, 2])
            total += weight * (soft - tf.stop_gradient(soft))
        for s in range(2):
            if not self.code_channels[s]:
                continue
            # No gradient to the bit values: through the straight-through binarizer it pushed
            # every code towards its majority value (all-zero, informationless codes).  The
            # rate reaches the encoder through the importance map (masks) only, as in Li et al.
            cost, mask = self._bit_costs(latents, s, through_bits=False)
            total += tf.reduce_sum(tf.stop_gradient(cost) * mask, axis=[1, 2, 3])
            table_total += tf.reduce_sum(cost * tf.stop_gradient(mask), axis=[1, 2, 3])
        if split:
            return total, table_total
        return total + table_total - tf.stop_gradient(table_total)

    def call(self, rgb, training=False):
        """RGB [B, H, W, 3] float in [0, 1] -> dict(rgb reconstruction and losses).

        In training, two things keep every code channel and the importance map alive:
        a random level offset in [-offset_range, offset_range] per image (which also
        teaches the decoder the rates reachable by ``compress_at``), and, for a
        fraction ``random_level_prob`` of the images, one uniformly random level for
        the whole image instead of the importance map (nested dropout over channels:
        the decoder learns to use any prefix of the code, so raising a level always
        helps and the map has a reason to rise).  Those images count for distortion
        only, not for the rate.
        """
        rgb = tf.cast(rgb, tf.float32)
        batch = tf.shape(rgb)[0]
        offset, override = 0.0, None
        real = tf.ones([batch])
        if training and self.hparams["offset_range"] > 0:
            r = self.hparams["offset_range"]
            offset = tf.random.uniform([batch, 1, 1, 1], -r, r)
        if training and self.hparams["random_level_prob"] > 0:
            use = tf.random.uniform([batch, 1, 1, 1]) < self.hparams["random_level_prob"]
            override = (use, tf.random.uniform([batch, 1, 1, 1], 0.0, self.levels + 1.0))
            real = 1.0 - tf.cast(tf.reshape(use, [batch]), tf.float32)
        warmup = self._warmup() if training else 1.0
        lat = self.analyze(rgb, offset, override, importance_grad=warmup if training else None)
        distill, search_gap = self._search_distillation(rgb, lat) if training else (0.0, 0.0)
        ycc_hat = self.synthesize(lat["bits_y"], lat["bits_c"], lat["mask_y"], lat["mask_c"])
        ycc = rgb_to_ycbcr(rgb)
        kind = self.hparams["distortion"]
        if kind == "rmse":
            # Unclipped, so that out-of-range outputs still get a gradient back.
            distortion = _rms(rgb - ycbcr_to_rgb(ycc_hat))
        else:
            err = tf.reduce_mean(tf.abs(ycc - ycc_hat), axis=[0, 1, 2])
            luma = _rms(ycc[..., 0] - ycc_hat[..., 0]) if kind == "rmse-y" else err[0]
            distortion = luma + self.hparams["gamma"] * (err[1] + err[2])
        if self.hparams["ms_ssim_weight"] > 0:
            # On the unclipped RGB output, like "rmse"; every image counts (as for D).
            distortion += self.hparams["ms_ssim_weight"] * (
                1.0 - tf.reduce_mean(ms_ssim(rgb, ycbcr_to_rgb(ycc_hat))))
        # Rates in bits per pixel, averaged over the images whose levels are real.
        pixels = tf.cast(tf.reduce_prod(tf.shape(rgb)[1:3]), tf.float32) * tf.maximum(
            tf.reduce_sum(real), 1.0)
        rate_masks, rate_tables = self.rate(lat, split=True)
        bpp = tf.reduce_sum(rate_masks * real) / pixels
        table_bpp = tf.reduce_sum(rate_tables * real) / pixels
        kept = tf.reduce_sum(lat["mask_y"], [1, 2, 3]) + tf.reduce_sum(lat["mask_c"], [1, 2, 3])
        kept_bpp = tf.reduce_sum(kept * real) / pixels
        importance_bpp = tf.reduce_sum(tf.reduce_sum(lat["p"], [1, 2, 3]) * real) * float(
            sum(self.code_channels)) / pixels
        rate = bpp if self.hparams["rate_term"] == "entropy" else importance_bpp
        excess = rate - self.hparams["target_bpp"]
        if self.hparams["rate_penalty"] == "absolute":
            excess = tf.abs(excess)
        rate_loss = tf.nn.relu(excess) * warmup
        rgb_hat = tf.clip_by_value(ycbcr_to_rgb(ycc_hat), 0.0, 1.0)
        return dict(
            rgb=rgb_hat,
            loss=(distortion + self.hparams["lmbda"] * rate_loss + table_bpp
                  + self.hparams["search_weight"] * distill),
            search_gap=search_gap,
            distortion=distortion, bpp=bpp, kept_bpp=kept_bpp, importance_bpp=importance_bpp,
            psnr=tf.reduce_mean(tf.image.psnr(rgb, rgb_hat, 1.0)),
            level=tf.reduce_sum(tf.reduce_mean(tf.cast(lat["level"], tf.float32), [1, 2]) * real)
            / tf.maximum(tf.reduce_sum(real), 1.0),
        )

    def _search_distillation(self, rgb, lat):
        """(distillation loss, search gap) of a training batch; (0, 0) without a search.

        With ``search_steps`` > 0 the encoder-side search (``refine`` tuned for
        ``search_tune`` with ``search_colour_share``, each image its own objective, no
        gradient) finds better codes for the batch, and the loss is the mean squared
        distance of the encoder's kept codes to them: the encoder learns what the search
        finds (distillation).  The gap is the fraction of kept bits the search flipped,
        what the encoder still misses.
        """
        steps = self.hparams["search_steps"]
        if steps <= 0:
            return 0.0, 0.0
        fixed = {k: tf.stop_gradient(v) for k, v in lat.items()}
        # (The search reads the decoder's weights: no gradient may flow back through it.)
        found = tf.nest.map_structure(tf.stop_gradient, self.refine(
            tf.stop_gradient(rgb), fixed, steps, tf.shape(rgb)[1], tf.shape(rgb)[2],
            tune=self.hparams["search_tune"], per_image=True,
            colour_share=self.hparams["search_colour_share"]))
        squares = flips = kept = 0.0
        for s, n in zip("yc", self.code_channels):
            if n:
                mask = fixed[f"mask_{s}"]
                squares += tf.reduce_sum(mask * tf.square(lat[f"code_{s}"] - found[f"code_{s}"]))
                flips += tf.reduce_sum(mask * tf.abs(found[f"raw_{s}"] - fixed[f"raw_{s}"]))
                kept += tf.reduce_sum(mask)
        kept = tf.maximum(kept, 1.0)
        return squares / kept, flips / kept

    def _warmup(self):
        """Warm-up weight: 0 for the first half of ``rate_warmup_steps`` optimizer steps, then
        rising linearly to 1 (1 outside fit).  Zero, not small, because Adam is blind to
        gradient scale: only a zero gradient really holds the importance map still."""
        warm = self.hparams["rate_warmup_steps"]
        if warm <= 0 or self.optimizer is None:
            return 1.0
        step = tf.cast(self.optimizer.iterations, tf.float32)
        return tf.clip_by_value(2.0 * step / warm - 1.0, 0.0, 1.0)

    # ----- Keras training -------------------------------------------------------
    @staticmethod
    def _images(data):
        """A batch of uint8 (or float 0..255) RGB images -> float32 in [0, 1]."""
        if isinstance(data, (tuple, list)):
            data = data[0]
        return tf.cast(data, tf.float32) / 255.0

    def _update(self, out):
        for name, tracker in self.trackers.items():
            tracker.update_state(out[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        x = self._images(data)
        with tf.GradientTape() as tape:
            out = self(x, training=True)
            # Gradients are summed over replicas: scale so the update is the global mean.
            loss = out["loss"] / tf.distribute.get_strategy().num_replicas_in_sync
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return self._update(out)

    def test_step(self, data):
        return self._update(self(self._images(data), training=False))

    # ----- the codec ----------------------------------------------------------------
    def _latent_to_file(self, image, rate_offset, refine_steps=None, tune="psnr"):
        image = tf.convert_to_tensor(image)
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        tf.debugging.assert_less_equal(tf.maximum(height, width), bitstream.MAX_SIDE,
                                       message="image side exceeds 65535 pixels")
        x = _pad_to_grid(tf.cast(image[None], tf.float32) / 255.0)
        lat = self.analyze(x, rate_offset)
        if refine_steps is not None:
            lat = self.refine(x, lat, refine_steps, height, width, tune)
        level = lat["level"][0]
        bits = [tf.cast(tf.transpose(lat[f"bits_{s}"][0], [2, 0, 1]), tf.int32) for s in ("y", "c")]
        payload = self._encode_payload(level, bits)
        return bitstream.tf_pack(self.model_id, height, width, payload)

    def _encode_payload(self, level, bits):
        import tensorflow_compression as tfc

        em = self.entropy
        handle = tfc.create_range_encoder([], em.lookup())
        h, w = tf.shape(level)[0], tf.shape(level)[1]
        in_order = lambda t: tf.gather(tf.reshape(t, [-1]), em.level_order(h, w))  # noqa: E731
        handle = tfc.entropy_encode_index(handle, in_order(em.level_index(level)), in_order(level))
        # Order: channel by channel; in each channel, phase-0 positions, then phase-1 ones,
        # ... (raster order within a phase) -- exactly the order _decode_payload uses.
        order = tf.argsort(tf.reshape(em.phases(h, w), [-1]), stable=True)
        for s, b in enumerate(bits):
            n = self.code_channels[s]
            if not n:
                continue
            index = em.coder_bit_index(em.stream_bit_index(b, level, s),
                                       em.stream_mix(b, s) if em.mixing else None)
            keep = tf.transpose(ops.keep_mask_int(level, n, self.levels), [2, 0, 1])
            flat = lambda t: tf.gather(tf.reshape(t, [n, -1]), order, axis=1)  # noqa: E731
            sel = flat(keep)
            handle = tfc.entropy_encode_index(
                handle, tf.boolean_mask(flat(index), sel), tf.boolean_mask(flat(b), sel))
        return tfc.entropy_encode_finalize(handle)

    def _decode_payload(self, payload, h, w):
        import tensorflow_compression as tfc

        em, L = self.entropy, self.levels
        handle = tfc.create_range_decoder(payload, em.lookup())

        if em.context < 4:  # row by row: a row's contexts are the row above's levels
            def row(i, handle, context, rows):
                handle, values = tfc.entropy_decode_index(
                    handle, context, tf.shape(context), tf.int32)
                return i + 1, handle, em.row_context(values), rows.write(i, values)

            _, handle, _, rows = tf.while_loop(
                lambda i, *_: i < h, row,
                (0, handle, em.row_context(tf.fill([w], L + 1)), tf.TensorArray(tf.int32, size=h)))
            level = tf.reshape(rows.stack(), [h, w])
        else:  # wavefront by wavefront: each reads only earlier wavefronts' levels
            def wave(t, handle, level):
                i = tf.range(tf.maximum(0, (t - w + 2) // 2), tf.minimum(h - 1, t // 2) + 1)
                pos = tf.stack([i, t - 2 * i], 1)  # wavefront t = 2i + j, rows top to bottom
                handle, values = tfc.entropy_decode_index(
                    handle, em.level_index_at(level, pos), tf.shape(pos)[:1], tf.int32)
                return t + 1, handle, tf.tensor_scatter_nd_update(level, pos, values)

            _, handle, level = tf.while_loop(
                lambda t, *_: t < 2 * h + w - 2, wave, (0, handle, tf.zeros([h, w], tf.int32)))
        phase = em.phases(h, w)

        def channel(s, n):  # one while_loop step: channel k of stream s, phase by phase
            def step(k, handle, prev, out, mix):
                keep = level * n > k * L
                base = em.channel_context(s, k, level, tf.unstack(prev, 4))
                cur = tf.zeros([h, w], tf.int32)
                for ph in range(em.num_phases):
                    pos = tf.where(keep & tf.equal(phase, ph))
                    index = em.coder_bit_index(em.bit_index(base, ph, em.own_context(cur, ph)),
                                               mix[k] if em.mixing else None)
                    handle, values = tfc.entropy_decode_index(
                        handle, tf.gather_nd(index, pos), tf.shape(pos)[:1], tf.int32)
                    cur = tf.tensor_scatter_nd_update(cur, pos, values)
                prev = tf.concat([cur[None], prev[:3]], 0)  # channels k, k - 1, k - 2, k - 3
                if em.mixing:  # the later channels' corrections from this one
                    mix = em.mix_update(mix, s, k, cur)
                return k + 1, handle, prev, out.write(k, cur), mix
            return step

        bits = []
        for s, n in enumerate(self.code_channels):
            if not n:
                bits.append(tf.zeros([h, w, 0], tf.int32))
                continue
            # A loop, not n unrolled copies: the exported graph stays small (fast to load).
            mix = tf.zeros([n, h, w] if em.mixing else [1, 1, 1], tf.int32)  # (context 5)
            _, handle, _, out, _ = tf.while_loop(
                lambda k, *_: k < n, channel(s, n),
                (0, handle, tf.zeros([4, h, w], tf.int32), tf.TensorArray(tf.int32, size=n), mix))
            bits.append(tf.transpose(out.stack(), [1, 2, 0]))
        ok = tfc.entropy_decode_finalize(handle)
        return level, bits, ok

    def _file_to_image(self, data):
        height, width, payload = bitstream.tf_unpack(data, self.model_id)
        h = (height + DOWNSAMPLING - 1) // DOWNSAMPLING
        w = (width + DOWNSAMPLING - 1) // DOWNSAMPLING
        level, bits, ok = self._decode_payload(payload, h, w)
        check = tf.debugging.Assert(ok, ["corrupt tfycc file (range decoder failed)"])
        with tf.control_dependencies([check]):
            args = [tf.cast(b[None], tf.float32) for b in bits] + [
                tf.cast(ops.keep_mask_int(level, n, self.levels)[None], tf.float32)
                for n in self.code_channels]
            return _ycc_to_uint8(self.synthesize(*args), height, width)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    def compress(self, image):
        """uint8 [H, W, 3] RGB -> scalar string: a complete tfycc file."""
        return self._latent_to_file(image, 0.0)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                  tf.TensorSpec([], tf.float32)])
    def compress_at(self, image, rate_offset):
        """Like ``compress``, with the importance levels shifted by ``rate_offset`` (levels)."""
        return self._latent_to_file(image, rate_offset)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                  tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.int32)])
    def compress_refined(self, image, rate_offset, steps):
        """Like ``compress_at``, with ``steps`` steps of encoder-side search (``refine``):
        better files for ~``steps`` times the decoder's forward and backward pass."""
        return self._latent_to_file(image, rate_offset, steps)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                  tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.int32)])
    def compress_refined_ms_ssim(self, image, rate_offset, steps):
        """Like ``compress_refined``, the search tuned for MS-SSIM (``refine_objective``)."""
        return self._latent_to_file(image, rate_offset, steps, "ms-ssim")

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                  tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.int32)])
    def compress_refined_colour(self, image, rate_offset, steps):
        """Like ``compress_refined``, the search also keeping the colours (Cb, Cr) right."""
        return self._latent_to_file(image, rate_offset, steps, "psnr-colour")

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                  tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.int32)])
    def compress_refined_ms_ssim_colour(self, image, rate_offset, steps):
        """Like ``compress_refined_ms_ssim``, the search also keeping the colours right."""
        return self._latent_to_file(image, rate_offset, steps, "ms-ssim-colour")

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def decompress(self, data):
        """Scalar string (a tfycc file) -> uint8 [H, W, 3] RGB."""
        return self._file_to_image(data)

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def latents(self, data):
        """Decoded levels [h, w] and kept bits (luma [h, w, n_Y], colour [h, w, n_C]) of a file."""
        height, width, payload = bitstream.tf_unpack(data, self.model_id)
        h = (height + DOWNSAMPLING - 1) // DOWNSAMPLING
        w = (width + DOWNSAMPLING - 1) // DOWNSAMPLING
        level, bits, ok = self._decode_payload(payload, h, w)
        return dict(level=level, bits_y=bits[0], bits_c=bits[1], ok=ok)


def build_model(config="compact", **overrides):
    """A built TwoStreamCodec from a configuration name or dict plus overrides."""
    params = dict(CONFIGS[config]) if isinstance(config, str) else dict(config)
    params.update(overrides)
    model = TwoStreamCodec(**params)
    model(tf.zeros([1, 2 * DOWNSAMPLING, 2 * DOWNSAMPLING, 3]))
    return model


def with_context(model, context):
    """A copy of ``model`` whose entropy model uses the context set ``context``.

    The networks' weights are copied; the probability tables start from ``model``'s
    (``EntropyModel.init_from``) -- refit them with ``train.calibrate``.
    """
    new = build_model(dict(model.get_config(), context=context))
    for layer in model.layers:
        if layer is not model.entropy:
            new.get_layer(layer.name).set_weights(layer.get_weights())
    new.entropy.init_from(model.entropy)
    return new


def save_model(model, directory):
    """Write config.json and TF-format weights to ``directory`` (coder tables refreshed first)."""
    model.entropy.update_tables()
    tf.io.gfile.makedirs(directory)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(model.get_config(), f, indent=2, sort_keys=True)
    model.save_weights(os.path.join(directory, "weights"))


def load_model(directory, **overrides):
    """Rebuild a model saved by ``save_model`` (or exported: reads codec/variables).

    ``overrides`` may grow the model (more ``stage_blocks``/``fine_blocks``/``deep_blocks``)
    but never shrink it: fewer blocks would silently drop trained ones (ValueError).
    """
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    for key in ("stage_blocks", "fine_blocks", "deep_blocks"):  # (negative: the model refuses)
        have = config.get(key, 0)  # models saved before a key existed have none
        if 0 <= int(overrides.get(key, have)) < have:
            raise ValueError(f"{directory} has {key}={have}: fewer would drop trained blocks")
    config.update(overrides)
    model = build_model(config)
    path = os.path.join(directory, "weights")
    if not tf.io.gfile.exists(path + ".index"):
        path = os.path.join(directory, "codec", "variables", "variables")
    model.load_weights(path).expect_partial()
    return model
