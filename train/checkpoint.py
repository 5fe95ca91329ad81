"""Atomic, backend-neutral training checkpoints.

A checkpoint is a folder: model weights (``.weights.h5``), optimizer variables
(``optimizer.npz``: the step counter, moments, EMA weights and, with mixed
precision, the loss scale) and ``state.json`` (step, data-pipeline position and
seed, best metric, elapsed time). It is written into a temporary folder, flushed
to disk and swapped in with renames, so a process killed at any moment leaves
either the previous or the new checkpoint, never a torn one.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

WEIGHTS = "model.weights.h5"
OPTIMIZER = "optimizer.npz"
STATE = "state.json"
PATHS = "paths"  # optimizer.npz entry naming each variable, for a readable mismatch error


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in (WEIGHTS, OPTIMIZER, STATE))


def _fsync(path: Path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def latest(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder in ``run_dir``, or None."""
    run_dir = Path(run_dir)
    for name in ("checkpoint", "checkpoint.old"):
        if _complete(run_dir / name):
            return run_dir / name
    return None


def save(run_dir, model, optimizer, state: dict) -> Path:
    """Write a checkpoint atomically; returns its folder."""
    run_dir = Path(run_dir)
    tmp, final, old = run_dir / "checkpoint.tmp", run_dir / "checkpoint", run_dir / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_weights(str(tmp / WEIGHTS))
    variables = list(optimizer.variables)
    paths = np.array([getattr(v, "path", getattr(v, "name", "")) for v in variables], dtype=str)
    np.savez(tmp / OPTIMIZER, *[np.asarray(v) for v in variables], **{PATHS: paths})
    (tmp / STATE).write_text(json.dumps(state, indent=2))
    for name in (WEIGHTS, OPTIMIZER, STATE):
        _fsync(tmp / name)
    _fsync(tmp)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)  # until here `latest` finds the previous checkpoint (as final or old)
    _fsync(run_dir)
    shutil.rmtree(old, ignore_errors=True)
    return final


def restore(folder, model, optimizer) -> dict:
    """Load a checkpoint into a built ``model`` and ``optimizer``; returns its state."""
    folder = Path(folder)
    model.load_weights(str(folder / WEIGHTS))
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    with np.load(folder / OPTIMIZER) as data:
        count = sum(name.startswith("arr_") for name in data.files)
        values = [data[f"arr_{i}"] for i in range(count)]
        saved_paths = data[PATHS].tolist() if PATHS in data.files else None
    if len(values) != len(optimizer.variables):
        raise ValueError(
            f"checkpoint {folder} has {len(values)} optimizer variables, the optimizer has {len(optimizer.variables)} "
            "(was it written with another optimizer setting, e.g. --mixed_precision or --ema_momentum 0?)"
            + (f"; checkpoint: {saved_paths[:4]}..." if saved_paths else ""))
    for variable, value in zip(optimizer.variables, values):
        variable.assign(value)
    return json.loads((folder / STATE).read_text())
