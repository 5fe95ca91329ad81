"""The blocks, Downsample and UpsampleFuse: the layer contract plus what each promises."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from daqe_tf.complexity import _recording_macs
from daqe_tf.layers.blocks import (
    BLOCKS,
    Downsample,
    InvertedResidualBlock,
    NAFBlock,
    ResidualBlock,
    UpsampleFuse,
    make_block,
)
from tests.layer_test_helpers import run_layer_test

RNG = np.random.default_rng(0)


def _data(*shape):
    return RNG.uniform(0, 1, shape).astype("float32")


def test_residual_block_contract():
    run_layer_test(ResidualBlock, {"channels": 8}, _data(2, 12, 10, 8), (2, 12, 10, 8))


def test_residual_block_is_identity_plus_branch():
    block = ResidualBlock(4)
    x = _data(1, 9, 7, 4)
    block(x)
    block.conv2.kernel.assign(np.zeros(block.conv2.kernel.shape, "float32"))
    block.conv2.bias.assign(np.full((4,), 0.25, "float32"))
    np.testing.assert_array_equal(np.asarray(block(x)), x + 0.25)


def test_downsample_contract():
    run_layer_test(Downsample, {"channels": 8}, _data(2, 12, 10, 3), (2, 6, 5, 8))


def test_downsample_odd_size_drops_last_row_and_column():
    assert tuple(Downsample(4)(_data(1, 9, 7, 2)).shape) == (1, 4, 3, 4)


def test_downsample_can_be_an_exact_pixel_unshuffle():
    layer = Downsample(4)
    x = _data(1, 6, 8, 1)
    layer(x)
    kernel = np.zeros((2, 2, 1, 4), "float32")
    for i in range(2):
        for j in range(2):
            kernel[i, j, 0, 2 * i + j] = 1.0
    layer.conv.kernel.assign(kernel)
    layer.conv.bias.assign(np.zeros(4, "float32"))
    np.testing.assert_array_equal(np.asarray(layer(x)), tf.nn.space_to_depth(x, 2).numpy())


@pytest.mark.parametrize("num_blocks", [0, 2])
def test_upsample_fuse_contract(num_blocks):
    inputs = [_data(2, 6, 5, 16), _data(2, 12, 10, 4)]
    run_layer_test(UpsampleFuse, {"channels": 8, "num_blocks": num_blocks}, inputs, (2, 12, 10, 8))


def test_upsample_fuse_weights_per_block():
    layer = UpsampleFuse(8, num_blocks=3)
    layer([_data(1, 4, 4, 8), _data(1, 8, 8, 4)])
    # up (kernel, bias) + fuse (kernel, bias) + 2 convs x (kernel, bias) per residual block
    assert len(layer.trainable_weights) == 4 + 3 * 4
    assert layer.fuse.kernel.shape == (1, 1, 8 + 4, 8)


def test_upsample_fuse_coarse_pixel_reaches_only_its_2x2_block():
    """Without residual blocks, coarse pixel (i, j) lands on fine pixels (2i..2i+1, 2j..2j+1) only."""
    layer = UpsampleFuse(6, num_blocks=0)
    coarse, skip = _data(1, 4, 5, 6), _data(1, 8, 10, 3)
    base = np.asarray(layer([coarse, skip]))
    bumped = coarse.copy()
    bumped[0, 1, 3] += 5.0
    changed = np.any(np.asarray(layer([bumped, skip])) != base, axis=(0, 3))
    assert changed[2:4, 6:8].any()
    changed[2:4, 6:8] = False
    assert not changed.any()


@pytest.mark.parametrize("cls, kwargs", [(NAFBlock, {"channels": 8, "expansion": 2}), (InvertedResidualBlock, {"channels": 8, "expansion": 3})])
def test_depthwise_blocks_contract(cls, kwargs):
    run_layer_test(cls, kwargs, _data(2, 12, 10, 8), (2, 12, 10, 8))


def test_naf_block_starts_as_the_identity_and_learns_away_from_it():
    block = NAFBlock(8)
    x = _data(1, 9, 7, 8)
    np.testing.assert_array_equal(np.asarray(block(x)), x)  # beta = gamma = 0 at start
    block.beta.assign(np.ones(8, "float32"))
    assert not np.allclose(np.asarray(block(x)), x)


def test_naf_channel_attention_pools_over_the_whole_input():
    """SCA scales by a mean over the input's extent: a change far away moves every output pixel."""
    block = NAFBlock(4)
    x = _data(1, 16, 16, 4)
    block(x)
    block.beta.assign(np.ones(4, "float32"))
    far = x.copy()
    far[0, 15, 15, 0] += 1.0  # one channel: layer norm is blind to a shift of all of them
    residual = lambda inputs: np.asarray(block(inputs)) - inputs  # noqa: E731
    changed = np.abs(residual(far) - residual(x))[0, 0, 0]
    assert changed.max() > 0  # pixel (0, 0) is outside the 3x3 depthwise reach of (15, 15)


def test_inverted_residual_is_identity_plus_branch():
    block = InvertedResidualBlock(4, expansion=2)
    x = _data(1, 9, 7, 4)
    block(x)
    block.project.kernel.assign(np.zeros(block.project.kernel.shape, "float32"))
    block.project.bias.assign(np.full((4,), 0.5, "float32"))
    np.testing.assert_array_equal(np.asarray(block(x)), x + 0.5)


@pytest.mark.parametrize("kind, per_pixel", [
    ("residual", 2 * 9 * 8 * 8),
    ("naf", 8 * 16 + 9 * 16 + 8 * 8 + 8 * 16 + 8 * 8),  # expand, depthwise, project; FFN expand, project
    ("inverted", 8 * 32 + 9 * 32 + 32 * 8),
])
def test_block_macs_follow_their_formulas(kind, per_pixel):
    """The MAC count includes depthwise convolutions; SCA's 1x1 on the pooled vector is counted once per image."""
    model = keras.Sequential([make_block(kind, 8, name="b")])
    x = _data(1, 16, 16, 8)
    model(x)
    with _recording_macs(model) as records:
        model(x)
    sca = 8 * 8 if kind == "naf" else 0
    assert sum(records) == per_pixel * 16 * 16 + sca


def test_make_block_names_the_kinds_it_knows():
    with pytest.raises(ValueError, match="residual"):
        make_block("transformer", 8, name="b")
    assert set(BLOCKS) == {"residual", "naf", "inverted"}
