"""Single-image defocus maps for pseudo labels (Zhuo & Sim 2011, edge re-blur gradient ratio).

Our photos have no defocus ground truth and no pretrained estimator can be shipped, so the
defocus head is trained on maps from this classical estimator, in numpy only.

Method: at edges of an image blurred by sigma, re-blurring with sigma0 lowers the gradient by
R = sqrt(sigma^2 + sigma0^2) / sigma, so sigma = sigma0 / sqrt(R^2 - 1). Departures from the paper:
  * gradients are taken on a lightly pre-smoothed image and their expected noise power is
    subtracted, because sensor noise inflates |grad I| and pulls sigma towards 0 on blurred edges;
  * the ratio is measured for several sigma0 (sigma0 * scales) and each edge keeps the estimate
    whose sigma0 is closest to it: the ratio is most sensitive when sigma0 ~ sigma;
  * the sparse edge estimates are spread with edge-aware normalized convolution (the domain
    transform recursive filter of Gastal & Oliveira 2011) instead of the matting Laplacian:
    it also stops at intensity edges, but is O(HW) time and memory with no sparse solver.
Like the paper it assumes step edges: a periodic or fine texture reads as its own scale, and
edges closer than ~3 sigma interfere (sigma 3-5 came out 10-25 % low on dense synthetic scenes).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

ESTIMATOR_VERSION = "zhuo-sim-dtrf/1"

# px^2 that the central difference and pixel sampling add to an ideal step edge, measured on
# synthetic steps with the kernels below: 0.50..0.60 for sigma <= 3, up to 0.75 at sigma 5
# (a 0.02 px difference there), for every sigma0.
GRADIENT_VARIANCE = 0.55
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def to_gray(image: np.ndarray) -> np.ndarray:
    """HxW or HxWxC, uint8 (0..255) or float (0..1) -> float32 luma HxW in [0, 1]."""
    image = np.asarray(image)
    gray = image.astype(np.float32)
    if np.issubdtype(image.dtype, np.integer):
        gray /= np.iinfo(image.dtype).max
    if gray.ndim == 3:
        gray = gray[..., :3] @ _LUMA if gray.shape[-1] >= 3 else gray[..., 0]
    if gray.ndim != 2:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {image.shape}")
    return gray


def gaussian_blur(gray: np.ndarray, sigma: float) -> np.ndarray:
    """Separable sampled-Gaussian blur (radius 3 sigma) with mirrored borders."""
    if sigma <= 0:
        return gray.astype(np.float32, copy=True)
    radius = max(1, int(np.ceil(3.0 * sigma)))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
    kernel /= kernel.sum()
    out = gray.astype(np.float32, copy=False)
    for axis in (0, 1):
        n = out.shape[axis]
        padded = np.moveaxis(np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)],
                                    mode="symmetric"), axis, 0)
        acc = kernel[0] * padded[:n]
        for k in range(1, kernel.size):
            acc += kernel[k] * padded[k:k + n]
        out = np.moveaxis(acc, 0, axis)
    return np.ascontiguousarray(out)


def gradients(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference gradients (gy, gx) with replicated borders."""
    p = np.pad(gray, 1, mode="edge")
    return 0.5 * (p[2:, 1:-1] - p[:-2, 1:-1]), 0.5 * (p[1:-1, 2:] - p[1:-1, :-2])


