"""Defocus clusters: quantile thresholds, monotone assignment (more defocus -> lower id), patch means,
numpy/keras.ops parity, and thresholds carried by the DAQENet config into its routing."""
import numpy as np
import pytest

from daqe_tf.models import DAQENet, build_model
from daqe_tf.models.daqe.clusters import (
    assign_clusters,
    assign_clusters_tensor,
    fit_thresholds,
    patch_defocus_from_map,
    patch_defocus_from_map_tensor,
)

RNG = np.random.default_rng(11)
TINY = dict(
    widths=[4, 4, 8, 8], encoder_blocks=[1, 1, 1], bottleneck_blocks=[1, 1, 1], decoder_blocks=[1, 0, 0],
    patch_size=32, defocus_widths=[4, 4, 4, 4], defocus_blocks=[1, 1, 1, 1],
)


def test_fit_thresholds_are_quantiles_giving_equal_clusters():
    values = RNG.permutation(np.arange(100, dtype=np.float32))
    thresholds = fit_thresholds(values, 4)
    np.testing.assert_allclose(thresholds, [24.75, 49.5, 74.25])
    assert np.bincount(assign_clusters(values, thresholds)).tolist() == [25, 25, 25, 25]
    assert fit_thresholds(values, 1) == []


def test_assignment_is_monotone_higher_defocus_lower_id():
    thresholds = [0.5, 1.0, 1.5]
    values = np.sort(RNG.uniform(0, 2, 200)).astype(np.float32)
    ids = assign_clusters(values, thresholds)
    assert (np.diff(ids) <= 0).all()
    assert ids[0] == 3 and ids[-1] == 0
    np.testing.assert_array_equal(assign_clusters([0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 9.0], thresholds), [3, 3, 2, 2, 1, 1, 0])


def test_thresholds_must_be_ascending():
    with pytest.raises(ValueError, match="non-decreasing"):
        assign_clusters([1.0], [1.0, 0.5])


def test_patch_means_average_the_cells_present():
    cells = np.arange(15, dtype=np.float32).reshape(1, 3, 5, 1)
    means = patch_defocus_from_map(cells, 2)
    # patches: rows {0,1} x cols {0,1}, {2,3}, {4}; row {2} x the same
    expected = [[(0 + 1 + 5 + 6) / 4, (2 + 3 + 7 + 8) / 4, (4 + 9) / 2], [(10 + 11) / 2, (12 + 13) / 2, 14]]
    np.testing.assert_allclose(means, [expected])


@pytest.mark.parametrize("shape,patch_cells", [((2, 4, 4, 1), 4), ((1, 5, 7, 1), 2), ((3, 3, 3, 1), 1)])
def test_tensor_versions_match_numpy(shape, patch_cells):
    cells = RNG.uniform(0, 2, shape).astype(np.float32)
    means = patch_defocus_from_map(cells, patch_cells)
    np.testing.assert_allclose(np.asarray(patch_defocus_from_map_tensor(cells, patch_cells)), means, rtol=1e-6)
    thresholds = fit_thresholds(means, 3)
    ids = np.asarray(assign_clusters_tensor(means, thresholds))
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids, assign_clusters(means, thresholds))


def _inputs(batch, height, width):
    return {
        "image": RNG.uniform(0, 1, (batch, height, width, 3)).astype("float32"),
        "qmap": RNG.uniform(0, 1, (batch, height, width, 2)).astype("float32"),
    }


def test_model_routing_uses_the_thresholds_from_its_config():
    model = build_model("daqe", 3, **TINY)
    patches = _inputs(6, 32, 32)
    patch_defocus = patch_defocus_from_map(np.asarray(model.defocus(patches)), 2)[:, 0, 0]
    thresholds = fit_thresholds(patch_defocus, 3)
    model.thresholds = thresholds
    ids = np.asarray(model.cluster_map(patches))
    assert ids.shape == (6, 1, 1)
    np.testing.assert_array_equal(ids[:, 0, 0], assign_clusters(patch_defocus, thresholds))
    assert len(set(ids.ravel().tolist())) == 3  # quantile thresholds split the batch

    revived = DAQENet.from_config(model.get_config())
    revived.build({"image": (None, None, None, 3), "qmap": (None, None, None, 2)})
    assert revived.thresholds == model.get_config()["thresholds"] == pytest.approx(thresholds)
    revived.set_weights(model.get_weights())
    np.testing.assert_array_equal(np.asarray(revived.cluster_map(patches)), ids)


