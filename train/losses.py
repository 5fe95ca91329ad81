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


def deep_supervision_loss(target, outputs, weights, kind: str = "charbonnier", own_exit=None, own_exit_weight: float = 0.0):
    """Weighted sum of every exit's per-example loss, shape (B,), plus the per-exit means.

    ``own_exit`` (B,) int: example b's exit ``own_exit[b]`` weighs ``own_exit_weight`` more on top
    of its weight in ``weights`` (DAQE: the exit that serves the example's defocus cluster).
    """
    if len(outputs) != len(weights):
        raise ValueError(f"{len(outputs)} exits but {len(weights)} exit weights")
    per_exit = [pixel_loss(target, out, kind) for out in outputs]
    total = sum(w * l for w, l in zip(weights, per_exit))
    if own_exit is not None and own_exit_weight:
        own = [ops.cast(ops.equal(own_exit, k), l.dtype) * l for k, l in enumerate(per_exit)]
        total = total + own_exit_weight * sum(own)
    return total, [ops.mean(l) for l in per_exit]


def defocus_loss(predicted, target):
    """Per-example mean L1 between predicted and pseudo-label log1p(sigma) cells, shape (B,)."""
    return ops.mean(ops.abs(ops.cast(predicted, "float32") - target), axis=(1, 2, 3))
