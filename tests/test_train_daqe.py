"""DAQE training: pseudo labels cropped with their patch, cluster-aware batches, the loss, a few steps, threshold refit."""
import functools
import json

import numpy as np
import pytest

from daqe_tf.models.daqe import assign_clusters, defocus_cell_targets
from tests.helpers import TINY_DAQE_CONFIG, daqe_train_config, natural_image
from train.data import ClusterPairSampler
from train.defocus_labels import candidate_table, crop_with_labels, defocus_labels, patch_candidates
from train.degradations import DegradationConfig


def test_crop_and_label_map_share_window_and_dihedral_transform():
    """The label map is the image scaled, so its cell targets must be those of the transformed patch."""
    image = np.random.default_rng(0).integers(0, 256, (64, 80), dtype=np.uint8)
    sigma = image.astype(np.float32) / 32.0
    seen = set()
    for seed in range(40):
        rng = np.random.default_rng(seed)
        patch, cells = crop_with_labels(rng, image, sigma, 16, 32, 32)
        assert patch.shape == (32, 32) and cells.shape == (2, 2, 1) and cells.dtype == np.float32
        np.testing.assert_allclose(cells[..., 0], defocus_cell_targets(patch.astype(np.float32) / 32.0), rtol=1e-6)
        seen.add(patch.tobytes())
    assert len(seen) == 8  # all eight flips/rotations of the same crop


