"""A learned routing signal: a linear readout of the defocus head's features, fitted after training.

Predicted defocus orders patches by blur, but what routing needs is how little the deep exits
would add to a patch. Those two disagree on flat sharp regions and on heavy compression, so a
linear map of what the head already computes (its last features per 16-px cell) and of how hard
the file was compressed (the mean luma Q-map over the cell) is fitted, on training patches, to
``log(error deepest exit / error exit 0)``: higher means a cheaper exit loses less, the same
orientation as defocus, so clusters and thresholds work unchanged. Being linear, the mean over a
patch's cells is the readout of the patch's mean inputs, which is what ``train.fit_thresholds``
fits by ridge regression (``routing_readout_fit``) and writes into this layer.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from daqe_tf.layers.padding import pad_to_multiple


def readout_inputs(features, qmap, cell_size: int):
    """(B, h, w, F + 1): the head's cell features and the mean luma Q-map of each cell.

    The Q-map is padded like the head pads its input (symmetric, bottom/right) before pooling.
    """
    luma = pad_to_multiple(ops.cast(qmap[..., :1], features.dtype), cell_size)
    pooled = ops.average_pool(luma, cell_size, strides=cell_size, padding="valid")
    return ops.concatenate([features, pooled], axis=-1)


@keras.saving.register_keras_serializable(package="daqe_tf")
class RoutingReadout(layers.Layer):
    """``call([features, qmap])`` -> routing value per cell (B, h, w, 1); higher = cheaper exit.

    A 1x1 convolution over ``readout_inputs``; zero until ``set_linear`` writes a fit.
    """

    def __init__(self, cell_size: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.cell_size = cell_size
        self.linear = layers.Conv2D(1, 1, kernel_initializer="zeros", name="linear")

    def build(self, input_shape):
        features_shape, _ = input_shape
        self.linear.build((features_shape[0], None, None, features_shape[-1] + 1))
        super().build(input_shape)

    def call(self, inputs):
        features, qmap = inputs
        return self.linear(readout_inputs(features, qmap, self.cell_size))

    def set_linear(self, weights, bias: float) -> None:
        """Write a fitted readout: ``weights`` (F + 1,) over ``readout_inputs``, and its bias."""
        weights = np.asarray(weights, np.float32).reshape(-1)
        kernel = self.linear.kernel
        if weights.size != kernel.shape[2]:
            raise ValueError(f"need {kernel.shape[2]} readout weights (features + Q-map), got {weights.size}")
        kernel.assign(weights.reshape(kernel.shape))
        self.linear.bias.assign(np.array([bias], np.float32))

    def compute_output_shape(self, input_shape):
        features_shape, _ = input_shape
        return (*features_shape[:-1], 1)

    def get_config(self):
        return {**super().get_config(), "cell_size": self.cell_size}


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
