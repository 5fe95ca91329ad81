"""Image-quality metrics that reproduce the published JPEG artifact-removal tables.

Published PSNR / SSIM / PSNR-B numbers depend on small conventions (Y definition, SSIM
window and valid region, which image the blocking factor is measured on, how boundary
pairs are counted). Each convention here is the one that reproduces the baselines of the
evaluation protocol (see ``benchmarks/jpeg_baselines.py``); numpy only, so the metrics
work in the base install.

All functions take 8-bit-scale images (uint8, or floats on the 0-255 scale), HxW or HxWxC.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# MATLAB rgb2ycbcr, first row of the BT.601 studio-swing matrix, for RGB in [0, 1].
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0

_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1, _SSIM_K2 = 0.01, 0.03

_JPEG_BLOCK = 8


@dataclass(frozen=True)
class Metrics:
    psnr: float
    ssim: float
    psnr_b: float


def _as_float(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def _luma(rgb255: np.ndarray) -> np.ndarray:
    # Same operation order as MATLAB's imlincomb(T/255, R, ..., offset) for uint8 input.
    r, g, b = (rgb255[..., c] for c in range(3))
    return (_Y_WEIGHTS[0] / 255) * r + (_Y_WEIGHTS[1] / 255) * g + (_Y_WEIGHTS[2] / 255) * b + _Y_OFFSET


def rgb_to_y(rgb) -> np.ndarray:
    """BT.601 luma as MATLAB ``rgb2ycbcr``: ``Y = 16 + (65.481 R + 128.553 G + 24.966 B)`` on
    RGB in [0, 1], i.e. Y on the 8-bit scale, range 16-235.

    Integer input is read as 0-255, floating input as 0-1 (MATLAB's convention). The result is
    float64 and not rounded: that is what colour PSNR-B measures its blocking factor on. MATLAB
    rounds when given uint8, which is how the grayscale benchmark images were made; use
    :func:`rgb_to_y_uint8` for that.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise ValueError(f"expected RGB with 3 channels last, got shape {rgb.shape}")
    scale = 1.0 if np.issubdtype(rgb.dtype, np.integer) else 255.0
    return _luma(rgb.astype(np.float64) * scale)


def rgb_to_y_uint8(rgb) -> np.ndarray:
    """Y as MATLAB ``rgb2ycbcr`` returns it for uint8 input: rounded half away from zero.

    This reproduces the LIVE1_gray benchmark images from LIVE1_color except for a handful of
    pixels (6 of 10.4 M) whose Y is an exact .5 tie that MATLAB's arithmetic breaks the other way.
    """
    return np.floor(rgb_to_y(rgb) + 0.5).astype(np.uint8)


def _check_pair(reference, output) -> tuple[np.ndarray, np.ndarray]:
    ref, out = _as_float(reference), _as_float(output)
    if ref.shape != out.shape:
        raise ValueError(f"reference {ref.shape} and output {out.shape} differ in shape")
    if ref.ndim not in (2, 3):
        raise ValueError(f"expected HxW or HxWxC images, got shape {ref.shape}")
    return ref, out


def _psnr_from_mse(mse: float, data_range: float = 255.0) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def psnr(reference, output, data_range: float = 255.0) -> float:
    """PSNR over all pixels and channels of the whole image (no border crop)."""
    ref, out = _check_pair(reference, output)
    return _psnr_from_mse(float(np.mean((ref - out) ** 2)), data_range)


def _gaussian_taps(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    taps = np.exp(-(x**2) / (2 * sigma**2))
    return taps / taps.sum()


def _filter_valid(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable correlation keeping only outputs whose window lies inside the image."""
    k = taps.size
    h, w = image.shape
    rows = sum(t * image[i : h - k + 1 + i] for i, t in enumerate(taps))
    return sum(t * rows[:, i : w - k + 1 + i] for i, t in enumerate(taps))


def _ssim_channel(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    taps = _gaussian_taps(_SSIM_WINDOW, _SSIM_SIGMA)
    c1 = (_SSIM_K1 * data_range) ** 2
    c2 = (_SSIM_K2 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x, taps), _filter_valid(y, taps)
    var_x = _filter_valid(x * x, taps) - mu_x * mu_x
    var_y = _filter_valid(y * y, taps) - mu_y * mu_y
    cov = _filter_valid(x * y, taps) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return float(np.mean(num / den))


def ssim(reference, output, data_range: float = 255.0) -> float:
    """SSIM as Wang et al.'s MATLAB ``ssim_index``: 11x11 Gaussian window (sigma 1.5),
    population (co)variances, mean over the region where the window fits inside the image;
    colour images are scored per channel and averaged.

    Equals scikit-image's ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255)``; its default settings read higher.
    """
    ref, out = _check_pair(reference, output)
    if min(ref.shape[:2]) < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {_SSIM_WINDOW}x{_SSIM_WINDOW}")
    if ref.ndim == 2:
        return _ssim_channel(ref, out, data_range)
    return float(np.mean([_ssim_channel(ref[..., c], out[..., c], data_range) for c in range(ref.shape[2])]))


def blocking_effect_factor(image, block_size: int = _JPEG_BLOCK) -> float:
    """Blocking effect factor of Yim & Bovik (2011) for one channel on the 8-bit scale.

    Mean squared difference between neighbours across block boundaries minus that between
    all other neighbours, times log2(B) / log2(min(H, W)), and 0 when not positive.
    Boundary pairs are counted as the authors' MATLAB code does, H * (W/B - 1) horizontally
    and W * (H/B - 1) vertically, which is not the true count when a side is not a multiple
    of B; the published LIVE1 PSNR-B baselines are only reproduced with that count.
    """
    img = _as_float(image)
    if img.ndim != 2:
        raise ValueError(f"expected a single-channel HxW image, got shape {img.shape}")
    h, w = img.shape
    cols = np.arange(block_size - 1, w - 1, block_size)  # left pixel of each pair across a vertical edge
    rows = np.arange(block_size - 1, h - 1, block_size)
    if min(h, w) < 2 or (cols.size == 0 and rows.size == 0):
        return 0.0
    across_cols = np.diff(img, axis=1) ** 2
    across_rows = np.diff(img, axis=0) ** 2
    boundary_sum = across_cols[:, cols].sum() + across_rows[rows, :].sum()
    inner_sum = across_cols.sum() + across_rows.sum() - boundary_sum
    n_boundary = (h * (w / block_size - 1) if cols.size else 0.0) + (w * (h / block_size - 1) if rows.size else 0.0)
    n_inner = h * (w - 1) + w * (h - 1) - n_boundary
    d_boundary = boundary_sum / n_boundary
    d_inner = inner_sum / n_inner
    if d_boundary <= d_inner:
        return 0.0
    return float(math.log2(block_size) / math.log2(min(h, w)) * (d_boundary - d_inner))


def psnr_b(reference, output) -> float:
    """PSNR-B (Yim & Bovik 2011): PSNR with the blocking effect factor of ``output`` added to
    the MSE. The factor is measured on the image under test only, never on the reference.

    Colour images follow the published colour tables: MSE over RGB plus the blocking factor of
    the output's (unrounded) Y. Averaging per-channel PSNR-B instead reads about 0.44 dB lower.
    """
    ref, out = _check_pair(reference, output)
    mse = float(np.mean((ref - out) ** 2))
    if out.ndim == 2:
        bef = blocking_effect_factor(out)
    elif out.shape[2] == 3:
        bef = blocking_effect_factor(_luma(out))
    else:
        raise ValueError(f"PSNR-B takes grayscale or RGB images, got {out.shape[2]} channels")
    return _psnr_from_mse(mse + bef)


def evaluate_pair(reference, output, *, on: str = "rgb") -> Metrics:
    """PSNR, SSIM and PSNR-B of one uint8 image pair (HxW or HxWx3), whole image.

    ``on="rgb"`` scores colour images in RGB (the colour tables); ``on="y"`` scores the 8-bit
    Y of both, rounded as MATLAB ``rgb2ycbcr`` does. Grayscale pairs are scored as they are.
    """
    if on not in ("rgb", "y"):
        raise ValueError(f"on must be 'rgb' or 'y', got {on!r}")
    ref, out = np.asarray(reference), np.asarray(output)
    _check_pair(ref, out)
    if on == "y" and ref.ndim == 3:
        ref, out = rgb_to_y_uint8(ref), rgb_to_y_uint8(out)
    return Metrics(psnr=psnr(ref, out), ssim=ssim(ref, out), psnr_b=psnr_b(ref, out))
