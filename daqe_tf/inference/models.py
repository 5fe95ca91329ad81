"""Finding and loading models: the shipped defaults or a user's ``.keras`` file."""
from __future__ import annotations

import os
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
# Shipped defaults, by image kind.
DEFAULT_MODELS = {"color": "qga_unet_color.keras", "gray": "qga_unet_gray.keras"}


class ModelFileError(OSError):
    """A model file that is missing or cannot be loaded, with a one-line reason."""


def default_model_path(grayscale: bool) -> Path:
    return WEIGHTS_DIR / DEFAULT_MODELS["gray" if grayscale else "color"]


def load_model(path: str | os.PathLike | None = None, *, grayscale: bool = False):
    """Load a ``.keras`` model with ``safe_mode=True`` (default: the shipped one for the image kind)."""
    import keras

    import daqe_tf.models  # noqa: F401  (registers the custom classes)

    path = Path(path) if path is not None else default_model_path(grayscale)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    if not os.access(path, os.R_OK):
        raise ModelFileError(f"{path}: model file is not readable")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many types for a bad archive
        raise ModelFileError(f"{path}: not a loadable .keras model ({type(error).__name__}: {error})") from error
