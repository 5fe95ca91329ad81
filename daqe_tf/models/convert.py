"""A colour model as a grayscale one: the same network, folded to one image and one Q-map channel.

A colour model already enhances gray content: a gray JPEG runs through it as R = G = B = Y with
the luma table standing in for the chroma table (``inference.pipeline``), and the output is the
mean of its three channels. Those inputs are linear in Y and in the luma Q-map, and the output is
linear in the exit heads, so the same computation fits in the grayscale architecture exactly:
the first convolutions sum their RGB weights (and their two Q-map weights), each Q-map projection
sums its two weights, and each exit head averages its three output filters and biases. The
result is a start for grayscale training that inherits every hour the colour model trained.
"""
from __future__ import annotations

import numpy as np

from daqe_tf.contracts import PatchModel

COLOR_INPUTS = 5  # R, G, B, luma Q-map, chroma Q-map: what a colour model's first convolutions read
GRAY_INPUTS = 2  # Y, Q-map


def _fold(path: str, color: np.ndarray, gray_shape: tuple) -> np.ndarray:
    """One colour weight in the grayscale shape (see the module docstring); ValueError if it is none of the cases."""
    if color.shape == gray_shape:
        return color
    differs = [axis for axis, (c, g) in enumerate(zip(color.shape, gray_shape)) if c != g]
    if color.ndim == len(gray_shape) and len(differs) == 1:
        axis = differs[0]
        sizes = (color.shape[axis], gray_shape[axis])
        if color.ndim == 4 and axis == 2 and sizes == (COLOR_INPUTS, GRAY_INPUTS):  # conv on [image, Q-map]
            image, qmap = np.split(color, [3], axis=2)
            return np.concatenate([image.sum(axis=2, keepdims=True), qmap.sum(axis=2, keepdims=True)], axis=2)
        if color.ndim == 4 and axis == 2 and sizes == (2, 1):  # projection of the Q-map alone
            return color.sum(axis=2, keepdims=True)
        if sizes == (3, 1) and (color.ndim == 1 or (color.ndim == 4 and axis in (2, 3))):
            # an exit head's output channels (Conv2DTranspose kernels are (k, k, out, in)), or its bias
            return color.mean(axis=axis, keepdims=True)
    raise ValueError(f"{path}: no grayscale form for a colour weight of shape {color.shape} -> {gray_shape}")


def grayscale_from_color(model):
    """The grayscale (``image_channels=1``) twin of a colour ``QGAUNet`` or ``DAQENet``, same weights folded.

    On gray content it computes what the colour model computes as the pipeline runs it (up to
    float rounding); every other setting (widths, exits, DAQE thresholds and routing) is kept.
    """
    channels = model.image_channels if isinstance(model, PatchModel) else None
    if channels != 3:
        raise ValueError(f"need a colour (image_channels=3) model, got {type(model).__name__} with "
                         f"image_channels={channels}")
    gray = type(model).from_config({**model.get_config(), "image_channels": 1})
    gray.build({"image": (None, None, None, 1), "qmap": (None, None, None, 1)})
    if [v.path for v in gray.weights] != [v.path for v in model.weights]:
        raise ValueError(f"the grayscale {type(model).__name__} does not hold the colour model's weights")
    gray.set_weights([_fold(c.path, np.asarray(c), tuple(g.shape)) for c, g in zip(model.weights, gray.weights)])
    return gray
