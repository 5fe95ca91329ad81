"""ClusterAttention: layer contract, masking across clusters, references from the whole batch, mixed precision."""
import numpy as np
import pytest

from daqe_tf.layers.cluster_attention import ClusterAttention
from tests.layer_test_helpers import run_layer_test, run_mixed_precision_test

RNG = np.random.default_rng(3)


def _features(*shape):
    return RNG.normal(size=shape).astype("float32")


@pytest.mark.parametrize(
    "query_pool,reference_pool,shape",
    [(2, 4, (2, 8, 8, 4)), (1, 2, (2, 4, 6, 4)), (2, 4, (2, 7, 5, 4))],  # the last one is padded inside
    ids=["pooled", "pixel-queries", "odd-size"],
)
def test_contract(query_pool, reference_pool, shape):
    kwargs = {"channels": 4, "key_dim": 4, "query_pool": query_pool, "reference_pool": reference_pool}
    run_layer_test(ClusterAttention, kwargs, _features(*shape), shape)


def _layer():
    return ClusterAttention(4, key_dim=4, query_pool=2, reference_pool=4)


def test_other_clusters_never_reach_a_token():
    layer = _layer()
    features, clusters = _features(4, 8, 8, 4), np.array([0, 1, 0, 1], "int32")
    before = np.asarray(layer(features, clusters=clusters))

    changed = features.copy()
    changed[[1, 3]] = _features(2, 8, 8, 4)  # both cluster-1 items replaced
    after = np.asarray(layer(changed, clusters=clusters))
    np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])
    assert not np.allclose(after[[1, 3]], before[[1, 3]])

    swapped = features[[0, 3, 2, 1]]  # cluster-1 items permuted
    after = np.asarray(layer(swapped, clusters=clusters))
    np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])
    np.testing.assert_allclose(after[[1, 3]], before[[3, 1]], rtol=0, atol=1e-6)


def test_same_cluster_items_are_references():
    layer = _layer()
    features, clusters = _features(3, 8, 8, 4), np.array([2, 2, 0], "int32")
    before = np.asarray(layer(features, clusters=clusters))
    changed = features.copy()
    changed[1] += 1.0
    after = np.asarray(layer(changed, clusters=clusters))
    assert not np.allclose(after[0], before[0])  # item 1 shares item 0's cluster
    np.testing.assert_array_equal(after[2], before[2])


def test_no_clusters_means_one_cluster():
    layer = _layer()
    features = _features(3, 8, 8, 4)
    np.testing.assert_allclose(
        np.asarray(layer(features)), np.asarray(layer(features, clusters=np.full(3, 5, "int32"))), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("size", [2, 4, 8])
def test_cell_modulation_is_interpolated_without_seams(size):
    """A unit step between two cells becomes a ramp of 1/size steps, not one jump at the cell border."""
    cells = np.array([0.0, 1.0], "float32").reshape(1, 1, 2, 1)
    row = np.asarray(ClusterAttention._upsample(cells, size))[0, 0, :, 0]
    assert row.shape == (2 * size,)
    steps = np.diff(row)
    assert (steps >= 0).all()
    np.testing.assert_allclose(steps.max(), 1.0 / size, rtol=1e-6)
    assert row[0] == 0.0 and row[-1] == 1.0


def test_mixed_precision_with_masking():
    clusters = np.array([0, 1], "int32")
    run_mixed_precision_test(_layer, _features(2, 8, 8, 4), (2, 8, 8, 4), call_kwargs={"clusters": clusters})


def test_reference_pool_must_be_a_multiple_of_query_pool():
    with pytest.raises(ValueError, match="multiple"):
        ClusterAttention(4, query_pool=4, reference_pool=6)
