"""Quantization-guided attention (QGA), after QGAC (Ehrlich et al., ECCV 2020).

The Q-map says how strongly each pixel's frequency was quantized. The gate
mixes it into a feature map and returns a one-channel attention map A in (0, 1)
that scales the skip connection: F' = A * F. Heavily quantized regions can so
pass less of the (artefact-laden) encoder detail to the decoder.
"""
from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="daqe_tf")
class QuantizationGuidedAttention(layers.Layer):
    """``call([features, qmap])`` -> gated features; ``qmap`` is at full resolution.

    ``scale`` is the stage's downsampling factor (1, 2, 4, ...): the Q-map is
    average-pooled by it so it lines up with the features.
    """

    def __init__(self, channels: int, scale: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.scale = scale
        self.pool = layers.AveragePooling2D(scale, name="pool") if scale > 1 else None
        self.project = layers.Conv2D(channels, 1, name="project")
        self.hidden = layers.Conv2D(max(channels // 2, 4), 3, padding="same", activation="relu", name="hidden")
        self.gate = layers.Conv2D(1, 1, activation="sigmoid", name="gate")

    def build(self, input_shape):
        feature_shape, qmap_shape = (tuple(s) for s in input_shape)  # JSON build configs hold lists
        self.project.build(feature_shape[:-1] + (qmap_shape[-1],))
        self.hidden.build(feature_shape)
        self.gate.build(feature_shape[:-1] + (max(self.channels // 2, 4),))
        super().build(input_shape)

    def attention(self, features, qmap):
        """The attention map A (B, h, w, 1)."""
        if self.pool is not None:
            qmap = self.pool(qmap)
        return self.gate(self.hidden(features + self.project(qmap)))

    def call(self, inputs):
        features, qmap = inputs
        return features * self.attention(features, qmap)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "scale": self.scale}
