"""DENet: a defocus map predicted from the compressed image, one value per 16x16 cell.

Routing a patch to an exit must not cost more than the exit saves, so the head is a strided
encoder (a few hundred MACs per pixel per level) that only ever sees the JPEG and its Q-map;
it learns from pseudo labels of the classical estimator run on the uncompressed image.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from daqe_tf.layers.blocks import Downsample, ResidualBlock
from daqe_tf.layers.padding import pad_to_multiple


def defocus_cell_targets(sigma_map: np.ndarray, cell_size: int = 16) -> np.ndarray:
    """Training target of ``DefocusHead``: log1p of the mean blur sigma (px) per cell.

    ``sigma_map`` (H, W) comes from ``daqe_tf.defocus.estimate_defocus_map``. It is padded
    like the head pads its input (symmetric, bottom/right), giving (ceil(H/c), ceil(W/c)).
    """
    sigma_map = np.asarray(sigma_map, np.float32)
    height, width = sigma_map.shape
    rows, cols = -(-height // cell_size), -(-width // cell_size)
    padded = np.pad(sigma_map, [(0, rows * cell_size - height), (0, cols * cell_size - width)], mode="symmetric")
    return np.log1p(padded.reshape(rows, cell_size, cols, cell_size).mean(axis=(1, 3)))


@keras.saving.register_keras_serializable(package="daqe_tf")
class DefocusHead(layers.Layer):
    """``call({"image", "qmap"})`` -> predicted log1p(blur sigma) per cell, (B, ceil(H/c), ceil(W/c), 1).

    Level l (0-based) runs at 1/2**(l+1) with ``widths[l]`` channels and ``blocks[l]`` residual
    blocks; the cell size is c = 2**len(widths) (16 by default). The stem (2x2 stride 2) and
    the downsamplings are linear, the non-linearity lives in the residual blocks.
    """

    def __init__(self, widths=(16, 24, 32, 48), blocks=(1, 1, 1, 1), **kwargs):
        super().__init__(**kwargs)
        widths, blocks = tuple(widths), tuple(blocks)
        if not widths or len(blocks) != len(widths):
            raise ValueError("need len(blocks) == len(widths) >= 1")
        self.widths, self.blocks = widths, blocks
        self.stem = layers.Conv2D(widths[0], 2, strides=2, name="stem")
        self.down = [Downsample(widths[l], name=f"down{l}") for l in range(1, len(widths))]
        self.levels = [
            [ResidualBlock(widths[l], name=f"level{l}_{i}") for i in range(blocks[l])] for l in range(len(widths))
        ]
        self.head = layers.Conv2D(1, 1, name="head")

    @property
    def cell_size(self) -> int:
        """Input pixels per output cell side."""
        return 2 ** len(self.widths)

    def build(self, input_shape):
        image_shape, qmap_shape = _split(input_shape)
        batch = image_shape[0]
        self.stem.build((batch, None, None, image_shape[-1] + qmap_shape[-1]))
        for l, width in enumerate(self.widths):
            if l > 0:
                self.down[l - 1].build((batch, None, None, self.widths[l - 1]))
            for block in self.levels[l]:
                block.build((batch, None, None, width))
        self.head.build((batch, None, None, self.widths[-1]))
        super().build(input_shape)

    def features(self, inputs):
        """The last level's features, one ``widths[-1]`` vector per cell: what the 1x1 head reads."""
        image, qmap = _split(inputs)
        x = self.stem(pad_to_multiple(ops.concatenate([image, qmap], axis=-1), self.cell_size))
        for l, blocks in enumerate(self.levels):
            if l > 0:
                x = self.down[l - 1](x)
            for block in blocks:
                x = block(x)
        return x

    def call(self, inputs):
        return self.head(self.features(inputs))

    def compute_output_shape(self, input_shape):
        image_shape, _ = _split(input_shape)
        cells = lambda side: None if side is None else -(-side // self.cell_size)  # noqa: E731
        return (image_shape[0], cells(image_shape[1]), cells(image_shape[2]), 1)

    def get_config(self):
        return {**super().get_config(), "widths": list(self.widths), "blocks": list(self.blocks)}


def _split(inputs):
    """(image, qmap) from a {"image", "qmap"} dict or an [image, qmap] pair (values or shapes)."""
    if isinstance(inputs, dict):
        return inputs["image"], inputs["qmap"]
    return inputs[0], inputs[1]