def edge_mask(gy: np.ndarray, gx: np.ndarray, threshold: float) -> np.ndarray:
    """Canny-style edges: gradient maxima across the (4-way quantised) edge above ``threshold``."""
    mag = np.hypot(gx, gy)
    h, w = mag.shape
    p = np.pad(mag, 1)
    direction = np.round(np.arctan2(gy, gx) / (np.pi / 4)).astype(np.int8) % 4  # 0: x, 1: diag, 2: y, 3: anti
    is_max = np.zeros((h, w), bool)
    for d, (dy, dx) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        ahead = p[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        behind = p[1 - dy:1 - dy + h, 1 - dx:1 - dx + w]
        is_max |= (direction == d) & (mag >= ahead) & (mag > behind)
    return is_max & (mag > threshold)


def noise_sigma(gray: np.ndarray) -> float:
    """Robust white-noise std from Immerkaer's 3x3 mask (median, so texture barely counts)."""
    if min(gray.shape) < 3:
        return 0.0
    c = gray[1:-1, 1:-1]
    sides = gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:]
    corners = gray[:-2, :-2] + gray[:-2, 2:] + gray[2:, :-2] + gray[2:, 2:]
    response = 4.0 * c - 2.0 * sides + corners                # std 6 sigma on white noise
    return float(np.median(np.abs(response)) / (0.6745 * 6.0))


@lru_cache(maxsize=32)
def gradient_noise_power(sigma: float) -> float:
    """E|grad n|^2 for unit white noise n blurred by ``sigma`` (impulse-response energy)."""
    r = int(np.ceil(3.0 * sigma)) + 2
    impulse = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
    impulse[r, r] = 1.0
    gy, gx = gradients(gaussian_blur(impulse, sigma))
    return float(np.sum(gx ** 2) + np.sum(gy ** 2))


def recursive_filter(values: np.ndarray, guide: np.ndarray, sigma_s: float, sigma_r: float,
                     iterations: int = 3) -> np.ndarray:
    """Edge-aware domain-transform recursive filter (Gastal & Oliveira 2011) of HxWxK ``values``.

    Smooths over ~``sigma_s`` px where the HxW ``guide`` is flat and stops where it changes by
    much more than ``sigma_r``.
    """
    out = values.astype(np.float32, copy=True)
    sigma_first = sigma_s * np.sqrt(3.0) * 2.0 ** (iterations - 1) / np.sqrt(4.0 ** iterations - 1)
    log_a = np.float32(-np.sqrt(2.0) / sigma_first)

    def feedback(guide_step: np.ndarray) -> np.ndarray:
        """a^d between neighbours, d = 1 + sigma_s / sigma_r * |guide step| (domain distance)."""
        return np.exp(log_a * (1.0 + (sigma_s / sigma_r) * np.abs(guide_step)))[..., None]

    across_columns = feedback(np.ascontiguousarray(np.diff(guide, axis=1).T))   # W-1 x H x 1
    across_rows = feedback(np.diff(guide, axis=0))                              # H-1 x W x 1
    for _ in range(iterations):
        columns = np.ascontiguousarray(out.transpose(1, 0, 2))
        _recursive_pass(columns, across_columns)
        out = np.ascontiguousarray(columns.transpose(1, 0, 2))
        _recursive_pass(out, across_rows)
        across_columns *= across_columns         # sigma_i halves each iteration, so a_i squares
        across_rows *= across_rows
    return out


def _recursive_pass(lines: np.ndarray, feedback: np.ndarray) -> None:
    """Causal then anti-causal first-order recursion along axis 0, in place."""
    step = np.empty_like(lines[0])
    for n in range(1, lines.shape[0]):
        np.subtract(lines[n - 1], lines[n], out=step)
        step *= feedback[n - 1]
        lines[n] += step
    for n in range(lines.shape[0] - 2, -1, -1):
        np.subtract(lines[n + 1], lines[n], out=step)
        step *= feedback[n]
        lines[n] += step


