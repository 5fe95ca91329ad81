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
(``train.fit_thresholds --signal cascade``, ``daqe_tf.routing.calibration.cascade_readout_fit``) to what going on from exit m
to the deepest saves the patch, as a share of its image's error. A patch leaves through exit m
when the score is positive: the fitted threshold is folded into the bias, so higher means "exit m
is already close to the deepest", the orientation of every routing signal.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops


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
