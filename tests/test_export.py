"""export/: every signature of the .tflite matches Keras (float32 to 1e-4; float16 and int8 to
measured bounds), Flex ops fail the export, mixed-precision models export as float32, metadata."""
import json

import keras
import numpy as np
import pytest
from keras import ops

from daqe_tf.inference.litert_runner import LiteRTModel
from daqe_tf.models import QGAUNet
from daqe_tf.routing.runtime import PATCH_OVERLAP
from export.converter import ExportError, export_tflite, metadata_path
from export.main import main as export_main
from tests.export_cases import CASES, TILE, jpeg_inputs
from tests.helpers import tiny_model

# Max |TFLite - Keras| on these inputs, measured (outputs of random-weight tiny models; images in [0, 1]):
# float32 1.3e-6; float16 5.1e-4 (defocus 1.4e-3), XNNPACK computing in float32 with float16-rounded
# weights; int8 0.12 at single pixels (defocus 0.47 in log1p sigma), so int8 is also held to a PSNR
# against Keras: measured 48.2 dB (QGAUNet) and 35.0 dB (DAQENet, transformer texture).
EXIT_ATOL = {"float32": 1e-4, "float16": 1e-3, "int8": 0.25}
INT8_MIN_PSNR = 32.0
DEFOCUS_ATOL = {"float32": 1e-4, "float16": 5e-3, "int8": 1.0}  # log1p(sigma) per cell
SIZES = [(32, 32), (37, 45)]  # whole strides, and odd sizes that are padded inside

EXPORTS = [(case, variant) for case, variants in CASES.items() for variant in variants]


def _psnr(a, b):
    return float(10 * np.log10(1.0 / max(np.mean((np.asarray(a, np.float64) - b) ** 2), 1e-20)))


def _check(got, want, atol, min_psnr=None):
    want = np.asarray(want)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= atol, np.abs(got - want).max()
    if min_psnr is not None:
        assert _psnr(got, want) >= min_psnr


@pytest.mark.parametrize("case,variant", EXPORTS, ids=[f"{c}-{v}" for c, v in EXPORTS])
def test_every_signature_matches_keras(case, variant, exported):
    model, paths = exported(case)
    litert = LiteRTModel(paths[variant])
    channels = model.image_channels
    min_psnr = INT8_MIN_PSNR if variant == "int8" else None
    for height, width in SIZES:
        inputs = jpeg_inputs(2, height, width, channels, seed=height)
        for k in range(model.num_exits):
            _check(litert(inputs, k), model(inputs, exit_index=k), EXIT_ATOL[variant], min_psnr)
        if case.startswith("daqe"):  # defocus and the routing value per cell (a readout for daqe_cnn)
            cells = np.asarray(model.cell_maps(inputs))
            _check(litert.cell_maps(inputs), cells, DEFOCUS_ATOL[variant])
            assert (model.routing == "readout") == (np.abs(cells[..., 1] - cells[..., 0]).max() > 0.05)
    tile = jpeg_inputs(1, TILE, TILE, channels, seed=1)
    _check(litert.run(f"tile_{TILE}", tile)["enhanced"], model(tile, exit_index=-1), EXIT_ATOL[variant], min_psnr)
    # Exits differ from each other by far more than the bound: the test would see a swapped exit.
    first, last = litert(inputs, 0), litert(inputs, -1)
    assert np.abs(first - last).max() > 10 * EXIT_ATOL["float16"]


