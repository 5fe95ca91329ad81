"""Finding and loading models: the shipped defaults, a user's ``.keras`` file, or a ``.tflite`` export.

A ``.tflite`` file runs with LiteRT alone (``daqe_tf.inference.litert_runner``), so a
``litert``-only install without TensorFlow still enhances: it falls back to the shipped
``.tflite`` defaults when Keras cannot be imported.
"""
from __future__ import annotations

import os
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
# Shipped defaults, by image kind: the model with the best measured quality per MAC on the
# evaluation sets (README, "DAQE"); each may also ship as <stem>.tflite (+ .tflite.json) for LiteRT.
DEFAULT_MODELS = {"color": "daqe_cnn_color_c4_cascade.keras", "gray": "daqe_cnn_gray_g3_cascade.keras"}


class ModelFileError(OSError):
    """A model file that is missing or cannot be loaded, with a one-line reason."""


def save_model(model, path: str | os.PathLike) -> Path:
    """Write ``model`` as a ``.keras`` file atomically (a temporary sibling, then a rename), so an
    interrupted save leaves the previous file or the new one, never a torn one. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.keras")  # Keras insists on the .keras suffix
    model.save(tmp)
    os.replace(tmp, path)
    return path


def default_model_path(grayscale: bool) -> Path:
    return WEIGHTS_DIR / DEFAULT_MODELS["gray" if grayscale else "color"]


def _keras_available() -> bool:
    try:
        import keras  # noqa: F401
    except ImportError:
        return False
    return True


def load_model(path: str | os.PathLike | None = None, *, grayscale: bool = False, num_threads: int = 2):
    """Load a model (default: the shipped one for the image kind).

    ``.tflite`` paths load with LiteRT (``num_threads`` CPU threads), anything else as a
    ``.keras`` model with ``safe_mode=True``. Without TensorFlow/Keras the default is the
    shipped ``.tflite`` model.
    """
    if path is None:
        path = default_model_path(grayscale)
        if not _keras_available():
            path = path.with_suffix(".tflite")
            if not path.is_file():
                raise ModelFileError(
                    f"TensorFlow/Keras is not installed and no shipped LiteRT model ({path.name}) was found: "
                    "install daqe-tf[tf] (pip install '.[tf]') or pass a .tflite model"
                )
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    if not os.access(path, os.R_OK):
        raise ModelFileError(f"{path}: model file is not readable")
    if path.suffix == ".tflite":
        from daqe_tf.inference.litert_runner import LiteRTModel

        return LiteRTModel(path, num_threads=num_threads)
    if not _keras_available():
        raise ModelFileError(f"{path}: a .keras model needs TensorFlow/Keras: install daqe-tf[tf] (pip install '.[tf]') or use a .tflite model")
    import keras

    import daqe_tf.models  # noqa: F401  (registers the custom classes)

    try:
        return keras.models.load_model(path, safe_mode=True)
    except Exception as error:  # Keras raises many types for a bad archive
        raise ModelFileError(f"{path}: not a loadable .keras model ({type(error).__name__}: {error})") from error
