"""Reconstruction losses with deep supervision over exits (keras.ops, any backend)."""
from __future__ import annotations

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


def deep_supervision_loss(target, outputs, weights, kind: str = "charbonnier"):
    """Weighted sum of every exit's per-example loss, shape (B,), plus the per-exit means."""
    if len(outputs) != len(weights):
        raise ValueError(f"{len(outputs)} exits but {len(weights)} exit weights")
    per_exit = [pixel_loss(target, out, kind) for out in outputs]
    total = sum(w * l for w, l in zip(weights, per_exit))
    return total, [ops.mean(l) for l in per_exit]
