"""DefocusHead: layer contract, one value per 16x16 cell (ceil) for any size, cell locality, and its training targets."""
import numpy as np
import pytest

from daqe_tf.models.daqe.defocus_head import DefocusHead, defocus_cell_targets
from tests.layer_test_helpers import run_layer_test

RNG = np.random.default_rng(5)
TINY = {"widths": [4, 4, 4, 4], "blocks": [1, 0, 1, 1]}


def _inputs(batch, height, width, image_channels=3):
    qmap_channels = 1 if image_channels == 1 else 2
    return {
        "image": RNG.uniform(0, 1, (batch, height, width, image_channels)).astype("float32"),
        "qmap": RNG.uniform(0, 1, (batch, height, width, qmap_channels)).astype("float32"),
    }


def test_contract():
    run_layer_test(DefocusHead, TINY, _inputs(2, 40, 24), (2, 3, 2, 1))


@pytest.mark.parametrize("height,width,cells", [(16, 16, (1, 1)), (17, 33, (2, 3)), (64, 48, (4, 3))])
def test_one_value_per_cell_ceil(height, width, cells):
    head = DefocusHead(**TINY)
    assert head.cell_size == 16
    assert np.asarray(head(_inputs(1, height, width, image_channels=1))).shape == (1, *cells, 1)


def test_cell_size_follows_depth():
    head = DefocusHead(widths=[4, 4, 4], blocks=[1, 1, 1])
    assert head.cell_size == 8
    assert np.asarray(head(_inputs(1, 24, 16))).shape == (1, 3, 2, 1)


def test_far_cells_do_not_see_a_local_change():
    """The receptive field is bounded: a change in the top-left cell leaves the far corner's prediction alone."""
    head = DefocusHead(**TINY)
    inputs = _inputs(1, 256, 256)
    before = np.asarray(head(inputs))[0, ..., 0]
    inputs["image"][0, :16, :16] = 1.0 - inputs["image"][0, :16, :16]
    after = np.asarray(head(inputs))[0, ..., 0]
    assert after[0, 0] != before[0, 0]
    assert after[-1, -1] == before[-1, -1]


def test_lengths_must_match():
    with pytest.raises(ValueError, match="len"):
        DefocusHead(widths=[4, 4], blocks=[1])


def test_cell_targets_are_log1p_of_the_cell_mean_sigma():
    sigma = np.zeros((32, 32), np.float32)
    sigma[:, 16:] = 8.0
    sigma[:16, :16] = np.arange(256, dtype=np.float32).reshape(16, 16) / 255.0 * 2.0  # mean 1.0
    np.testing.assert_allclose(defocus_cell_targets(sigma), np.log1p([[1.0, 8.0], [0.0, 8.0]]), rtol=1e-6)


def test_cell_targets_pad_like_the_head():
    """A partial cell is completed by mirroring (as the head pads its input): 4 rows of 5 -> 8 of 5 and 8 of 1."""
    sigma = np.ones((20, 16), np.float32)
    sigma[16:] = 5.0
    targets = defocus_cell_targets(sigma)
    assert targets.shape == (2, 1)
    np.testing.assert_allclose(targets[:, 0], np.log1p([1.0, 3.0]), rtol=1e-6)
