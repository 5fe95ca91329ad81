"""Calibration of the routing policy on a trained model's own predictions, and the readout fits.

Inference routes by what the model predicts from the JPEG, so thresholds, budgets and the
readouts (``RoutingReadout``, ``CascadeReadout``) are fitted on the patch plan inference uses:
``calibration_patches`` runs every patch of an image through every exit once and charges each
patch the error of the pixels it owns. The fits are plain numpy (ridge regressions);
``python -m train.fit_thresholds`` is the command that runs them and writes the model.
"""
from __future__ import annotations

import numpy as np


def _compressed(model, image: np.ndarray, quality: int):
    """``image`` compressed at ``quality`` (Pillow, 4:2:0) as inference sees it: (JPEG, its ``qmap_for``, the patch plan)."""
    from daqe_tf.inference.pipeline import jpeg_evidence, window_qmaps
    from daqe_tf.inference.tiling import plan_tiles
    from daqe_tf.io import load_image
    from daqe_tf.jpeg.simulate import compress
    from daqe_tf.routing.runtime import CELL, PATCH_OVERLAP

    jpeg = compress(image, quality)
    qmap_for = window_qmaps(jpeg_evidence(load_image(jpeg.data)), model.image_channels)
    return jpeg, qmap_for, plan_tiles(*image.shape[:2], model.patch_size, PATCH_OVERLAP, CELL)


def patch_routing_values(model, image: np.ndarray, quality: int, channel: int = 1) -> np.ndarray:
    """Per inference patch of ``image`` at ``quality``: the model's routing value (what its thresholds
    split; ``channel`` 1) or its predicted defocus (``channel`` 0)."""
    from daqe_tf.routing.runtime import patch_mean, predict_cells

    jpeg, qmap_for, patches = _compressed(model, image, quality)
    cells = predict_cells(jpeg.decoded, model, qmap_for)[..., channel]
    return np.array([patch_mean(cells, t) for t in patches], np.float32)


def patch_cascade_inputs(model, pixels: np.ndarray, qmap_for, patches, batch_size: int = 8) -> np.ndarray:
    """(n, D + 1) per patch: ``DAQENet.patch_summaries`` (every branch's summary, the mean luma Q-map).

    Stage m of a cascade reads the first ``stage_width(model, m)`` columns and the last one.
    """
    from daqe_tf.inference.compiled import compiled_patch_summaries
    from daqe_tf.routing.runtime import _patch_window

    forward = compiled_patch_summaries(model)
    rows = []
    for first in range(0, len(patches), batch_size):
        windows = [_patch_window(pixels, t, model.patch_size, qmap_for) for t in patches[first : first + batch_size]]
        images, qmaps = (np.stack(parts) for parts in zip(*windows))
        rows.append(np.asarray(forward(images, qmaps)))
    return np.concatenate(rows)


def stage_width(model, stage: int) -> int:
    """Summary columns stage ``stage`` of a cascade reads: ``patch_summary`` of branches 0..stage."""
    return sum(2 * model.branches[m].width for m in range(stage + 1))


def stage_columns(model, stage: int, inputs: np.ndarray) -> np.ndarray:
    """The columns of ``patch_cascade_inputs`` that stage ``stage`` reads (its summary and the Q-map)."""
    return np.concatenate([inputs[:, : stage_width(model, stage)], inputs[:, -1:]], axis=1)


def calibration_patches(model, image: np.ndarray, quality: int, cascade: bool = False) -> dict:
    """Every inference patch of ``image`` at ``quality``: what routing could use, and what each exit costs it.

    Returns ``defocus`` (n,) predicted, ``readout_inputs`` (n, F + 1) the patch means a routing
    readout is fitted on, and ``errors`` (n, N): squared error through each exit, summed over the
    pixels the patch owns (``cell_owners``) in the image blended with every patch forced through
    that exit, so each pixel is charged once. ``cascade``: also ``cascade_inputs``
    (``patch_cascade_inputs``).
    """
    from daqe_tf.inference.tiling import cell_owners
    from daqe_tf.routing.runtime import CELL, patch_mean, predict_cells, run_patches

    jpeg, qmap_for, patches = _compressed(model, image, quality)
    cells = predict_cells(jpeg.decoded, model, qmap_for)
    inputs = predict_cells(jpeg.decoded, model, qmap_for, maps="readout_inputs")
    height, width = image.shape[:2]
    rows, cols = cell_owners(patches, height, width, CELL)
    ncols = len({t.x0 for t in patches})
    owner = (rows[:, None] * ncols + cols[None, :]).repeat(CELL, 0).repeat(CELL, 1)[:height, :width]
    errors = np.zeros((len(patches), model.num_exits))
    for k in range(model.num_exits):
        out = run_patches(jpeg.decoded, model, qmap_for, patches, np.full(len(patches), k, np.int32))
        squared = (out.astype(np.float64) - image.astype(np.float64)) ** 2
        squared = squared.reshape(height, width, -1).sum(axis=-1)
        errors[:, k] = np.bincount(owner.ravel(), weights=squared.ravel(), minlength=len(patches))
    result = {
        "defocus": np.array([patch_mean(cells[..., 0], t) for t in patches], np.float32),
        "readout_inputs": np.stack([patch_mean(inputs, t) for t in patches]),
        "errors": errors,
    }
    if cascade:
        result["cascade_inputs"] = patch_cascade_inputs(model, jpeg.decoded, qmap_for, patches)
    return result


