"""Training losses (keras.ops, any backend): pixel losses with deep supervision over exits,
the DAQE defocus loss, and the optional perceptual (VGG19) and adversarial (PatchGAN) terms.

``step_loss`` is the loss of one training step; every trainer calls it, so the TensorFlow
and JAX steps optimise the same objective.
"""
from __future__ import annotations

from pathlib import Path

import keras
from keras import ops


def pixel_loss(target, output, kind: str = "charbonnier", eps: float = 1e-3):
    """Per-example mean L1, Charbonnier or L2 loss, shape (B,).

    L2 fits the conditional mean (what PSNR rewards) and moves fastest early in
    training; L1/Charbonnier are less sensitive to outliers late in training.
    """
    diff = output - target
    if kind == "l2":
        per_pixel = diff * diff
    elif kind == "l1":
        per_pixel = ops.abs(diff)
    elif kind == "charbonnier":
        per_pixel = ops.sqrt(diff * diff + eps * eps)
    else:
        raise ValueError(f"unknown loss {kind!r}; use 'l1', 'charbonnier' or 'l2'")
    return ops.mean(per_pixel, axis=(1, 2, 3))


def weighted_exits(loss_fn, target, outputs, weights):
    """Deep supervision of any per-example loss: (sum_k w_k * loss_fn(target, outputs[k]), [per-exit (B,)])."""
    if len(outputs) != len(weights):
        raise ValueError(f"{len(outputs)} exits but {len(weights)} exit weights")
    per_exit = [loss_fn(target, out) for out in outputs]
    return sum(w * l for w, l in zip(weights, per_exit)), per_exit


def deep_supervision_loss(target, outputs, weights, kind: str = "charbonnier", own_exit=None, own_exit_weight: float = 0.0):
    """Weighted sum of every exit's per-example loss, shape (B,), plus the per-exit means.

    ``own_exit`` (B,) int: example b's exit ``own_exit[b]`` weighs ``own_exit_weight`` more on top
    of its weight in ``weights`` (DAQE: the exit that serves the example's defocus cluster).
    """
    total, per_exit = weighted_exits(lambda t, o: pixel_loss(t, o, kind), target, outputs, weights)
    if own_exit is not None and own_exit_weight:
        own = [ops.cast(ops.equal(own_exit, k), l.dtype) * l for k, l in enumerate(per_exit)]
        total = total + own_exit_weight * sum(own)
    return total, [ops.mean(l) for l in per_exit]


def defocus_loss(predicted, target):
    """Per-example mean L1 between predicted and pseudo-label log1p(sigma) cells, shape (B,)."""
    return ops.mean(ops.abs(ops.cast(predicted, "float32") - target), axis=(1, 2, 3))


def step_loss(target, outputs, exit_weights, kind: str, labels=None, predicted_defocus=None,
              cluster_exit_weight: float = 0.0, defocus_loss_weight: float = 1.0):
    """Per-example loss (B,) of one training step and its logged terms (per-exit means, then the defocus L1).

    ``labels`` (DAQE batches): {"cluster": (B,) int, "defocus": (B, h, w, 1)}; each example's own
    cluster exit weighs ``cluster_exit_weight`` more, and ``predicted_defocus`` (the model's
    ``defocus(inputs)``) adds ``defocus_loss_weight`` times its L1 to the cell targets.
    """
    own_exit = None if labels is None else labels["cluster"]
    per_example, terms = deep_supervision_loss(target, outputs, exit_weights, kind, own_exit, cluster_exit_weight)
    if labels is not None:
        head_l1 = defocus_loss(predicted_defocus, labels["defocus"])
        per_example = per_example + defocus_loss_weight * head_l1
        terms = terms + [ops.mean(head_l1)]
    return per_example, terms


# --- perceptual loss ------------------------------------------------------------
VGG19_LAYERS = ("block2_conv2", "block3_conv4", "block4_conv4")
_CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)  # what the ImageNet VGG19 weights were trained on


class PerceptualLoss:
    """Per-example mean L1 between VGG19 features of output and target, shape (B,).

    Pixel losses favour the blurry conditional mean; feature distances keep texture. The
    ImageNet weights are a file the user supplies (Keras'
    ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``), so training never downloads;
    ``weights_path=None`` keeps random weights (tests only). Images are in [0, 1], 1 or 3
    channels (gray is replicated); the features are frozen.
    """

    def __init__(self, weights_path: str | None, layers=VGG19_LAYERS):
        vgg = keras.applications.VGG19(weights=None, include_top=False, input_shape=(None, None, 3))
        if weights_path is not None:
            path = Path(weights_path)
            if not path.is_file():
                raise FileNotFoundError(
                    f"VGG19 weights file {path} does not exist: give the path of Keras' ImageNet "
                    "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 (include_top=False)"
                )
            try:
                vgg.load_weights(str(path))
            except Exception as error:  # h5py, Keras and zip errors alike: the file is not VGG19 weights
                raise ValueError(f"cannot read VGG19 (include_top=False) weights from {path}: {error}") from error
        self.layers = tuple(layers)
        self.features = keras.Model(vgg.input, [vgg.get_layer(name).output for name in self.layers], name="vgg19_features")
        self.features.trainable = False

    def preprocess(self, images):
        """[0, 1] RGB (or gray) -> the "caffe" input VGG19 expects: BGR, 0..255, ImageNet mean removed."""
        if images.shape[-1] == 1:
            images = ops.repeat(images, 3, axis=-1)
        bgr = ops.flip(ops.cast(images, "float32"), axis=-1) * 255.0
        return bgr - ops.convert_to_tensor(_CAFFE_BGR_MEAN, "float32")

    def __call__(self, target, output):
        pairs = zip(self.features(self.preprocess(target)), self.features(self.preprocess(output)))
        return sum(ops.mean(ops.abs(o - t), axis=(1, 2, 3)) for t, o in pairs) / len(self.layers)


# --- adversarial loss -------------------------------------------------------------
def discriminator_loss(real_logits, fake_logits):
    """Per-example binary cross-entropy of a patch discriminator, (B,): real patches -> 1, fakes -> 0."""
    return ops.mean(ops.softplus(-real_logits), axis=(1, 2, 3)) + ops.mean(ops.softplus(fake_logits), axis=(1, 2, 3))


def generator_adversarial_loss(fake_logits):
    """Per-example non-saturating generator loss, (B,): -log D(fake), which keeps gradients when D wins."""
    return ops.mean(ops.softplus(-fake_logits), axis=(1, 2, 3))


def adversarial_losses(discriminator, target, outputs, exit_weights):
    """(generator, discriminator) per-example losses (B,) of one GAN step, from one discriminator pass.

    Every exit is a fake, weighted as in deep supervision (the discriminator's share normalised
    by the weights' sum). Differentiate the generator loss with respect to the model's weights
    only and the discriminator loss with respect to the discriminator's only.
    """
    real = discriminator(target, training=True)
    fakes = [discriminator(out, training=True) for out in outputs]
    generator, _ = weighted_exits(lambda _, fake: generator_adversarial_loss(fake), real, fakes, exit_weights)
    disc, _ = weighted_exits(discriminator_loss, real, fakes, exit_weights)
    return generator, disc / sum(exit_weights)
