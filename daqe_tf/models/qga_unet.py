"""The multi-exit QGA U-Net: the core JPEG enhancer.

Input: the decoded image and its Q-map. A full-resolution stem feeds an encoder
of strided stages; after each stage a quantization-guided attention gate
(``QuantizationGuidedAttention``) filters the skip connection. Like RBQE, there
are several exits: exit k decodes from a deeper bottleneck than exit k-1 with
its own decoder, so a caller trades compute for quality by picking an exit, and
every exit predicts a residual: output = image + residual.

Most compute sits at 1/2..1/16 resolution: JPEG artefacts live on the 8x8 grid,
and low-resolution convolutions buy receptive field cheaply on a CPU or phone.
"""
from __future__ import annotations

import keras
from keras import layers, ops

from daqe_tf.layers.blocks import Downsample, ResidualBlock, UpsampleFuse
from daqe_tf.layers.padding import crop_to, pad_to_multiple
from daqe_tf.layers.qga import QuantizationGuidedAttention


@keras.saving.register_keras_serializable(package="daqe_tf")
class QGAUNet(keras.Model):
    """Multi-exit U-Net with quantization-guided attention on every skip.

    Args:
        image_channels: 1 (grayscale) or 3 (RGB).
        widths: channels per level; ``widths[0]`` is full resolution, level l
            runs at 1/2**l.
        encoder_blocks: residual blocks per encoder level 1..L (len(widths) - 1).
        decoder_blocks: residual blocks per decoder level 1..L-1 (same for every exit).
        num_exits: exits; exit k (0-based) has its bottleneck at level
            L - num_exits + 1 + k, so the last exit is the deepest.
        stem_stride: 1 = level 0 at full resolution (3x3 stem, 3x3 heads);
            2 = no full-resolution layers at all: a 2x2 stride-2 stem (a learned
            pixel-unshuffle) and 2x2 stride-2 transposed-conv heads. Level l
            then runs at 1/2**(l+1); about 2x faster per pixel on a CPU.

    ``call({"image", "qmap"}, exit_index=None)``: image in [0, 1] (B, H, W, C),
    Q-map (B, H, W, 1 or 2) from ``daqe_tf.jpeg.qmap``. Any H, W of at least
    ``stride / 2`` (8 px for stride 16: symmetric padding reaches stride). Returns the
    list of all exits' outputs, or one exit's output when ``exit_index`` is given
    (only that exit's layers run).
    """

    def __init__(
        self,
        image_channels: int = 3,
        widths=(16, 32, 64, 96, 128),
        encoder_blocks=(1, 1, 1, 2),
        decoder_blocks=(1, 1, 1),
        num_exits: int = 3,
        stem_stride: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        widths, encoder_blocks, decoder_blocks = tuple(widths), tuple(encoder_blocks), tuple(decoder_blocks)
        levels = len(widths) - 1
        if len(encoder_blocks) != levels or len(decoder_blocks) != levels - 1:
            raise ValueError("need len(encoder_blocks) == len(widths) - 1 == len(decoder_blocks) + 1")
        if not 1 <= num_exits <= levels:
            raise ValueError(f"num_exits must be in 1..{levels}")
        if image_channels not in (1, 3):
            raise ValueError(f"image_channels must be 1 (grayscale) or 3 (RGB), got {image_channels}")
        self.image_channels = image_channels
        self.qmap_channels = 1 if image_channels == 1 else 2
        self.widths, self.encoder_blocks, self.decoder_blocks = widths, encoder_blocks, decoder_blocks
        if stem_stride not in (1, 2):
            raise ValueError("stem_stride must be 1 or 2")
        self.num_exits = num_exits
        self.levels = levels
        self.stem_stride = stem_stride

        if stem_stride == 1:
            self.stem = layers.Conv2D(widths[0], 3, padding="same", name="stem")
        else:
            self.stem = layers.Conv2D(widths[0], 2, strides=2, name="stem")
        self.down = [Downsample(widths[l], name=f"down{l}") for l in range(1, levels + 1)]
        self.encoder = [
            [ResidualBlock(widths[l], name=f"enc{l}_{i}") for i in range(encoder_blocks[l - 1])]
            for l in range(1, levels + 1)
        ]
        # One gate per skip level (0..L-1); the bottleneck itself is not a skip.
        self.gates = [QuantizationGuidedAttention(widths[l], stem_stride * 2**l, name=f"qga{l}") for l in range(levels)]
        self.decoders = []
        self.heads = []
        for k in range(num_exits):
            bottom = self.exit_bottom(k)
            stages = [
                UpsampleFuse(widths[l], decoder_blocks[l - 1] if l > 0 else 0, name=f"exit{k}_dec{l}")
                for l in range(bottom - 1, -1, -1)
            ]
            self.decoders.append(stages)
            if stem_stride == 1:
                head = layers.Conv2D(image_channels, 3, padding="same", kernel_initializer="zeros", name=f"exit{k}_head")
            else:
                head = layers.Conv2DTranspose(image_channels, 2, strides=2, kernel_initializer="zeros", name=f"exit{k}_head")
            # Zero residual at start: every exit begins as the identity (the JPEG itself).
            self.heads.append(head)

    def exit_bottom(self, exit_index: int) -> int:
        """The encoder level whose features start exit ``exit_index``'s decoder."""
        return self.levels - self.num_exits + 1 + exit_index

    @property
    def stride(self) -> int:
        """Input sizes are padded internally to a multiple of this."""
        return self.stem_stride * 2**self.levels

    def build(self, input_shape):
        if isinstance(input_shape, dict):
            image_shape, qmap_shape = input_shape["image"], input_shape["qmap"]
        else:
            image_shape, qmap_shape = input_shape
        batch = image_shape[0]
        shape = lambda level, c: (batch, None, None, c)  # noqa: E731
        self.stem.build(shape(0, self.image_channels + self.qmap_channels))
        for l in range(1, self.levels + 1):
            self.down[l - 1].build(shape(l - 1, self.widths[l - 1]))
            for block in self.encoder[l - 1]:
                block.build(shape(l, self.widths[l]))
        for l, gate in enumerate(self.gates):
            gate.build([shape(l, self.widths[l]), (batch, None, None, self.qmap_channels)])
        for k in range(self.num_exits):
            coarse = self.widths[self.exit_bottom(k)]
            for stage in self.decoders[k]:
                stage.build([shape(0, coarse), shape(0, stage.channels)])
                coarse = stage.channels
            self.heads[k].build(shape(0, self.widths[0]))
        self.built = True

    def _split(self, inputs):
        if isinstance(inputs, dict):
            return inputs["image"], inputs["qmap"]
        return inputs[0], inputs[1]

    def call(self, inputs, exit_index=None):
        image, qmap = self._split(inputs)
        height, width = ops.shape(image)[1], ops.shape(image)[2]
        image_p = pad_to_multiple(image, self.stride)
        qmap_p = pad_to_multiple(qmap, self.stride)

        if exit_index is not None and not -self.num_exits <= exit_index < self.num_exits:
            raise ValueError(f"exit_index {exit_index} out of range for {self.num_exits} exits")
        deepest = self.num_exits - 1 if exit_index is None else exit_index % self.num_exits
        features = [self.stem(ops.concatenate([image_p, qmap_p], axis=-1))]
        for l in range(1, self.exit_bottom(deepest) + 1):
            x = self.down[l - 1](features[-1])
            for block in self.encoder[l - 1]:
                x = block(x)
            features.append(x)
        skips = [gate([features[l], qmap_p]) for l, gate in enumerate(self.gates) if l < len(features) - 1]

        exits = range(self.num_exits) if exit_index is None else [deepest]
        outputs = []
        for k in exits:
            x = features[self.exit_bottom(k)]
            for stage, level in zip(self.decoders[k], range(self.exit_bottom(k) - 1, -1, -1)):
                x = stage([x, skips[level]])
            residual = self.heads[k](x)
            outputs.append(crop_to(image_p + residual, height, width))
        return outputs if exit_index is None else outputs[0]

    def get_config(self):
        return {
            **super().get_config(),
            "image_channels": self.image_channels,
            "widths": list(self.widths),
            "encoder_blocks": list(self.encoder_blocks),
            "decoder_blocks": list(self.decoder_blocks),
            "num_exits": self.num_exits,
            "stem_stride": self.stem_stride,
        }
