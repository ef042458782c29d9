"""Convolutional building blocks of the two streams: ResNet blocks, long skips,
encoders, decoders (with the fusion inputs) and the importance-map subnetwork.

All spatial sizes below are for an input of H x W pixels; the latent grid is
H/8 x W/8 (three stride-2 stages).  Layers follow the global mixed-precision
policy, except the heads that produce codes and importance (float32), so that
binarization and level quantization never see bfloat16 rounding.
"""
import tensorflow as tf

__all__ = [
    "ResBlock",
    "ResidualStack",
    "StreamEncoder",
    "StreamDecoder",
    "ImportanceNet",
    "leaky_sigmoid",
    "DOWNSAMPLING",
]

DOWNSAMPLING = 8
_ser = tf.keras.utils.register_keras_serializable(package="tfycc")


def _conv(filters, kernel=3, strides=1, **kwargs):
    return tf.keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", **kwargs)


def _small_conv(filters):
    """A 3x3 conv closing a residual branch: initialised ~7x smaller than Glorot, so every
    branch starts near zero and the stack near identity (stable without normalisation)."""
    return _conv(filters, kernel_initializer=tf.keras.initializers.VarianceScaling(
        0.02, "fan_avg", "uniform"))


@_ser
class ResBlock(tf.keras.layers.Layer):
    """conv3x3 - ReLU - conv3x3 plus identity: [B, h, w, C] -> [B, h, w, C].

    ``identity=True`` zero-initialises the second conv: the block starts as the exact
    identity (used for blocks added to a trained model, which then computes the same).
    """

    def __init__(self, filters, identity=False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.identity = filters, identity
        self.conv1 = _conv(filters, activation="relu")
        self.conv2 = _conv(filters, kernel_initializer="zeros") if identity else _small_conv(filters)

    def call(self, x):
        return x + self.conv2(self.conv1(x))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "identity": self.identity}


@_ser
class ResidualStack(tf.keras.layers.Layer):
    """``num_blocks`` ResNet blocks with ``num_groups + 1`` long skip connections.

    The blocks are split into ``num_groups`` equal groups; each group (its blocks then
    a 3x3 conv) is wrapped in a long skip, x + conv(blocks(x)), and one more skip spans
    the whole stack, x + conv(groups(x)) (residual-in-residual, as in EDSR/RCAN).  The
    ``paper`` configuration uses 16 blocks in 4 groups of 4: skips around blocks 1-4,
    5-8, 9-12, 13-16 and around all 16, i.e. 5 long skips.
    """

    def __init__(self, filters, num_blocks, num_groups, **kwargs):
        super().__init__(**kwargs)
        if num_blocks % num_groups:
            raise ValueError(f"num_blocks={num_blocks} is not a multiple of num_groups={num_groups}")
        self.filters, self.num_blocks, self.num_groups = filters, num_blocks, num_groups
        per = num_blocks // num_groups
        self.groups = [[ResBlock(filters) for _ in range(per)] for _ in range(num_groups)]
        self.group_tails = [_small_conv(filters) for _ in range(num_groups)]
        self.tail = _small_conv(filters)

    @property
    def num_long_skips(self):
        return self.num_groups + 1

    def call(self, x):
        outer = x
        for group, tail in zip(self.groups, self.group_tails):
            inner = x
            for block in group:
                x = block(x)
            x = inner + tail(x)
        return outer + self.tail(x)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "num_blocks": self.num_blocks, "num_groups": self.num_groups}


