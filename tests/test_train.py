"""The trainer: data pipeline, a few steps, artefacts, resume from checkpoint."""
import json

import numpy as np
import pytest

from tests.helpers import TINY_MODEL_CONFIG, natural_image, write_image_folder
from train.config import TrainConfig
from train.data import PairSampler, list_images, load_images
from train.degradations import DegradationConfig, degrade


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("images"), 3, 72, 88)


def test_list_file_resolves_against_root(tmp_path, image_folder):
    listing = tmp_path / "list.txt"
    listing.write_text("# comment\nimg0.png\nimg2.png\n")
    assert list_images(str(listing), root=str(image_folder)) == [str(image_folder / "img0.png"), str(image_folder / "img2.png")]
    with pytest.raises(FileNotFoundError):
        list_images(str(tmp_path / "missing"))


def test_degrade_covers_configured_range_and_kinds():
    rng = np.random.default_rng(0)
    image = natural_image(48, 48)
    cfg = DegradationConfig(quality_min=10, quality_max=90, double_jpeg_prob=0.0, custom_table_prob=0.5)
    qualities = []
    for _ in range(60):
        decoded, qmap, quality = degrade(rng, image, cfg)
        assert decoded.shape == image.shape and qmap.shape == (48, 48, 2)
        qualities.append(quality)
    assert min(qualities) >= 10 and max(qualities) <= 90
    assert np.median(qualities) < 50  # biased towards hard, low qualities
    decoded, qmap, _ = degrade(rng, image[..., 0].copy(), cfg)
    assert decoded.ndim == 2 and qmap.shape == (48, 48, 1)


def test_sampler_is_deterministic_per_batch_index(image_folder):
    images = load_images(list_images(str(image_folder)), grayscale=False, min_size=32)
    a = PairSampler(images, 32, 2, DegradationConfig(), seed=3)
    b = PairSampler(images, 32, 2, DegradationConfig(), seed=3, start_batch=5)
    for _ in range(5):
        next(a)
    (inputs_a, target_a), (inputs_b, target_b) = next(a), next(b)
    np.testing.assert_array_equal(target_a, target_b)
    np.testing.assert_array_equal(inputs_a["qmap"], inputs_b["qmap"])
    assert inputs_a["image"].shape == (2, 32, 32, 3) and inputs_a["image"].dtype == np.float32
    assert 0 <= target_a.min() and target_a.max() <= 1


def _config(run_dir, image_folder, steps, grayscale=False):
    return TrainConfig(
        run_dir=str(run_dir), train_data=str(image_folder), val_data=str(image_folder), grayscale=grayscale,
        model_config=TINY_MODEL_CONFIG, steps=steps, batch_size=2, patch_size=32, warmup_steps=1,
        log_every=2, checkpoint_every=2, eval_every=2, eval_crop=64, eval_images=1, eval_qualities=(10,),
    )


@pytest.mark.slow
def test_train_writes_artefacts_and_resumes(tmp_path, image_folder):
    import keras

    from train.loop import Trainer

    run_dir = tmp_path / "run"
    Trainer(_config(run_dir, image_folder, steps=4)).run()
    for name in ("config.json", "log.jsonl", "final.keras", "best.keras", "checkpoint/state.json"):
        assert (run_dir / name).is_file(), name
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [2, 4]
    assert any(r["kind"] == "val" and "q10_exit2" in r["gains"] for r in records)
    # Where the time went: validation and checkpoints at step 2 are counted by step 4's record.
    assert train[0]["validation_seconds"] == train[0]["saving_seconds"] == 0
    assert 0 < train[1]["validation_seconds"] and 0 < train[1]["saving_seconds"]
    assert train[1]["validation_seconds"] + train[1]["saving_seconds"] < train[1]["train_seconds"]
    model = keras.models.load_model(run_dir / "final.keras", safe_mode=True)
    assert type(model).__name__ == "QGAUNet"

    # Same run folder, more steps: continues from step 4, sampler position restored.
    resumed = Trainer(_config(run_dir, image_folder, steps=6))
    assert resumed.step == 4 and resumed.state["batch_index"] == 4
    resumed.run()
    assert resumed.step == 6
    assert json.loads((run_dir / "checkpoint" / "state.json").read_text())["batch_index"] == 6


