"""Cascade routing: decide after each branch whether a patch needs the next one.

A one-shot router (predicted defocus, or a readout of the defocus head) decides every patch's
exit before any branch runs, from features computed for that purpose alone. The branches
themselves know more: what branch m computed for a patch predicts how much branch m + 1 would
still add. So the cascade runs branch 0 on every patch, reads a score from its pooled features,
and sends on only the patches whose score says the next branch is worth it; branch m + 1 takes
branch m's features as its context anyway, so deciding there costs only the readout (one dot
product per patch) and the defocus head need not run at all.

Stage m's score is a linear readout of ``patch_summary`` of branches 0..m (per-channel mean and
mean absolute value over the patch) and of the patch's mean luma Q-map, fitted after training
(``train.fit_thresholds --signal cascade``, ``cascade_readout_fit``) to what going on from exit m
to the deepest saves the patch, as a share of its image's error. A patch leaves through exit m
when the score is positive: the fitted threshold is folded into the bias, so higher means "exit m
is already close to the deepest", the orientation of every routing signal.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from daqe_tf.models.daqe.routing_readout import ridge_fit


def patch_summary(features):
    """(B, 2F): per-channel mean and mean absolute value of (B, h, w, F) branch features."""
    return ops.concatenate([ops.mean(features, axis=(1, 2)), ops.mean(ops.abs(features), axis=(1, 2))], axis=-1)


def qmap_summary(qmap):
    """(B, 1): the mean luma Q-map over each patch."""
    return ops.mean(ops.cast(qmap[..., :1], "float32"), axis=(1, 2, 3))[:, None]


@keras.saving.register_keras_serializable(package="daqe_tf")
class CascadeReadout(layers.Layer):
    """``call([summary, qmap_mean])`` -> (B, 1) stage score; positive = the patch leaves here.

    ``summary``: the concatenated ``patch_summary`` of branches 0..m; ``qmap_mean``: ``qmap_summary``.
    A dense layer, zero until ``set_linear`` writes a fit (zero = nobody leaves early).
    """

    def build(self, input_shape):
        summary_shape, _ = input_shape
        self.kernel = self.add_weight(name="kernel", shape=(summary_shape[-1] + 1, 1), initializer="zeros")
        # Slightly negative: an unfitted cascade sends every patch to the deepest exit.
        self.bias = self.add_weight(name="bias", shape=(1,), initializer=keras.initializers.Constant(-1.0))
        super().build(input_shape)

    def call(self, inputs):
        summary, qmap_mean = inputs
        return ops.matmul(ops.concatenate([summary, ops.cast(qmap_mean, summary.dtype)], axis=-1), self.kernel) + self.bias

    def set_linear(self, weights, bias: float) -> None:
        """Write a fitted readout: ``weights`` (D + 1,) over [summary, qmap_mean], and its bias."""
        weights = np.asarray(weights, np.float32).reshape(-1)
        if weights.size != self.kernel.shape[0]:
            raise ValueError(f"need {self.kernel.shape[0]} cascade readout weights (summary + Q-map), got {weights.size}")
        self.kernel.assign(weights.reshape(self.kernel.shape))
        self.bias.assign(np.array([bias], np.float32))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)


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
    The same ridge regression as the one-shot readout's (``routing_readout.ridge_fit``); the
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
