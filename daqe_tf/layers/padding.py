"""Pad to a multiple of the network's total stride, and crop back.

Padding goes at the bottom and right only, so the JPEG 8x8 block grid (which
starts at the top-left pixel) stays aligned. The amounts depend on the input
size, so a reshape restores the static channel count that ``ops.pad`` loses
(otherwise the next convolution becomes a Flex op in TFLite). Symmetric
padding mirrors at most the whole side, so sides must be >= multiple / 2.
"""
from __future__ import annotations

from keras import ops


def pad_to_multiple(x, multiple: int):
    """Symmetric-pad NHWC ``x`` at bottom/right so H and W are multiples of ``multiple``."""
    if multiple == 1:
        return x
    channels = x.shape[-1]
    height, width = ops.shape(x)[1], ops.shape(x)[2]
    pad_h = (multiple - height % multiple) % multiple
    pad_w = (multiple - width % multiple) % multiple
    x = ops.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="symmetric")
    return ops.reshape(x, (-1, height + pad_h, width + pad_w, channels))


def crop_to(x, height, width):
    """Top-left ``height`` x ``width`` window of NHWC ``x`` (undoes ``pad_to_multiple``)."""
    channels = x.shape[-1]
    x = ops.slice(x, [0, 0, 0, 0], [ops.shape(x)[0], height, width, channels])
    return ops.reshape(x, (-1, height, width, channels))
