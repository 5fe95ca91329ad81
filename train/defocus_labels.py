"""Defocus pseudo labels for DAQE training: sigma maps per image, cell targets per crop, patch candidates.

The defocus head learns from the classical estimator run on the UNCOMPRESSED training image. The
estimator costs about a second per megapixel and every run revisits the same images, so each map
is computed once and kept in a ``DefocusLabelCache`` under the git-ignored ``data_cache/``. A crop
of an image and of its sigma map share one window and one dihedral transform, so every cell target
stays on its pixels.
"""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from daqe_tf.defocus import DefocusLabelCache
from daqe_tf.models.daqe import defocus_cell_targets

DEFAULT_CACHE_DIR = "data_cache/defocus"
CELL = 16  # pixels per defocus cell side (the DefocusHead's output grid)


def defocus_labels(
    images: list[np.ndarray],
    cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
    progress: Callable[[int, int], None] | None = None,
) -> list[np.ndarray]:
    """Pseudo-label sigma map (float16 HxW, px) of each uint8 training image, computed once and cached.

    float16 halves the memory of keeping every map next to its image (the cache stores float16 too).
    """
    cache = DefocusLabelCache(cache_dir)
    maps = []
    for i, image in enumerate(images):
        maps.append(cache.get(None, image).astype(np.float16))
        if progress is not None:
            progress(i + 1, len(images))
    return maps


def crop_with_labels(
    rng: np.random.Generator, image: np.ndarray, sigma_map: np.ndarray, y: int, x: int, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``size`` crop at (y, x) of the image and its sigma map under one random dihedral transform.

    Returns (uint8 patch, float32 (size/16, size/16, 1) cell targets: log1p of the mean sigma per cell).
    """
    from train.data import augment

    if size % CELL:
        raise ValueError(f"crop size {size} must be a multiple of the {CELL}-px defocus cell")
    patch, sigma = augment(rng, image[y : y + size, x : x + size], sigma_map[y : y + size, x : x + size])
    return patch, defocus_cell_targets(sigma.astype(np.float32), CELL)[..., None].astype(np.float32)


def candidate_table(sigma_maps: list[np.ndarray], patch_size: int) -> dict[str, np.ndarray]:
    """``patch_candidates`` of every image in one table: "image" index, "y", "x", "defocus"."""
    parts = [patch_candidates(sigma, patch_size) for sigma in sigma_maps]
    return {
        "image": np.concatenate([np.full(ys.size, i, np.int32) for i, (ys, _, _) in enumerate(parts)]),
        "y": np.concatenate([ys for ys, _, _ in parts]),
        "x": np.concatenate([xs for _, xs, _ in parts]),
        "defocus": np.concatenate([d for _, _, d in parts]),
    }


def patch_candidates(sigma_map: np.ndarray, patch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every ``patch_size`` crop on the 16-px grid of one image, with its pseudo-label patch defocus.

    Returns (ys, xs, defocus): top-left corners and the mean cell target of each crop, which is
    exactly what ``crop_with_labels`` gives that crop (crops on the grid hold whole image cells; a
    dihedral transform does not change a mean), so thresholds fitted on these values split the
    crops the sampler draws.
    """
    if patch_size % CELL:
        raise ValueError(f"patch_size {patch_size} must be a multiple of {CELL}")
    height, width = sigma_map.shape
    rows, cols = height // CELL, width // CELL
    k = patch_size // CELL
    if rows < k or cols < k:
        empty = np.zeros(0, np.int32)
        return empty, empty, np.zeros(0, np.float32)
    cells = defocus_cell_targets(np.asarray(sigma_map[: rows * CELL, : cols * CELL], np.float32), CELL)
    windows = np.lib.stride_tricks.sliding_window_view(cells.astype(np.float64), (k, k))
    defocus = windows.mean(axis=(2, 3)).astype(np.float32)
    ys, xs = np.meshgrid(np.arange(rows - k + 1) * CELL, np.arange(cols - k + 1) * CELL, indexing="ij")
    return ys.ravel().astype(np.int32), xs.ravel().astype(np.int32), defocus.ravel()
