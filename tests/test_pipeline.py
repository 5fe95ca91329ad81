"""enhance(): JPEG evidence, colour/gray handling, tiling parity, orientation."""
import io

import numpy as np
import pytest
from PIL import Image

from daqe_tf.inference.pipeline import enhance, enhance_pixels, jpeg_evidence
from daqe_tf.io import ImageInputError, load_image
from daqe_tf.metrics import psnr
from tests.helpers import natural_image, tiny_model


def _jpeg_bytes(image, quality=20, **options):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def color_model():
    return tiny_model(3)


@pytest.fixture(scope="module")
def gray_model():
    return tiny_model(1)


def test_evidence_from_jpeg_tables_and_blind_for_png():
    image = natural_image(64, 64)
    evidence = jpeg_evidence(load_image(_jpeg_bytes(image, 30)))
    assert (evidence.quality, evidence.source, evidence.subsampling) == (30, "jpeg-standard", "4:2:0")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    blind = jpeg_evidence(load_image(buffer.getvalue()))
    assert blind.source in ("blind", "blind-fallback") and "not a JPEG" in blind.describe()


def test_enhance_all_input_kinds_give_same_result(color_model):
    image = natural_image(48, 72)
    data = _jpeg_bytes(image)
    from_bytes = enhance(data, color_model).pixels
    from_pil = enhance(Image.open(io.BytesIO(data)), color_model).pixels
    assert from_bytes.shape == image.shape and from_bytes.dtype == np.uint8
    np.testing.assert_array_equal(from_bytes, from_pil)


def test_grayscale_stays_grayscale_and_cross_kind_models(color_model, gray_model):
    gray = natural_image(40, 40, 1)
    data = _jpeg_bytes(gray)
    assert enhance(data, gray_model).pixels.shape == (40, 40)
    assert enhance(data, color_model).pixels.shape == (40, 40)  # colour model on gray content
    color = natural_image(40, 40)
    out = enhance(_jpeg_bytes(color), gray_model).pixels  # gray model on colour: luma only
    assert out.shape == (40, 40, 3)


def test_tiled_equals_untiled_within_005_db(color_model):
    image = natural_image(200, 232)
    loaded = load_image(_jpeg_bytes(image, 15))
    evidence = jpeg_evidence(loaded)
    whole = enhance_pixels(loaded.pixels, color_model, evidence, tile=256, overlap=32)
    tiled = enhance_pixels(loaded.pixels, color_model, evidence, tile=96, overlap=32)
    assert psnr(image, whole) - psnr(image, tiled) < 0.05
    assert psnr(whole, tiled) > 45


def test_exit_choice_changes_the_output(color_model):
    data = _jpeg_bytes(natural_image(48, 48))
    fast, best = enhance(data, color_model, exit_index=0), enhance(data, color_model, exit_index=-1)
    assert fast.exit_index == 0 and best.exit_index == color_model.num_exits - 1
    assert not np.array_equal(fast.pixels, best.pixels)


def test_exif_orientation_applied_after_enhancement(color_model):
    image = natural_image(32, 48)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    data = _jpeg_bytes(image, exif=exif.tobytes())
    result = enhance(data, color_model)
    assert result.pixels.shape == (48, 32, 3)
    plain = enhance(_jpeg_bytes(image), color_model).pixels
    np.testing.assert_array_equal(result.pixels, np.rot90(plain, k=-1))


def test_bad_input_raises_clear_error(color_model):
    with pytest.raises(ImageInputError):
        enhance(b"not an image at all", color_model)
    with pytest.raises(ImageInputError):
        enhance(np.zeros((1, 1, 3), np.uint8), color_model)