@pytest.mark.slow
def test_init_weights_starts_from_a_model_file_and_snapshots_are_saved(tmp_path, image_folder):
    import dataclasses

    import keras

    from daqe_tf.inference.models import ModelFileError
    from train.loop import Trainer, weights_digest

    first = tmp_path / "first"
    Trainer(_config(first, image_folder, steps=2)).run()
    source = keras.models.load_model(first / "final.keras", safe_mode=True)

    cfg = dataclasses.replace(_config(tmp_path / "longer", image_folder, steps=4), snapshot_every=2,
                              init_weights=str(first / "final.keras"))
    trainer = Trainer(cfg)
    assert trainer.step == 0  # a fresh optimizer and schedule, not a resumed run
    assert weights_digest(trainer.model) == weights_digest(source)
    trainer.run()
    records = [json.loads(line) for line in (tmp_path / "longer" / "log.jsonl").read_text().splitlines()]
    assert next(r for r in records if r["kind"] == "init")["weights_sha256"] == weights_digest(source)
    snapshots = [r for r in records if r["kind"] == "snapshot"]
    assert [r["step"] for r in snapshots] == [2, 4] and snapshots[0]["train_seconds"] > 0
    for record in snapshots:
        model = keras.models.load_model(tmp_path / "longer" / record["path"], safe_mode=True)
        assert type(model).__name__ == "QGAUNet"
    assert not list((tmp_path / "longer" / "snapshots").glob(".*"))  # no temporary files left

    # Another architecture, a .tflite path or a missing file: a clear error before any step.
    other = dataclasses.replace(cfg, run_dir=str(tmp_path / "other"), snapshot_every=0,
                                model_config={**TINY_MODEL_CONFIG, "widths": [8, 12, 16, 24]})
    with pytest.raises(ValueError, match="--model_config"):
        Trainer(other)
    with pytest.raises(ValueError, match=".keras file"):
        Trainer(dataclasses.replace(cfg, run_dir=str(tmp_path / "t"), init_weights=str(tmp_path / "m.tflite")))
    with pytest.raises(ModelFileError, match="not found"):
        Trainer(dataclasses.replace(cfg, run_dir=str(tmp_path / "m"), init_weights=str(tmp_path / "none.keras")))


@pytest.mark.slow
def test_grayscale_training_step(tmp_path, image_folder):
    from train.loop import Trainer

    trainer = Trainer(_config(tmp_path / "gray", image_folder, steps=2, grayscale=True))
    trainer.run()
    assert trainer.model.image_channels == 1 and trainer.step == 2


@pytest.mark.slow
def test_perceptual_and_adversarial_terms_train_and_resume(tmp_path, image_folder):
    import dataclasses

    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    from train.loop import Trainer

    vgg = tmp_path / "vgg19_notop.h5"  # random weights in the format of Keras' ImageNet download
    with h5py.File(vgg, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, keras.applications.VGG19(weights=None, include_top=False,
                                                                                input_shape=(32, 32, 3)))
    cfg = dataclasses.replace(_config(tmp_path / "gan", image_folder, steps=2), val_data=None, perceptual_weight=0.1,
                              vgg19_weights=str(vgg), adversarial_weight=0.01, discriminator_lr=1e-3)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        Trainer(dataclasses.replace(cfg, run_dir=str(tmp_path / "bad"), vgg19_weights=str(tmp_path / "missing.h5")))
    trainer = Trainer(cfg)
    before = trainer.discriminator[0].get_weights()
    trainer.run()
    after = trainer.discriminator[0].get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    [record] = [json.loads(line) for line in (tmp_path / "gan" / "log.jsonl").read_text().splitlines()
                if json.loads(line)["kind"] == "train"]
    terms = record["loss_per_exit"] + [record[k] for k in ("perceptual", "generator_adversarial", "discriminator")]
    assert np.all(np.isfinite(terms)) and record["perceptual"] > 0

    resumed = Trainer(dataclasses.replace(cfg, steps=3))  # the GAN resumes: discriminator and its optimizer
    assert resumed.step == 2 and int(resumed.discriminator[1].iterations.numpy()) == 2
    for got, want in zip(resumed.discriminator[0].get_weights(), after):
        np.testing.assert_array_equal(got, want)


def test_a_long_schedule_keeps_the_learning_rate_of_a_run_stopped_early():
    """--schedule_steps: the cosine spans it, so a short run's LR stays near its peak (learning curves)."""
    from train.optim import make_optimizer

    short = TrainConfig(run_dir="r", train_data="d", steps=1000, warmup_steps=100, learning_rate=1e-3)
    long = TrainConfig(run_dir="r", train_data="d", steps=1000, schedule_steps=20000, warmup_steps=100, learning_rate=1e-3)
    assert float(make_optimizer(short)[1](1000)) == pytest.approx(short.min_learning_rate, rel=1e-3)
    assert float(make_optimizer(long)[1](1000)) == pytest.approx(1e-3 * 0.5 * (1 + np.cos(np.pi * 900 / 19900)), rel=1e-4)
    assert float(make_optimizer(long)[1](1000)) > 0.99e-3
