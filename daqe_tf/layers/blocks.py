"""Convolutional building blocks shared by every model family.

No normalisation layers: restoration nets keep absolute intensities, and a
plain residual block trains fast and exports to built-in TFLite ops only.
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
    mix with a 1x1 convolution, then refine with ``num_blocks`` residual blocks.
    Upsampling and mixing are linear; the non-linearity lives in the blocks.
    """

    def __init__(self, channels: int, num_blocks: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.num_blocks = num_blocks
        self.up = layers.Conv2DTranspose(channels, 2, strides=2, name="up")
        self.fuse = layers.Conv2D(channels, 1, name="fuse")
        self.blocks = [ResidualBlock(channels, name=f"block{i}") for i in range(num_blocks)]

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
        return {**super().get_config(), "channels": self.channels, "num_blocks": self.num_blocks}
