"""Overlapping tiles aligned to the JPEG grid, blended without seams.

One routine serves every runtime (Keras, LiteRT): ``plan_tiles`` decides the
windows, ``enhance_tiled`` runs a callable on each window and blends the
results with linear ramps across the overlaps. Windows start on multiples of
``align`` (16 = one 4:2:0 MCU), so every tile sees the block grid and Q-map
exactly as the whole image does. Rows of tiles are blended in a band buffer
and flushed to the uint8 output as soon as they are final, so peak memory is
the input, the output and one band, whatever the image size.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

import numpy as np


@dataclasses.dataclass(frozen=True)
class Tile:
    """A window [y0, y1) x [x0, x1) of the image."""

    y0: int
    x0: int
    y1: int
    x1: int


def _starts(length: int, tile: int, overlap: int, align: int) -> list[int]:
    """Evenly spread window starts along one axis, on multiples of ``align``.

    Consecutive windows overlap by at least ``overlap``: the spacing before
    rounding is at most ``tile - overlap - align``, and rounding to the grid
    adds less than ``align``.
    """
    if length <= tile:
        return [0]
    step = max(tile - overlap - align, align)
    count = -(-(length - tile) // step) + 1
    last = -(-(length - tile) // align) * align  # aligned start whose window reaches the end
    starts = [int(i * last / (count - 1)) // align * align for i in range(count)]
    starts[-1] = last
    return sorted(set(starts))


def plan_tiles(height: int, width: int, tile: int = 512, overlap: int = 32, align: int = 16) -> list[Tile]:
    """Row-major grid of windows covering the image.

    ``tile`` and ``overlap`` must be multiples of ``align`` with overlap < tile.
    The last window of a row/column may be smaller when the image side is not
    a multiple of ``align``.
    """
    if tile % align or overlap % align or not 0 <= overlap < tile:
        raise ValueError(f"tile ({tile}) and overlap ({overlap}) must be multiples of {align}, overlap < tile")
    rows = _starts(height, tile, overlap, align)
    cols = _starts(width, tile, overlap, align)
    return [Tile(y, x, min(y + tile, height), min(x + tile, width)) for y in rows for x in cols]


def _ramp(length: int, start_overlap: int, end_overlap: int) -> np.ndarray:
    """1-D blend weights: linear ramps over the overlaps, 1 inside."""
    w = np.ones(length, dtype=np.float32)
    if start_overlap > 0:
        w[:start_overlap] = (np.arange(start_overlap, dtype=np.float32) + 0.5) / start_overlap
    if end_overlap > 0:
        w[length - end_overlap :] = np.minimum(w[length - end_overlap :], ((np.arange(end_overlap, dtype=np.float32) + 0.5) / end_overlap)[::-1])
    return w


def _rows(tiles: list[Tile]) -> list[list[Tile]]:
    rows: dict[int, list[Tile]] = {}
    for t in tiles:
        rows.setdefault(t.y0, []).append(t)
    return [rows[y] for y in sorted(rows)]


def enhance_tiled(
    image: np.ndarray,
    run: Callable[[np.ndarray, Tile], np.ndarray],
    tile: int = 512,
    overlap: int = 32,
    align: int = 16,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Apply ``run(window_uint8, tile) -> float32 window in [0, 1]`` over tiles and blend.

    ``image`` is uint8 HxW or HxWxC; returns uint8 of the same shape.
    ``progress(n)`` is called after each tile with the number of tiles done.
    """
    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    tiles = plan_tiles(height, width, tile, overlap, align)
    output = np.empty_like(image)
    rows = _rows(tiles)
    band_top = 0
    band = None
    weight = None
    done = 0
    for r, row in enumerate(rows):
        row_top, row_bottom = row[0].y0, max(t.y1 for t in row)
        if band is None:
            band = np.zeros((row_bottom - band_top, width, channels), np.float32)
            weight = np.zeros((row_bottom - band_top, width, 1), np.float32)
        elif row_bottom - band_top > band.shape[0]:
            grow = row_bottom - band_top - band.shape[0]
            band = np.concatenate([band, np.zeros((grow, width, channels), np.float32)])
            weight = np.concatenate([weight, np.zeros((grow, width, 1), np.float32)])
        next_top = rows[r + 1][0].y0 if r + 1 < len(rows) else height
        prev_bottom = max(t.y1 for t in rows[r - 1]) if r > 0 else 0
        for c, t in enumerate(row):
            window = image[t.y0 : t.y1, t.x0 : t.x1]
            result = np.asarray(run(window, t), dtype=np.float32).reshape(t.y1 - t.y0, t.x1 - t.x0, channels)
            left = row[c - 1].x1 - t.x0 if c > 0 else 0
            right = t.x1 - row[c + 1].x0 if c + 1 < len(row) else 0
            top = prev_bottom - t.y0 if r > 0 else 0
            bottom = t.y1 - next_top if r + 1 < len(rows) else 0
            w = _ramp(t.y1 - t.y0, top, bottom)[:, None, None] * _ramp(t.x1 - t.x0, left, right)[None, :, None]
            band[t.y0 - band_top : t.y1 - band_top, t.x0 : t.x1] += result * w
            weight[t.y0 - band_top : t.y1 - band_top, t.x0 : t.x1] += w
            done += 1
            if progress is not None:
                progress(done)
        # Rows above the next tile row's start receive no more contributions.
        final = next_top - band_top
        blended = band[:final] / np.maximum(weight[:final], 1e-8)
        pixels = np.clip(np.round(blended * 255.0), 0, 255).astype(np.uint8)
        output[band_top:next_top] = pixels.reshape(output[band_top:next_top].shape)
        band, weight = band[final:], weight[final:]
        band_top = next_top
    return output


def iter_batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
