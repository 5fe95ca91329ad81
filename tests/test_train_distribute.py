"""Training at scale: multi-worker and mirrored strategies, kill-and-resume, TensorBoard, mixed precision.

Distributed runs happen in subprocesses (TensorFlow's device and cluster setup is per
process), each bounded by a timeout. The training image is symmetric under all eight
flips/rotations and the degradation is fixed, so every batch is the same one: the logged
loss then falls only because the weights learn, not because the batches got easier.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import TINY_MODEL_CONFIG, natural_image, write_image_folder
from train import checkpoint
from train.config import TrainConfig
from train.degradations import DegradationConfig
from train.loop import HEARTBEAT_TIMEOUT_SECONDS

REPO = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 900  # bounds a TensorFlow process on a busy 2-core machine; idle, each run takes well under a minute
FIXED_JPEG = DegradationConfig(quality_min=10, quality_max=10, double_jpeg_prob=0.0, custom_table_prob=0.0)
TINY_DAQE = {
    "widths": [4, 4, 8, 8], "encoder_blocks": [1, 1, 1], "bottleneck_blocks": [1, 1, 1], "decoder_blocks": [1, 0, 0],
    "patch_size": 32, "key_dim": 4, "defocus_widths": [4, 4, 4, 4], "defocus_blocks": [1, 1, 1, 1],
}


@pytest.fixture(scope="module")
def symmetric_folder(tmp_path_factory):
    """One 32x32 gray image equal to all its flips/rotations: every training batch is the same."""
    image = natural_image(32, 32, channels=1, seed=0).astype(np.float64)
    image = (image + image[::-1]) / 2
    image = (image + image[:, ::-1]) / 2
    image = (image + image.T) / 2
    folder = tmp_path_factory.mktemp("symmetric")
    Image.fromarray(np.round(image).astype(np.uint8)).save(folder / "a.png")
    return folder


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("images"), 2, 64, 80)


def _cli(run_dir, data, steps, **flags):
    """``python -m train.main`` arguments for a tiny gray model on ``data``."""
    settings = dict(
        run_dir=run_dir, train_data=data, grayscale=True, model_config=json.dumps(TINY_MODEL_CONFIG), steps=steps,
        batch_size=4, patch_size=32, learning_rate=3e-3, min_learning_rate=3e-3, warmup_steps=1, ema_momentum=0,
        quality_min=10, quality_max=10, double_jpeg_prob=0, custom_table_prob=0, log_every=1,
        checkpoint_every=1000, eval_every=1000,
    )
    settings.update(flags)
    args = [sys.executable, "-m", "train.main"]
    for key, value in settings.items():
        args.append(f"--{key}" if value is True else f"--no{key}" if value is False else f"--{key}={value}")
    return args


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=str(REPO))
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _finish(process, timeout=STARTUP_SECONDS) -> str:
    """Wait for ``process``; kill it (and fail) when it overruns. Returns its combined output."""
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        pytest.fail(f"training process overran {timeout} s:\n{out[-3000:]}")
    assert process.returncode == 0, out[-3000:]
    return out


def _records(run_dir, kind=None) -> list:
    path = Path(run_dir) / "log.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return [r for r in records if kind is None or r["kind"] == kind]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _digest_line(output: str) -> str:
    lines = [line for line in output.splitlines() if "weights sha256" in line]
    assert len(lines) == 1, output[-3000:]
    return lines[0].rsplit(" ", 1)[-1]


@pytest.mark.slow
def test_two_workers_on_localhost_stay_in_sync_and_learn(tmp_path, symmetric_folder):
    import keras

    import daqe_tf.models  # noqa: F401  (registers the classes that load_model looks up)
    from train.loop import weights_digest

    # Twelve steps: CPU all-reduce is not bit-reproducible run to run, and over the first ~6 steps
    # Adam's sign-like updates move the loss by about as much as it falls (seen: +3.5 % at step 6);
    # by step 12 it has fallen 14-26 % in every run measured.
    run_dir, steps = tmp_path / "run", 12
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    workers = [
        subprocess.Popen(_cli(run_dir, symmetric_folder, steps, strategy="multiworker", checkpoint_every=6),
                         cwd=REPO, env=_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                                            TF_NUM_INTRAOP_THREADS="1"),  # two workers on two cores: one op thread each
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]
    try:
        outputs = [_finish(w) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    chief_digest, worker_digest = (_digest_line(out) for out in outputs)
    assert chief_digest == worker_digest  # all-reduced updates kept the replicas identical

    # Only the chief wrote the log: one record per step, and it describes the 2 x 2 split.
    train = _records(run_dir, "train")
    assert [r["step"] for r in train] == list(range(1, steps + 1))
    (split,) = _records(run_dir, "distribute")
    assert split["strategy"] == "CollectiveAllReduceStrategy" and split["replicas"] == 2  # MultiWorkerMirrored's class
    assert split["heartbeat_timeout_s"] == HEARTBEAT_TIMEOUT_SECONDS  # a busy worker is not declared dead after 10 s
    assert split["local_replica_batches"] == [2] and split["global_batch"] == 4
    assert "[2]" in outputs[1] and "global batch 4" in outputs[1]  # the other worker ran its half too
    assert train[-1]["loss_per_exit"][-1] < train[0]["loss_per_exit"][-1]  # the same batch every step: it learned

    # The chief's files hold the weights both workers ended with; the zero-initialised heads moved.
    model = keras.models.load_model(run_dir / "final.keras", safe_mode=True)
    assert weights_digest(model) == chief_digest
    assert all(np.abs(np.asarray(head.kernel)).max() > 0 for head in model.heads)
    assert json.loads((run_dir / "checkpoint" / checkpoint.STATE).read_text())["step"] == steps


MIRRORED_SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from train.config import TrainConfig
from train.loop import Trainer
config = json.loads(sys.argv[1])
try:
    Trainer(TrainConfig.from_dict({**config, "batch_size": 3}))
except ValueError as error:
    print("odd batch refused:", error)
Trainer(TrainConfig.from_dict(config)).run()
"""


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_halves_the_batch(tmp_path, symmetric_folder):
    cfg = TrainConfig(run_dir=str(tmp_path / "run"), train_data=str(symmetric_folder), grayscale=True,
                      model_config=TINY_MODEL_CONFIG, steps=2, batch_size=4, patch_size=32, warmup_steps=1,
                      log_every=1, strategy="mirrored", degradation=FIXED_JPEG)
    process = subprocess.Popen([sys.executable, "-c", MIRRORED_SCRIPT, json.dumps(cfg.to_dict())], cwd=REPO, env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = _finish(process)
    assert "odd batch refused: --batch_size 3 is the global batch: it must be a multiple of the 2 replicas" in out
    (split,) = _records(cfg.run_dir, "distribute")
    assert split["strategy"] == "MirroredStrategy" and split["replicas"] == 2
    assert split["local_replica_batches"] == [2, 2] and split["global_batch"] == 4
    assert [r["step"] for r in _records(cfg.run_dir, "train")] == [1, 2]
    assert (tmp_path / "run" / "final.keras").is_file()


@pytest.mark.slow
def test_sigkill_then_same_command_resumes_from_the_checkpoint(tmp_path, symmetric_folder):
    from train.loop import Trainer

    run_dir, steps = tmp_path / "run", 40
    command = _cli(run_dir, symmetric_folder, steps, checkpoint_every=3)
    state_path = run_dir / "checkpoint" / checkpoint.STATE
    first_log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=first_log, stderr=subprocess.STDOUT)
    deadline, saved = time.monotonic() + STARTUP_SECONDS, None
    try:
        while time.monotonic() < deadline and first.poll() is None:
            try:
                saved = json.loads(state_path.read_text())["step"]
            except (OSError, ValueError, KeyError):  # not written yet
                saved = None
            if saved and any(r["step"] > saved for r in _records(run_dir, "train")):
                break
            time.sleep(0.05)
        tail = lambda: (tmp_path / "first.log").read_text()[-3000:]  # noqa: E731
        assert first.poll() is None, f"the run ended before it could be killed:\n{tail()}"
        assert saved, f"no checkpoint before the deadline:\n{tail()}"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
        first_log.close()
    killed_at = max(r["step"] for r in _records(run_dir, "train"))
    assert saved < killed_at < steps

    out = _finish(subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True))
    records = _records(run_dir)
    at = next(i for i, r in enumerate(records) if r["kind"] == "resume")
    resume = records[at]
    assert saved <= resume["step"] <= killed_at and resume["batch_index"] == resume["step"]
    assert f"resumed from {run_dir / 'checkpoint'} at step {resume['step']}" in out
    after = [r["step"] for r in records[at:] if r["kind"] == "train"]
    assert after == list(range(resume["step"] + 1, steps + 1))  # continues from the checkpoint to the end
    state = json.loads(state_path.read_text())
    assert state["step"] == state["batch_index"] == steps
    assert not (run_dir / "checkpoint.tmp").exists() and not (run_dir / "checkpoint.old").exists()
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 2  # one per session

    # Every file of the checkpoint loads; --noresume refuses to start over in this folder.
    cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    assert Trainer(cfg).step == steps
    with pytest.raises(FileExistsError, match="already holds a run"):
        Trainer(cfg, resume=False)


