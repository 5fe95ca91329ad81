"""The JAX trainer in subprocesses that cannot import TensorFlow; its files checked here, in TensorFlow.

``python -m train.main`` with ``KERAS_BACKEND=jax`` trains, validates, checkpoints and resumes; the
``.keras`` it writes holds the EMA weights and gives, loaded in TensorFlow, what JAX computed.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import TINY_DAQE_CONFIG, TINY_MODEL_CONFIG, write_image_folder

pytest.importorskip("jax")
pytestmark = pytest.mark.slow  # every test trains in a JAX subprocess

ROOT = Path(__file__).resolve().parents[1]


def run_without_tensorflow(tmp_path, args, script):
    """Run a Python script on the JAX backend in a subprocess where TensorFlow cannot be imported."""
    site = tmp_path / "no_tf"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['tensorflow'] = None  # as if not installed\n")
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
           "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result.stdout


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("jax_images"), 3, 72, 88, first_seed=20)


# ``python -m train.main`` (no validation set: its crops are 256 px), then a resumed run with
# validation on small crops; saves what JAX computes on a fixed input with the trainer's EMA
# weights, with final.keras reloaded, with the live weights, and through the jitted inference forward.
TRAIN_RESUME_PREDICT = """
import json, sys
from pathlib import Path
import numpy as np
import keras
from absl import app
import train.main
from train.config import TrainConfig
from train.jax_loop import JaxTrainer
from daqe_tf.inference.pipeline import compiled_forward

run_dir, images, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
try:
    app.run(train.main.main, argv=["train.main", f"--run_dir={run_dir}", f"--train_data={images}", "--steps=2",
            "--batch_size=2", "--patch_size=32", "--warmup_steps=1", "--learning_rate=1e-2", "--log_every=2",
            "--checkpoint_every=2", "--model_config=" + sys.argv[4]])
except SystemExit as exit:
    assert not exit.code, exit.code
cfg = TrainConfig.from_dict({**json.loads((run_dir / "config.json").read_text()), "steps": 4, "val_data": images,
                             "eval_every": 2, "eval_crop": 64, "eval_images": 1, "eval_qualities": [10]})
trainer = JaxTrainer(cfg)
(out / "resumed_at.txt").write_text(str(trainer.step))
trainer.run()
rng = np.random.default_rng(0)
inputs = {"image": rng.uniform(0, 1, (1, 32, 32, 3)).astype("float32"),
          "qmap": rng.uniform(0, 1, (1, 32, 32, 2)).astype("float32")}
np.savez(out / "inputs.npz", **inputs)
predict = lambda model: np.stack([np.asarray(o) for o in model(inputs)])
forward = compiled_forward(trainer.model, -1)
np.save(out / "live.npy", predict(trainer.model))
np.save(out / "live_compiled.npy", np.asarray(forward(inputs["image"], inputs["qmap"])))
trainer.swap_ema()
np.save(out / "ema.npy", predict(trainer.model))
np.save(out / "ema_compiled.npy", np.asarray(forward(inputs["image"], inputs["qmap"])))
np.save(out / "final.npy", predict(keras.models.load_model(run_dir / "final.keras", safe_mode=True)))
"""


def test_jax_training_resumes_and_writes_keras_files_tensorflow_loads(tmp_path, image_folder):
    import keras

    from train.config import TrainConfig
    from train.loop import Trainer

    run_dir, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    stdout = run_without_tensorflow(tmp_path, [str(run_dir), str(image_folder), str(out), json.dumps(TINY_MODEL_CONFIG)],
                                    TRAIN_RESUME_PREDICT)
    assert "step 2 loss/exit" in stdout and (out / "resumed_at.txt").read_text() == "2"
    for name in ("config.json", "log.jsonl", "final.keras", "best.keras", "checkpoint/state.json"):
        assert (run_dir / name).is_file(), name
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == [2, 4]
    assert all(len(r["loss_per_exit"]) == 3 and r["lr"] > 0 for r in records if r["kind"] == "train")
    assert [r["step"] for r in records if r["kind"] == "val"] == [4] and "q10_exit2" in records[-2]["gains"]
    assert [r["kind"] for r in records] == ["distribute", "train", "final", "resume", "distribute", "train", "val", "final"]
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    assert state["step"] == state["batch_index"] == 4

    inputs = dict(np.load(out / "inputs.npz"))
    model = keras.models.load_model(run_dir / "final.keras", safe_mode=True)
    assert type(model).__name__ == "QGAUNet"
    in_tensorflow = np.stack([np.asarray(o) for o in model(inputs)])
    np.testing.assert_allclose(in_tensorflow, np.load(out / "final.npy"), atol=1e-4)
    np.testing.assert_allclose(in_tensorflow, np.load(out / "ema.npy"), atol=1e-4)  # the file holds the EMA weights
    assert np.abs(np.load(out / "live.npy") - np.load(out / "ema.npy")).max() > 1e-3
    # The jitted inference forward follows weight changes (it takes the weights as arguments).
    np.testing.assert_allclose(np.load(out / "live_compiled.npy"), np.load(out / "live.npy")[-1], atol=1e-5)
    np.testing.assert_allclose(np.load(out / "ema_compiled.npy"), np.load(out / "ema.npy")[-1], atol=1e-5)

    # The same checkpoint resumes on TensorFlow.
    cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    assert Trainer(cfg).step == 4


# Loss and gradients of the JAX step at the initial weights on the first DAQE batch, then a few steps.
DAQE_STEPS = """
import json, sys
from pathlib import Path
import jax
import numpy as np
from train.config import TrainConfig
from train.jax_loop import JaxTrainer

