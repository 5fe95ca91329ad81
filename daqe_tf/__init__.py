"""daqe-tf: defocus-aware, quantization-guided JPEG quality enhancement.

Public API:
    enhance(source, model=None, exit_index=-1) -> EnhanceResult
    load_model(path=None, grayscale=False)
    QGAUNet, build_model  (need the ``tf`` extra: Keras 3)

The JPEG substrate (``daqe_tf.jpeg``), metrics and I/O need only numpy and
Pillow; Keras is imported on first use of a model.
"""
from daqe_tf.inference.models import ModelFileError, load_model
from daqe_tf.inference.pipeline import EnhanceResult, enhance
from daqe_tf.io import ImageInputError

__version__ = "0.1.0"


def __getattr__(name):
    # Model classes import Keras; keep ``import daqe_tf`` light for LiteRT-only installs.
    if name in ("QGAUNet", "build_model"):
        import daqe_tf.models as models

        return getattr(models, name)
    raise AttributeError(f"module 'daqe_tf' has no attribute {name!r}")


__all__ = ["enhance", "load_model", "EnhanceResult", "ImageInputError", "ModelFileError", "QGAUNet", "build_model"]
