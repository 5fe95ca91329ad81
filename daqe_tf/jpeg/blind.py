"""Blind estimate of the JPEG quality of pixels that arrive without a JPEG file.

A decoded JPEG keeps its history: the 8x8 block DCT of its luma lies close to
integer multiples of the quantization steps. For each standard quality we
measure how far the coefficients are from multiples of that table's steps;
the coarsest table that still fits is the estimate. Pixels that never were a
JPEG (or whose grid was moved by resizing or cropping) fit no table, and the
caller is told the estimate is weak.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from daqe_tf.jpeg.tables import STD_CHROMA_TABLE, STD_LUMA_TABLE, scale_table

# Orthonormal 8-point DCT-II matrix.
_K = np.arange(8)
DCT8 = np.sqrt(2 / 8) * np.cos(np.pi * (2 * _K[None, :] + 1) * _K[:, None] / 16)
DCT8[0] /= np.sqrt(2)

# Only these frequencies are scored: low ones carry most non-zero coefficients.
_SCORED = np.zeros((8, 8), bool)
_SCORED[:4, :4] = True
_SCORED[0, 0] = False


@dataclasses.dataclass(frozen=True)
class BlindEstimate:
    quality: int
    luma_table: np.ndarray
    chroma_table: np.ndarray | None
    fits: bool  # False: no standard table explains the pixels; quality is a fallback


def block_dct(channel: np.ndarray) -> np.ndarray:
    """DCT of every full 8x8 block of a level-shifted channel, shape (N, 8, 8)."""
    h, w = (channel.shape[0] // 8) * 8, (channel.shape[1] // 8) * 8
    blocks = channel[:h, :w].astype(np.float64).reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    return DCT8 @ (blocks - 128.0) @ DCT8.T


def _misfit(coefficients: np.ndarray, table: np.ndarray, min_count: int = 200) -> float:
    """Mean distance (in steps) from the nearest non-zero multiple of ``table``.

    Only coefficients this table would not quantize to zero count: zeros fit
    every table and would make all coarse tables look right. Returns inf when
    too few coefficients are left to judge.
    """
    steps = np.broadcast_to(table[_SCORED], coefficients[:, _SCORED].shape)
    ratio = coefficients[:, _SCORED] / steps
    used = np.abs(ratio) >= 0.5
    if used.sum() < min_count:
        return float("inf")
    return float(np.mean(np.abs(ratio[used] - np.round(ratio[used]))))


def estimate_quality_from_pixels(pixels: np.ndarray, fallback_quality: int = 75, max_blocks: int = 4096) -> BlindEstimate:
    """Estimate the quality that last compressed ``pixels`` (uint8 HxW or HxWx3, grid at the origin)."""
    grayscale = pixels.ndim == 2
    luma = pixels if grayscale else pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    coefficients = block_dct(luma)
    if len(coefficients) > max_blocks:
        coefficients = coefficients[np.linspace(0, len(coefficients) - 1, max_blocks).astype(int)]
    best = None
    if len(coefficients):
        misfits = {}
        for quality in range(1, 100):
            table = scale_table(STD_LUMA_TABLE, quality).astype(np.float64)
            if table[_SCORED].min() < 3:
                break  # steps this fine are indistinguishable from 8-bit rounding noise
            misfits[quality] = _misfit(coefficients, table)
        lowest = min(misfits.values(), default=float("inf"))
        # The true table fits, and so do its divisors (finer tables); take the
        # coarsest that fits as well as the best one. Wrong tables sit ~0.25 off.
        if lowest < 0.1:
            best = min(q for q, m in misfits.items() if m <= lowest + 0.02)
    fits = best is not None
    quality = best if fits else fallback_quality
    return BlindEstimate(
        quality=quality,
        luma_table=scale_table(STD_LUMA_TABLE, quality),
        chroma_table=None if grayscale else scale_table(STD_CHROMA_TABLE, quality),
        fits=fits,
    )
