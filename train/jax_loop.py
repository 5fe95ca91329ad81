"""The JAX trainer: ``KERAS_BACKEND=jax python -m train.main ...`` on one device, without TensorFlow.

It is ``train.loop.Trainer`` with another step: the same model code, optimizer (AdamW, cosine
schedule, EMA), numpy/Pillow samplers, loss (``train.losses.step_loss``), validation, log
records, checkpoints and ``.keras`` files (EMA weights, loadable by TensorFlow for export).
The step is Keras' JAX custom-training recipe: ``model.stateless_call`` inside
``jax.value_and_grad``, ``optimizer.stateless_apply``, all under ``jax.jit``. Between
checkpoints the weights and optimizer state live in JAX arrays only; they are written back
into the Keras variables before validation and saving.

Checkpoints are ``train.checkpoint`` folders, as the TensorFlow trainer writes them
(``model.weights.h5``, ``optimizer.npz``, ``state.json``; written into ``checkpoint.tmp`` and
swapped in with ``os.replace``), so a run stopped on one backend resumes on the other.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from train import checkpoint
from train.config import TrainConfig
from train.loop import Trainer, make_validation_pairs, weights_digest
from train.losses import step_loss
from train.optim import make_optimizer


class JaxTrainer(Trainer):
    """``Trainer`` on the JAX backend: one device, float32, no TensorBoard (its writer is TensorFlow's)."""

    def __init__(self, cfg: TrainConfig, resume: bool = True):
        from daqe_tf.models import build_model

        if cfg.mixed_precision:
            raise ValueError("--mixed_precision needs the TensorFlow trainer (loss scaling); the JAX trainer is float32")
        if cfg.strategy != "auto":
            raise ValueError(f"--strategy {cfg.strategy} is a tf.distribute strategy; the JAX trainer runs on one device")
        if cfg.perceptual_weight > 0 or cfg.adversarial_weight > 0:
            raise ValueError("--perceptual_weight and --adversarial_weight need the TensorFlow trainer "
                             "(KERAS_BACKEND=tensorflow); the JAX trainer optimises the pixel and defocus losses only")
        self.strategy = None
        self._open_run(cfg, chief=True, replicas=1, resume=resume)
        self.model = build_model(cfg.family, cfg.image_channels, **cfg.model_config)
        self.base_optimizer, self.schedule = make_optimizer(cfg)
        self.optimizer = self.base_optimizer
        self.optimizer.build(self.model.trainable_variables)
        self._start(resume)
        self._step = int(np.asarray(self.optimizer.iterations.value))

    def _check_workers_agree(self):
        """One process: nothing to compare."""

    _step = None  # set once the optimizer is restored

    @property
    def step(self) -> int:
        """Optimizer steps taken; the optimizer's counter lags until ``_write_back``."""
        return int(np.asarray(self.optimizer.iterations.value)) if self._step is None else self._step

    # --- state as JAX arrays ---------------------------------------------------------
    def _variable_groups(self):
        return self.model.trainable_variables, self.model.non_trainable_variables, self.optimizer.variables

    def _arrays(self):
        """Copies of every variable's value: the jitted step donates (frees) its input arrays."""
        import jax.numpy as jnp

        return tuple([jnp.array(v.value) for v in group] for group in self._variable_groups())

    def _write_back(self, arrays):
        for group, values in zip(self._variable_groups(), arrays):
            for variable, value in zip(group, values):
                variable.assign(np.asarray(value))

    # --- data and step --------------------------------------------------------------
    @staticmethod
    def batches(sampler, start: int):
        """Batches ``start``, ``start + 1``, ...; the next one is made in a thread while the device computes."""
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(sampler.batch, start)
            while True:
                start += 1
                ready, pending = pending.result(), pool.submit(sampler.batch, start)
                yield ready

    def loss(self, trainable, non_trainable, inputs, target, labels=None):
        """Mean ``step_loss`` of a batch at the given weights -> (loss, (terms, non-trainable values)); traceable."""
        import keras
        from keras import ops

        model, cfg = self.model, self.cfg
        outputs, non_trainable = model.stateless_call(trainable, non_trainable, inputs)
        predicted = None
        if labels is not None:  # DAQE: the defocus head is not part of call(); run model.defocus on the same state
            mapping = [*zip(model.trainable_variables, trainable), *zip(model.non_trainable_variables, non_trainable)]
            with keras.StatelessScope(state_mapping=mapping):
                predicted = model.defocus(inputs)
        per_example, terms = step_loss(target, outputs, self.exit_weights, cfg.loss, labels, predicted,
                                       cfg.cluster_exit_weight, cfg.defocus_loss_weight)
        return ops.mean(per_example), (ops.stack(terms), non_trainable)

    def make_train_step(self):
        """``train_step(arrays, batch)`` -> (arrays, per-exit terms [+ defocus L1]); jitted, donates ``arrays``."""
        import jax

        gradient, optimizer = jax.value_and_grad(self.loss, has_aux=True), self.optimizer

        def train_step(arrays, batch):
            trainable, non_trainable, optimizer_state = arrays
            (_, (terms, non_trainable)), grads = gradient(trainable, non_trainable, *batch)
            trainable, optimizer_state = optimizer.stateless_apply(optimizer_state, grads, trainable)
            return (trainable, non_trainable, optimizer_state), terms

        return jax.jit(train_step, donate_argnums=0)

    # --- run -------------------------------------------------------------------
    def run(self):
        """Train to ``cfg.steps`` (or the time limit) with the TensorFlow trainer's logs, validation and saves."""
        import jax

        cfg = self.cfg
        pairs = make_validation_pairs(cfg)
        train_step = self.make_train_step()
        arrays = self._arrays()
        start, session_start = self.state["train_seconds"], time.time()
        terms, saved, batches = [], None, None
        last = self.step >= cfg.steps
        if not last:
            device = jax.devices()[0]
            self.log(f"JAX on {device}: 1 replica, global batch {cfg.batch_size}", kind="distribute",
                     strategy=f"jax:{device.platform}", replicas=1, local_replica_batches=[cfg.batch_size],
                     global_batch=cfg.batch_size, step=self.step + 1)
            batches = self.batches(self.make_sampler(), self.state["batch_index"])
        while not last:
            timed_out = bool(cfg.time_limit_minutes) and time.time() - session_start > cfg.time_limit_minutes * 60
            arrays, step_terms = train_step(arrays, next(batches))
            self._step += 1
            self.state["batch_index"] += 1
            self.state["step"] = step = self.step
            terms.append(step_terms)
            last = step >= cfg.steps or timed_out
            elapsed = start + time.time() - session_start
            if step % cfg.log_every == 0 or last:
                mean = np.mean(jax.device_get(terms), axis=0)
                lr = float(self.schedule(step))
                record = {"loss_per_exit": mean[: self.model.num_exits].tolist()}
                if self.defocus is not None:
                    record["defocus_l1"] = float(mean[-1])
                extra = f" defocus L1 {record['defocus_l1']:.4f}" if self.defocus is not None else ""
                self.log(f"step {step} loss/exit {np.round(mean[: self.model.num_exits], 5).tolist()}{extra} "
                         f"lr {lr:.2e} {elapsed / 60:.1f} min",
                         kind="train", step=step, **record, lr=lr, train_seconds=elapsed)
                terms = []
            validate = pairs and (step % cfg.eval_every == 0 or last)
            save = step % cfg.checkpoint_every == 0 or last
            if validate or save:
                self._write_back(arrays)
            if validate:
                gains = self.validate(pairs)
                score = float(np.mean([v for k, v in gains.items() if k.endswith(f"exit{self.model.num_exits - 1}")]))
                self.log(f"step {step} val PSNR gain {json.dumps({k: round(v, 3) for k, v in gains.items()})}",
                         kind="val", step=step, gains=gains, train_seconds=elapsed)
                if self.state["best_val_psnr_gain"] is None or score > self.state["best_val_psnr_gain"]:
                    self.state["best_val_psnr_gain"] = score
                    self.save_model("best.keras")
            if save:
                self.state["train_seconds"] = elapsed
                checkpoint.save(self.run_dir, self.model, self.optimizer, self.state)
                saved = step
        if batches is not None:
            batches.close()  # lets the prefetch thread finish
        if saved != self.step:
            self.state["train_seconds"] = start + time.time() - session_start
            checkpoint.save(self.run_dir, self.model, self.optimizer, self.state)
        self.save_model("final.keras")
        digest = weights_digest(self.model)
        self.log(f"finished at step {self.step}; weights sha256 {digest}", kind="final", step=self.step, weights_sha256=digest)
        return self.state