cfg, out = TrainConfig.from_dict(json.loads(sys.argv[1])), Path(sys.argv[2])
trainer = JaxTrainer(cfg)
trainer.model.save_weights(out / "initial.weights.h5")
inputs, target, labels = batch = trainer.make_sampler().batch(0)
np.savez(out / "batch.npz", target=target, **inputs, **labels)
trainable, non_trainable, _ = trainer.backend.arrays()
(loss, (terms, _)), grads = jax.value_and_grad(trainer.backend.loss, has_aux=True)(trainable, non_trainable, *batch)
np.savez(out / "jax_step.npz", loss=np.asarray(loss), terms=np.asarray(terms), *[np.asarray(g) for g in grads])
trainer.run()
"""


def test_daqe_jax_step_matches_tensorflow_and_trains(tmp_path, image_folder):
    import keras
    import tensorflow as tf

    from daqe_tf.models import build_model
    from train.config import TrainConfig
    from train.loop import default_exit_weights
    from train.losses import step_loss

    run_dir, out = tmp_path / "daqe", tmp_path / "out"
    out.mkdir()
    # 3 crops of 48 px: 27 defocus cells of 16 px, an odd number (see the defocus head's check below).
    cfg = TrainConfig(run_dir=str(run_dir), train_data=str(image_folder), val_data=str(image_folder), family="daqe",
                      model_config={**TINY_DAQE_CONFIG, "patch_size": 48}, steps=2, batch_size=3, patch_size=48,
                      warmup_steps=1, learning_rate=1e-2, log_every=2, checkpoint_every=2, eval_every=2, eval_crop=64,
                      eval_images=1, eval_qualities=(10,), cluster_exit_weight=2.0, defocus_loss_weight=0.5,
                      label_cache_dir=str(tmp_path / "labels"))
    run_without_tensorflow(tmp_path, [json.dumps(cfg.to_dict()), str(out)], DAQE_STEPS)

    # The same loss on TensorFlow (what the TF step computes), from the same weights and batch.
    saved = json.loads((run_dir / "config.json").read_text())["model_config"]
    model = build_model("daqe", 3, **saved)
    model.load_weights(out / "initial.weights.h5")
    data = dict(np.load(out / "batch.npz"))
    inputs, labels = {k: data[k] for k in ("image", "qmap")}, {k: data[k] for k in ("defocus", "cluster")}
    with tf.GradientTape() as tape:
        per_example, terms = step_loss(data["target"], model(inputs, training=True), default_exit_weights(3), cfg.loss,
                                       labels, model.defocus(inputs), 2.0, 0.5)
        loss = tf.reduce_mean(per_example)
    grads = tape.gradient(loss, model.trainable_variables)
    jax_step = np.load(out / "jax_step.npz")
    np.testing.assert_allclose(float(jax_step["loss"]), float(loss), rtol=1e-5)
    np.testing.assert_allclose(jax_step["terms"], np.stack([float(t) for t in terms]), rtol=1e-5)
    for i, (variable, grad) in enumerate(zip(model.trainable_variables, grads)):
        np.testing.assert_allclose(jax_step[f"arr_{i}"], np.asarray(grad), rtol=1e-3, atol=1e-6, err_msg=variable.path)

    # The defocus loss reaches the head: only its L1 term sees the head's 1x1 output conv, whose
    # gradient is therefore 0.5 * mean over the cells of sign(predicted - label) * [features, 1].
    # For the bias that is a count of signs, exactly 0 whenever as many cells lie above their label as
    # below; the batch has an odd number of cells, so here it cannot be 0.
    head = model.defocus_head.head
    features = np.asarray(model.defocus_head.features([inputs["image"], inputs["qmap"]]))
    sign = np.sign(np.asarray(head(features)) - labels["defocus"])
    assert sign.size % 2 == 1 and np.all(sign != 0)
    expected = {head.kernel.path: 0.5 * np.mean(sign * features, axis=(0, 1, 2)).reshape(head.kernel.shape),
                head.bias.path: 0.5 * np.mean(sign, keepdims=True).reshape(head.bias.shape)}
    for i, variable in enumerate(model.trainable_variables):
        if variable.path in expected:
            np.testing.assert_allclose(jax_step[f"arr_{i}"], expected[variable.path], rtol=1e-4, atol=1e-7,
                                       err_msg=variable.path)
    assert abs(float(expected[head.bias.path][0])) >= 0.5 / sign.size

    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert next(r for r in records if r["kind"] == "clusters")["crops_per_cluster"]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == [2] and len(train[0]["loss_per_exit"]) == 3 and train[0]["defocus_l1"] > 0
    assert any(r["kind"] == "val" and {"q10_exit2", "q10_dynamic"} <= set(r["gains"]) for r in records)
    loaded = keras.models.load_model(run_dir / "final.keras", safe_mode=True)
    assert type(loaded).__name__ == "DAQENet" and loaded.thresholds == pytest.approx(saved["thresholds"])
