"""LiteRTModel and the LiteRT pipeline: no TensorFlow or Keras on the path (checked in subprocesses,
one of them with imports of both blocked), output matching the Keras pipeline (QGAUNet tiles and
DAQENet's defocus-routed patches), CLI fallbacks, the shipped default on LiteRT, skipped
repeated batch slots, Keras finding the model classes after ``import daqe_tf``."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daqe_tf.inference.litert_runner import LiteRTModel
from daqe_tf.inference.models import DEFAULT_MODELS, ModelFileError, load_model
from daqe_tf.inference.pipeline import enhance
from daqe_tf.metrics import psnr
from export.converter import metadata_path
from tests.export_cases import jpeg_inputs
from tests.helpers import natural_image

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_COLOR_TFLITE = Path(DEFAULT_MODELS["color"]).with_suffix(".tflite").name  # what a TensorFlow-free install falls back to
PIPELINE_TILE = 64  # smaller than the image: several windows, some of odd size

# Runs in a fresh interpreter. With "block", a meta-path finder makes `import tensorflow` and
# `import keras` fail and records every attempt.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    mode, work = sys.argv[1], Path(sys.argv[2])
    block = mode == "block"
    attempts = []

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras"):
                attempts.append(name)
                raise ImportError(f"blocked for the test: {name}")
            return None

    if block:
        sys.meta_path.insert(0, Blocker())
    import numpy as np

    import daqe_tf
    import daqe_tf.cli as cli
    import daqe_tf.inference.models as models

    report = {"imported_at_start": sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))}
    tflite, jpeg = str(work / "model.tflite"), str(work / "photo.jpg")
    np.save(work / f"{mode}_api.npy", daqe_tf.enhance(jpeg, model=tflite, tile=64).pixels)
    routed = daqe_tf.enhance(jpeg, model=str(work / "daqe.tflite"), tile=128)  # exits picked per patch by defocus
    np.save(work / f"{mode}_daqe.npy", routed.pixels)
    report["daqe_exits"] = routed.routing.exits.tolist()
    report["cli_model"] = cli.main(["enhance", jpeg, "-o", str(work / f"{mode}_cli.png"), "--model", tflite, "--tile", "64", "-q"])
    report["attempts_with_tflite"] = list(attempts)
    if block:
        models.WEIGHTS_DIR = work / "shipped"
        report["cli_shipped"] = cli.main(["enhance", jpeg, "-o", str(work / "shipped.png"), "--tile", "64", "-q"])
        models.WEIGHTS_DIR = work / "nothing_shipped"
        report["cli_nothing_shipped"] = cli.main(["enhance", jpeg, "-o", str(work / "none.png"), "-q"])
        report["cli_keras_model"] = cli.main(["enhance", jpeg, "-o", str(work / "keras.png"), "--model", str(work / "m.keras"), "-q"])
    report["imported_at_end"] = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
    print("REPORT " + json.dumps(report))
    """
)


def _run(mode: str, work: Path) -> tuple[dict, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(work)], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [line for line in done.stdout.splitlines() if line.startswith("REPORT ")][-1]
    return json.loads(line[len("REPORT "):]), done.stderr


@pytest.fixture(scope="module")
def work(tmp_path_factory, exported):
    """A JPEG, float32 exports of a tiny QGAUNet and DAQENet, and the Keras pipeline's outputs."""
    model, paths = exported("qga_color")
    daqe, daqe_paths = exported("daqe_cnn")
    work = tmp_path_factory.mktemp("litert")
    Image.fromarray(natural_image(96, 80, 3, seed=4)).save(work / "photo.jpg", quality=15)
    for name, source in (("model.tflite", paths), (f"shipped/{SHIPPED_COLOR_TFLITE}", paths), ("daqe.tflite", daqe_paths)):
        (work / name).parent.mkdir(exist_ok=True)
        shutil.copyfile(source["float32"], work / name)
        shutil.copyfile(metadata_path(source["float32"]), metadata_path(work / name))
    (work / "m.keras").write_bytes(b"not used: Keras is blocked")
    keras_pixels = enhance(work / "photo.jpg", model, tile=PIPELINE_TILE).pixels
    keras_daqe = enhance(work / "photo.jpg", daqe, tile=128)  # one defocus window, patches routed
    return work, keras_pixels, keras_daqe