def test_checkpoint_swap_leaves_a_complete_checkpoint(tmp_path):
    """A kill between the two renames leaves only checkpoint.old; a torn temp folder is ignored."""
    old = tmp_path / "checkpoint.old"
    old.mkdir()
    for name in (checkpoint.WEIGHTS, checkpoint.OPTIMIZER, checkpoint.STATE):
        (old / name).write_text("x")
    (tmp_path / "checkpoint.tmp").mkdir()
    (tmp_path / "checkpoint.tmp" / checkpoint.WEIGHTS).write_text("torn")
    assert checkpoint.latest(tmp_path) == old
    (tmp_path / "checkpoint").mkdir()  # incomplete: still the old one
    assert checkpoint.latest(tmp_path) == old


def test_chief_is_the_chief_task_or_worker_zero():
    from types import SimpleNamespace

    from train.loop import is_chief

    def strategy(task_type, task_id, cluster):
        spec = SimpleNamespace(as_dict=lambda: cluster)
        return SimpleNamespace(cluster_resolver=SimpleNamespace(task_type=task_type, task_id=task_id, cluster_spec=lambda: spec))

    workers = {"worker": ["a:1", "b:1"]}
    with_chief = {"chief": ["c:1"], **workers}
    assert is_chief(SimpleNamespace()) and is_chief(strategy(None, None, {}))
    assert is_chief(strategy("worker", 0, workers)) and not is_chief(strategy("worker", 1, workers))
    assert is_chief(strategy("chief", 0, with_chief)) and not is_chief(strategy("worker", 0, with_chief))


