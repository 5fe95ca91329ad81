"""Defocus clusters: which exit each patch leaves through.

Defocused patches lost little detail to JPEG and gain little from deep branches, so MORE
defocus means a LOWER cluster id and an earlier, cheaper exit. Thresholds are quantiles of the
predicted patch defocus over the training set, so the clusters start out equally populated.
The numpy rule lives in ``daqe_tf.routing.policy`` (no Keras); these ``*_tensor`` versions
run it inside the model.
"""
from __future__ import annotations

from keras import ops

from daqe_tf.routing.policy import (  # noqa: F401  (re-exported)
    assign_clusters,
    fit_thresholds,
    patch_defocus_from_map,
    validate_thresholds,
)


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
