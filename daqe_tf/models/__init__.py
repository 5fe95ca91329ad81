"""Model families and a factory that builds one from a plain config dict."""
from daqe_tf.models.daqe import DAQENet
from daqe_tf.models.qga_unet import QGAUNet

MODEL_FAMILIES = {"qga_unet": QGAUNet, "daqe": DAQENet}


def build_model(family: str, image_channels: int, **config):
    """A new, built model of ``family`` (see ``MODEL_FAMILIES``)."""
    if family not in MODEL_FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose from {sorted(MODEL_FAMILIES)}")
    model = MODEL_FAMILIES[family](image_channels=image_channels, **config)
    qmap_channels = 1 if image_channels == 1 else 2
    model.build({"image": (None, None, None, image_channels), "qmap": (None, None, None, qmap_channels)})
    return model


__all__ = ["DAQENet", "QGAUNet", "MODEL_FAMILIES", "build_model"]
