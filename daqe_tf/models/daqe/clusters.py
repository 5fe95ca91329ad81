"""Defocus clusters: which exit each patch leaves through.

Defocused patches lost little detail to JPEG and gain little from deep branches, so MORE
defocus means a LOWER cluster id and an earlier, cheaper exit. Thresholds are quantiles of the
predicted patch defocus over the training set, so the clusters start out equally populated.
numpy versions serve data preparation; the ``*_tensor`` versions run inside the model.
"""
from __future__ import annotations

import numpy as np
from keras import ops


def validate_thresholds(thresholds) -> np.ndarray:
    """Thresholds as a flat float32 array; ValueError unless non-decreasing."""
    thresholds = np.asarray(thresholds, np.float32).reshape(-1)
    if np.any(np.diff(thresholds) < 0):
        raise ValueError(f"thresholds must be non-decreasing, got {thresholds.tolist()}")
    return thresholds


def fit_thresholds(values, num_clusters: int) -> list[float]:
    """The ``num_clusters - 1`` quantiles (k / num_clusters) of patch defocus ``values``, ascending."""
    values = np.asarray(values, np.float64).reshape(-1)
    if num_clusters < 1 or values.size == 0:
        raise ValueError("need num_clusters >= 1 and at least one value")
    quantiles = np.arange(1, num_clusters) / num_clusters
    return [float(t) for t in np.quantile(values, quantiles)]


def assign_clusters(patch_defocus, thresholds) -> np.ndarray:
    """Cluster id per value: N - 1 minus the number of thresholds the value exceeds (ties go sharp).

    0 = most defocused, N - 1 = sharpest, N = len(thresholds) + 1.
    """
    thresholds = validate_thresholds(thresholds)
    exceeded = np.asarray(patch_defocus, np.float32)[..., None] > thresholds
    return (thresholds.size - exceeded.sum(axis=-1)).astype(np.int32)


def patch_defocus_from_map(defocus_map, patch_cells: int) -> np.ndarray:
    """Mean of a (B, h, w, 1) cell map per ``patch_cells`` x ``patch_cells`` patch -> (B, ceil(h/p), ceil(w/p)).

    Partial patches at the bottom/right average the cells they hold.
    """
    cells = np.asarray(defocus_map, np.float64)[..., 0]
    batch, height, width = cells.shape
    rows, cols = -(-height // patch_cells), -(-width // patch_cells)
    padding = [(0, 0), (0, rows * patch_cells - height), (0, cols * patch_cells - width)]
    sums = np.pad(cells, padding).reshape(batch, rows, patch_cells, cols, patch_cells).sum(axis=(2, 4))
    counts = np.pad(np.ones_like(cells), padding).reshape(batch, rows, patch_cells, cols, patch_cells).sum(axis=(2, 4))
    return (sums / counts).astype(np.float32)


def assign_clusters_tensor(patch_defocus, thresholds):
    """``assign_clusters`` in keras.ops (thresholds are constants): int32 ids, same shape."""
    thresholds = validate_thresholds(thresholds)
    ids = ops.full_like(patch_defocus, thresholds.size, dtype="int32")
    for threshold in thresholds.tolist():
        ids = ids - ops.cast(ops.greater(patch_defocus, threshold), "int32")
    return ids


def patch_defocus_from_map_tensor(defocus_map, patch_cells: int):
    """``patch_defocus_from_map`` in keras.ops: (B, h, w, 1) -> (B, ceil(h/p), ceil(w/p))."""
    defocus_map = ops.cast(defocus_map, "float32")
    if patch_cells > 1:
        height, width = ops.shape(defocus_map)[1], ops.shape(defocus_map)[2]
        pad_h = (patch_cells - height % patch_cells) % patch_cells
        pad_w = (patch_cells - width % patch_cells) % patch_cells
        padding = [[0, 0], [0, pad_h], [0, pad_w], [0, 0]]
        padded_shape = (-1, height + pad_h, width + pad_w, 1)
        # Zero padding, then divide by the pooled share of real cells: partial patches average what they hold.
        sums = ops.reshape(ops.pad(defocus_map, padding), padded_shape)
        counts = ops.reshape(ops.pad(ops.ones_like(defocus_map), padding), padded_shape)
        pool = lambda x: ops.average_pool(x, patch_cells, strides=patch_cells, padding="valid")  # noqa: E731
        defocus_map = pool(sums) / pool(counts)
    return ops.squeeze(defocus_map, axis=-1)