@pytest.mark.parametrize("variant", CASES["daqe_cascade"])
def test_cascade_stage_and_head_signatures_match_keras_and_route_alike(variant, exported, tmp_path):
    from daqe_tf.routing.runtime import enhance_routed

    model, paths = exported("daqe_cascade")
    litert = LiteRTModel(paths[variant])
    assert litert.routing == "cascade"
    inputs = jpeg_inputs(4, 32, 32, 3, seed=7)
    atol = EXIT_ATOL[variant]
    features, summary, score = model.cascade_stage(inputs, 0)
    got = litert.cascade_stage(inputs, 0)
    for a, b in zip(got, (features, summary, score)):
        _check(a, b, 10 * atol if variant == "int8" else atol)
    last = litert.cascade_stage(inputs, 1, np.asarray(features), np.asarray(summary))
    want = model.cascade_stage(inputs, 1, features, summary)
    assert last[2] is None and want[2] is None
    _check(last[0], want[0], 10 * atol if variant == "int8" else atol)
    for m, feats in ((0, features), (1, want[0])):
        _check(litert.exit_from_features(m, np.asarray(feats), inputs["image"]), model.exit_from_features(m, feats, inputs["image"]),
               atol, INT8_MIN_PSNR if variant == "int8" else None)
    if variant == "float32":  # whole image: the same exits, the same pixels (up to rounding)
        pixels = (jpeg_inputs(1, 70, 90, 3, seed=3)["image"][0] * np.linspace(0.2, 1.0, 90)[None, :, None] * 255).round().astype(np.uint8)
        qmap_for = lambda h, w, origin: np.full((h, w, 2), 0.3, np.float32)  # noqa: E731
        keras_out, keras_routing = enhance_routed(pixels, model, qmap_for)
        lite_out, lite_routing = enhance_routed(pixels, litert, qmap_for)
        assert len(set(keras_routing.exits.tolist())) == 2  # both exits used: the check sees a swapped decision
        np.testing.assert_array_equal(lite_routing.exits, keras_routing.exits)
        assert np.abs(lite_out.astype(int) - keras_out).max() <= 1
        # The compute cap travels in the metadata's model_config and binds the same way in both runtimes.
        import shutil

        from daqe_tf.models.daqe import with_routing

        readout = model.cascade_readouts[0]
        deep_share = keras_routing.exits.mean()  # exits are 0 / 1 here: the share of deepest patches
        cap = {"max_cost": 0.5 + 0.25 * deep_share, "exit_costs": [0.5, 1.0]}  # room for half of them
        fitted = [(np.asarray(readout.kernel)[:, 0], float(np.asarray(readout.bias)[0]))]
        capped = with_routing(model, "cascade", model.thresholds, fitted, **cap)
        folder = tmp_path
        shutil.copyfile(paths[variant], folder / "capped.tflite")
        meta = json.loads(metadata_path(paths[variant]).read_text())
        meta["model_config"].update(cap)
        metadata_path(folder / "capped.tflite").write_text(json.dumps(meta))
        capped_lite = LiteRTModel(folder / "capped.tflite")
        assert capped_lite.max_cost == cap["max_cost"] and LiteRTModel(paths[variant]).max_cost is None
        keras_capped = enhance_routed(pixels, capped, qmap_for)[1].exits
        assert keras_capped.sum() < keras_routing.exits.sum()  # the cap binds
        np.testing.assert_array_equal(enhance_routed(pixels, capped_lite, qmap_for)[1].exits, keras_capped)


def test_tile_signature_has_a_fixed_shape(exported):
    _, paths = exported("qga_color")
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(paths["float32"])).get_signature_runner(f"tile_{TILE}")
    assert runner.get_input_details()["image"]["shape_signature"].tolist() == [1, TILE, TILE, 3]
    assert runner.get_input_details()["qmap"]["shape_signature"].tolist() == [1, TILE, TILE, 2]
    exit_runner = Interpreter(model_path=str(paths["float32"])).get_signature_runner("exit_0")
    assert exit_runner.get_input_details()["image"]["shape_signature"].tolist() == [-1, -1, -1, 3]


@pytest.mark.parametrize("case", ["qga_color", "daqe_transformer", "daqe_cnn"])
def test_metadata_is_complete(case, exported):
    model, paths = exported(case)
    meta = json.loads(metadata_path(paths["float32"]).read_text())
    exits = [f"exit_{k}" for k in range(model.num_exits)]
    assert meta["family"] == ("daqe" if case.startswith("daqe") else "qga_unet")
    assert (meta["variant"], meta["io_dtype"], meta["tile_size"]) == ("float32", "float32", TILE)
    assert (meta["image_channels"], meta["qmap_channels"]) == (3, 2)
    assert (meta["num_exits"], meta["stride"]) == (model.num_exits, model.stride)
    assert meta["signatures"] == {"exits": exits, "defocus": "defocus" if case.startswith("daqe") else None, "tile": f"tile_{TILE}"}
    assert meta["inputs"] == ["image", "qmap"] and meta["outputs"] == {"exits": "enhanced", "defocus": "defocus", "routing": "routing"}
    assert "CONV_2D" in meta["ops"] and not [op for op in meta["ops"] if op.startswith("Flex")]
    assert meta["model_config"] == {k: v for k, v in model.get_config().items() if k not in ("name", "trainable", "dtype")}
    if case.startswith("daqe"):
        assert meta["patch_size"] == 32 and meta["thresholds"] == pytest.approx(model.thresholds)
        assert meta["defocus_cell"] == 16 and meta["patch_overlap"] == PATCH_OVERLAP
        assert meta["routing"] == ("readout" if case == "daqe_cnn" else "defocus")
    else:
        assert "thresholds" not in meta and "patch_size" not in meta and "patch_overlap" not in meta
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_path=str(paths["float32"])).get_signature_list()
    assert sorted(signatures) == sorted(exits + ["defocus"] * case.startswith("daqe") + [f"tile_{TILE}"])
    assert all(s["inputs"] == ["image", "qmap"] for s in signatures.values())


