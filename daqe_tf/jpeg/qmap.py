"""The Q-map: the quantization step that acted on each pixel's DCT frequency.

Every pixel (y, x) of a JPEG sits at frequency position (y % 8, x % 8) of its
luma block; its chroma sample sits at ((y // sv) % 8, (x // sh) % 8) of its
chroma block, (sv, sh) being the chroma subsampling. Feeding the network the
step at that position tells it both how hard the file was compressed and where
the block grid is. Steps are normalised as log2(step) / 8, so the 8-bit range
1..255 maps to 0..1 (QF 100 -> 0, QF 50 luma DC -> 0.5, QF 10 -> ~0.8).
"""
from __future__ import annotations

import numpy as np

from daqe_tf.jpeg.simulate import SUBSAMPLING_FACTORS


def normalize_steps(steps: np.ndarray) -> np.ndarray:
    """Map raw quantization steps (1..65535) to the network's scale."""
    return (np.log2(np.maximum(np.asarray(steps, dtype=np.float32), 1.0)) / 8.0).astype(np.float32)


def step_map(
    table: np.ndarray, height: int, width: int, factors: tuple[int, int] = (1, 1), origin: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """HxW raw steps of one table, for a component subsampled by ``factors`` (v, h).

    ``origin`` is the window's top-left pixel in the whole image, so a tile's
    map matches the whole image's even where a chroma block spans more than
    the tile grid (4:1:1 chroma blocks are 32 px wide).
    """
    table = np.asarray(table, dtype=np.float32).reshape(8, 8)
    sv, sh = factors
    rows = ((origin[0] + np.arange(height)) // sv) % 8
    cols = ((origin[1] + np.arange(width)) // sh) % 8
    return table[rows[:, None], cols[None, :]]


def qmap_from_tables(
    luma_table: np.ndarray,
    chroma_table: np.ndarray | None,
    height: int,
    width: int,
    subsampling: str = "4:2:0",
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """Normalised Q-map, HxWx1 for grayscale (``chroma_table`` None) or HxWx2 (luma, chroma).

    ``origin``: top-left pixel of the window in the whole image (see ``step_map``).
    """
    maps = [step_map(luma_table, height, width, origin=origin)]
    if chroma_table is not None:
        if subsampling not in SUBSAMPLING_FACTORS:
            raise ValueError(f"unsupported subsampling {subsampling!r}")
        maps.append(step_map(chroma_table, height, width, SUBSAMPLING_FACTORS[subsampling], origin))
    return normalize_steps(np.stack(maps, axis=-1))