def test_litert_pipeline_imports_no_tensorflow_and_matches_keras(work):
    work, keras_pixels, keras_daqe = work
    report, _ = _run("free", work)
    assert report["imported_at_start"] == [] and report["imported_at_end"] == []
    assert report["cli_model"] == 0
    api = np.load(work / "free_api.npy")
    assert psnr(keras_pixels, api) >= 45.0
    np.testing.assert_array_equal(np.asarray(Image.open(work / "free_cli.png")), api)
    assert report["daqe_exits"] == keras_daqe.routing.exits.tolist()
    assert psnr(keras_daqe.pixels, np.load(work / "free_daqe.npy")) >= 45.0


def test_cli_without_tensorflow_uses_shipped_tflite_or_says_what_to_install(work):
    work, keras_pixels, keras_daqe = work
    report, stderr = _run("block", work)
    assert report["attempts_with_tflite"] == []  # the LiteRT path never even tries Keras
    assert report["imported_at_end"] == []
    assert report["cli_model"] == 0 and psnr(keras_pixels, np.load(work / "block_api.npy")) >= 45.0
    assert psnr(keras_daqe.pixels, np.load(work / "block_daqe.npy")) >= 45.0
    assert report["cli_shipped"] == 0
    assert psnr(keras_pixels, np.asarray(Image.open(work / "shipped.png"))) >= 45.0
    assert report["cli_nothing_shipped"] == 1 and report["cli_keras_model"] == 1
    errors = [line for line in stderr.splitlines() if line.startswith("daqe: error:")]
    assert len(errors) == 2 and all("daqe-tf[tf]" in line for line in errors), stderr[-2000:]
    assert SHIPPED_COLOR_TFLITE in errors[0] and "m.keras" in errors[1]


def test_litert_model_surface(tmp_path, exported):
    model, paths = exported("qga_color")
    litert = load_model(paths["float32"], num_threads=1)
    assert isinstance(litert, LiteRTModel)
    assert (litert.image_channels, litert.num_exits, litert.stride) == (3, model.num_exits, model.stride)
    inputs = jpeg_inputs(1, 24, 40, 3)
    first = litert(inputs, 0)
    np.testing.assert_allclose(first, model(inputs, exit_index=0), rtol=0, atol=1e-4)
    litert(jpeg_inputs(2, 48, 32, 3), 0)  # another shape in between: outputs are copies, not views
    np.testing.assert_array_equal(litert(inputs, 0), first)
    with pytest.raises(ValueError, match="out of range"):
        litert(inputs, model.num_exits)
    with pytest.raises(ValueError, match="no defocus signature"):
        litert.defocus(inputs)
    shutil.copyfile(paths["float32"], tmp_path / "bare.tflite")
    with pytest.raises(ModelFileError, match="metadata"):
        LiteRTModel(tmp_path / "bare.tflite")
    (tmp_path / "junk.tflite").write_bytes(b"junk")
    shutil.copyfile(metadata_path(paths["float32"]), metadata_path(tmp_path / "junk.tflite"))
    with pytest.raises(ModelFileError, match="not a loadable"):
        load_model(tmp_path / "junk.tflite")



def test_files_without_a_routing_output_route_by_defocus(tmp_path, exported):
    """Metadata written before the ``routing`` output: the defocus map stands in for the routing value."""
    model, paths = exported("daqe_cnn")  # routes by a readout, so its two maps differ
    meta = json.loads(metadata_path(paths["float32"]).read_text())
    del meta["outputs"]["routing"], meta["routing"]  # neither key existed then
    shutil.copyfile(paths["float32"], tmp_path / "old.tflite")
    metadata_path(tmp_path / "old.tflite").write_text(json.dumps(meta))
    inputs = jpeg_inputs(1, 32, 48, 3)
    new, old = LiteRTModel(paths["float32"]).cell_maps(inputs), LiteRTModel(tmp_path / "old.tflite").cell_maps(inputs)
    np.testing.assert_array_equal(old[..., 0], new[..., 0])
    np.testing.assert_array_equal(old[..., 1], old[..., 0])
    assert np.abs(new[..., 1] - new[..., 0]).max() > 0.05


