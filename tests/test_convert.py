"""grayscale_from_color: a colour model folded into the grayscale architecture enhances gray JPEGs as the colour model does."""
import io

import numpy as np
import pytest
from PIL import Image

from daqe_tf.inference.pipeline import enhance
from daqe_tf.models import build_model
from daqe_tf.models.convert import grayscale_from_color
from tests.helpers import encode_jpeg, natural_image, tiny_model

TINY_DAQE = dict(
    widths=[4, 4, 8, 8], encoder_blocks=[1, 1, 1], bottleneck_blocks=[1, 1, 1], decoder_blocks=[1, 0, 0],
    patch_size=32, key_dim=4, defocus_widths=[4, 4, 4, 4], defocus_blocks=[1, 1, 1, 1], thresholds=[0.3, 0.6],
)


def _with_random_heads(model, seed=3):
    """Exit heads start at zero (identity); small random kernels and biases make every exit and channel differ
    (small: residuals that push channels past 0 or 255 would clip apart in the colour path)."""
    rng = np.random.default_rng(seed)
    for head in model.heads:
        head.kernel.assign(rng.normal(0, 0.03, head.kernel.shape).astype("float32"))
        head.bias.assign(rng.normal(0, 0.02, head.bias.shape).astype("float32"))
    return model


def _color_models():
    return {
        "qga_unet": _with_random_heads(tiny_model(3)),
        "daqe": _with_random_heads(build_model("daqe", 3, **TINY_DAQE)),
    }


@pytest.mark.parametrize("family", ["qga_unet", "daqe"])
def test_gray_twin_enhances_a_gray_jpeg_like_the_colour_model(family):
    color = _color_models()[family]
    gray = grayscale_from_color(color)
    assert gray.image_channels == 1 and type(gray) is type(color)
    assert gray.count_params() < color.count_params()
    # Mid-grey content: the colour model clips each channel before the mean, so near 0 or 255 the
    # random heads' unequal channels would clip apart (trained heads hardly differ on gray content).
    content = (60 + natural_image(72, 88, seed=4, channels=1) * (135 / 255)).astype(np.uint8)
    jpeg = encode_jpeg(content, quality=20)
    decoded = np.asarray(Image.open(io.BytesIO(jpeg))).astype(int)
    for exit_index in (0, -1, None):  # None: DAQE routes by its cell maps, which must agree too
        by_color = enhance(jpeg, color, exit_index=exit_index)
        by_gray = enhance(jpeg, gray, exit_index=exit_index)
        assert by_color.pixels.ndim == by_gray.pixels.ndim == 2
        difference = np.abs(by_color.pixels.astype(int) - by_gray.pixels.astype(int))
        assert difference.max() <= 1 and difference.mean() < 0.2  # the colour path rounds each channel first
        assert np.abs(by_color.pixels.astype(int) - decoded).mean() > 0.5  # the exits do change the image
    if family == "daqe":
        np.testing.assert_array_equal(by_color.routing.exits, by_gray.routing.exits)


@pytest.mark.parametrize("family", ["qga_unet", "daqe"])
def test_gray_twin_matches_every_exit_in_float(family):
    """Y replicated with the luma table's Q-map as chroma (the pipeline's gray path) -> the channel mean, to float rounding."""
    from daqe_tf.jpeg.qmap import qmap_from_tables
    from daqe_tf.jpeg.tables import tables_for_quality

    color = _color_models()[family]
    gray = grayscale_from_color(color)
    luma = tables_for_quality(15, grayscale=True)[0]
    y = np.random.default_rng(5).uniform(0, 1, (2, 64, 64, 1)).astype("float32")
    color_inputs = {"image": np.repeat(y, 3, -1), "qmap": np.repeat(qmap_from_tables(luma, luma, 64, 64, "4:4:4")[None], 2, 0)}
    gray_inputs = {"image": y, "qmap": np.repeat(qmap_from_tables(luma, None, 64, 64, "gray")[None], 2, 0)}
    by_color, by_gray = color(color_inputs), gray(gray_inputs)
    assert len(by_color) == len(by_gray) == 3
    for c, g in zip(by_color, by_gray):
        np.testing.assert_allclose(np.asarray(c).mean(axis=-1), np.asarray(g)[..., 0], atol=2e-6)
    if family == "daqe":
        np.testing.assert_allclose(np.asarray(color.cell_maps(color_inputs)), np.asarray(gray.cell_maps(gray_inputs)), atol=2e-6)


def test_a_grayscale_model_is_refused():
    with pytest.raises(ValueError, match="colour"):
        grayscale_from_color(tiny_model(1))


def test_cli_writes_a_loadable_gray_model_and_never_overwrites_its_input(tmp_path):
    import keras

    from train.gray_from_color import main

    source = tmp_path / "color.keras"
    _color_models()["daqe"].save(source)
    before = source.read_bytes()
    assert main(["--model", str(source), "--out", str(tmp_path / "gray.keras")]) == 0
    gray = keras.models.load_model(tmp_path / "gray.keras", safe_mode=True)
    assert gray.image_channels == 1 and gray.thresholds == pytest.approx(TINY_DAQE["thresholds"])
    with pytest.raises(SystemExit):
        main(["--model", str(source), "--out", str(source)])
    assert source.read_bytes() == before
    with pytest.raises(SystemExit):
        main(["--model", str(tmp_path / "gray.keras"), "--out", str(tmp_path / "again.keras")])  # not a colour model