def calibrate(model, images: list[np.ndarray], qualities, cascade: bool = False) -> dict:
    """``calibration_patches`` of images x qualities, concatenated, with ``image`` (n,): which
    image x quality each patch came from."""
    parts = [calibration_patches(model, image, q, cascade) for image in images for q in qualities]
    for index, part in enumerate(parts):
        part["image"] = np.full(len(part["errors"]), index)
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def per_image_errors(errors: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Each patch's exit errors divided by its image's all-deepest error: summed, the mean dB loss to first order."""
    errors = np.asarray(errors, np.float64)
    totals = np.bincount(image, weights=errors[:, -1])
    return errors / np.maximum(totals[image], 1e-12)[:, None]


def mean_image_db(patches: dict, exits: np.ndarray) -> float:
    """Mean over calibration images of 10 log10(routed error / all-deepest error)."""
    errors = patches["errors"]
    routed = np.bincount(patches["image"], weights=errors[np.arange(len(exits)), exits])
    deepest = np.bincount(patches["image"], weights=errors[:, -1])
    return float(np.mean(10 * np.log10(routed / np.maximum(deepest, 1e-12))))


def routing_readout_fit(inputs: np.ndarray, exit_errors: np.ndarray, ridge: float = 3.0) -> tuple[np.ndarray, float]:
    """Ridge fit of ``log(error deepest / error exit 0)`` on per-patch readout inputs -> (weights, bias).

    ``inputs`` (n, F + 1): each patch's mean ``readout_inputs``; ``exit_errors`` (n, N): its
    squared error through each exit.
    """
    inputs = np.asarray(inputs, np.float64)
    errors = np.asarray(exit_errors, np.float64)
    if inputs.ndim != 2 or errors.ndim != 2 or len(inputs) != len(errors) or len(inputs) < 2:
        raise ValueError("need (n, F) readout inputs and (n, N) exit errors for the same n >= 2 patches")
    return ridge_fit(inputs, np.log((errors[:, -1] + 1e-9) / (errors[:, 0] + 1e-9)), ridge)


def ridge_fit(inputs: np.ndarray, target: np.ndarray, ridge: float) -> tuple[np.ndarray, float]:
    """Ridge regression of ``target`` on ``inputs`` (n, D) -> (weights, bias), the intercept unshrunk.

    The inputs are standardised for the penalty and the result is mapped back, so
    ``inputs @ weights + bias`` is the fitted value.
    """
    mean, std = inputs.mean(axis=0), inputs.std(axis=0) + 1e-9
    design = np.column_stack([(inputs - mean) / std, np.ones(len(inputs))])
    penalty = ridge * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0  # the intercept is not shrunk
    solution = np.linalg.solve(design.T @ design + penalty, design.T @ target)
    weights = solution[:-1] / std
    return weights, float(solution[-1] - weights @ mean)


def _image_index(groups, count: int) -> np.ndarray:
    """(count,) 0..K-1: which of K images each patch belongs to (``groups`` None: all one image)."""
    return np.zeros(count, np.int64) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1)


def cascade_gain(exit_errors: np.ndarray, stage: int, groups=None) -> np.ndarray:
    """(n,) what the deepest exit saves each patch over exit ``stage``, in units of its image's mean
    deepest-exit error per patch: summed over an image's patches and divided by their number, the
    fraction of the image's error (about its dB loss / 4.34) that sending them deep removes.

    ``exit_errors`` (n, N) squared errors per patch and exit; ``groups`` (n,) the image of each patch
    (None: one image).
    """
    errors = np.asarray(exit_errors, np.float64)
    index = _image_index(groups, len(errors))
    mean_deepest = np.bincount(index, weights=errors[:, -1]) / np.bincount(index)
    return (errors[:, stage] - errors[:, -1]) / np.maximum(mean_deepest[index], 1e-12)


def cascade_readout_fit(inputs: np.ndarray, exit_errors: np.ndarray, stage: int, ridge: float = 300.0,
                        groups=None) -> tuple[np.ndarray, float]:
    """Ridge fit of ``-cascade_gain`` on per-patch stage inputs, within images -> (weights, bias).

    ``inputs`` (n, D + 1): [summary of branches 0..stage, qmap_mean] per patch; ``exit_errors``
    (n, N); ``groups`` (n,) the image of each patch (None: one image). Why this target: the cap
    gives every image the same compute and hands the deepest exit to the patches with the lowest
    scores, so what the readout must get right is which patches of an image save the most error,
    in absolute terms (a log error ratio ranks a flat patch that improves by 10 % above a textured
    one that improves by less but saves far more). Inputs and targets are centred per image, so the
    weights rank patches within an image and image-wide offsets go to the bias and the threshold.
    The same ridge regression as the one-shot readout's (``ridge_fit``); the
    threshold is not in it yet: ``train.fit_thresholds`` subtracts it from the bias.
    """
    inputs = np.asarray(inputs, np.float64)
    errors = np.asarray(exit_errors, np.float64)
    if inputs.ndim != 2 or errors.ndim != 2 or len(inputs) != len(errors) or len(inputs) < 2:
        raise ValueError("need (n, D) stage inputs and (n, N) exit errors for the same n >= 2 patches")
    if not 0 <= stage < errors.shape[1] - 1:
        raise ValueError(f"stage {stage} out of range for {errors.shape[1]} exits (the deepest has no decision)")
    if groups is not None and len(groups) != len(inputs):
        raise ValueError("need one group (image) per patch")
    target = -cascade_gain(errors, stage, groups)
    index = _image_index(groups, len(inputs))
    counts = np.bincount(index)[:, None]

    def centred(values):
        values = values.reshape(len(values), -1)
        means = np.stack([np.bincount(index, weights=column) for column in values.T], axis=1) / counts
        return values - means[index]

    weights, _ = ridge_fit(centred(inputs), centred(target)[:, 0], ridge)
    return weights, float(np.mean(target - inputs @ weights))
