"""Cascade routing: the stage readout, the exit rule and its budget fit, the model's stages, whole-image
routing against forced exits, the .keras round trip, the fit tool and the CLI maps."""
import keras
import numpy as np
import pytest

from daqe_tf.inference.tiling import plan_tiles
from daqe_tf.models import build_model
from daqe_tf.models.daqe import CascadeReadout, cascade_gain, cascade_readout_fit, shared_weights, with_routing
from daqe_tf.models.daqe.cascade_readout import patch_summary, qmap_summary
from daqe_tf.routing.policy import budget_cascade_thresholds, cascade_exits, oracle_exits
from daqe_tf.routing.runtime import enhance_routed, run_patches
from tests.helpers import TINY_DAQE_CONFIG

RNG = np.random.default_rng(21)


def _model(seed=0):
    """A tiny DAQENet whose exits differ (random heads), so routing changes the output."""
    keras.utils.set_random_seed(seed)
    model = build_model("daqe", 3, **TINY_DAQE_CONFIG)
    rng = np.random.default_rng(seed)
    for head in model.heads:
        head.kernel.assign(rng.normal(0, 0.1, head.kernel.shape).astype("float32"))
    return model


def _sizes(model):
    return [sum(2 * model.branches[j].width for j in range(m + 1)) + 1 for m in range(model.num_exits - 1)]


def _cascade(model, biases, weights=None):
    weights = weights or [np.zeros(n) for n in _sizes(model)]
    return with_routing(model, "cascade", model.thresholds, list(zip(weights, biases)))


def _qmap_for(height, width, origin):
    return np.full((height, width, 2), 0.4, np.float32)


def test_readout_is_a_linear_map_of_summary_and_qmap_and_unfitted_sends_everyone_deep():
    layer = CascadeReadout()
    summary = RNG.normal(size=(4, 6)).astype("float32")
    qmap_mean = RNG.uniform(size=(4, 1)).astype("float32")
    assert np.all(np.asarray(layer([summary, qmap_mean])) < 0)  # zero weights, bias -1: nobody leaves
    weights = RNG.normal(size=7)
    layer.set_linear(weights, 0.25)
    expected = np.column_stack([summary, qmap_mean]) @ weights + 0.25
    np.testing.assert_allclose(np.asarray(layer([summary, qmap_mean]))[:, 0], expected, rtol=1e-5, atol=1e-5)
    assert isinstance(CascadeReadout.from_config(layer.get_config()), CascadeReadout)
    with pytest.raises(ValueError, match="7 cascade readout weights"):
        layer.set_linear(weights[:3], 0.0)


def test_summaries_are_channel_means_and_mean_magnitudes():
    features = RNG.normal(size=(2, 4, 5, 3)).astype("float32")
    out = np.asarray(patch_summary(features))
    np.testing.assert_allclose(out[:, :3], features.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 3:], np.abs(features).mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    qmap = RNG.uniform(size=(2, 8, 8, 2)).astype("float32")
    np.testing.assert_allclose(np.asarray(qmap_summary(qmap))[:, 0], qmap[..., 0].mean(axis=(1, 2)), rtol=1e-5)


def test_gain_is_the_error_the_deepest_exit_saves_in_units_of_the_images_mean_patch_error():
    errors = np.array([[9.0, 5.0, 4.0], [3.0, 2.0, 2.0], [40.0, 30.0, 10.0], [20.0, 20.0, 10.0]])
    groups = np.array([0, 0, 1, 1])
    gain = cascade_gain(errors, 1, groups)
    np.testing.assert_allclose(gain, [1.0 / 3.0, 0.0, 2.0, 1.0])  # image 0: mean deepest 3; image 1: 10
    # Summed over an image and divided by its patch count: the fraction of its error sending all deep removes.
    np.testing.assert_allclose(gain[2:].mean(), (errors[2:, 1].sum() - errors[2:, 2].sum()) / errors[2:, 2].sum())
    np.testing.assert_allclose(cascade_gain(errors[:2], 0), [5.0 / 3.0, 1.0 / 3.0])  # no groups: one image