def _scan_events(folder):
    """{plugin: {tag: [(step, tensor proto)]}} from the event files under ``folder``."""
    import tensorflow as tf

    tags = {}
    for path in sorted(Path(folder).rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                tags.setdefault(plugin, {}).setdefault(value.tag, []).append((event.step, value.tensor))
    return tags


@pytest.mark.slow
def test_tensorboard_scalars_and_validation_images_for_daqe(tmp_path, image_folder):
    import tensorflow as tf

    from train.loop import Trainer

    cfg = TrainConfig(
        run_dir=str(tmp_path / "daqe"), train_data=str(image_folder), val_data=str(image_folder), family="daqe",
        model_config=dict(TINY_DAQE), steps=2, batch_size=2, patch_size=32, warmup_steps=1, log_every=1,
        eval_every=2, eval_crop=64, eval_images=1, eval_qualities=(10,), label_cache_dir=str(tmp_path / "labels"),
        degradation=FIXED_JPEG,
    )
    Trainer(cfg).run()
    tags = _scan_events(tmp_path / "daqe" / "tensorboard")
    scalars, images = tags["scalars"], tags["images"]
    expected = {"loss/exit0", "loss/exit1", "loss/exit2", "loss/defocus_l1", "learning_rate",
                "val_psnr_gain/q10_exit0", "val_psnr_gain/q10_exit2", "val_psnr_gain/q10_dynamic"}
    assert expected <= set(scalars)
    assert [step for step, _ in scalars["loss/exit2"]] == [1, 2]
    assert all(np.isfinite(tf.make_ndarray(t)) for values in scalars.values() for _, t in values)
    assert set(images) == {f"val/q10/{name}" for name in ("input", "target", "output_exit0", "output_exit1",
                                                          "output_exit2", "defocus")}
    for tag, [(step, tensor)] in images.items():
        width, height, png = tf.make_ndarray(tensor)
        assert step == 2 and (int(width), int(height)) == (64, 64), tag
        assert tf.io.decode_png(png).shape[:2] == (64, 64)


@pytest.mark.slow
def test_mixed_precision_trains_and_saves_float32(tmp_path, image_folder):
    import keras

    from train.loop import Trainer

    cfg = TrainConfig(
        run_dir=str(tmp_path / "mixed"), train_data=str(image_folder), val_data=str(image_folder),
        model_config=TINY_MODEL_CONFIG, steps=2, batch_size=2, patch_size=32, warmup_steps=1, log_every=1,
        eval_every=2, eval_crop=64, eval_images=1, eval_qualities=(10,), mixed_precision=True,
    )
    trainer = Trainer(cfg)
    assert trainer.model.dtype_policy.name == "mixed_float16"
    assert keras.mixed_precision.global_policy().name == "float32"  # the policy was set for the model only
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    trainer.run()
    assert trainer.step == 2  # loss-scale skips (inf/NaN gradients) do not count as steps
    for name in ("final.keras", "best.keras"):
        model = keras.models.load_model(tmp_path / "mixed" / name, safe_mode=True)
        assert {w.dtype for w in model.weights} == {"float32"}, name
        assert {layer.dtype_policy.name for layer in model._flatten_layers()} == {"float32"}, name
    resumed = Trainer(cfg)  # the checkpoint holds the loss scale too
    assert resumed.step == 2
    assert float(resumed.optimizer.dynamic_scale.numpy()) == float(trainer.optimizer.dynamic_scale.numpy())
