"""The model contracts the runners rely on (``daqe_tf.contracts``), on Keras models and stand-ins."""
import types
from pathlib import Path

from daqe_tf.contracts import CascadeModel, DefocusModel, PatchModel, is_cascade, is_model_path, routes_patches, routing_signal
from daqe_tf.models import build_model
from tests.helpers import TINY_DAQE_CONFIG, tiny_model


def test_keras_models_meet_their_contracts():
    daqe = build_model("daqe", 3, **TINY_DAQE_CONFIG)
    qga = tiny_model()
    assert isinstance(daqe, PatchModel) and isinstance(daqe, DefocusModel) and routes_patches(daqe)
    assert isinstance(qga, PatchModel) and not isinstance(qga, DefocusModel) and not routes_patches(qga)
    assert routing_signal(daqe) == "defocus" and not is_cascade(daqe)
    cascade = build_model("daqe", 3, **TINY_DAQE_CONFIG, routing="cascade")
    assert isinstance(cascade, CascadeModel) and is_cascade(cascade) and routing_signal(cascade) == "cascade"


def test_routing_needs_thresholds_and_a_patch_size():
    """A LiteRT QGAUNet file carries the DAQE attributes set to None: it routes nothing."""
    surface = dict(image_channels=3, num_exits=2, cell_maps=lambda inputs: None)
    assert not routes_patches(types.SimpleNamespace(**surface, patch_size=None, thresholds=None))
    assert routes_patches(types.SimpleNamespace(**surface, patch_size=64, thresholds=[0.5]))
    assert routing_signal(types.SimpleNamespace(**surface, patch_size=64, thresholds=[0.5])) == "defocus"


def test_model_paths():
    assert is_model_path("m.keras") and is_model_path(b"m.tflite") and is_model_path(Path("m.keras"))
    assert not is_model_path(types.SimpleNamespace())