@_ser
class StreamEncoder(tf.keras.layers.Layer):
    """Image stream [B, H, W, c] -> (features [B, H/8, W/8, F], code [B, H/8, W/8, n] in (0, 1)).

    Three stride-2 convolutions (F/4, F/2, F channels), ``stage_blocks`` ResNet blocks
    after the second (at 1/4 resolution), an optional fusion input
    (features of another stream at 1/8 resolution, concatenated then mixed by a 1x1
    conv), a ``ResidualStack``, ``deep_blocks`` more ResNet blocks of F channels (at 1/8
    resolution: encoder capacity that the decoder does not pay for) and a float32 1x1
    conv + sigmoid head for the code.
    """

    def __init__(self, filters, code_channels, num_blocks, num_groups, fuse=False,
                 stage_blocks=0, deep_blocks=0, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.code_channels = filters, code_channels
        self.num_blocks, self.num_groups, self.fuse = num_blocks, num_groups, fuse
        self.down = [
            _conv(max(filters // 4, 8), 5, 2, activation="relu"),
            _conv(max(filters // 2, 8), 3, 2, activation="relu"),
            _conv(filters, 3, 2),
        ]
        # Checkpoints match variables by attribute path, so a model saved without these
        # blocks loads into one with them (which then starts as the exact identity).
        self.stages = _stage_blocks(stage_blocks, self.down[1].filters)
        self.fuse_conv = _conv(filters, 1) if fuse else None
        self.stack = ResidualStack(filters, num_blocks, num_groups)
        self.deep = _stage_blocks(deep_blocks, filters)
        self.head = _conv(code_channels, 1, activation="sigmoid", dtype="float32")

    def call(self, x, side=None):
        x = self.down[1](self.down[0](x))
        for block in self.stages:  # at 1/4 resolution
            x = block(x)
        x = self.down[2](x)
        if self.fuse:
            x = self.fuse_conv(tf.concat([x, tf.cast(side, x.dtype)], -1))
        features = self.stack(x)
        for block in self.deep:  # at 1/8 resolution
            features = block(features)
        return features, self.head(features)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "code_channels": self.code_channels,
                "num_blocks": self.num_blocks, "num_groups": self.num_groups, "fuse": self.fuse,
                "stage_blocks": len(self.stages), "deep_blocks": len(self.deep)}


@_ser
class StreamDecoder(tf.keras.layers.Layer):
    """Bits [B, h, w, n] -> (image [B, 8h, 8w, c] float32, features at 1/8, 1/4, 1/2, 1).

    With ``fuse=True`` the call takes the feature list of another decoder (the
    luma decoder) and concatenates it at every resolution: the colour stream then
    reuses luma structure (edges, textures) and needs fewer code channels.
    ``stage_blocks`` ResNet blocks follow the first upsampling (at 1/4 resolution),
    ``fine_blocks`` the second (at 1/2 resolution, where detail is drawn).
    """

    def __init__(self, filters, out_channels, num_blocks, num_groups, fuse=False,
                 stage_blocks=0, fine_blocks=0, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.out_channels = filters, out_channels
        self.num_blocks, self.num_groups, self.fuse = num_blocks, num_groups, fuse
        widths = [filters, max(filters // 2, 8), max(filters // 4, 8)]
        self.conv_in = _conv(filters)
        self.stack = ResidualStack(filters, num_blocks, num_groups)
        self.up = [_conv(4 * w) for w in widths]
        self.conv_out = _conv(out_channels, dtype="float32")
        self.stages = _stage_blocks(stage_blocks, widths[0])
        self.fine = _stage_blocks(fine_blocks, widths[1])

    def call(self, bits, side=None):
        def join(x, i):
            return tf.concat([x, tf.cast(side[i], x.dtype)], -1) if self.fuse else x

        x = tf.cast(bits, self.compute_dtype)
        features = [self.stack(self.conv_in(join(x, 0)))]
        x = features[0]
        for i, conv in enumerate(self.up):
            x = tf.nn.relu(tf.nn.depth_to_space(conv(join(x, i) if i else x), 2))
            for block in (self.stages, self.fine, [])[i]:  # at 1/4, 1/2, full resolution
                x = block(x)
            features.append(x)
        return self.conv_out(join(x, 3)), features

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "out_channels": self.out_channels,
                "num_blocks": self.num_blocks, "num_groups": self.num_groups, "fuse": self.fuse,
                "stage_blocks": len(self.stages), "fine_blocks": len(self.fine)}


def _stage_blocks(count, width):
    """``count`` identity-initialised ResBlocks (none when count is 0: no variables, so
    such models keep the checkpoints they always had)."""
    return [ResBlock(width, identity=True) for _ in range(count)]


@tf.custom_gradient
def leaky_sigmoid(z):
    """sigmoid(z) forward; backward derivative max(sigmoid'(z), 0.02) (never vanishes)."""
    p = tf.sigmoid(z)

    def grad(dp):
        return dp * tf.maximum(p * (1.0 - p), 0.02)

    return p, grad


@_ser
class ImportanceNet(tf.keras.layers.Layer):
    """Encoder features [B, h, w, C] -> importance map p [B, h, w, 1], float32 in (0, 1).

    The head's bias starts at -1.5 (p ~ 0.18, level ~3 of 16), near the operating
    rate, and the sigmoid's gradient never falls below 0.02 (``leaky_sigmoid``): a
    saturated map can still rise again (seen: a plain sigmoid map pushed to level 0
    by the early rate term stayed there for good).
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv = _conv(filters, activation="relu")
        self.head = _conv(1, 1, dtype="float32",
                          bias_initializer=tf.keras.initializers.Constant(-1.5))

    def call(self, x):
        return leaky_sigmoid(self.head(self.conv(x)))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}
