import numpy as np

from daqe_tf.jpeg.blind import block_dct, estimate_quality_from_pixels
from daqe_tf.jpeg.simulate import compress
from tests.helpers import natural_image


def _textured(h=256, w=256, seed=0):
    rng = np.random.default_rng(seed)
    base = natural_image(h, w, 3, seed).astype(np.float64)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def test_block_dct_is_orthonormal():
    block = np.random.default_rng(1).uniform(0, 255, (8, 8))
    coefficients = block_dct(block)
    assert coefficients.shape == (1, 8, 8)
    np.testing.assert_allclose(np.sum(coefficients**2), np.sum((block - 128) ** 2), rtol=1e-9)


def test_recovers_quality_of_decoded_jpeg():
    image = _textured()
    for quality in (10, 30, 60):
        estimate = estimate_quality_from_pixels(compress(image, quality).decoded)
        assert estimate.fits
        assert abs(estimate.quality - quality) <= 2, (quality, estimate.quality)


def test_pixels_that_never_were_jpeg_are_flagged():
    estimate = estimate_quality_from_pixels(_textured(seed=3))
    assert not estimate.fits and estimate.quality == 75
    assert estimate.chroma_table is not None
    assert estimate_quality_from_pixels(_textured()[..., 0]).chroma_table is None
