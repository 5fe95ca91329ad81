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
from collections.abc import Callable, Iterator

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
    a multiple of ``align``. Neighbouring windows overlap by at least
    ``min(overlap + align, tile - align)`` px: the start spacing is at most
    ``tile - overlap - align`` (floored at ``align``), a multiple of ``align``, and
    rounding every start down to the grid cannot widen a gap beyond that.
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


def stitch(
    height: int,
    width: int,
    channels: int,
    tiles: list[Tile],
    row_results: Callable[[list[Tile]], list[np.ndarray]],
    write: Callable[[int, int, np.ndarray], None],
) -> None:
    """Blend per-tile float results with linear ramps across the overlaps, one band at a time.

    ``tiles`` is a row-major plan (``plan_tiles``). ``row_results(row)`` returns one float32
    (h, w, channels) result per tile of the row, in order; callers may batch a row's tiles any
    way they like (the DAQE runner groups them by exit). ``write(y0, y1, blended)`` receives the
    final float32 rows [y0, y1) as soon as no later tile touches them, top to bottom.
    """
    rows = _rows(tiles)
    band_top = 0
    band = None
    weight = None
    for r, row in enumerate(rows):
        row_bottom = max(t.y1 for t in row)
        if band is None:
            band = np.zeros((row_bottom - band_top, width, channels), np.float32)
            weight = np.zeros((row_bottom - band_top, width, 1), np.float32)
        elif row_bottom - band_top > band.shape[0]:
            grow = row_bottom - band_top - band.shape[0]
            band = np.concatenate([band, np.zeros((grow, width, channels), np.float32)])
            weight = np.concatenate([weight, np.zeros((grow, width, 1), np.float32)])
        next_top = rows[r + 1][0].y0 if r + 1 < len(rows) else height
        prev_bottom = max(t.y1 for t in rows[r - 1]) if r > 0 else 0
        results = row_results(row)
        for c, (t, result) in enumerate(zip(row, results)):
            result = np.asarray(result, dtype=np.float32).reshape(t.y1 - t.y0, t.x1 - t.x0, channels)
            left = row[c - 1].x1 - t.x0 if c > 0 else 0
            right = t.x1 - row[c + 1].x0 if c + 1 < len(row) else 0
            top = prev_bottom - t.y0 if r > 0 else 0
            bottom = t.y1 - next_top if r + 1 < len(rows) else 0
            w = _ramp(t.y1 - t.y0, top, bottom)[:, None, None] * _ramp(t.x1 - t.x0, left, right)[None, :, None]
            band[t.y0 - band_top : t.y1 - band_top, t.x0 : t.x1] += result * w
            weight[t.y0 - band_top : t.y1 - band_top, t.x0 : t.x1] += w
        # Rows above the next tile row's start receive no more contributions.
        final = next_top - band_top
        write(band_top, next_top, band[:final] / np.maximum(weight[:final], 1e-8))
        band, weight = band[final:], weight[final:]
        band_top = next_top


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] -> uint8 (round half to even, clipped)."""
    return np.clip(np.round(values * 255.0), 0, 255).astype(np.uint8)


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
    output = np.empty_like(image)
    done = 0

    def row_results(row: list[Tile]) -> list[np.ndarray]:
        nonlocal done
        results = []
        for t in row:
            results.append(run(image[t.y0 : t.y1, t.x0 : t.x1], t))
            done += 1
            if progress is not None:
                progress(done)
        return results

    def write(y0: int, y1: int, blended: np.ndarray) -> None:
        output[y0:y1] = to_uint8(blended).reshape(output[y0:y1].shape)

    stitch(height, width, channels, plan_tiles(height, width, tile, overlap, align), row_results, write)
    return output


def cell_owners(tiles: list[Tile], height: int, width: int, cell: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """For per-cell values computed per tile (a defocus map, an exit map): which tile row and tile
    column own each ``cell`` x ``cell`` cell of the image.

    A cell belongs to the window whose share of the axis, split at the middle of every overlap,
    holds the cell's centre; that window always covers the cell (as ``CellGrid`` on the phone).
    Returns (tile-row index per cell row, tile-column index per cell column).
    """
    rows = _rows(tiles)
    row_spans = [(row[0].y0, row[0].y1) for row in rows]
    col_spans = [(t.x0, t.x1) for t in rows[0]]
    return _owners(row_spans, height, cell), _owners(col_spans, width, cell)


def _owners(spans: list[tuple[int, int]], length: int, cell: int) -> np.ndarray:
    centres = np.arange(-(-length // cell)) * cell + cell // 2
    # Window k + 1 takes over from the middle of its overlap with window k.
    takeovers = np.array([(spans[k][1] + spans[k + 1][0]) // 2 for k in range(len(spans) - 1)], np.int64)
    return np.searchsorted(takeovers, centres, side="right").astype(np.int32)


def iter_batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
