"""Finding and loading models: the shipped defaults, a user's ``.keras`` file, or a ``.tflite`` export.

The shipped defaults run on LiteRT (``daqe_tf.inference.litert_runner``) wherever
``ai-edge-litert`` is installed: their float16 ``.tflite`` files give the Keras models'
output without importing TensorFlow, in a fraction of the start-up time. TensorFlow/Keras is
needed only for ``.keras`` files a user passes, training and export (and for the defaults
when LiteRT is not installed).
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
# Shipped defaults, by image kind: the model with the best measured quality per MAC on the
# evaluation sets (docs); each also ships as <stem>.tflite (+ .tflite.json) for LiteRT, the
# runtime ``load_model()`` picks for them when it is installed.
DEFAULT_MODELS = {"color": "daqe_cnn_color_r2_cascade.keras", "gray": "daqe_cnn_gray_g3_cascade.keras"}
INSTALL_HINT = "pip install daqe-tf (LiteRT) or daqe-tf[tf] (TensorFlow/Keras)"

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
    """The shipped Keras default for the image kind (its LiteRT twin: ``.with_suffix(".tflite")``)."""
    return WEIGHTS_DIR / DEFAULT_MODELS["gray" if grayscale else "color"]


def shipped_model_path(grayscale: bool) -> Path:
    """The file ``load_model()`` loads for the image kind: the ``.tflite`` default where LiteRT is
    installed and the file ships, else the ``.keras`` one where Keras is installed.

    Raises ``ModelFileError`` saying what to install when neither runtime can load a shipped file.
    """
    keras_path = default_model_path(grayscale)
    tflite_path = keras_path.with_suffix(".tflite")
    if litert_available() and tflite_path.is_file():
        return tflite_path
    if keras_available() and keras_path.is_file():
        return keras_path
    if not litert_available() and not keras_available():
        raise ModelFileError(f"neither LiteRT nor TensorFlow/Keras is installed: {INSTALL_HINT}")
    if not keras_available():
        raise ModelFileError(
            f"TensorFlow/Keras is not installed and no shipped LiteRT model ({tflite_path.name}) was found: "
            "install daqe-tf[tf] (pip install '.[tf]') or pass a .tflite model")
    raise ModelFileError(f"no shipped model found in {WEIGHTS_DIR} ({keras_path.name} or {tflite_path.name})")


def _installed(name: str) -> bool:
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def keras_available() -> bool:
    """Whether Keras can be imported (checked without importing it: importing it imports TensorFlow)."""
    return _installed("keras")


def litert_available() -> bool:
    """Whether LiteRT (``ai_edge_litert``) can be imported, checked without importing it."""
    return _installed("ai_edge_litert")


_keras_available = keras_available  # the name older callers used


@contextlib.contextmanager
def native_stderr_silenced(enabled: bool = True):
    """Send what native code writes to file descriptor 2 (TensorFlow's absl/CUDA start-up lines,
    LiteRT's delegate line) to the null device while the block runs; Python's own errors still
    reach the user, as exceptions raised after the block. Does nothing if fd 2 cannot be swapped."""
    saved = None
    if enabled:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        try:
            saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except OSError:
            if saved is not None:
                os.close(saved)
            saved = None
    try:
        yield
    finally:
        if saved is not None:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


_SHIPPED: dict = {}  # (path, num_threads) -> loaded shipped default, reused by every enhance() call
_SHIPPED_LOCK = threading.Lock()


def load_model(path: str | os.PathLike | None = None, *, grayscale: bool = False, num_threads: int = 2,
               quiet: bool = True):
    """Load a model (default: the shipped one for the image kind, ``shipped_model_path``).

    ``.tflite`` paths load with LiteRT (``num_threads`` CPU threads), anything else as a
    ``.keras`` model with ``safe_mode=True``. The shipped defaults are loaded once per process
    and shared (LiteRT models serialise their calls). ``quiet``: keep TensorFlow's and LiteRT's
    native start-up log lines off stderr while loading.
    """
    if path is None:
        path = shipped_model_path(grayscale)
        key = (path, num_threads)
        with _SHIPPED_LOCK:
            if key not in _SHIPPED:
                _SHIPPED[key] = _load(path, num_threads, quiet)
            return _SHIPPED[key]
    return _load(Path(path), num_threads, quiet)


def _load(path: Path, num_threads: int, quiet: bool):
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    if not os.access(path, os.R_OK):
        raise ModelFileError(f"{path}: model file is not readable")
    if path.suffix == ".tflite":
        from daqe_tf.inference.litert_runner import LiteRTModel

        return LiteRTModel(path, num_threads=num_threads, quiet=quiet)
    if not keras_available():
        raise ModelFileError(f"{path}: a .keras model needs TensorFlow/Keras: install daqe-tf[tf] (pip install '.[tf]') or use a .tflite model")
    import warnings

    with native_stderr_silenced(quiet), warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore")
        import keras

        import daqe_tf.models  # noqa: F401  (registers the custom classes)

        try:
            return keras.models.load_model(path, safe_mode=True)
        except Exception as error:  # Keras raises many types for a bad archive
            raise ModelFileError(f"{path}: not a loadable .keras model ({type(error).__name__}: {error})") from error
