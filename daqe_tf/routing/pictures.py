"""Pictures of a routing for people: the predicted defocus, and each cell's exit over the image.

Both work on a ``Routing`` (``daqe_tf.routing.runtime``) in the stored orientation, cell by cell
(16 px), with the padded frame's ``offset`` cut away.
"""
from __future__ import annotations

import numpy as np

from daqe_tf.inference.tiling import to_uint8
from daqe_tf.routing.runtime import CELL, Routing

MAX_LOG_SIGMA = float(np.log1p(8.0))  # the estimator's sigma cap, in the head's log1p units


def defocus_image(routing: Routing) -> np.ndarray:
    """uint8 HxW picture of the predicted defocus: black = sharp, white = sigma 8 px or more."""
    if routing.defocus is None:
        raise ValueError("no defocus map: the head did not run (an exit was forced, or a cascade routed without defocus_map)")
    cells = to_uint8(np.clip(routing.defocus / MAX_LOG_SIGMA, 0.0, 1.0))
    return _cells_to_pixels(cells, routing)


def exit_colours(num_exits: int) -> np.ndarray:
    """uint8 RGB per exit, blue (exit 0, cheapest) through yellow to red (deepest)."""
    anchors = np.array([[40, 90, 230], [240, 210, 40], [220, 40, 40]], np.float64)
    position = np.linspace(0.0, 2.0, num_exits) if num_exits > 1 else np.array([2.0])
    low = np.minimum(position.astype(int), 1)
    frac = (position - low)[:, None]
    return np.round(anchors[low] * (1 - frac) + anchors[low + 1] * frac).astype(np.uint8)


def exit_overlay(routing: Routing, pixels: np.ndarray) -> np.ndarray:
    """uint8 HxWx3: the (gray) image half-covered by each 16-px cell's exit colour (``exit_colours``)."""
    gray = pixels.astype(np.float32) if pixels.ndim == 2 else pixels.astype(np.float32).mean(axis=2)
    colours = exit_colours(routing.num_exits)[_cells_to_pixels(routing.exit_cells(), routing)]
    return np.round(0.5 * gray[..., None] + 0.5 * colours).astype(np.uint8)


def _cells_to_pixels(cells: np.ndarray, routing: Routing) -> np.ndarray:
    """Per-cell values as pixels of the image (the padded frame's ``offset`` cut away)."""
    oy, ox = routing.offset
    return np.repeat(np.repeat(cells, CELL, axis=0), CELL, axis=1)[oy : routing.height, ox : routing.width]