def test_model_cluster_map_of_a_whole_image():
    model = build_model("daqe", 3, **TINY)
    image = _inputs(1, 70, 40)
    ids = np.asarray(model.cluster_map(image))
    assert ids.shape == (1, 3, 2)  # ceil(70 / 32) x ceil(40 / 32) patches
    expected = assign_clusters(patch_defocus_from_map(np.asarray(model.defocus(image)), 2), model.thresholds)
    np.testing.assert_array_equal(ids, expected)


def test_model_rejects_threshold_count():
    with pytest.raises(ValueError, match="2 thresholds"):
        DAQENet(**TINY, thresholds=[0.5])
    with pytest.raises(ValueError, match="non-decreasing"):
        DAQENet(**TINY).thresholds = [1.0, 0.5]



def test_budget_thresholds_keep_quality_where_routing_costs_least():
    """Patches whose cheap exit loses nothing go early; the budget holds; no feasible split is better."""
    from daqe_tf.routing.policy import budget_thresholds

    n = 90
    defocus = np.linspace(0.0, 1.0, n)
    # Exit 0 is as good as exit 2 on the most defocused fifth, exit 1 above the sharpest tenth:
    # equal thirds would send blurred-but-not-enough patches through exit 0.
    errors = np.stack([np.where(defocus > 0.8, 1.0, 5.0), np.where(defocus > 0.1, 1.0, 3.0), np.ones(n)], axis=1)
    costs = np.array([1.0, 2.0, 4.0])
    thresholds = budget_thresholds(defocus, errors, costs, budget=0.6)
    exits = assign_clusters(defocus, thresholds)
    assert costs[exits].mean() <= 0.6 * costs[-1]
    assert exits[-1] == 0 and exits[0] == 2 and (np.diff(exits) <= 0).all()
    # Every monotone split of the sorted patches: a sharpest through exit 2, the next b - a through exit 1.
    feasible = [
        errors[:a, 2].sum() + errors[a:b, 1].sum() + errors[b:, 0].sum()
        for a in range(n + 1) for b in range(a, n + 1)
        if (4 * a + 2 * (b - a) + (n - b)) / n <= 0.6 * 4
    ]
    chosen = errors[np.arange(n), exits].sum()
    assert chosen <= min(feasible) + 4.0  # a 50-step quantile grid: within a couple of patches
    assert chosen < errors[np.arange(n), assign_clusters(defocus, fit_thresholds(defocus, 3))].sum()
    with pytest.raises(ValueError, match="budget"):
        budget_thresholds(defocus, errors, costs, budget=0.1)


def test_oracle_exits_meet_the_budget_and_bound_any_routing():
    """Per-patch exits from known errors: within the budget, optimal (brute force) for the cost they
    spend, never worse than routing by defocus thresholds at the same budget."""
    import itertools

    from daqe_tf.routing.policy import budget_thresholds, oracle_exits

    rng = np.random.default_rng(0)
    costs = np.array([1.0, 2.0, 4.0])
    errors = np.sort(rng.uniform(0, 10, (7, 3)), axis=1)[:, ::-1]  # deeper exits err less
    exits = oracle_exits(errors, costs, budget=0.6)
    assert costs[exits].mean() <= 0.6 * costs[-1] + 1e-9
    spent = costs[exits].mean()
    # Lagrangian choices are optimal for the cost they spend: no assignment as cheap errs less.
    assert errors[np.arange(7), exits].sum() <= min(
        errors[np.arange(7), list(c)].sum() for c in itertools.product(range(3), repeat=7)
        if costs[list(c)].mean() <= spent + 1e-9) + 1e-9

    defocus = rng.uniform(0, 1, 60)
    many = np.sort(rng.uniform(0, 10, (60, 3)), axis=1)[:, ::-1]
    routed = assign_clusters(defocus, budget_thresholds(defocus, many, costs, budget=0.7))
    oracle = oracle_exits(many, costs, budget=0.7)
    assert many[np.arange(60), oracle].sum() <= many[np.arange(60), routed].sum()
    assert (oracle_exits(many, costs, budget=1.0) == np.argmin(many, axis=1)).all()  # no budget: best exit each
    with pytest.raises(ValueError, match="budget"):
        oracle_exits(many, costs, budget=0.1)