def test_fit_ranks_patches_within_images_whatever_each_image_adds():
    n, images = 600, 6
    groups = np.repeat(np.arange(images), n // images)
    inputs = RNG.normal(size=(n, 4)) * [1, 5, 0.2, 2] + 1.0
    inputs[:, 3] = groups  # an image-wide input: constant within each image
    gain = 0.5 + 0.3 * inputs[:, 1] - 2.0 * inputs[:, 2] + 1.5 * groups  # the gain each patch's image adds to
    errors = np.column_stack([np.ones(n), 1.0 + gain - gain.min(), np.ones(n)])  # deepest error 1: gain in its units
    weights, bias = cascade_readout_fit(inputs, errors, stage=1, ridge=1e-4, groups=groups)
    score = inputs @ weights + bias
    np.testing.assert_allclose(weights[:3], [0.0, -0.3, 2.0], atol=1e-3)  # the within-image slopes, sign: leave = high
    assert abs(weights[3]) < 1e-6  # an image-wide input cannot rank patches within an image
    for g in range(images):  # every image's patches ordered by how much they gain, offsets aside
        inside = groups == g
        centred = -cascade_gain(errors, 1, groups)[inside]
        np.testing.assert_allclose(score[inside] - score[inside].mean(), centred - centred.mean(), atol=1e-3)
    with pytest.raises(ValueError, match="stage 2 out of range"):
        cascade_readout_fit(inputs, errors, stage=2)
    with pytest.raises(ValueError, match="one group"):
        cascade_readout_fit(inputs, errors, stage=1, groups=groups[:-1])


def test_exit_is_the_first_positive_stage_else_the_deepest():
    scores = np.array([[0.5, 0.5], [-0.1, 0.2], [-1.0, -1.0], [0.0, 3.0]])
    np.testing.assert_array_equal(cascade_exits(scores), [0, 1, 2, 1])


def test_budget_thresholds_meet_the_budget_and_reach_the_oracle_on_a_perfect_score():
    n = 300
    gain = RNG.uniform(0, 1, n)  # what the deepest exit adds over exit 1; exit 0 is always much worse
    errors = np.column_stack([np.full(n, 5.0), 1.0 + gain, np.ones(n)])
    costs = np.array([1.0, 2.0, 4.0])
    scores = np.column_stack([np.full(n, -1.0), -gain])  # stage 1 knows the gain exactly
    chosen = budget_cascade_thresholds(scores, errors, costs, budget=0.75)
    exits = cascade_exits(scores - np.asarray(chosen))
    assert costs[exits].mean() <= 0.75 * costs[-1] + 1e-9
    best = oracle_exits(errors, costs, 0.75)
    routed = errors[np.arange(n), exits].sum()
    assert routed <= errors[np.arange(n), best].sum() * 1.01
    assert np.all(exits > 0)  # exit 0 never pays
    with pytest.raises(ValueError, match="no cascade thresholds"):
        budget_cascade_thresholds(scores, errors, costs, budget=0.2)


def test_stages_chain_to_the_exits_of_the_plain_call():
    model = _model()
    cascade = _cascade(model, [-1.0, -1.0])
    inputs = {"image": RNG.uniform(0, 1, (2, 32, 32, 3)).astype("float32"),
              "qmap": RNG.uniform(0, 1, (2, 32, 32, 2)).astype("float32")}
    carried, summaries = (), []
    for stage in range(3):
        features, summary, score = cascade.cascade_stage(inputs, stage, *carried)
        out = np.asarray(cascade.exit_from_features(stage, features, inputs["image"]))
        np.testing.assert_allclose(out, np.asarray(model(inputs, exit_index=stage)), rtol=1e-5, atol=1e-6)
        summaries.append(np.asarray(patch_summary(features)))
        np.testing.assert_allclose(np.asarray(summary), np.concatenate(summaries, axis=1), rtol=1e-6)
        assert (score is None) == (stage == 2)
        carried = (features, summary)
    with pytest.raises(ValueError, match="later stages take both"):
        cascade.cascade_stage(inputs, 1)
    with pytest.raises(ValueError, match="needs routing 'cascade'"):
        model.cascade_stage(inputs, 0)
    with pytest.raises(ValueError, match="no cluster map"):
        cascade.cluster_map(inputs)
    with pytest.raises(ValueError, match="one fitted readout per stage"):
        with_routing(model, "cascade", model.thresholds, [(np.zeros(_sizes(model)[0]), 0.0)])


@pytest.mark.parametrize("biases, expected", [((1.0, 1.0), 0), ((-1.0, 1.0), 1), ((-1.0, -1.0), 2)])
def test_whole_image_cascade_equals_forcing_the_exit_it_chose(biases, expected):
    model = _model(seed=1)
    pixels = RNG.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    out, routing = enhance_routed(pixels, _cascade(model, biases), _qmap_for)
    assert routing.signal == "cascade" and routing.defocus is None and np.all(routing.exits == expected)
    forced = run_patches(pixels, model, _qmap_for, routing.patches, routing.exits)
    np.testing.assert_array_equal(out, forced)
    assert "exits by cascade" in routing.describe()


def test_mixed_cascade_routes_by_the_stage_scores_and_survives_a_safe_reload(tmp_path):
    from daqe_tf.routing.runtime import _patch_window

    model = _model(seed=2)
    pixels = (RNG.uniform(0, 1, (96, 128, 1)) * np.linspace(20, 255, 128)[None, :, None]).repeat(3, axis=2).astype(np.uint8)
    weights = [RNG.normal(0, 1, n) for n in _sizes(model)]
    probe = _cascade(model, [0.0, 0.0], weights)  # the scores with no threshold, patch by patch
    patches = plan_tiles(96, 128, model.patch_size, 0, 16)
    images, qmaps = (np.stack(parts) for parts in zip(*(_patch_window(pixels, t, model.patch_size, _qmap_for) for t in patches)))
    features, summary, score0 = probe.cascade_stage({"image": images, "qmap": qmaps}, 0)
    _, _, score1 = probe.cascade_stage({"image": images, "qmap": qmaps}, 1, features, summary)
    scores = np.column_stack([np.asarray(score0)[:, 0], np.asarray(score1)[:, 0]])
    cuts = [np.quantile(scores[:, 0], 0.7), np.quantile(scores[:, 1], 0.5)]
    cascade = _cascade(model, [-cuts[0], -cuts[1]], weights)

    out, routing = enhance_routed(pixels, cascade, _qmap_for)
    np.testing.assert_array_equal(routing.exits, cascade_exits(scores - np.asarray(cuts)))
    assert set(routing.exits.tolist()) == {0, 1, 2}
    np.testing.assert_array_equal(out, run_patches(pixels, model, _qmap_for, routing.patches, routing.exits))

    cascade.save(tmp_path / "cascade.keras")
    loaded = keras.models.load_model(tmp_path / "cascade.keras", safe_mode=True)
    assert loaded.routing == "cascade"
    again, routing_again = enhance_routed(pixels, loaded, _qmap_for)
    np.testing.assert_array_equal(routing_again.exits, routing.exits)
    np.testing.assert_array_equal(again, out)
    with_map, routed_with_map = enhance_routed(pixels, loaded, _qmap_for, defocus_map=True)
    assert routed_with_map.defocus.shape == (6, 8)
    np.testing.assert_array_equal(with_map, out)
    for a, b in zip(shared_weights(loaded), model.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_fit_tool_builds_a_cascade_within_the_budget(tmp_path, daqe_image_folder, capsys):
    from daqe_tf.complexity import count_macs
    from daqe_tf.inference.pipeline import enhance
    from daqe_tf.jpeg.simulate import compress
    from train.data import list_images, load_images
    from train.fit_thresholds import main

    model = _model(seed=3)
    model.save(tmp_path / "trained.keras")
    argv = ["--model", str(tmp_path / "trained.keras"), "--train_data", str(daqe_image_folder),
            "--out", str(tmp_path / "cascade.keras"), "--qualities", "10,40", "--budget", "0.7", "--signal", "cascade",
            "--max_cost", "0.75"]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "| cascade budget (cap 0.75) |" in table and "| oracle 0.70 |" in table
    routed = keras.models.load_model(tmp_path / "cascade.keras", safe_mode=True)
    assert routed.routing == "cascade" and routed.max_cost == pytest.approx(0.75)
    assert routed.exit_costs[-1] == pytest.approx(1.0) and routed.exit_costs == sorted(routed.exit_costs)
    assert any(np.abs(np.asarray(r.kernel)).sum() > 0 for r in routed.cascade_readouts)
    costs = np.array([count_macs(routed, routed.patch_size, routed.patch_size, k) for k in range(3)])
    exits = []
    for image in load_images(list_images(str(daqe_image_folder)), grayscale=False, min_size=16):
        for q in (10, 40):
            exits.append(enhance(compress(image, q).data, routed).routing.exits)
            assert costs[exits[-1]].mean() <= 0.75 * costs[-1] + 1e-6  # the cap, image by image
    assert costs[np.concatenate(exits)].mean() <= 0.7 * costs[-1] + 1e-6  # the budget, on the calibration images
    with pytest.raises(ValueError, match="pass --budget"):
        main(argv[:8] + ["--signal", "cascade"])
    with pytest.raises(ValueError, match="needs --signal cascade"):
        main(argv[:10] + ["--signal", "readout", "--max_cost", "0.7"])


def test_patch_summaries_are_what_the_stages_read_for_any_routing():
    model = _model(seed=4)
    cascade = _cascade(model, [-1.0, -1.0])
    inputs = {"image": RNG.uniform(0, 1, (3, 32, 32, 3)).astype("float32"),
              "qmap": RNG.uniform(0, 1, (3, 32, 32, 2)).astype("float32")}
    carried = ()
    for stage in range(3):
        features, summary, _ = cascade.cascade_stage(inputs, stage, *carried)
        carried = (features, summary)
    expected = np.concatenate([np.asarray(summary), np.asarray(qmap_summary(inputs["qmap"]))], axis=1)
    for source in (model, cascade):  # a defocus-routed model gives the same columns
        np.testing.assert_allclose(np.asarray(source.patch_summaries(inputs)), expected, rtol=1e-5, atol=1e-6)


def test_cap_grants_the_deepest_exit_to_the_lowest_scores_while_the_band_affords_it():
    from daqe_tf.routing.policy import capped_cascade_exits, capped_deepest

    costs = [0.25, 0.5, 1.0]
    # 4 patches, all candidates at exit 1 (base 4 x 0.5 = 2.0); cap 0.75 -> allowed 3.0 -> room 2.
    chosen = capped_deepest([0.3, -2.0, -1.0, -2.0], 2.0, 4, costs, 0.75)
    np.testing.assert_array_equal(chosen, [False, True, False, True])  # ties keep plan order
    assert capped_deepest([-1.0, -1.0], 1.0, 2, costs, 0.5).sum() == 0  # nothing left to grant
    assert capped_deepest([-1.0, -1.0], 1.0, 2, costs, 1.0).all()
    scores = np.array([[-1.0, -3.0], [-1.0, -2.0], [-1.0, -1.0], [1.0, -5.0], [-1.0, -1.0], [-1.0, -0.5]])
    groups = np.array([0, 0, 0, 0, 1, 1])
    exits = capped_cascade_exits(scores, groups, costs, 0.75)
    # Group 0: one exit 0 (0.25) + three candidates (1.5) -> allowed 3.0 -> room 2 (the two lowest scores).
    # Group 1: two candidates (1.0) -> allowed 1.5 -> room 1.
    np.testing.assert_array_equal(exits, [2, 2, 1, 0, 2, 1])
    for g in (0, 1):
        assert np.take(costs, exits[groups == g]).mean() <= 0.75 + 1e-9
    np.testing.assert_array_equal(capped_cascade_exits(scores, groups, costs, None), cascade_exits(scores))


def test_capped_cascade_stays_within_its_cost_per_band_and_round_trips(tmp_path, monkeypatch):
    import daqe_tf.routing.runtime as routing_module
    from daqe_tf.complexity import count_macs
    from daqe_tf.routing.policy import capped_cascade_exits

    model = _model(seed=6)
    costs = [count_macs(model, 32, 32, k) for k in range(3)]
    relative = [c / costs[-1] for c in costs]
    weights = [RNG.normal(0, 1, n) for n in _sizes(model)]
    pixels = (RNG.uniform(0, 1, (96, 128, 1)) * np.linspace(20, 255, 128)[None, :, None]).repeat(3, axis=2).astype(np.uint8)
    probe = _cascade(model, [0.0, 0.0], weights)
    patches = plan_tiles(96, 128, model.patch_size, 0, 16)
    from daqe_tf.routing.runtime import _patch_window

    images, qmaps = (np.stack(parts) for parts in zip(*(_patch_window(pixels, t, model.patch_size, _qmap_for) for t in patches)))
    features, summary, score0 = probe.cascade_stage({"image": images, "qmap": qmaps}, 0)
    _, _, score1 = probe.cascade_stage({"image": images, "qmap": qmaps}, 1, features, summary)
    scores = np.column_stack([np.asarray(score0)[:, 0], np.asarray(score1)[:, 0]])
    cuts = np.array([np.quantile(scores[:, 0], 0.9), np.quantile(scores[:, 1], 0.9)])  # most want the deepest exit
    uncapped = cascade_exits(scores - cuts)
    capped_model = with_routing(model, "cascade", model.thresholds, [(w, -c) for w, c in zip(weights, cuts)],
                                max_cost=0.8, exit_costs=relative)
    rows = [t.y0 for t in patches]
    for band in (256, 10):  # the whole image, then bands of whole rows holding at most 10 patches
        monkeypatch.setattr(routing_module, "CASCADE_BAND", band)
        out, routed = enhance_routed(pixels, capped_model, _qmap_for)
        starts = sorted(set(rows))
        per_row = len(patches) // len(starts)
        rows_per_band = max(1, band // per_row)
        groups = np.array([starts.index(y) // rows_per_band for y in rows])
        np.testing.assert_array_equal(routed.exits, capped_cascade_exits(scores - cuts, groups, relative, 0.8))
        for g in np.unique(groups):
            assert np.take(relative, routed.exits[groups == g]).mean() <= 0.8 + 1e-6
        assert np.take(relative, uncapped).mean() > 0.8  # the cap binds
        np.testing.assert_array_equal(out, run_patches(pixels, model, _qmap_for, routed.patches, routed.exits))
    capped_model.save(tmp_path / "capped.keras")
    loaded = keras.models.load_model(tmp_path / "capped.keras", safe_mode=True)
    assert loaded.max_cost == pytest.approx(0.8) and loaded.exit_costs == pytest.approx(relative)
    with pytest.raises(ValueError, match="max_cost caps a cascade"):
        with_routing(model, "defocus", [0.0, 1.0], max_cost=0.8, exit_costs=relative)
