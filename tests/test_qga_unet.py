"""QGAUNet: exits, residual output, odd sizes, `.keras` round trip and config validation on tiny widths."""
import numpy as np
import pytest

from daqe_tf.models import QGAUNet, build_model
from tests.layer_test_helpers import run_mixed_precision_test, run_model_saving_test

# Three levels so there are three exits, with bottlenecks at levels 1, 2 and 3.
TINY = dict(widths=[4, 4, 8, 8], encoder_blocks=[1, 1, 1], decoder_blocks=[1, 1], num_exits=3)
VARIANTS = [(c, s) for c in (1, 3) for s in (1, 2)]
IDS = [f"{'gray' if c == 1 else 'rgb'}-stem{s}" for c, s in VARIANTS]


def _model(image_channels, stem_stride, **overrides):
    model = build_model("qga_unet", image_channels, **{**TINY, "stem_stride": stem_stride, **overrides})
    # Heads are zero-initialised (each exit starts as the identity); give them
    # weights so the exits' own decoders show in the outputs.
    rng = np.random.default_rng(1)
    for head in model.heads:
        head.kernel.assign(rng.normal(0, 0.1, head.kernel.shape).astype("float32"))
    return model


def test_fresh_model_is_the_identity():
    model = build_model("qga_unet", 3, **TINY)
    inputs = _inputs(3)
    for output in model(inputs):
        np.testing.assert_array_equal(np.asarray(output), inputs["image"])


def _inputs(image_channels, height=37, width=50, seed=0):
    rng = np.random.default_rng(seed)
    qmap_channels = 1 if image_channels == 1 else 2
    return {
        "image": rng.uniform(0, 1, (1, height, width, image_channels)).astype("float32"),
        "qmap": rng.uniform(0, 1, (1, height, width, qmap_channels)).astype("float32"),
    }


@pytest.mark.parametrize("image_channels,stem_stride", VARIANTS, ids=IDS)
def test_exits_keep_odd_input_size_and_single_exit_matches(image_channels, stem_stride):
    model = _model(image_channels, stem_stride)
    inputs = _inputs(image_channels)
    outputs = [np.asarray(o) for o in model(inputs)]
    assert len(outputs) == 3
    for output in outputs:
        assert output.shape == (1, 37, 50, image_channels)
        assert np.isfinite(output).all()
    assert not np.allclose(outputs[0], outputs[2])  # separate decoders
    for k in range(3):
        np.testing.assert_allclose(np.asarray(model(inputs, exit_index=k)), outputs[k], rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(model(inputs, exit_index=-1)), outputs[2], rtol=0, atol=1e-6)


@pytest.mark.parametrize("image_channels,stem_stride", VARIANTS, ids=IDS)
def test_output_is_image_plus_head_residual(image_channels, stem_stride):
    model = _model(image_channels, stem_stride)
    inputs = _inputs(image_channels)
    for head in model.heads:
        head.kernel.assign(np.zeros(head.kernel.shape, "float32"))
        head.bias.assign(np.zeros(head.bias.shape, "float32"))
    for output in model(inputs):
        np.testing.assert_array_equal(np.asarray(output), inputs["image"])
    bias = np.linspace(-0.25, 0.5, image_channels).astype("float32")
    model.heads[1].bias.assign(bias)
    np.testing.assert_array_equal(np.asarray(model(inputs, exit_index=1)), inputs["image"] + bias)


@pytest.mark.parametrize("image_channels,stem_stride", VARIANTS, ids=IDS)
def test_save_load_round_trip_then_other_size(image_channels, stem_stride, tmp_path):
    model = _model(image_channels, stem_stride)
    loaded = run_model_saving_test(model, _inputs(image_channels), tmp_path)
    other = _inputs(image_channels, height=24, width=19, seed=1)
    expected = np.asarray(model(other, exit_index=0))
    actual = np.asarray(loaded(other, exit_index=0))
    assert actual.shape == (1, 24, 19, image_channels)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("stem_stride", [1, 2])
def test_mixed_precision(stem_stride):
    # Model outputs follow the input autocast, so their dtype is not pinned here.
    run_mixed_precision_test(
        lambda: _model(3, stem_stride), _inputs(3, 20, 27), (1, 20, 27, 3), call_kwargs={"exit_index": 1}, output_dtype=None
    )


def test_build_model_sets_qmap_channels_and_builds():
    gray, rgb = _model(1, 1), _model(3, 2)
    assert gray.built and rgb.built
    assert gray.stem.kernel.shape == (3, 3, 1 + 1, 4)
    assert rgb.stem.kernel.shape == (2, 2, 3 + 2, 4)
    assert (gray.stride, rgb.stride) == (8, 16)


def test_weight_paths_are_stable():
    """Trained checkpoints load by these names; renaming a sublayer breaks them."""
    model = _model(3, 2)
    # Relative to the model's own name (a scope left open elsewhere may prefix it).
    paths = [w.path.split(f"{model.name}/", 1)[1] for w in model.weights]
    assert paths[:4] == ["stem/kernel", "stem/bias", "down1/conv/kernel", "down1/conv/bias"]
    for expected in ["enc3_0/conv2/bias", "qga0/project/kernel", "qga2/gate/bias", "exit0_dec0/up/kernel",
                     "exit2_dec2/block0/conv1/kernel", "exit2_head/kernel"]:
        assert expected in paths
    assert "exit0_dec1/block0/conv1/kernel" not in paths  # exit 0 starts at level 1: one stage, no blocks
    assert len(paths) == 80


@pytest.mark.parametrize(
    "overrides",
    [
        {"encoder_blocks": [1, 1]},
        {"decoder_blocks": [1, 1, 1]},
        {"num_exits": 0},
        {"num_exits": 4},
        {"stem_stride": 3},
    ],
    ids=["encoder-length", "decoder-length", "no-exits", "too-many-exits", "stem-stride"],
)
def test_invalid_config_raises(overrides):
    with pytest.raises(ValueError):
        QGAUNet(image_channels=3, **{**TINY, **overrides})


def test_build_model_unknown_family():
    with pytest.raises(ValueError, match=r"unknown model family 'unet9'.*qga_unet"):
        build_model("unet9", 3)


def test_exit_index_out_of_range_and_bad_channels_raise():
    import pytest as _pytest

    from daqe_tf.models import QGAUNet

    with _pytest.raises(ValueError):
        QGAUNet(image_channels=2)
    model = QGAUNet(3, widths=(4, 4, 4), encoder_blocks=(1, 1), decoder_blocks=(1,), num_exits=2)
    inputs = {"image": np.zeros((1, 16, 16, 3), "float32"), "qmap": np.zeros((1, 16, 16, 2), "float32")}
    with _pytest.raises(ValueError):
        model(inputs, exit_index=2)
    assert model(inputs, exit_index=-2).shape == (1, 16, 16, 3)