def edge_defocus(gray: np.ndarray, *, sigma0: float = 1.0, scales: tuple[float, ...] = (1.0, 2.0, 4.0),
                 presmooth: float = 1.0, edge_threshold: float = 0.005,
                 max_sigma: float = 8.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse blur sigma at edges: (edge mask HxW, sigma per edge, gradient magnitude per edge)."""
    smooth = gaussian_blur(gray, presmooth)
    gy, gx = gradients(smooth)
    noise_var = noise_sigma(gray) ** 2
    noise_floor = 4.0 * np.sqrt(noise_var * gradient_noise_power(presmooth) / 2.0)   # 4 std per axis
    edges = edge_mask(gy, gx, max(edge_threshold, noise_floor))
    magnitude = np.hypot(gx[edges], gy[edges])
    grad_sq = np.maximum(magnitude ** 2 - noise_var * gradient_noise_power(presmooth), 1e-12)

    offset = GRADIENT_VARIANCE + presmooth ** 2
    reblur_sigmas = sigma0 * np.asarray(scales, np.float32)
    estimates = np.empty((reblur_sigmas.size, magnitude.size), np.float32)
    for k, s0 in enumerate(reblur_sigmas.tolist()):
        rgy, rgx = gradients(gaussian_blur(smooth, s0))
        reblur_noise = noise_var * gradient_noise_power(float(np.hypot(presmooth, s0)))
        reblur_sq = np.maximum(rgx[edges] ** 2 + rgy[edges] ** 2 - reblur_noise, 1e-12)
        with np.errstate(divide="ignore"):
            variance = s0 ** 2 / np.maximum(grad_sq / reblur_sq - 1.0, 0.0) - offset
        estimates[k] = np.sqrt(np.clip(variance, 0.0, max_sigma ** 2))
    # keep the sigma0 closest to each edge's own estimate (log distance, 0.3 px floor for sharp edges)
    best = np.argmin(np.abs(np.log((estimates + 0.3) / reblur_sigmas[:, None])), axis=0)
    return edges, estimates[best, np.arange(magnitude.size)], magnitude


def estimate_defocus_map(image: np.ndarray, *, sigma0: float = 1.0,
                         scales: tuple[float, ...] = (1.0, 2.0, 4.0), presmooth: float = 1.0,
                         edge_threshold: float = 0.005, max_sigma: float = 8.0, sigma_s: float = 20.0,
                         sigma_r: float = 0.1, fallback_sigma: float = 0.0) -> np.ndarray:
    """Dense defocus map: Gaussian blur sigma in px, float32 HxW, in [0, max_sigma].

    ``image`` is HxW or HxWxC, uint8 or float in [0, 1], and should be uncompressed. Regions far
    from any edge get the image's mean edge sigma; an image without edges gets ``fallback_sigma``
    everywhere (0 = in focus, so defocus-aware models never skip work on such images).
    """
    gray = to_gray(image)
    edges, sigma, magnitude = edge_defocus(gray, sigma0=sigma0, scales=scales, presmooth=presmooth,
                                           edge_threshold=edge_threshold, max_sigma=max_sigma)
    if sigma.size == 0:
        return np.full(gray.shape, fallback_sigma, np.float32)
    weight = magnitude / magnitude.mean()              # stronger edges give steadier ratios
    prior = float(np.sum(weight * sigma) / np.sum(weight))
    sparse = np.zeros(gray.shape + (2,), np.float32)
    sparse[edges, 0] = weight * sigma
    sparse[edges, 1] = weight
    spread = recursive_filter(sparse, gray, sigma_s, sigma_r)
    # where the spread edge density falls under ~0.1 % the image-wide mean takes over
    dense = (spread[..., 0] + 1e-3 * prior) / (spread[..., 1] + 1e-3)
    return np.clip(dense, 0.0, max_sigma).astype(np.float32)


def patch_defocus(defocus_map: np.ndarray, patch_size: int) -> np.ndarray:
    """Mean defocus per non-overlapping ``patch_size`` patch, shape (H // p, W // p); edges cropped."""
    h, w = defocus_map.shape[0] // patch_size, defocus_map.shape[1] // patch_size
    cropped = np.asarray(defocus_map, np.float32)[:h * patch_size, :w * patch_size]
    return cropped.reshape(h, patch_size, w, patch_size).mean(axis=(1, 3))
