"""Fixtures shared by several test modules (plain helpers live in tests/helpers.py and tests/export_cases.py)."""
import os

import numpy as np
import pytest
from PIL import Image

from tests.helpers import natural_image

# Read when a test module first imports Keras or TensorFlow (nothing above imports them).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def pytest_collection_modifyitems(items):
    """A test that uses the ``exported`` fixture waits for LiteRT conversions: it is ``slow``."""
    for item in items:
        if "exported" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def daqe_image_folder(tmp_path_factory):
    """Three small images for DAQE training and refits, one blurred on its left half so the clusters differ."""
    folder = tmp_path_factory.mktemp("daqe_images")
    for i in range(3):
        image = natural_image(64, 96, seed=10 + i)
        if i == 0:
            image[:, :48] = np.asarray(Image.fromarray(image[:, :48]).resize((12, 16)).resize((48, 64), Image.BILINEAR))
        Image.fromarray(image).save(folder / f"img{i}.png")
    return folder


@pytest.fixture(scope="session")
def representative_images(tmp_path_factory) -> tuple[str, ...]:
    """A few synthetic 'training' images for int8 calibration (never files from the shared datasets)."""
    folder = tmp_path_factory.mktemp("representative")
    paths = []
    for seed in range(4):
        path = folder / f"train{seed}.png"
        Image.fromarray(natural_image(80, 96, 3, seed=10 + seed)).save(path)
        paths.append(str(path))
    return tuple(paths)


@pytest.fixture(scope="session")
def exported(tmp_path_factory, representative_images):
    """``exported(case)`` -> ``(keras_model, {variant: tflite_path})`` of ``tests.export_cases.CASES[case]``.

    A conversion costs seconds, so each case is built and exported once per session, on first use.
    """
    from export.converter import export_tflite
    from tests.export_cases import CASES, TILE, build_case

    folder = tmp_path_factory.mktemp("exports")
    done = {}

    def export(case: str):
        if case not in done:
            model = build_case(case)
            outputs = {variant: folder / f"{case}_{variant}.tflite" for variant in CASES[case]}
            export_tflite(model, outputs, tile=TILE, representative_images=representative_images, calibration_samples=4)
            done[case] = model, outputs
        return done[case]

    return export