def test_candidates_carry_the_defocus_their_crop_gets():
    rng = np.random.default_rng(1)
    sigma = rng.uniform(0, 4, (70, 100)).astype(np.float32)
    ys, xs, values = patch_candidates(sigma, 32)
    assert len(ys) == (70 // 16 - 1) * (100 // 16 - 1)  # whole cells only: 3 x 5 positions
    assert (ys % 16 == 0).all() and (xs % 16 == 0).all() and (ys + 32 <= 70).all() and (xs + 32 <= 100).all()
    image = np.zeros((70, 100), np.uint8)
    for y, x, value in zip(ys, xs, values):
        _, cells = crop_with_labels(rng, image, sigma, int(y), int(x), 32)
        assert cells.mean() == pytest.approx(float(value), rel=1e-5)
    assert patch_candidates(sigma[:20], 32)[0].size == 0


def test_labels_are_computed_once_then_read_from_the_cache(tmp_path, monkeypatch):
    import daqe_tf.defocus.cache as cache_module

    images = [natural_image(40, 48, seed=s) for s in range(2)]
    first = defocus_labels(images, tmp_path)
    assert [m.shape for m in first] == [(40, 48), (40, 48)] and first[0].dtype == np.float16
    @functools.wraps(cache_module.estimate_defocus_map)  # same signature: the cache key binds its settings
    def refuse(*args, **kwargs):
        pytest.fail("recomputed a cached map")

    monkeypatch.setattr(cache_module, "estimate_defocus_map", refuse)
    second = defocus_labels(images, tmp_path)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_cluster_batches_hold_one_cluster_and_cycle_over_all():
    rng = np.random.default_rng(2)
    images = [natural_image(64, 96, seed=s) for s in range(2)]
    maps = [rng.uniform(0, 6, (64, 96)).astype(np.float16) for _ in images]
    candidates = candidate_table(maps, 32)
    thresholds = [float(np.quantile(candidates["defocus"], 1 / 3)), float(np.quantile(candidates["defocus"], 2 / 3))]
    sampler = ClusterPairSampler(images, maps, candidates, thresholds, 32, 4, DegradationConfig(), seed=5)
    assert sampler.cluster_order == [0, 1, 2]
    for index in range(6):
        inputs, target, labels = sampler.batch(index)
        assert inputs["image"].shape == target.shape == (4, 32, 32, 3) and inputs["qmap"].shape == (4, 32, 32, 2)
        assert labels["defocus"].shape == (4, 2, 2, 1) and labels["cluster"].dtype == np.int32
        assert (labels["cluster"] == index % 3).all()
        patch_defocus = labels["defocus"].mean(axis=(1, 2, 3))
        assert (assign_clusters(patch_defocus, thresholds) == index % 3).all()
    again = ClusterPairSampler(images, maps, candidates, thresholds, 32, 4, DegradationConfig(), seed=5, start_batch=4)
    np.testing.assert_array_equal(next(again)[2]["defocus"], sampler.batch(4)[2]["defocus"])
    skipped = ClusterPairSampler(images, maps, candidates, [-2.0, -1.0], 32, 4, DegradationConfig())
    assert skipped.cluster_order == [0]  # all above both thresholds: the empty clusters are skipped


def test_own_cluster_exit_gets_the_extra_weight():
    from train.losses import deep_supervision_loss, pixel_loss

    rng = np.random.default_rng(3)
    target = rng.uniform(0, 1, (2, 8, 8, 1)).astype("float32")
    outputs = [target + rng.normal(0, s, target.shape).astype("float32") for s in (0.3, 0.2, 0.1)]
    per_exit = np.stack([np.asarray(pixel_loss(target, o, "l2")) for o in outputs])  # (exits, batch)
    weights = (0.5, 0.75, 1.0)
    total, _ = deep_supervision_loss(target, outputs, weights, "l2", own_exit=np.array([0, 2], np.int32), own_exit_weight=2.0)
    expected = np.asarray(weights) @ per_exit + 2.0 * np.array([per_exit[0, 0], per_exit[2, 1]])
    np.testing.assert_allclose(np.asarray(total), expected, rtol=1e-5)
    plain, _ = deep_supervision_loss(target, outputs, weights, "l2")
    np.testing.assert_allclose(np.asarray(plain), np.asarray(weights) @ per_exit, rtol=1e-5)


@pytest.mark.slow
def test_daqe_trains_with_fitted_thresholds_and_defocus_loss_then_resumes(tmp_path, daqe_image_folder):
    import keras

    from train.loop import Trainer
    from train.losses import defocus_loss

    run_dir = tmp_path / "daqe"
    keras.utils.set_random_seed(0)  # four steps of a random head: unseeded, its L1 on another batch can rise
    trainer = Trainer(daqe_train_config(run_dir, daqe_image_folder, steps=4, learning_rate=1e-2))
    thresholds = trainer.model.thresholds
    assert len(thresholds) == 2 and thresholds[0] < thresholds[1]
    fixed = ClusterPairSampler(trainer.images, trainer.defocus["maps"], trainer.defocus["candidates"], thresholds, 32, 4,
                               DegradationConfig(), seed=99)
    inputs, _, labels = fixed.batch(0)
    head_l1 = lambda: float(np.mean(defocus_loss(trainer.model.defocus(inputs), labels["defocus"])))  # noqa: E731
    before = head_l1()
    trainer.run()
    assert head_l1() < before  # the head is trained on the cell targets

    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["model_config"]["thresholds"] == pytest.approx(thresholds)
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    clusters = next(r for r in records if r["kind"] == "clusters")
    assert all(n > 0 for n in clusters["crops_per_cluster"])
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [2, 4]
    assert all(len(r["loss_per_exit"]) == 3 and r["defocus_l1"] > 0 for r in train)
    assert any(r["kind"] == "val" and {"q10_exit2", "q10_dynamic"} <= set(r["gains"]) for r in records)
    model = keras.models.load_model(run_dir / "final.keras", safe_mode=True)
    assert type(model).__name__ == "DAQENet" and model.thresholds == pytest.approx(thresholds)

    resumed = Trainer(daqe_train_config(run_dir, daqe_image_folder, steps=6, learning_rate=1e-2))
    assert resumed.step == 4 and resumed.model.thresholds == pytest.approx(thresholds)
    resume = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if '"resume"' in line]
    assert resume and "model_config" not in resume[-1]["changed"]  # the same thresholds were refitted


def test_patch_size_must_match_the_model(tmp_path, daqe_image_folder):
    from train.loop import Trainer

    with pytest.raises(ValueError, match="patch_size"):
        Trainer(daqe_train_config(tmp_path / "bad", daqe_image_folder, steps=1, patch_size=48))


