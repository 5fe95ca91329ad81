"""Metrics against scikit-image and hand-computed values, on small synthetic images."""
import io
import math

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from daqe_tf.evaluation import evaluate_folder
from daqe_tf.metrics import (
    Metrics,
    blocking_effect_factor,
    evaluate_pair,
    psnr,
    psnr_b,
    rgb_to_y,
    rgb_to_y_uint8,
    ssim,
)

MATLAB_SSIM = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)


def _scene(h, w, channels=None, seed=0):
    """Smooth gradients plus noise, uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = 128 + 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + 0.5 * xx - 0.3 * yy
    if channels:
        base = np.stack([base, base[::-1], base[:, ::-1]][:channels], axis=-1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _jpeg(image, quality):
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())))


@pytest.fixture(scope="module", params=[None, 3], ids=["gray", "rgb"])
def pair(request):
    reference = _scene(53, 70, request.param)  # not multiples of 8 on purpose
    return reference, _jpeg(reference, 10)


def test_psnr_matches_skimage(pair):
    reference, output = pair
    assert psnr(reference, output) == pytest.approx(peak_signal_noise_ratio(reference, output, data_range=255), abs=1e-10)
    assert psnr(reference, reference) == math.inf


def test_ssim_matches_skimage_matlab_settings(pair):
    reference, output = pair
    axis = 2 if reference.ndim == 3 else None
    expected = structural_similarity(reference, output, channel_axis=axis, **MATLAB_SSIM)
    assert ssim(reference, output) == pytest.approx(expected, abs=1e-10)
    assert ssim(reference, reference) == pytest.approx(1.0)


def test_bef_of_constant_blocks_is_hand_value():
    # 16x16 checkerboard of constant 8x8 blocks, 0 and 10: every boundary pair differs by 10,
    # no other pair differs. D_B = 100, D_BC = 0, factor log2(8)/log2(16) = 3/4.
    blocks = (np.indices((2, 2)).sum(axis=0) % 2) * 10
    image = np.kron(blocks, np.ones((8, 8))).astype(np.uint8)
    assert blocking_effect_factor(image) == pytest.approx(75.0)


def test_psnr_b_is_psnr_when_output_has_no_blocking():
    # A ramp differs by the same amount across block boundaries as inside blocks: BEF 0.
    # The reference is blocky, which must not matter: BEF is measured on the output only.
    yy, xx = np.mgrid[0:64, 0:64]
    ramp = (xx + 2 * yy).astype(np.uint8)
    assert blocking_effect_factor(ramp) == 0.0
    blocky = _jpeg(_scene(64, 64, seed=1), 10)
    assert blocking_effect_factor(blocky) > 0
    assert psnr_b(blocky, ramp) == pytest.approx(psnr(blocky, ramp), abs=1e-12)
    assert psnr_b(ramp, blocky) < psnr(ramp, blocky)


def test_psnr_b_below_psnr_for_low_quality_jpeg(pair):
    reference, output = pair
    assert psnr_b(reference, output) < psnr(reference, output) - 0.1


def test_colour_psnr_b_uses_rgb_mse_and_output_luma():
    reference = _scene(64, 64, 3, seed=2)
    output = _jpeg(reference, 10)
    mse = np.mean((reference.astype(float) - output) ** 2)
    expected = 10 * math.log10(255**2 / (mse + blocking_effect_factor(rgb_to_y(output))))
    assert psnr_b(reference, output) == pytest.approx(expected, abs=1e-10)


def test_rgb_to_y_hand_values():
    pixels = np.array([[100, 150, 200], [0, 0, 0], [255, 255, 255]], dtype=np.uint8)
    # 16 + (65.481*100 + 128.553*150 + 24.966*200) / 255 = 16 + 30824.25 / 255
    expected = [16 + 30824.25 / 255, 16.0, 235.0]
    np.testing.assert_allclose(rgb_to_y(pixels), expected, atol=1e-12)
    np.testing.assert_allclose(rgb_to_y(pixels / 255.0), expected, atol=1e-12)  # floats read as [0, 1]
    assert rgb_to_y(pixels).dtype == np.float64
    # Exact .5 tie from a benchmark image: MATLAB rounds it up, numpy's round-half-even would not.
    assert rgb_to_y_uint8(np.array([35, 47, 39], dtype=np.uint8)) == 53
    assert rgb_to_y_uint8(pixels).tolist() == [137, 16, 235]


def test_evaluate_pair_on_y_scores_rounded_luma():
    reference = _scene(48, 48, 3, seed=3)
    output = _jpeg(reference, 20)
    y_ref, y_out = rgb_to_y_uint8(reference), rgb_to_y_uint8(output)
    assert evaluate_pair(reference, output, on="y") == Metrics(psnr(y_ref, y_out), ssim(y_ref, y_out), psnr_b(y_ref, y_out))
    rgb = evaluate_pair(reference, output)
    assert rgb.psnr == psnr(reference, output) and rgb.ssim == ssim(reference, output)
    with pytest.raises(ValueError):
        evaluate_pair(reference, output[:-1])


def test_evaluate_folder_enhancer_sees_decoded_jpeg(tmp_path):
    for i in range(2):
        Image.fromarray(_scene(32, 40, 3, seed=i)).save(tmp_path / f"im{i}.png")
    seen = []

    def identity(decoded, jpeg_bytes):
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(jpeg_bytes))), decoded)
        seen.append(decoded.shape)
        return decoded

    baseline = evaluate_folder(tmp_path, [10, 50], progress=False)
    enhanced = evaluate_folder(tmp_path, [10, 50], identity, progress=False)
    assert enhanced == baseline and len(seen) == 4
    assert baseline[50].psnr > baseline[10].psnr
    gray = evaluate_folder(tmp_path, [10], grayscale=True, progress=False)
    assert set(gray) == {10}


def test_evaluate_folder_double_jpeg_scores_the_second_compression_against_the_original(tmp_path):
    from daqe_tf.jpeg.simulate import compress, earlier_jpeg_crop

    reference = _scene(40, 48, 3, seed=5)
    Image.fromarray(reference).save(tmp_path / "im.png")
    seen = []
    double = evaluate_folder(tmp_path, [30], lambda d, b: seen.append(d) or d, progress=False, earlier_jpeg=(10, (4, 3)))
    expected = compress(earlier_jpeg_crop(reference, 10, (4, 3)), 30).decoded
    np.testing.assert_array_equal(seen[0], expected)  # the enhancer gets the last JPEG of the two
    assert double[30] == evaluate_pair(reference, expected)  # scored against the original
    single = evaluate_folder(tmp_path, [30], progress=False)
    assert double[30].psnr < single[30].psnr - 1  # the earlier QF10 JPEG's loss stays in the image
    with pytest.raises(ValueError, match="offset"):
        earlier_jpeg_crop(reference, 10, (8, 0))
