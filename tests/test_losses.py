"""Training losses: the step loss both trainers share, the VGG19 perceptual loss, the patch GAN."""
import numpy as np
import pytest

from train.losses import (
    PerceptualLoss,
    adversarial_losses,
    deep_supervision_loss,
    defocus_loss,
    discriminator_loss,
    generator_adversarial_loss,
    step_loss,
)

RNG = np.random.default_rng(0)
TARGET = RNG.uniform(0, 1, (2, 16, 16, 3)).astype("float32")
OUTPUTS = [np.clip(TARGET + RNG.normal(0, s, TARGET.shape), 0, 1).astype("float32") for s in (0.2, 0.1)]


def test_step_loss_adds_the_cluster_exit_and_defocus_terms_for_daqe_batches():
    labels = {"cluster": np.array([1, 0], np.int32), "defocus": RNG.uniform(0, 2, (2, 1, 1, 1)).astype("float32")}
    predicted = RNG.uniform(0, 2, (2, 1, 1, 1)).astype("float32")
    per_example, terms = step_loss(TARGET, OUTPUTS, (0.5, 1.0), "l2", labels, predicted, 2.0, 0.3)
    pixels, pixel_terms = deep_supervision_loss(TARGET, OUTPUTS, (0.5, 1.0), "l2", labels["cluster"], 2.0)
    head = np.asarray(defocus_loss(predicted, labels["defocus"]))
    np.testing.assert_allclose(np.asarray(per_example), np.asarray(pixels) + 0.3 * head, rtol=1e-6)
    np.testing.assert_allclose([float(t) for t in terms], [float(t) for t in pixel_terms] + [head.mean()], rtol=1e-6)
    plain, plain_terms = step_loss(TARGET, OUTPUTS, (0.5, 1.0), "l2")
    np.testing.assert_allclose(np.asarray(plain), np.asarray(deep_supervision_loss(TARGET, OUTPUTS, (0.5, 1.0), "l2")[0]))
    assert len(plain_terms) == 2


@pytest.fixture(scope="module")
def perceptual():
    import keras

    keras.utils.set_random_seed(0)
    return PerceptualLoss(None)  # random VGG19: no weights file in tests


def test_perceptual_loss_is_zero_for_equal_images_and_trains_the_output(perceptual):
    import tensorflow as tf

    assert not perceptual.features.trainable_weights
    np.testing.assert_allclose(np.asarray(perceptual(TARGET, TARGET)), 0.0, atol=1e-6)
    output = tf.Variable(OUTPUTS[0])
    with tf.GradientTape() as tape:
        loss = perceptual(TARGET, output)
    assert loss.shape == (2,) and (np.asarray(loss) > 0).all()
    assert float(tf.reduce_max(tf.abs(tape.gradient(loss, output)))) > 0
    gray = perceptual(TARGET[..., :1], OUTPUTS[0][..., :1])  # gray images are replicated to RGB
    assert gray.shape == (2,) and (np.asarray(gray) > 0).all()


def test_perceptual_loss_reads_the_users_weights_file_and_says_why_it_cannot(tmp_path, perceptual):
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    with pytest.raises(FileNotFoundError, match="missing.h5"):
        PerceptualLoss(str(tmp_path / "missing.h5"))
    (tmp_path / "garbage.h5").write_bytes(b"not an HDF5 file")
    with pytest.raises(ValueError, match="cannot read VGG19"):
        PerceptualLoss(str(tmp_path / "garbage.h5"))
    # A file in the format of Keras' ImageNet "notop" download (legacy HDF5 weights).
    keras.utils.set_random_seed(1)
    source = keras.applications.VGG19(weights=None, include_top=False)
    with h5py.File(tmp_path / "vgg19_notop.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    loaded = PerceptualLoss(str(tmp_path / "vgg19_notop.h5"))
    weights = loaded.features.get_weights()
    for got, want in zip(weights, source.get_weights()[: len(weights)]):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(weights[0], perceptual.features.get_weights()[0])


def test_adversarial_losses_are_binary_cross_entropy_over_patches():
    import keras

    from train.discriminator import PatchDiscriminator

    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    real, fake = RNG.normal(size=(2, 2, 2, 1)), RNG.normal(size=(2, 2, 2, 1))
    np.testing.assert_allclose(np.asarray(discriminator_loss(real, fake)),
                               softplus(-real).mean(axis=(1, 2, 3)) + softplus(fake).mean(axis=(1, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(generator_adversarial_loss(fake)), softplus(-fake).mean(axis=(1, 2, 3)), rtol=1e-6)

    keras.utils.set_random_seed(2)
    disc = PatchDiscriminator(3, widths=(8, 16))
    logits = disc(TARGET)
    assert logits.shape == (2, 4, 4, 1)
    generator, critic = adversarial_losses(disc, TARGET, OUTPUTS, (0.5, 1.0))
    fakes = [np.asarray(disc(o)) for o in OUTPUTS]
    np.testing.assert_allclose(np.asarray(generator), sum(w * softplus(-f).mean(axis=(1, 2, 3)) for w, f in zip((0.5, 1.0), fakes)), rtol=1e-5)
    expected = sum(w * np.asarray(discriminator_loss(logits, f)) for w, f in zip((0.5, 1.0), fakes)) / 1.5
    np.testing.assert_allclose(np.asarray(critic), expected, rtol=1e-5)


def test_patch_discriminator_saves_and_loads_safely(tmp_path):
    import keras

    from train.discriminator import PatchDiscriminator

    keras.utils.set_random_seed(3)
    disc = PatchDiscriminator(1, widths=(4, 8, 8))
    disc.build((None, None, None, 1))
    disc.save(tmp_path / "disc.keras")
    loaded = keras.models.load_model(tmp_path / "disc.keras", safe_mode=True)
    assert type(loaded) is PatchDiscriminator and loaded.get_config()["widths"] == [4, 8, 8]
    np.testing.assert_allclose(np.asarray(loaded(TARGET[..., :1])), np.asarray(disc(TARGET[..., :1])), atol=1e-6)
