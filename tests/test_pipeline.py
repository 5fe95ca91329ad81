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


def _textured(height, width, seed=0):
    rng = np.random.default_rng(seed)
    base = natural_image(height, width, 3, seed).astype(np.float64)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _resaved(image, first=10, last=90, offset=(4, 4)):
    from daqe_tf.jpeg.simulate import compress, earlier_jpeg_crop

    return compress(earlier_jpeg_crop(image, first, offset), last)


def test_a_resaved_jpeg_is_enhanced_for_its_first_compression_on_its_grid(color_model):
    """The earlier QF 10 on a grid at (3, 5) drives the Q-map, with that grid moved to the origin."""
    import dataclasses

    resaved = _resaved(_textured(160, 176, seed=1), offset=(5, 3))
    loaded = load_image(resaved.data)
    evidence = jpeg_evidence(loaded)
    assert evidence.source == "history" and abs(evidence.quality - 10) <= 2 and evidence.grid == (3, 5)
    assert evidence.describe().startswith("QF 90 file; earlier compression ≈ QF")
    assert "grid shifted by (3, 5)" in evidence.describe()
    out = enhance(resaved.data, color_model).pixels
    # The same as enhancing the image padded by (5, 3) px, its grid now at the origin, and cutting the pad off.
    padded = np.pad(loaded.pixels, ((5, 0), (3, 0), (0, 0)), mode="edge")
    aligned = enhance_pixels(padded, color_model, dataclasses.replace(evidence, grid=(0, 0)), exit_index=-1)
    np.testing.assert_array_equal(out, aligned[5:, 3:])
    # The file's tables alone (the caller's quality) describe far milder damage: another output.
    assert not np.array_equal(out, enhance(resaved.data, color_model, quality=90).pixels)


def test_quality_override_replaces_the_estimate(color_model):
    from daqe_tf.jpeg.tables import tables_for_quality

    resaved = _resaved(_textured(96, 96, seed=2))
    result = enhance(resaved.data, color_model, quality=25)
    assert result.evidence.source == "override" and result.evidence.grid == (0, 0)
    np.testing.assert_array_equal(result.evidence.luma_table, tables_for_quality(25)[0])
    assert result.evidence.describe() == "QF 25 as set by the caller"
    for bad in (0, 101):
        with pytest.raises(ValueError, match="quality"):
            enhance(resaved.data, color_model, quality=bad)


def test_strength_blends_the_input_and_the_output(color_model):
    data = _jpeg_bytes(_textured(64, 64, seed=3), 15)
    decoded = load_image(data).pixels.astype(np.float64)
    full = enhance(data, color_model).pixels.astype(np.float64)
    assert not np.array_equal(full, decoded)
    np.testing.assert_array_equal(enhance(data, color_model, strength=0).pixels, decoded)
    half = enhance(data, color_model, strength=0.5).pixels.astype(np.float64)
    assert np.abs(half - (decoded + 0.5 * (full - decoded))).max() <= 1.0  # rounding of the uint8 output
    more = enhance(data, color_model, strength=1.5).pixels.astype(np.float64)
    expected = np.clip(decoded + 1.5 * (full - decoded), 0, 255)
    assert np.abs(more - expected).max() <= 1.5
    for bad in (-0.1, 2.5, float("nan")):
        with pytest.raises(ValueError, match="strength"):
            enhance(data, color_model, strength=bad)


def test_routing_maps_of_a_shifted_grid_cover_the_image():
    """A DAQE model on a re-saved file routes the padded frame; its maps are cut back to the image."""
    from daqe_tf.inference.models import load_model
    from daqe_tf.routing.pictures import defocus_image, exit_overlay

    model = load_model("daqe_tf/weights/daqe_cnn_color_r2_cascade.tflite")
    resaved = _resaved(_textured(144, 160, seed=4), offset=(2, 6))
    result = enhance(resaved.data, model, defocus_map=True)
    assert result.evidence.grid == (6, 2) and result.routing.offset == (2, 6)  # pad = (-grid) % 8
    assert defocus_image(result.routing).shape == (144, 160)
    assert exit_overlay(result.routing, result.source.pixels).shape == (144, 160, 3)
    assert psnr(result.pixels, result.source.pixels) < 60  # it did enhance


def test_ensemble_views_keep_flipped_tables_and_transpose_them_for_a_transpose():
    from daqe_tf.inference.pipeline import JpegEvidence, ensemble_views

    luma, chroma = np.arange(64).reshape(8, 8) + 1, np.arange(64).reshape(8, 8) + 100
    views = ensemble_views(JpegEvidence(luma, chroma, "4:2:2", 50, "jpeg-standard"))
    assert len(views) == 4
    image = np.arange(12).reshape(3, 4)
    for transform, inverse, _ in views:
        np.testing.assert_array_equal(inverse(transform(image)), image)
    for _, _, evidence in views[:3]:  # identity and flips: a flip keeps each frequency's step
        np.testing.assert_array_equal(evidence.luma_table, luma)
        assert evidence.subsampling == "4:2:2"
    transposed = views[3][2]
    np.testing.assert_array_equal(transposed.luma_table, luma.T)
    np.testing.assert_array_equal(transposed.chroma_table, chroma.T)
    assert transposed.subsampling == "4:4:0"
    flips_only = ensemble_views(JpegEvidence(luma, chroma, "4:1:1", 50, "jpeg-standard"))
    assert flips_only[3][2].subsampling == "4:1:1"


def test_ensemble_averages_views_that_map_back_onto_the_image(color_model):
    """An identity model gives the input back through every view (geometry and grid padding undone)."""
    from daqe_tf.models import build_model
    from tests.helpers import TINY_MODEL_CONFIG

    identity = build_model("qga_unet", 3, **TINY_MODEL_CONFIG)  # heads start at zero: output = input
    resaved = _resaved(_textured(152, 180, seed=1), offset=(5, 3))  # sides not whole MCUs: padded on all sides
    result = enhance(resaved.data, identity, ensemble=True)
    assert result.evidence.grid == (3, 5) and result.routing is None and result.views == 4
    np.testing.assert_array_equal(result.pixels, result.source.pixels)
    assert result.describe_exits() == "average of 4 flipped and transposed views"
    single = enhance(resaved.data, color_model).pixels
    averaged = enhance(resaved.data, color_model, ensemble=True).pixels
    assert averaged.shape == single.shape and averaged.dtype == np.uint8 and not np.array_equal(averaged, single)
