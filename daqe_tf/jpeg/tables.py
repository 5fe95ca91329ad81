"""Standard JPEG quantization tables, quality scaling and quality estimation.

The tables are the IJG/libjpeg ones (JPEG standard Annex K) in natural
(row-major) order, which is also the order Pillow uses for ``quantization`` and
``qtables``. ``scale_table`` is bit-exact with ``jpeg_set_quality(..., TRUE)``,
which is what Pillow calls for ``quality=QF``.
"""
from __future__ import annotations

import numpy as np

STD_LUMA_TABLE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.uint16,
)

STD_CHROMA_TABLE = np.array(
    [
        [17, 18, 24, 47, 99, 99, 99, 99],
        [18, 21, 26, 66, 99, 99, 99, 99],
        [24, 26, 56, 99, 99, 99, 99, 99],
        [47, 66, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
        [99, 99, 99, 99, 99, 99, 99, 99],
    ],
    dtype=np.uint16,
)


def quality_scaling(quality: int) -> int:
    """libjpeg's ``jpeg_quality_scaling``: percentage applied to the base tables."""
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    quality = int(quality)
    return 5000 // quality if quality < 50 else 200 - 2 * quality


def scale_table(base: np.ndarray, quality: int, force_baseline: bool = True) -> np.ndarray:
    """Scale a base table to ``quality`` exactly as libjpeg does (integer arithmetic)."""
    scale = quality_scaling(quality)
    table = (np.asarray(base, dtype=np.int64) * scale + 50) // 100
    table = np.clip(table, 1, 255 if force_baseline else 32767)
    return table.astype(np.uint16)


def tables_for_quality(quality: int, grayscale: bool = False) -> list[np.ndarray]:
    """The tables libjpeg (and Pillow) writes for ``quality``: [luma] or [luma, chroma]."""
    tables = [scale_table(STD_LUMA_TABLE, quality)]
    if not grayscale:
        tables.append(scale_table(STD_CHROMA_TABLE, quality))
    return tables


# Precomputed standard tables for every quality, used by the estimator.
_ALL_LUMA = np.stack([scale_table(STD_LUMA_TABLE, q) for q in range(1, 101)]).astype(np.float64)
_ALL_CHROMA = np.stack([scale_table(STD_CHROMA_TABLE, q) for q in range(1, 101)]).astype(np.float64)


def estimate_quality(luma_table: np.ndarray, chroma_table: np.ndarray | None = None) -> tuple[int, bool]:
    """Estimate the IJG quality factor of a file's tables.

    Returns ``(quality, exact)``: ``exact`` is True when the tables are exactly
    the standard ones for that quality; otherwise ``quality`` is the nearest
    standard quality in log-step distance (a sensible match for custom tables
    from cameras and other encoders).
    """
    luma = np.asarray(luma_table, dtype=np.float64).reshape(1, 8, 8)
    err = np.abs(np.log(_ALL_LUMA) - np.log(np.maximum(luma, 1))).mean(axis=(1, 2))
    exact = np.all(_ALL_LUMA == luma, axis=(1, 2))
    if chroma_table is not None:
        chroma = np.asarray(chroma_table, dtype=np.float64).reshape(1, 8, 8)
        err = err + np.abs(np.log(_ALL_CHROMA) - np.log(np.maximum(chroma, 1))).mean(axis=(1, 2))
        exact &= np.all(_ALL_CHROMA == chroma, axis=(1, 2))
    if exact.any():
        # Several qualities can share tables (e.g. near QF 1 where all steps clip
        # at 255); report the highest, which is what a user most likely chose.
        return int(np.flatnonzero(exact)[-1] + 1), True
    return int(np.argmin(err) + 1), False
