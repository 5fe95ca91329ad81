"""The shipped default models: provenance files, safe-mode loading, a real gain on a generated photo,
and their LiteRT exports agreeing with them (the files a TensorFlow-free install falls back to)."""
import json

import numpy as np
import pytest

from daqe_tf.inference.models import DEFAULT_MODELS, WEIGHTS_DIR, load_model
from daqe_tf.inference.pipeline import enhance
from daqe_tf.jpeg.simulate import compress
from daqe_tf.metrics import psnr, rgb_to_y_uint8
from daqe_tf.sample import make_sample_image

KINDS = sorted(DEFAULT_MODELS)


def _photo(kind: str) -> np.ndarray:
    rgb = make_sample_image(256, 192, seed=11)
    return rgb_to_y_uint8(rgb) if kind == "gray" else rgb


@pytest.mark.parametrize("kind", KINDS)
def test_default_ships_with_its_provenance(kind):
    stem = WEIGHTS_DIR / DEFAULT_MODELS[kind]
    for suffix in (".md", ".log.jsonl", ".data.txt", ".config.json", ".tflite", ".tflite.json"):
        assert stem.with_suffix(suffix).is_file(), f"{stem.with_suffix(suffix).name} is missing"
    card = stem.with_suffix(".md").read_text()
    assert "python -m train.main" in card  # the command that trained it
    records = [json.loads(line) for line in stem.with_suffix(".log.jsonl").read_text().splitlines()]
    assert {"train", "val"} <= {r["kind"] for r in records}  # the training curve behind the card
    model = load_model(stem)
    assert model.image_channels == (1 if kind == "gray" else 3)
    exported = json.loads(stem.with_suffix(".tflite.json").read_text())  # the export is of these weights' config
    config = json.loads(json.dumps(model.get_config()))
    assert exported["model_config"] == {k: v for k, v in config.items() if k not in ("name", "trainable", "dtype")}


@pytest.mark.parametrize("kind", KINDS)
def test_default_gains_over_jpeg_and_its_litert_export_agrees(kind):
    reference = _photo(kind)
    jpeg = compress(reference, 10)
    keras_result = enhance(jpeg.data)  # the shipped default for the image kind
    assert psnr(reference, keras_result.pixels) > psnr(reference, jpeg.decoded) + 0.2
    litert_result = enhance(jpeg.data, model=str((WEIGHTS_DIR / DEFAULT_MODELS[kind]).with_suffix(".tflite")))
    assert psnr(keras_result.pixels, litert_result.pixels) >= 40.0  # float16 weights
    if keras_result.routing is not None:  # DAQE: the same patches took the same exits
        agree = np.mean(keras_result.routing.exits == litert_result.routing.exits)
        assert agree >= 0.9
