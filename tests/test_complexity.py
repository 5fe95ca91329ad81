"""count_macs against hand-computed counts for a tiny QGAUNet, and its bookkeeping."""
import keras
import pytest
from keras import layers

from daqe_tf.complexity import count_macs, macs_per_pixel
from daqe_tf.models import build_model

# widths 4/8/8, one residual block per encoder level, one in decoder level 1; exits bottom at levels 1 and 2.
TINY = dict(widths=[4, 8, 8], encoder_blocks=[1, 1], decoder_blocks=[1], num_exits=2)

# Grayscale (image 1 + Q-map 1 channel), stem_stride 1, 16x16: level 0 = 256 px, level 1 = 64 px, level 2 = 16 px.
STEM = 256 * 3 * 3 * 2 * 4  # 3x3 conv, 2 -> 4
DOWN1 = 64 * 2 * 2 * 4 * 8  # 2x2 stride 2, 4 -> 8, counted at the output
ENC1 = 2 * 64 * 3 * 3 * 8 * 8  # residual block: two 3x3 convs 8 -> 8
DOWN2 = 16 * 2 * 2 * 8 * 8
ENC2 = 2 * 16 * 3 * 3 * 8 * 8
# QGA gate: project 1x1 qmap -> C, hidden 3x3 C -> max(C // 2, 4), gate 1x1 -> 1 (pooling is free).
QGA0 = 256 * 1 * 4 + 256 * 3 * 3 * 4 * 4 + 256 * 4 * 1
QGA1 = 64 * 1 * 8 + 64 * 3 * 3 * 8 * 4 + 64 * 4 * 1
# UpsampleFuse: transposed 2x2 stride 2 counted at its input, then a 1x1 fuse of (C + skip C) -> C.
DEC0 = 64 * 2 * 2 * 8 * 4 + 256 * (4 + 4) * 4  # level 1 (8 ch) -> level 0 (4 ch), no blocks
DEC1 = 16 * 2 * 2 * 8 * 8 + 64 * (8 + 8) * 8 + 2 * 64 * 3 * 3 * 8 * 8  # level 2 -> 1, one block
HEAD = 256 * 3 * 3 * 4 * 1
EXIT0 = STEM + DOWN1 + ENC1 + QGA0 + DEC0 + HEAD
EXIT1 = STEM + DOWN1 + ENC1 + DOWN2 + ENC2 + QGA0 + QGA1 + DEC1 + DEC0 + HEAD


@pytest.fixture(scope="module")
def tiny():
    return build_model("qga_unet", 1, **TINY)


def test_hand_counted_exits(tiny):
    assert (EXIT0, EXIT1) == (164_864, 292_608)
    assert count_macs(tiny, 16, 16, 0) == EXIT0
    assert count_macs(tiny, 16, 16, 1) == EXIT1
    assert count_macs(tiny, 16, 16, -1) == EXIT1


def test_all_exit_call_shares_the_encoder(tiny):
    assert count_macs(tiny, 16, 16, None) == EXIT1 + DEC0 + HEAD


def test_odd_size_is_counted_at_the_padded_size(tiny):
    assert count_macs(tiny, 13, 15, 0) == EXIT0  # padded to 16x16 (stride 4)


def test_stride_two_stem_hand_counted():
    # Colour (3 + 2 input channels), stem_stride 2, 16x16: level 0 = 64 px, level 1 = 16 px.
    model = build_model("qga_unet", 3, **TINY, stem_stride=2)
    stem = 64 * 2 * 2 * 5 * 4
    down1 = 16 * 2 * 2 * 4 * 8
    enc1 = 2 * 16 * 3 * 3 * 8 * 8
    qga0 = 64 * 2 * 4 + 64 * 3 * 3 * 4 * 4 + 64 * 4 * 1
    dec0 = 16 * 2 * 2 * 8 * 4 + 64 * (4 + 4) * 4
    head = 64 * 2 * 2 * 4 * 3  # transposed 2x2 stride 2 back to full resolution, counted at its input
    assert count_macs(model, 16, 16, 0) == stem + down1 + enc1 + qga0 + dec0 + head == 42_752


def test_deeper_exits_cost_more_and_per_pixel_scales():
    model = build_model("qga_unet", 3, widths=[8, 8, 16, 16], encoder_blocks=[1, 1, 1], decoder_blocks=[1, 1])
    costs = [macs_per_pixel(model, k, size=32) for k in range(model.num_exits)]
    assert costs[0] < costs[1] < costs[2]
    assert macs_per_pixel(model, 0, size=64) == costs[0]  # sizes that need no padding: linear in pixels


def test_calls_are_restored_even_on_error():
    class Failing(keras.Model):
        image_channels, qmap_channels = 1, 1

        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(5)

        def call(self, inputs, exit_index=None):
            self.dense(inputs["image"])
            if exit_index == 1:
                raise RuntimeError("boom")
            return inputs["image"]

    model = Failing()
    assert count_macs(model, 3, 4, 0) == 3 * 4 * 1 * 5  # unbuilt: its symbolic build pass is not counted
    with pytest.raises(RuntimeError, match="boom"):
        count_macs(model, 3, 4, 1)
    assert "call" not in model.dense.__dict__
    assert count_macs(model, 3, 4, 0) == 60  # recorded once per call: no wrapper left stacked


class _OneLayer(keras.Model):
    image_channels, qmap_channels = 2, 1

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def call(self, inputs, exit_index=None):
        return self.layer(inputs["image"])


def test_layers_without_a_formula_are_refused():
    with pytest.raises(NotImplementedError, match="SeparableConv2D"):
        count_macs(_OneLayer(layers.SeparableConv2D(4, 3)), 8, 8, 0)


def test_depthwise_convolutions_are_counted_per_channel():
    """A 3x3 depthwise convolution ('same') does 9 MACs per pixel and channel."""
    assert count_macs(_OneLayer(layers.DepthwiseConv2D(3, padding="same")), 8, 8, 0) == 8 * 8 * 2 * 9


def test_defocus_head_hand_counted():
    """DefocusHead widths 4/4/4/4, one block per level, colour 32x32 (5 input channels): 16, 8, 4, 2 px sides."""
    from daqe_tf.complexity import count_defocus_macs

    model = build_model("daqe", 3, widths=[4, 4, 8, 8], encoder_blocks=[1, 1, 1], bottleneck_blocks=[1, 1, 1],
                        decoder_blocks=[1, 0, 0], patch_size=32, defocus_widths=[4, 4, 4, 4], defocus_blocks=[1, 1, 1, 1])
    stem = 256 * 2 * 2 * 5 * 4
    blocks = sum(2 * n * 9 * 4 * 4 for n in (256, 64, 16, 4))
    downs = sum(n * 2 * 2 * 4 * 4 for n in (64, 16, 4))
    head = 4 * 4 * 1
    assert count_defocus_macs(model, 32, 32) == stem + blocks + downs + head == 123_792
    assert count_defocus_macs(model, 20, 30) == count_defocus_macs(model, 32, 32)  # padded to whole cells
