"""The tiny models that export tests convert (the ``exported`` fixture in tests/conftest.py
exports each once per session), and JPEG inputs for them."""
from __future__ import annotations

import numpy as np

from daqe_tf.jpeg.qmap import qmap_from_tables
from daqe_tf.jpeg.simulate import compress
from tests.helpers import natural_image, open_layer_scales, tiny_model

TILE = 32
DAQE_TINY = dict(
    num_clusters=2, widths=[4, 8, 8], encoder_blocks=[1, 1], bottleneck_blocks=[1, 1], decoder_blocks=[1, 0],
    patch_size=32, key_dim=4, defocus_widths=[4, 4, 4, 4], defocus_blocks=[1, 1, 1, 1], thresholds=[0.75],
)
# case -> variants exported; a conversion costs seconds, so each variant is tested on one model
# per family beside float32 (grayscale: tests/test_export.py exports a mixed-precision one).
CASES = {
    "qga_color": ("float32", "float16", "int8"),
    "daqe_cnn": ("float32", "float16"),
    "daqe_transformer": ("float32", "int8"),
    "daqe_cascade": ("float32", "int8"),
    "daqe_naf": ("float32",),  # the other blocks (layers.blocks.BLOCKS)
    "daqe_inverted": ("float16",),
}


def build_case(case: str):
    """The Keras model of ``case``, with random exit heads (fresh heads are zero: identity exits).

    "daqe_cnn" routes by a (random) learned readout, "daqe_transformer" by defocus, "daqe_cascade"
    by a (random) cascade whose stage scores straddle zero; "daqe_naf" and "daqe_inverted" are
    "daqe_transformer"'s routing with the other blocks (NAF's layer scales opened: they start at 0)."""
    if case == "qga_color":
        return tiny_model(3)
    import keras

    from daqe_tf.models import build_model

    keras.utils.set_random_seed(3)
    block = {"daqe_naf": "naf", "daqe_inverted": "inverted"}.get(case, "residual")
    model = build_model("daqe", 3, texture="transformer" if case == "daqe_transformer" else "cnn", block=block, **DAQE_TINY)
    rng = np.random.default_rng(3)
    open_layer_scales(model, lambda shape: rng.normal(0, 0.5, shape))
    for head in model.heads:
        head.kernel.assign(rng.normal(0, 0.1, head.kernel.shape).astype("float32"))
    if case == "daqe_cnn":
        from daqe_tf.models.daqe import with_routing

        readout = (rng.normal(0, 0.5, model.defocus_widths[-1] + 1), 0.1)
        model = with_routing(model, "readout", [0.0], readout)
    if case == "daqe_cascade":
        from daqe_tf.models.daqe import with_routing

        weights = rng.normal(0, 5.0, 2 * model.branches[0].width + 1)
        probe = with_routing(model, "cascade", [0.0], [(weights, 0.0)])
        inputs = jpeg_inputs(8, 32, 32, 3, seed=40)
        inputs["image"] = inputs["image"] * np.linspace(0.2, 1.0, 8)[:, None, None, None]  # patches that differ
        middle = float(np.median(np.asarray(probe.cascade_stage(inputs, 0)[2])))
        model = with_routing(model, "cascade", [0.0], [(weights, -middle)])
    return model


def jpeg_inputs(batch: int, height: int, width: int, channels: int, quality: int = 20, seed: int = 0) -> dict:
    """A batch of JPEG-decoded natural images in [0, 1] with their Q-maps: in-distribution inputs."""
    images, qmaps = [], []
    for i in range(batch):
        jpeg = compress(natural_image(height, width, channels, seed=seed + i), quality)
        images.append(jpeg.decoded.reshape(height, width, channels).astype(np.float32) / 255.0)
        qmaps.append(qmap_from_tables(jpeg.luma_table, jpeg.chroma_table, height, width, jpeg.subsampling))
    return {"image": np.stack(images), "qmap": np.stack(qmaps)}
