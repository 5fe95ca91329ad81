"""DAQEBranch and DAQENet: branch contract, exits vs clusters, per-cluster parameters, context flow,
`.keras` round trip for both textures, MAC budget of the default config."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from daqe_tf.complexity import count_macs, macs_per_pixel
from daqe_tf.models import DAQENet, build_model
from daqe_tf.models.daqe.branches import DAQEBranch
from tests.helpers import open_layer_scales
from tests.layer_test_helpers import run_layer_test, run_mixed_precision_test, run_model_saving_test

RNG = np.random.default_rng(7)
TINY = dict(
    widths=[4, 4, 8, 8], encoder_blocks=[1, 1, 1], bottleneck_blocks=[1, 1, 1], decoder_blocks=[1, 0, 0],
    patch_size=32, key_dim=4, defocus_widths=[4, 4, 4, 4], defocus_blocks=[1, 1, 1, 1],
)
TEXTURES = ["cnn", "transformer"]


def _data(*shape):
    return RNG.uniform(0, 1, shape).astype("float32")


def _inputs(batch=2, height=32, width=32, image_channels=3):
    return {"image": _data(batch, height, width, image_channels), "qmap": _data(batch, height, width, 1 if image_channels == 1 else 2)}


def _model(texture, image_channels=3, **overrides):
    """A tiny built model with random exit heads (fresh heads are zero, which would hide every branch)."""
    model = build_model("daqe", image_channels, **{**TINY, "texture": texture, **overrides})
    for head in model.heads:
        head.kernel.assign(RNG.normal(0, 0.1, head.kernel.shape).astype("float32"))
    return model


# --- DAQEBranch -------------------------------------------------------------------------------

@pytest.mark.parametrize("takes_context", [False, True], ids=["first", "with-context"])
def test_branch_contract(takes_context):
    kwargs = {"width": 4, "bottleneck_width": 8, "scale": 2, "takes_context": takes_context,
              "encoder_blocks": 1, "bottleneck_blocks": 1, "decoder_blocks": 1}
    inputs = [_data(2, 16, 12, 3), _data(2, 16, 12, 2)] + ([_data(2, 4, 3, 6)] if takes_context else [])
    run_layer_test(DAQEBranch, kwargs, inputs, (2, 8, 6, 4))


def test_branch_checks_its_inputs():
    with pytest.raises(ValueError, match="context"):
        DAQEBranch(4, 8, 2, takes_context=True)([_data(1, 8, 8, 3), _data(1, 8, 8, 2)])


# --- DAQENet ----------------------------------------------------------------------------------

@pytest.mark.parametrize("texture", TEXTURES)
def test_one_exit_call_equals_its_exit_of_the_all_exit_call(texture):
    """Exit c serves cluster c; both families share ``exit_index``, ``num_exits``, ``stride``, ``image_channels``."""
    model = _model(texture)
    assert (model.num_exits, model.image_channels) == (3, 3)
    inputs = _inputs()
    outputs = [np.asarray(o) for o in model(inputs)]
    assert len(outputs) == 3
    for output in outputs:
        assert output.shape == (2, 32, 32, 3) and np.isfinite(output).all()
    for c in range(3):
        np.testing.assert_allclose(np.asarray(model(inputs, exit_index=c)), outputs[c], rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(model(inputs, exit_index=-1)), outputs[2], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        model(inputs, exit_index=3)


@pytest.mark.parametrize("texture,stride", [("cnn", 16), ("transformer", 32)])
def test_whole_images_of_any_size_down_to_half_the_stride(texture, stride):
    """The transformer texture pads to whole patches: its reference regions are the clustered patches."""
    model = _model(texture, image_channels=1)
    assert model.stride == stride
    for height, width in [(37, 50), (stride // 2, stride // 2 + 3)]:
        for output in model(_inputs(1, height, width, image_channels=1)):
            assert np.asarray(output).shape == (1, height, width, 1)


@pytest.mark.parametrize("texture", TEXTURES)
def test_each_cluster_parameters_change_only_its_exit(texture):
    model = _model(texture)
    inputs = _inputs()
    before = [np.asarray(o) for o in model(inputs)]
    for variable in model.textures[1].trainable_variables:
        variable.assign(variable + 0.1)
    after = [np.asarray(o) for o in model(inputs)]
    np.testing.assert_array_equal(after[0], before[0])
    assert np.abs(after[1] - before[1]).max() > 1e-4
    np.testing.assert_array_equal(after[2], before[2])


def test_exit_depends_on_its_branches_only():
    """Exit c reads branches 0..c (context flows up) and never the finer ones."""
    model = _model("cnn")
    inputs = _inputs()
    with tf.GradientTape(persistent=True) as tape:
        exits = model(inputs)
        losses = [keras.ops.mean(keras.ops.square(e)) for e in exits]
    for c, loss in enumerate(losses):
        for m, branch in enumerate(model.branches):
            gradients = tape.gradient(loss, branch.trainable_variables)
            reached = any(g is not None and np.abs(np.asarray(g)).max() > 0 for g in gradients)
            assert reached == (m <= c), f"exit {c} vs branch {m}"


def _assert_deep_supervision_reaches_every_enhancement_weight(model):
    inputs = _inputs(batch=3)
    variables = [v for v in model.trainable_variables if "defocus_head" not in v.path]
    with tf.GradientTape() as tape:
        loss = sum(keras.ops.mean(keras.ops.square(o - inputs["image"])) for o in model(inputs))
    for variable, gradient in zip(variables, tape.gradient(loss, variables)):
        assert gradient is not None and np.abs(np.asarray(gradient)).max() > 0, variable.path


@pytest.mark.parametrize("texture", TEXTURES)
def test_deep_supervision_reaches_every_enhancement_weight(texture):
    _assert_deep_supervision_reaches_every_enhancement_weight(_model(texture))


def test_transformer_texture_looks_across_the_batch_cnn_does_not():
    inputs = _inputs(batch=3)
    changed = {k: v.copy() for k, v in inputs.items()}
    changed["image"][1] = 1.0 - changed["image"][1]
    for texture, shared in (("cnn", False), ("transformer", True)):
        model = _model(texture)
        before, after = np.asarray(model(inputs, exit_index=0)), np.asarray(model(changed, exit_index=0))
        assert (not np.array_equal(after[0], before[0])) == shared, texture


def test_fresh_exits_are_the_identity_then_image_plus_residual():
    model = build_model("daqe", 3, **TINY)
    inputs = _inputs()
    for output in model(inputs):
        np.testing.assert_array_equal(np.asarray(output), inputs["image"])
    bias = np.array([-0.25, 0.0, 0.5], "float32")
    model.heads[1].bias.assign(bias)
    np.testing.assert_array_equal(np.asarray(model(inputs, exit_index=1)), inputs["image"] + bias)


@pytest.mark.parametrize("texture", TEXTURES)
def test_save_load_round_trip_then_other_size(texture, tmp_path):
    model = _model(texture, thresholds=[0.3, 0.9])
    loaded = run_model_saving_test(model, _inputs(), tmp_path)
    assert loaded.thresholds == [pytest.approx(0.3), pytest.approx(0.9)]
    other = _inputs(1, 24, 40)
    np.testing.assert_allclose(np.asarray(loaded(other, exit_index=1)), np.asarray(model(other, exit_index=1)), rtol=0, atol=1e-6)


@pytest.mark.parametrize("block", ["naf", "inverted"])
def test_other_blocks_round_trip_and_every_weight_learns(block, tmp_path):
    """The branches and "cnn" textures are made of the chosen block; `.keras` keeps it; deep supervision
    reaches each block's weights (NAF's zero-initialised layer scales opened first)."""
    model = _model("cnn", block=block)
    open_layer_scales(model, np.ones)
    assert {type(layer).__name__ for layer in model.textures} == {"NAFBlock" if block == "naf" else "InvertedResidualBlock"}
    loaded = run_model_saving_test(model, _inputs(), tmp_path)
    assert loaded.block == block
    _assert_deep_supervision_reaches_every_enhancement_weight(model)


@pytest.mark.parametrize("texture", TEXTURES)
def test_mixed_precision(texture):
    run_mixed_precision_test(lambda: _model(texture), _inputs(2, 32, 32), (2, 32, 32, 3), call_kwargs={"exit_index": 2}, output_dtype=None)


def test_weight_paths_are_stable():
    paths = {w.path.split("/", 1)[1] for w in _model("transformer").weights}
    for expected in ["branch0/stem/kernel", "branch0/qga/gate/bias", "branch1/context/up/kernel",
                     "branch2/decoder/fuse/kernel", "texture1/query/kernel", "exit2_head/kernel",
                     "defocus_head/level3_0/conv2/bias", "defocus_head/head/kernel"]:
        assert expected in paths


@pytest.mark.parametrize("overrides,match", [
    ({"texture": "mlp"}, "texture"),
    ({"widths": [4, 4, 8]}, "widths"),
    ({"decoder_blocks": [1, 0]}, "per branch"),
    ({"patch_size": 24}, "multiple"),
    ({"stem_stride": 4}, "stem_stride"),
    ({"block": "mbconv"}, "block"),
])
def test_config_validation(overrides, match):
    with pytest.raises(ValueError, match=match):
        DAQENet(**{**TINY, **overrides})


# TINY, colour (3 + 2 input channels), 32x32. Branch 0 (scale 8): 4x4 px of width 8, bottleneck 2x2 of width 8.
BRANCH0 = (
    16 * 8 * 8 * 5 * 8                          # stem 8x8 stride 8
    + 2 * 16 * 9 * 8 * 8                        # encoder block
    + 16 * 2 * 8 + 16 * 9 * 8 * 4 + 16 * 4 * 1  # QGA gate: project, hidden, gate
    + 4 * 2 * 2 * 8 * 8 + 2 * 4 * 9 * 8 * 8     # down, bottleneck block
    + 4 * 2 * 2 * 8 * 8 + 16 * 16 * 8 + 2 * 16 * 9 * 8 * 8  # decoder: up (at its input), fuse, block
)
# Branch 1 (scale 4): 8x8 px of width 4, bottleneck 4x4 of width 8, context from branch 0 (8 ch at 4x4).
BRANCH1 = (
    64 * 4 * 4 * 5 * 4                          # stem 4x4 stride 4
    + 16 * 2 * 2 * 8 * 4 + 64 * 8 * 4           # context: up, fuse
    + 2 * 64 * 9 * 4 * 4                        # encoder block
    + 64 * 2 * 4 + 64 * 9 * 4 * 4 + 64 * 4 * 1  # QGA gate (hidden width max(4 // 2, 4) = 4)
    + 16 * 2 * 2 * 4 * 8 + 2 * 16 * 9 * 8 * 8   # down, bottleneck block
    + 16 * 2 * 2 * 8 * 4 + 64 * 8 * 4           # decoder without blocks: up, fuse
)
EXIT0_TAIL = 2 * 16 * 9 * 8 * 8 + 16 * 8 * 8 * 8 * 3  # texture block, head (transposed 8x8 stride 8, at its input)
EXIT1_TAIL = 2 * 64 * 9 * 4 * 4 + 64 * 4 * 4 * 4 * 3


def test_exit_costs_hand_counted():
    """Exit 1 runs branch 0 without its texture block and head, then branch 1 with its own."""
    model = _model("cnn")
    assert count_macs(model, 32, 32, 0) == BRANCH0 + EXIT0_TAIL == 134_464
    assert count_macs(model, 32, 32, 1) == BRANCH0 + BRANCH1 + EXIT1_TAIL == 199_744
    assert count_macs(model, 32, 32, 1) < count_macs(model, 32, 32, 2)


def test_default_config_budget_against_qga_unet():
    """Deepest exit about QGAUNet's cost (+-10 %), exit 0 at most 40 % of it."""
    reference = build_model("qga_unet", 3, widths=[48, 64, 96, 128], encoder_blocks=[2, 2, 2], decoder_blocks=[2, 1], stem_stride=2)
    budget = macs_per_pixel(reference, -1, size=64)
    model = build_model("daqe", 3)
    costs = [macs_per_pixel(model, c, size=64) for c in range(3)]
    assert costs[0] < costs[1] < costs[2]
    assert abs(costs[2] / budget - 1) < 0.1
    assert costs[0] <= 0.4 * budget
