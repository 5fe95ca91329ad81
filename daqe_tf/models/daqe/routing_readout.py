"""A learned routing signal: a linear readout of the defocus head's features, fitted after training.

Predicted defocus orders patches by blur, but what routing needs is how little the deep exits
would add to a patch. Those two disagree on flat sharp regions and on heavy compression, so a
linear map of what the head already computes (its last features per 16-px cell) and of how hard
the file was compressed (the mean luma Q-map over the cell) is fitted, on training patches, to
``log(error deepest exit / error exit 0)``: higher means a cheaper exit loses less, the same
orientation as defocus, so clusters and thresholds work unchanged. Being linear, the mean over a
patch's cells is the readout of the patch's mean inputs, which is what ``train.fit_thresholds``
fits by ridge regression (``daqe_tf.routing.calibration.routing_readout_fit``) and writes into this layer.
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