class NeedsFlexUNet(QGAUNet):
    """A QGAUNet whose output passes through erfinv, which LiteRT has no built-in kernel for."""

    def call(self, inputs, exit_index=None):
        return ops.erfinv(0.5 * super().call(inputs, exit_index=exit_index))


def test_an_op_outside_the_builtins_fails_the_export(tmp_path):
    model = NeedsFlexUNet(image_channels=1, widths=[4, 4], encoder_blocks=[1], decoder_blocks=[], num_exits=1, stem_stride=2)
    model.build({"image": (None, None, None, 1), "qmap": (None, None, None, 1)})
    with pytest.raises(ExportError, match=r"Erfinv.*Flex"):
        export_tflite(model, {"float32": tmp_path / "flex.tflite"}, tile=TILE)
    assert not (tmp_path / "flex.tflite").exists() and not metadata_path(tmp_path / "flex.tflite").exists()


def _small_gray_unet(policy: str):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = QGAUNet(image_channels=1, widths=[4, 4, 4], encoder_blocks=[1, 1], decoder_blocks=[1], num_exits=2, stem_stride=2)
        model.build({"image": (None, None, None, 1), "qmap": (None, None, None, 1)})
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return model


@pytest.mark.slow
def test_cli_exports_a_mixed_precision_gray_model_as_float32(tmp_path, capsys):
    reference = _small_gray_unet("float32")
    rng = np.random.default_rng(5)
    for head in reference.heads:
        head.kernel.assign(rng.normal(0, 0.05, head.kernel.shape).astype("float32"))
    mixed = _small_gray_unet("mixed_float16")
    mixed.set_weights(reference.get_weights())
    mixed.save(tmp_path / "mixed.keras")
    out = tmp_path / "gray.tflite"
    status = export_main(["--model", str(tmp_path / "mixed.keras"), "--out", str(out), "--variant", "float32", "--tile", str(TILE)])
    assert status == 0, capsys.readouterr().err
    assert f"signatures: exit_0, exit_1, tile_{TILE}" in capsys.readouterr().out
    litert = LiteRTModel(out)
    assert (litert.image_channels, litert.metadata["variant"], litert.family) == (1, "float32", "qga_unet")
    for height, width in SIZES:
        inputs = jpeg_inputs(1, height, width, 1, seed=width)
        for k in range(2):
            np.testing.assert_allclose(litert(inputs, k), reference(inputs, exit_index=k), rtol=0, atol=EXIT_ATOL["float32"])
    tile = jpeg_inputs(1, TILE, TILE, 1)
    np.testing.assert_allclose(litert.run(f"tile_{TILE}", tile)["enhanced"], reference(tile, exit_index=-1), rtol=0, atol=EXIT_ATOL["float32"])


def test_export_refuses_what_it_cannot_do(tmp_path, capsys):
    model = tiny_model(3)
    with pytest.raises(ExportError, match="representative"):
        export_tflite(model, {"int8": tmp_path / "m.tflite"}, tile=TILE)
    with pytest.raises(ExportError, match="multiple of 16"):
        export_tflite(model, {"float32": tmp_path / "m.tflite"}, tile=40)
    with pytest.raises(ExportError, match="variant"):
        export_tflite(model, {"bfloat16": tmp_path / "m.tflite"}, tile=TILE)
    assert export_main(["--model", str(tmp_path / "missing.keras"), "--out", str(tmp_path / "m.tflite")]) == 1
    assert "export: error:" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
