"""What the runners rely on in a model, as named types (the Kotlin core's ``PatchModel``,
``DefocusModel`` and ``CascadeModel``).

A Keras model (``QGAUNet``, ``DAQENet``) and a LiteRT file (``LiteRTModel``) both satisfy these
structurally; the runners check them here instead of probing attributes one by one. No Keras or
TensorFlow import: the LiteRT-only install uses them too.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class PatchModel(Protocol):
    """Any enhancer: ``model({"image", "qmap"}, exit_index)`` -> that exit's output, of ``num_exits``.

    Image channels C (3 colour, 1 gray); the Q-map's channels follow.
    """

    image_channels: int
    num_exits: int

    def __call__(self, inputs: dict, exit_index: int = -1) -> Any: ...


@runtime_checkable
class DefocusModel(Protocol):
    """A model that routes ``patch_size`` patches to exits by a per-16-px-cell map split by ``thresholds``.

    ``cell_maps(inputs)`` -> (B, h, w, 2): predicted log1p(defocus sigma) and the routing value.
    A LiteRT QGAUNet file carries these attributes set to None: ``routes_patches`` tells them apart.
    """

    image_channels: int
    num_exits: int
    patch_size: int | None
    thresholds: Sequence[float] | None

    def cell_maps(self, inputs: dict) -> Any: ...


@runtime_checkable
class CascadeModel(Protocol):
    """A DAQE model whose branches decide as they run (``routing == "cascade"``).

    ``cascade_stage(inputs, m[, context, summary])`` -> (features, summary, score or None) and
    ``exit_from_features(m, features, image)`` -> exit m's output; ``max_cost`` (None: no cap)
    caps the mean cost of a band of patches, in units of ``exit_costs[-1]``.
    """

    num_exits: int
    patch_size: int
    routing: str
    max_cost: float | None
    exit_costs: Sequence[float] | None

    def cascade_stage(self, inputs: dict, stage: int, context=None, summary=None) -> tuple: ...

    def exit_from_features(self, stage: int, features, image) -> Any: ...


@runtime_checkable
class Routed(Protocol):
    """A model that names its routing signal: "defocus", "readout" or "cascade"."""

    routing: str


def routes_patches(model) -> bool:
    """Whether ``model`` routes patches to exits (a DAQE model, Keras or LiteRT, or a runner like one)."""
    return isinstance(model, DefocusModel) and callable(model.cell_maps) and model.thresholds is not None \
        and model.patch_size is not None


def routing_signal(model) -> str:
    """What chooses a routing model's exits: its ``routing``, "defocus" for models that name none."""
    return model.routing if isinstance(model, Routed) else "defocus"


def is_cascade(model) -> bool:
    """Whether ``model`` routes by a cascade of stage readouts (no defocus head runs)."""
    return isinstance(model, Routed) and model.routing == "cascade"


def is_model_path(model) -> bool:
    """Whether ``model`` names a file (str, bytes or path-like) rather than being a loaded model."""
    return isinstance(model, (str, bytes, os.PathLike))
