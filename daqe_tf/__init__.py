"""daqe-tf: defocus-aware, quantization-guided JPEG quality enhancement.

Public API:
    enhance(source, model=None, *, exit_index=None, quality=None, strength=1.0) -> EnhanceResult
    load_model(path=None, grayscale=False)  (default: the shipped model, on LiteRT where installed)
    DAQENet, QGAUNet, build_model  (need the ``tf`` extra: Keras 3)

The shipped models run on LiteRT without TensorFlow; the JPEG substrate
(``daqe_tf.jpeg``), metrics and I/O need only numpy and Pillow. The Keras model
classes are registered with Keras as soon as both ``daqe_tf`` and ``keras`` are
imported, in either order, so ``keras.models.load_model(path, safe_mode=True)``
finds them; ``import daqe_tf`` itself never imports Keras or TensorFlow.
"""
import sys as _sys
import warnings as _warnings

from daqe_tf.inference.models import ModelFileError, load_model
from daqe_tf.inference.pipeline import EnhanceResult, enhance
from daqe_tf.io import ImageInputError

__version__ = "0.1.0"

_MODEL_NAMES = ("DAQENet", "QGAUNet", "build_model")


def __getattr__(name):
    # Model classes import Keras; keep ``import daqe_tf`` light for LiteRT-only installs.
    if name in _MODEL_NAMES:
        import daqe_tf.models as models

        return getattr(models, name)
    raise AttributeError(f"module 'daqe_tf' has no attribute {name!r}")


def _register_keras_classes() -> None:
    """Import ``daqe_tf.models`` (its classes register themselves with Keras); warn if that fails."""
    try:
        import daqe_tf.models  # noqa: F401
    except Exception as error:  # a broken Keras install must not break ``import keras``
        _warnings.warn(f"daqe_tf could not register its Keras model classes: {type(error).__name__}: {error}",
                       RuntimeWarning, stacklevel=2)


class _RegisterAfterKerasImport:
    """A meta-path finder that lets ``import keras`` run as usual, then registers our classes.

    It finds the ``keras`` package with the other finders and wraps its loader's ``exec_module``
    (on that loader object only), so the registration runs once Keras is fully imported; then it
    removes itself. Importing ``daqe_tf.models`` then costs tens of milliseconds, not the seconds
    of importing Keras (and TensorFlow) that an eager registration would add to every start.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        for finder in _sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module):
            original(module)
            self.remove()
            _register_keras_classes()

        loader.exec_module = exec_module
        return spec

    def remove(self) -> None:
        if self in _sys.meta_path:
            _sys.meta_path.remove(self)


if "keras" in _sys.modules:
    _register_keras_classes()
elif not any(type(f).__name__ == _RegisterAfterKerasImport.__name__ for f in _sys.meta_path):
    _sys.meta_path.insert(0, _RegisterAfterKerasImport())

__all__ = ["enhance", "load_model", "EnhanceResult", "ImageInputError", "ModelFileError", *_MODEL_NAMES]
