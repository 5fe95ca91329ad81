"""The JAX step: ``KERAS_BACKEND=jax python -m train.main ...`` on one device, without TensorFlow.

``JaxStep`` is the backend a ``train.loop.Trainer`` runs under JAX: the same model code,
optimizer (AdamW, cosine schedule, EMA), numpy/Pillow samplers, loss (``train.losses.step_loss``),
validation, and ``Trainer.run``'s loop with its log records, checkpoints and ``.keras`` files (EMA
weights, loadable by TensorFlow for export); this step takes the steps.
The step is Keras' JAX custom-training recipe: ``model.stateless_call`` inside
``jax.value_and_grad``, ``optimizer.stateless_apply``, all under ``jax.jit``. Between
checkpoints the weights and optimizer state live in JAX arrays only; they are written back
into the Keras variables before validation and saving.

Checkpoints are ``train.checkpoint`` folders, as the TensorFlow step's runs write them
(``model.weights.h5``, ``optimizer.npz``, ``state.json``; written into ``checkpoint.tmp`` and
swapped in with ``os.replace``), so a run stopped on one backend resumes on the other.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from train.config import TrainConfig
from train.losses import step_loss


def JaxTrainer(cfg: TrainConfig, resume: bool = True):
    """A ``train.loop.Trainer`` with the JAX step: one device, float32, no TensorBoard (its writer is TensorFlow's)."""
    from train.loop import Trainer

    return Trainer(cfg, resume=resume, backend=JaxStep(cfg))


class JaxStep:
    """The training step on JAX, one device. A ``Trainer`` builds its model and optimizer in
    ``scope()``, then ``attach``es itself; the step reads the run's model, optimizer and exit weights."""

    tensorboard = False
    strategy = None
    replicas = 1
    is_chief = True

    def __init__(self, cfg: TrainConfig):
        if cfg.mixed_precision:
            raise ValueError("--mixed_precision needs the TensorFlow trainer (loss scaling); the JAX trainer is float32")
        if cfg.strategy != "auto":
            raise ValueError(f"--strategy {cfg.strategy} is a tf.distribute strategy; the JAX trainer runs on one device")
        if cfg.perceptual_weight > 0 or cfg.adversarial_weight > 0:
            raise ValueError("--perceptual_weight and --adversarial_weight need the TensorFlow trainer "
                             "(KERAS_BACKEND=tensorflow); the JAX trainer optimises the pixel and defocus losses only")
        self.run = None
        self._step = None  # set once the optimizer is restored

    def scope(self):
        return contextlib.nullcontext()

    def wrap_optimizer(self, optimizer, cfg):
        return optimizer

    def optional_losses(self, cfg) -> tuple:
        return None, None

    def attach(self, run) -> None:
        """The run whose model this step trains (its model and optimizer are built)."""
        self.run = run

    def started(self) -> None:
        """The optimizer is restored: from here the step counts its own steps."""
        self._step = int(np.asarray(self.run.optimizer.iterations.value))

    def check_workers_agree(self):
        """One process: nothing to compare."""

    @property
    def step(self) -> int:
        """Optimizer steps taken; the optimizer's counter lags until ``_write_back``."""
        return int(np.asarray(self.run.optimizer.iterations.value)) if self._step is None else self._step

    # --- state as JAX arrays ---------------------------------------------------------
    def _variable_groups(self):
        model = self.run.model
        return model.trainable_variables, model.non_trainable_variables, self.run.optimizer.variables

    def arrays(self):
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

        model, cfg = self.run.model, self.run.cfg
        outputs, non_trainable = model.stateless_call(trainable, non_trainable, inputs)
        predicted = None
        if labels is not None:  # DAQE: the defocus head is not part of call(); run model.defocus on the same state
            mapping = [*zip(model.trainable_variables, trainable), *zip(model.non_trainable_variables, non_trainable)]
            with keras.StatelessScope(state_mapping=mapping):
                predicted = model.defocus(inputs)
        per_example, terms = step_loss(target, outputs, self.run.exit_weights, cfg.loss, labels, predicted,
                                       cfg.cluster_exit_weight, cfg.defocus_loss_weight)
        return ops.mean(per_example), (ops.stack(terms), non_trainable)

    def make_train_step(self):
        """``train_step(arrays, batch)`` -> (arrays, per-exit terms [+ defocus L1]); jitted, donates ``arrays``."""
        import jax

        gradient, optimizer = jax.value_and_grad(self.loss, has_aux=True), self.run.optimizer

        def train_step(arrays, batch):
            trainable, non_trainable, optimizer_state = arrays
            (_, (terms, non_trainable)), grads = gradient(trainable, non_trainable, *batch)
            trainable, optimizer_state = optimizer.stateless_apply(optimizer_state, grads, trainable)
            return (trainable, non_trainable, optimizer_state), terms

        return jax.jit(train_step, donate_argnums=0)

    # --- what ``Trainer.run`` calls ------------------------------------------------------
    def begin(self):
        """Before the first step: the jitted step and JAX copies of the weights and optimizer state."""
        self._train_step = self.make_train_step()
        self._run_arrays = self.arrays()
        self._batches = None

    def take_step(self, step: int, time_up) -> tuple:
        """Take step ``step`` -> (its terms as a JAX array, whether this process's time is up).

        The first step logs the ``distribute`` record and starts the prefetching batches. One
        device: the step always advances, and a time limit just ends the run after this step."""
        run = self.run
        if self._batches is None:
            import jax

            device = jax.devices()[0]
            run.log(f"JAX on {device}: 1 replica, global batch {run.cfg.batch_size}", kind="distribute",
                    strategy=f"jax:{device.platform}", replicas=1, local_replica_batches=[run.cfg.batch_size],
                    global_batch=run.cfg.batch_size, step=step)
            self._batches = self.batches(run.make_sampler(), run.state["batch_index"])
        timed_out = time_up()
        self._run_arrays, terms = self._train_step(self._run_arrays, next(self._batches))
        self._step += 1
        return terms, timed_out

    def sync_weights(self):
        """Before validation and saving: write the JAX arrays back into the Keras variables."""
        self._write_back(self._run_arrays)

    def learning_rate(self, step: int) -> float:
        return float(self.run.schedule(step))

    def end(self):
        """After the last step: let the prefetch thread finish, free the arrays."""
        if self._batches is not None:
            self._batches.close()
        self._train_step = self._run_arrays = self._batches = None
