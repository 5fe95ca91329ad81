"""QuantizationGuidedAttention: the layer contract, F' = A * F, and Q-map alignment at scales 2 and 4."""
import numpy as np
import pytest

from daqe_tf.layers.qga import QuantizationGuidedAttention
from tests.layer_test_helpers import run_layer_test

RNG = np.random.default_rng(1)


def _data(*shape):
    return RNG.uniform(0, 1, shape).astype("float32")


def _block_mean(qmap, scale):
    b, h, w, c = qmap.shape
    return qmap.reshape(b, h // scale, scale, w // scale, scale, c).mean(axis=(2, 4))


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_contract(scale):
    features, qmap = _data(2, 4, 3, 8), _data(2, 4 * scale, 3 * scale, 2)
    run_layer_test(QuantizationGuidedAttention, {"channels": 8, "scale": scale}, [features, qmap], (2, 4, 3, 8))


def test_output_is_attention_times_features():
    layer = QuantizationGuidedAttention(6, scale=2)
    features, qmap = _data(2, 5, 7, 6), _data(2, 10, 14, 1)
    output = np.asarray(layer([features, qmap]))
    attention = np.asarray(layer.attention(features, qmap))
    assert attention.shape == (2, 5, 7, 1)
    assert (attention > 0).all() and (attention < 1).all()
    np.testing.assert_allclose(output, features * attention, rtol=0, atol=1e-7)


@pytest.mark.parametrize("scale", [2, 4])
def test_pooling_aligns_qmap_with_features(scale):
    """Scale s on the full-resolution Q-map == scale 1 on its s x s block means (same weights)."""
    features, qmap = _data(1, 4, 6, 8), _data(1, 4 * scale, 6 * scale, 2)
    pooled = QuantizationGuidedAttention(8, scale=scale)
    direct = QuantizationGuidedAttention(8, scale=1)
    expected = np.asarray(pooled([features, qmap]))
    direct([features, _block_mean(qmap, scale)])
    direct.set_weights(pooled.get_weights())
    np.testing.assert_allclose(np.asarray(direct([features, _block_mean(qmap, scale)])), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("scale", [2, 4])
def test_qmap_change_moves_attention_only_near_its_cell(scale):
    """A Q-map change inside the s x s block of cell (2, 3) changes A there and, via the 3x3 hidden conv,
    at most one cell around it."""
    layer = QuantizationGuidedAttention(8, scale=scale)
    features, qmap = _data(1, 6, 7, 8), _data(1, 6 * scale, 7 * scale, 1)
    before = np.asarray(layer.attention(features, qmap))[0, ..., 0]
    qmap2 = qmap.copy()
    qmap2[0, 2 * scale + scale - 1, 3 * scale, 0] += 10.0
    after = np.asarray(layer.attention(features, qmap2))[0, ..., 0]
    changed = after != before
    assert changed[2, 3]
    changed[1:4, 2:5] = False
    assert not changed.any()