def test_fit_thresholds_refits_on_the_heads_predictions(tmp_path, daqe_image_folder):
    """After the refit, the training patches' PREDICTED defocus splits into equal clusters."""
    import keras

    from daqe_tf.models import build_model
    from train.data import list_images, load_images
    from train.fit_thresholds import main, patch_routing_values

    keras.utils.set_random_seed(1)
    model = build_model("daqe", 3, **TINY_DAQE_CONFIG)
    model.save(tmp_path / "trained.keras")
    status = main(["--model", str(tmp_path / "trained.keras"), "--train_data", str(daqe_image_folder),
                   "--out", str(tmp_path / "refit.keras"), "--qualities", "10,40"])
    assert status == 0
    refit = keras.models.load_model(tmp_path / "refit.keras", safe_mode=True)
    assert refit.thresholds != model.thresholds
    images = load_images(list_images(str(daqe_image_folder)), grayscale=False, min_size=16)
    predicted = np.concatenate([patch_routing_values(refit, image, q) for image in images for q in (10, 40)])
    counts = np.bincount(assign_clusters(predicted, refit.thresholds), minlength=3)
    assert counts.max() - counts.min() <= 2, counts
    np.testing.assert_array_equal(refit.get_weights()[0], model.get_weights()[0])


def test_budget_refit_meets_the_compute_budget(tmp_path, daqe_image_folder):
    """``--budget``: the routed training patches cost at most that share of the deepest exit."""
    import keras

    from daqe_tf.complexity import count_macs
    from daqe_tf.models import build_model
    from train.data import list_images, load_images
    from train.fit_thresholds import main, patch_routing_values

    keras.utils.set_random_seed(2)
    model = build_model("daqe", 3, **TINY_DAQE_CONFIG)
    model.save(tmp_path / "trained.keras")
    status = main(["--model", str(tmp_path / "trained.keras"), "--train_data", str(daqe_image_folder),
                   "--out", str(tmp_path / "budget.keras"), "--qualities", "10", "--budget", "0.5"])
    assert status == 0
    refit = keras.models.load_model(tmp_path / "budget.keras", safe_mode=True)
    images = load_images(list_images(str(daqe_image_folder)), grayscale=False, min_size=16)
    exits = assign_clusters(np.concatenate([patch_routing_values(refit, image, 10) for image in images]), refit.thresholds)
    costs = np.array([count_macs(refit, refit.patch_size, refit.patch_size, k) for k in range(3)])
    assert costs[exits].mean() <= 0.5 * costs[-1] + 1e-6


def test_train_layers_refine_early_exits_and_keep_the_deepest_bit_identical(tmp_path, daqe_image_folder):
    """``--train_layers``: only the named layers change; ``best.keras`` is picked on the deepest supervised exit."""
    import keras

    from train.loop import Trainer

    run_dir = tmp_path / "refine"
    keras.utils.set_random_seed(0)
    trained = ("texture0", "exit0_head", "texture1", "exit1_head")
    trainer = Trainer(daqe_train_config(run_dir, daqe_image_folder, steps=3, learning_rate=1e-2, exit_weights=(1.0, 1.0, 0.0),
                              train_layers=trained))
    assert trainer.selection_exit == 1
    before = {layer.name: [np.array(w) for w in layer.get_weights()] for layer in trainer.model.layers}
    trainer.run()
    for layer in trainer.model.layers:
        same = all(np.array_equal(a, b) for a, b in zip(before[layer.name], layer.get_weights()))
        assert same == (layer.name not in trained), layer.name  # exit heads start at zero, so they move at once
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["train_layers"] == list(trained)

    with pytest.raises(ValueError, match="texture9"):
        Trainer(daqe_train_config(tmp_path / "bad", daqe_image_folder, steps=1, train_layers=("texture9",)))
    with pytest.raises(ValueError, match="at least one"):
        Trainer(daqe_train_config(tmp_path / "bad2", daqe_image_folder, steps=1, exit_weights=(0.0, 0.0, 0.0)))
