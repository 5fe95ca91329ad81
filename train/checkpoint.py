"""Atomic, backend-neutral training checkpoints.

A checkpoint is a folder: model weights (``.weights.h5``), optimizer variables
(``optimizer.npz``: the step counter, moments, EMA weights and, with mixed
precision, the loss scale) and ``state.json`` (step, data-pipeline position and
seed, best metric, elapsed time); a GAN run adds its discriminator's weights and
optimizer, so it resumes as a GAN. It is written into a temporary folder, flushed
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
DISCRIMINATOR = "discriminator.weights.h5"
DISCRIMINATOR_OPTIMIZER = "discriminator_optimizer.npz"
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


def _save_optimizer(path: Path, optimizer):
    variables = list(optimizer.variables)
    paths = np.array([getattr(v, "path", getattr(v, "name", "")) for v in variables], dtype=str)
    np.savez(path, *[np.asarray(v) for v in variables], **{PATHS: paths})


def _restore_optimizer(path: Path, optimizer):
    with np.load(path) as data:
        count = sum(name.startswith("arr_") for name in data.files)
        values = [data[f"arr_{i}"] for i in range(count)]
        saved_paths = data[PATHS].tolist() if PATHS in data.files else None
    if len(values) != len(optimizer.variables):
        raise ValueError(
            f"checkpoint {path} has {len(values)} optimizer variables, the optimizer has {len(optimizer.variables)} "
            "(was it written with another optimizer setting, e.g. --mixed_precision or --ema_momentum 0?)"
            + (f"; checkpoint: {saved_paths[:4]}..." if saved_paths else ""))
    for variable, value in zip(optimizer.variables, values):
        variable.assign(value)


def save(run_dir, model, optimizer, state: dict, discriminator=None) -> Path:
    """Write a checkpoint atomically; returns its folder. ``discriminator``: a GAN run's (model, optimizer)."""
    run_dir = Path(run_dir)
    tmp, final, old = run_dir / "checkpoint.tmp", run_dir / "checkpoint", run_dir / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_weights(str(tmp / WEIGHTS))
    _save_optimizer(tmp / OPTIMIZER, optimizer)
    (tmp / STATE).write_text(json.dumps(state, indent=2))
    names = [WEIGHTS, OPTIMIZER, STATE]
    if discriminator is not None:
        discriminator[0].save_weights(str(tmp / DISCRIMINATOR))
        _save_optimizer(tmp / DISCRIMINATOR_OPTIMIZER, discriminator[1])
        names += [DISCRIMINATOR, DISCRIMINATOR_OPTIMIZER]
    for name in names:
        _fsync(tmp / name)
    _fsync(tmp)
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)  # until here `latest` finds the previous checkpoint (as final or old)
    _fsync(run_dir)
    shutil.rmtree(old, ignore_errors=True)
    return final


def restore(folder, model, optimizer, discriminator=None) -> dict:
    """Load a checkpoint into a built ``model`` and ``optimizer``; returns its state.

    ``discriminator`` (model, optimizer) is restored when the checkpoint has one; a run that
    turns the GAN on at a resume starts its discriminator fresh.
    """
    folder = Path(folder)
    model.load_weights(str(folder / WEIGHTS))
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    _restore_optimizer(folder / OPTIMIZER, optimizer)
    if discriminator is not None and (folder / DISCRIMINATOR).is_file():
        discriminator[0].load_weights(str(folder / DISCRIMINATOR))
        _restore_optimizer(folder / DISCRIMINATOR_OPTIMIZER, discriminator[1])
    return json.loads((folder / STATE).read_text())
