"""Convolutional building blocks shared by every model family.

Three blocks, one contract (``Block(channels)``: same shape in and out, an identity plus a
residual), chosen by name with ``make_block``:

- ``residual``: conv3x3 -> ReLU -> conv3x3 (the original block; no normalisation).
- ``naf``: NAFNet's block (Chen et al., ECCV 2022): layer norm, 1x1, depthwise 3x3, simple gate,
  simplified channel attention, 1x1; then a gated 1x1 feed-forward. No ReLU at all.
- ``inverted``: MobileNetV2's inverted residual: 1x1 expand, ReLU, depthwise 3x3, ReLU, linear
  1x1 projection.

Per pixel at C channels: residual 18 C^2 MACs, naf 6 C^2 + 18 C, inverted (x4) 8 C^2 + 36 C; the
depthwise kind does fewer MACs per byte moved, so wall time is measured as well
(``benchmarks.block_study``). Every op exports to built-in TFLite ops.
"""
from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="daqe_tf")
class ResidualBlock(layers.Layer):
    """conv3x3 -> ReLU -> conv3x3, added to the input (channels preserved)."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.conv1 = layers.Conv2D(channels, 3, padding="same", activation="relu", name="conv1")
        self.conv2 = layers.Conv2D(channels, 3, padding="same", name="conv2")

    def build(self, input_shape):
        input_shape = tuple(input_shape)  # JSON build configs hold lists
        self.conv1.build(input_shape)
        self.conv2.build(input_shape[:-1] + (self.channels,))
        super().build(input_shape)

    def call(self, x):
        return x + self.conv2(self.conv1(x))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="daqe_tf")
class NAFBlock(layers.Layer):
    """NAFNet's block: x + beta * SCA(SimpleGate(dw3x3(1x1(LN x)))) -> y + gamma * FFN(LN y).

    SimpleGate halves the channels by multiplying the two halves; the simplified channel attention
    (SCA) scales channels by a 1x1 of their mean over the input's extent, which in DAQE is one
    routing patch, in training and inference alike. beta and gamma start at zero, so the block
    starts as the identity.
    """

    def __init__(self, channels: int, expansion: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.expansion = channels, expansion
        hidden = channels * expansion
        self.norm1 = layers.LayerNormalization(epsilon=1e-6, name="norm1")
        self.expand = layers.Conv2D(hidden, 1, name="expand")
        self.depthwise = layers.DepthwiseConv2D(3, padding="same", name="depthwise")
        self.attention = layers.Conv2D(hidden // 2, 1, name="attention")
        self.project = layers.Conv2D(channels, 1, name="project")
        self.norm2 = layers.LayerNormalization(epsilon=1e-6, name="norm2")
        self.ffn_expand = layers.Conv2D(hidden, 1, name="ffn_expand")
        self.ffn_project = layers.Conv2D(channels, 1, name="ffn_project")

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        hidden = input_shape[:-1] + (self.channels * self.expansion,)
        gated = input_shape[:-1] + (self.channels * self.expansion // 2,)
        for layer, shape in ((self.norm1, input_shape), (self.expand, input_shape), (self.depthwise, hidden),
                             (self.attention, gated), (self.project, gated), (self.norm2, input_shape),
                             (self.ffn_expand, input_shape), (self.ffn_project, gated)):
            layer.build(shape)
        self.beta = self.add_weight(name="beta", shape=(self.channels,), initializer="zeros")
        self.gamma = self.add_weight(name="gamma", shape=(self.channels,), initializer="zeros")
        super().build(input_shape)

    @staticmethod
    def _simple_gate(x):
        half = x.shape[-1] // 2
        return x[..., :half] * x[..., half:]

    def call(self, x):
        h = self._simple_gate(self.depthwise(self.expand(self.norm1(x))))
        h = h * self.attention(ops.mean(h, axis=(1, 2), keepdims=True))
        y = x + self.beta * self.project(h)
        return y + self.gamma * self.ffn_project(self._simple_gate(self.ffn_expand(self.norm2(y))))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "expansion": self.expansion}


@keras.saving.register_keras_serializable(package="daqe_tf")
class InvertedResidualBlock(layers.Layer):
    """MobileNetV2's block: x + project(ReLU(dw3x3(ReLU(expand(x))))), expanded ``expansion`` times."""

    def __init__(self, channels: int, expansion: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.expansion = channels, expansion
        self.expand = layers.Conv2D(channels * expansion, 1, activation="relu", name="expand")
        self.depthwise = layers.DepthwiseConv2D(3, padding="same", activation="relu", name="depthwise")
        self.project = layers.Conv2D(channels, 1, name="project")

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        hidden = input_shape[:-1] + (self.channels * self.expansion,)
        self.expand.build(input_shape)
        self.depthwise.build(hidden)
        self.project.build(hidden)
        super().build(input_shape)

    def call(self, x):
        return x + self.project(self.depthwise(self.expand(x)))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "expansion": self.expansion}


BLOCKS = {"residual": ResidualBlock, "naf": NAFBlock, "inverted": InvertedResidualBlock}


def make_block(kind: str, channels: int, name: str) -> layers.Layer:
    """The block called ``kind`` (a key of ``BLOCKS``) at ``channels``, with its default expansion."""
    if kind not in BLOCKS:
        raise ValueError(f"block must be one of {tuple(BLOCKS)}, got {kind!r}")
    return BLOCKS[kind](channels, name=name)


@keras.saving.register_keras_serializable(package="daqe_tf")
class Downsample(layers.Layer):
    """Halve the resolution with a learned 2x2 stride-2 convolution (a learned pixel-unshuffle).

    Linear on purpose: the trunk stays a chain of identities plus residuals, so
    no channel can die behind a ReLU (which happened with a ReLU here).
    """

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.conv = layers.Conv2D(channels, 2, strides=2, name="conv")

    def build(self, input_shape):
        self.conv.build(input_shape)
        super().build(input_shape)

    def call(self, x):
        return self.conv(x)

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="daqe_tf")
class UpsampleFuse(layers.Layer):
    """Double the resolution (2x2 stride-2 transposed conv) and fuse a skip connection.

    ``call([coarse, skip])``: upsample ``coarse`` to ``skip``'s grid, concatenate,
    mix with a 1x1 convolution, then refine with ``num_blocks`` blocks of kind ``block``.
    Upsampling and mixing are linear; the non-linearity lives in the blocks.
    """

    def __init__(self, channels: int, num_blocks: int = 1, block: str = "residual", **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.num_blocks = num_blocks
        self.block = block
        self.up = layers.Conv2DTranspose(channels, 2, strides=2, name="up")
        self.fuse = layers.Conv2D(channels, 1, name="fuse")
        self.blocks = [make_block(block, channels, name=f"block{i}") for i in range(num_blocks)]

    def build(self, input_shape):
        coarse_shape, skip_shape = (tuple(s) for s in input_shape)  # JSON build configs hold lists
        self.up.build(coarse_shape)
        self.fuse.build(skip_shape[:-1] + (self.channels + skip_shape[-1],))
        for block in self.blocks:
            block.build(skip_shape[:-1] + (self.channels,))
        super().build(input_shape)

    def call(self, inputs):
        coarse, skip = inputs
        x = self.fuse(ops.concatenate([self.up(coarse), skip], axis=-1))
        for block in self.blocks:
            x = block(x)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape[1][:-1] + (self.channels,)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "num_blocks": self.num_blocks, "block": self.block}
