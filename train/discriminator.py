"""A patch discriminator for the GAN variant of training (training-only; never exported)."""
from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="daqe_tf")
class PatchDiscriminator(keras.Model):
    """PatchGAN: one real/fake logit per image patch, not per image.

    JPEG artefacts and the texture they erase are local, so judging patches (receptive field
    about 16 * 2**len(widths) px) gives a dense signal and works at any input size. Strided
    4x4 convolutions with LeakyReLU and no normalisation; output (B, H/2**n, W/2**n, 1) logits.
    """

    def __init__(self, image_channels: int = 3, widths=(32, 64, 128), **kwargs):
        super().__init__(**kwargs)
        self.image_channels = image_channels
        self.widths = tuple(widths)
        self.downs = [layers.Conv2D(w, 4, strides=2, padding="same", name=f"down{i}") for i, w in enumerate(self.widths)]
        self.mix = layers.Conv2D(self.widths[-1], 3, padding="same", name="mix")
        self.logits = layers.Conv2D(1, 3, padding="same", name="logits")

    def build(self, input_shape):
        shape = (input_shape[0], None, None, self.image_channels)
        for conv in self.downs:
            conv.build(shape)
            shape = shape[:3] + (conv.filters,)
        self.mix.build(shape)
        self.logits.build(shape)
        self.built = True

    def call(self, image):
        x = image
        for conv in [*self.downs, self.mix]:
            x = ops.leaky_relu(conv(x), 0.2)
        return self.logits(x)

    def get_config(self):
        return {**super().get_config(), "image_channels": self.image_channels, "widths": list(self.widths)}
