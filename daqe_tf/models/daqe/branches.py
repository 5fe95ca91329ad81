"""One progressive branch of DAQENet: a two-level QGA U-Net at 1/scale of the input.

Each branch embeds the image itself with a linear ``scale`` x ``scale`` stride-``scale`` stem
(a learned pixel-unshuffle, as cheap as a shared pyramid but without its chained bottleneck),
fuses the upsampled features of the coarser branch ("context"), and gates its skip with the
Q-map pooled to its own resolution, so compression strength guides every branch.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from daqe_tf.layers.blocks import Downsample, UpsampleFuse, make_block
from daqe_tf.layers.qga import QuantizationGuidedAttention


@keras.saving.register_keras_serializable(package="daqe_tf")
class DAQEBranch(layers.Layer):
    """``call([image, qmap])`` (first branch) or ``call([image, qmap, context])`` -> (B, H/scale, W/scale, width).

    Image and Q-map at full resolution with H, W multiples of ``2 * scale``; ``context`` is the
    previous branch's output at half this branch's resolution.

    Args:
        width: channels at the branch's resolution (1/scale).
        bottleneck_width: channels at 1/(2 * scale).
        scale: input pixels per branch pixel side.
        takes_context: whether a coarser branch feeds this one.
        encoder_blocks, bottleneck_blocks, decoder_blocks: blocks after the stem (and
            context fuse), at the bottleneck, and after the decoder's skip fuse.
        block: their kind (``daqe_tf.layers.blocks.BLOCKS``).
    """

    def __init__(
        self,
        width: int,
        bottleneck_width: int,
        scale: int,
        takes_context: bool = False,
        encoder_blocks: int = 1,
        bottleneck_blocks: int = 1,
        decoder_blocks: int = 1,
        block: str = "residual",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.width, self.bottleneck_width, self.scale = width, bottleneck_width, scale
        self.takes_context = takes_context
        self.encoder_blocks, self.bottleneck_blocks, self.decoder_blocks = encoder_blocks, bottleneck_blocks, decoder_blocks
        self.block = block
        self.stem = layers.Conv2D(width, scale, strides=scale, name="stem")
        self.context = UpsampleFuse(width, 0, name="context") if takes_context else None
        self.encoder = [make_block(block, width, name=f"enc_{i}") for i in range(encoder_blocks)]
        self.gate = QuantizationGuidedAttention(width, scale, name="qga")
        self.down = Downsample(bottleneck_width, name="down")
        self.bottleneck = [make_block(block, bottleneck_width, name=f"mid_{i}") for i in range(bottleneck_blocks)]
        self.decoder = UpsampleFuse(width, decoder_blocks, block, name="decoder")

    def _check_arity(self, inputs):
        if len(inputs) != (3 if self.takes_context else 2):
            expected = "[image, qmap, context]" if self.takes_context else "[image, qmap]"
            raise ValueError(f"{self.name} takes {expected}, got {len(inputs)} inputs")

    def build(self, input_shape):
        self._check_arity(input_shape)
        image_shape, qmap_shape = tuple(input_shape[0]), tuple(input_shape[1])
        batch = image_shape[0]
        features = (batch, None, None, self.width)
        bottleneck = (batch, None, None, self.bottleneck_width)
        self.stem.build((batch, None, None, image_shape[-1] + qmap_shape[-1]))
        if self.context is not None:
            self.context.build([tuple(input_shape[2]), features])
        for block in self.encoder:
            block.build(features)
        self.gate.build([features, qmap_shape])
        self.down.build(features)
        for block in self.bottleneck:
            block.build(bottleneck)
        self.decoder.build([bottleneck, features])
        super().build(input_shape)

    def call(self, inputs):
        self._check_arity(inputs)
        image, qmap = inputs[0], inputs[1]
        x = self.stem(ops.concatenate([image, qmap], axis=-1))
        if self.context is not None:
            x = self.context([inputs[2], x])
        for block in self.encoder:
            x = block(x)
        y = self.down(x)
        for block in self.bottleneck:
            y = block(y)
        return self.decoder([y, self.gate([x, qmap])])

    def compute_output_shape(self, input_shape):
        image_shape = input_shape[0]
        side = lambda s: None if s is None else s // self.scale  # noqa: E731
        return (image_shape[0], side(image_shape[1]), side(image_shape[2]), self.width)

    def get_config(self):
        return {
            **super().get_config(),
            "width": self.width,
            "bottleneck_width": self.bottleneck_width,
            "scale": self.scale,
            "takes_context": self.takes_context,
            "encoder_blocks": self.encoder_blocks,
            "bottleneck_blocks": self.bottleneck_blocks,
            "decoder_blocks": self.decoder_blocks,
            "block": self.block,
        }