def test_a_readout_routed_file_without_its_routing_output_is_refused(tmp_path, exported):
    """Readout thresholds are not in defocus units: defocus must not silently stand in for them."""
    _, paths = exported("daqe_cnn")
    meta = json.loads(metadata_path(paths["float32"]).read_text())
    assert meta["routing"] == "readout"
    del meta["outputs"]["routing"]
    shutil.copyfile(paths["float32"], tmp_path / "broken.tflite")
    metadata_path(tmp_path / "broken.tflite").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="names no routing output"):
        LiteRTModel(tmp_path / "broken.tflite")


def test_the_shipped_default_runs_on_litert_and_loads_once():
    """Where LiteRT is installed the shipped models run on their .tflite files, whatever else is installed."""
    from daqe_tf.inference.models import default_model_path, shipped_model_path

    for grayscale in (False, True):
        model = load_model(grayscale=grayscale)
        assert isinstance(model, LiteRTModel) and model.path == default_model_path(grayscale).with_suffix(".tflite")
        assert shipped_model_path(grayscale) == model.path
        assert load_model(grayscale=grayscale) is model  # every enhance() without a model reuses it
    assert load_model(grayscale=False).image_channels == 3 and load_model(grayscale=True).image_channels == 1


def _spy_rows(litert: LiteRTModel, key: str) -> list:
    """Record the batch size each call of signature ``key`` runs with."""
    litert.run(key, {"image": np.zeros((1, 32, 32, 3), np.float32), "qmap": np.zeros((1, 32, 32, 2), np.float32)})
    runner, dynamic = litert._runners[key]
    rows = []

    def spy(**feeds):
        rows.append(len(feeds["image"]))
        return runner(**feeds)

    litert._runners[key] = (spy, dynamic)
    return rows


def test_repeated_batch_slots_are_not_run(tmp_path, exported):
    """The routing pads batches by repeating the last patch; LiteRT runs the distinct ones only, and the
    outputs are those of the full batch. A "transformer" texture sees its whole batch, so it runs all."""
    _, paths = exported("daqe_cnn")
    litert = LiteRTModel(paths["float32"])
    assert litert.batch_independent
    inputs = jpeg_inputs(3, 32, 32, 3)
    padded = {name: value[[0, 1, 2, 2, 2, 2]] for name, value in inputs.items()}
    rows = _spy_rows(litert, litert.signatures["exits"][1])
    out = litert(padded, 1)
    assert rows == [3] and out.shape[0] == 6
    np.testing.assert_array_equal(out[3:], np.repeat(out[2:3], 3, axis=0))
    np.testing.assert_allclose(out[:3], litert(inputs, 1), rtol=0, atol=1e-6)

    meta = json.loads(metadata_path(paths["float32"]).read_text())
    meta["model_config"]["texture"] = "transformer"
    shutil.copyfile(paths["float32"], tmp_path / "t.tflite")
    metadata_path(tmp_path / "t.tflite").write_text(json.dumps(meta))
    coupled = LiteRTModel(tmp_path / "t.tflite")
    assert not coupled.batch_independent
    rows = _spy_rows(coupled, coupled.signatures["exits"][1])
    coupled(padded, 1)
    assert rows == [6]


IMPORT_ORDERS = {
    "daqe_tf first": "import daqe_tf\nlight = not {'keras', 'tensorflow'} & set(sys.modules)\nimport keras\n",
    "keras first": "import keras\nimport daqe_tf\nlight = True\n",
}


@pytest.mark.parametrize("order", sorted(IMPORT_ORDERS))
def test_keras_loads_daqe_models_after_import_daqe_tf(tmp_path, order):
    """``import daqe_tf`` (which imports no Keras) then ``keras.models.load_model(safe_mode=True)`` finds
    the model classes, in either import order."""
    from tests.export_cases import build_case

    path = tmp_path / "daqe.keras"
    build_case("daqe_cnn").save(path)
    script = "import sys\n" + IMPORT_ORDERS[order] + textwrap.dedent(f"""
        loaded = keras.models.load_model({str(path)!r}, safe_mode=True)
        print("LOADED", type(loaded).__name__, light)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LOADED DAQENet True" in done.stdout
