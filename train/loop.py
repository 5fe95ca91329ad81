"""The training loop: one run of one model family, composed of its run folder and its step.

``Trainer`` owns the model, optimizer (with an EMA of the weights), data sampler, validation
pairs and the loop's bookkeeping (log records, validation, ``.keras`` files, checkpoints). What
it writes goes through its ``RunFolder`` (``train.run_folder``); how a step is taken is its
backend's: ``TensorFlowStep`` (``train.tf_step``, every tf.distribute strategy) by default, or
``JaxStep`` (``train.jax_loop``) under ``KERAS_BACKEND=jax``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from train.config import TrainConfig
from train.data import ClusterPairSampler, PairSampler, list_images, load_images
from train.optim import make_optimizer
from train.run_folder import RunFolder
from train.tf_step import HEARTBEAT_TIMEOUT_SECONDS, STRATEGIES, TensorFlowStep, is_chief, make_strategy  # noqa: F401


class TrainingStep(Protocol):
    """What a ``Trainer`` asks of its backend: ``TensorFlowStep`` (``train.tf_step``) or ``JaxStep`` (``train.jax_loop``).

    The trainer builds its model and optimizer in ``scope()`` and ``attach``es itself; then
    ``started`` (after a resume), and per run ``begin``, ``take_step`` per step (-> terms, stop),
    ``sync_weights`` before the Keras variables are read, ``learning_rate`` for the log, ``end``.
    """

    strategy: Any  # the tf.distribute strategy, None on JAX
    replicas: int
    is_chief: bool
    tensorboard: bool  # whether the chief writes TensorBoard summaries (TensorFlow's writer)

    @property
    def step(self) -> int: ...

    def scope(self) -> contextlib.AbstractContextManager: ...

    def wrap_optimizer(self, optimizer, cfg: TrainConfig): ...

    def optional_losses(self, cfg: TrainConfig) -> tuple: ...

    def attach(self, run: Trainer) -> None: ...

    def started(self) -> None: ...

    def check_workers_agree(self) -> None: ...

    def make_train_step(self): ...

    def begin(self) -> None: ...

    def take_step(self, step: int, time_up) -> tuple: ...

    def sync_weights(self) -> None: ...

    def learning_rate(self, step: int) -> float | None: ...

    def end(self) -> None: ...


@contextlib.contextmanager
def global_dtype_policy(name: str):
    """Build layers under Keras dtype policy ``name`` without leaving it set for the rest of the process."""
    import keras

    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def weights_digest(model) -> str:
    """SHA-256 of the model's weights: equal on every worker when replicas stayed in sync."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def default_exit_weights(num_exits: int) -> tuple:
    """Deeper exits weigh more; every exit keeps a real share so early exits learn too."""
    return tuple(float(w) for w in np.linspace(0.5, 1.0, num_exits))


def freeze_except(model, names) -> None:
    """Train only the model's layers called ``names`` (all when empty); the others keep their weights.

    Refines some parts of a trained model and leaves the rest bit-identical: e.g. a DAQE model's
    early exits (``texture0,exit0_head,texture1,exit1_head``) while its deepest exit stays as it was.
    Call before the optimizer is built. ValueError names what the model does not have.
    """
    if not names:
        return
    layers = {layer.name: layer for layer in model.layers}
    unknown = sorted(set(names) - set(layers))
    if unknown:
        raise ValueError(f"--train_layers {','.join(unknown)}: {type(model).__name__} has layers {', '.join(layers)}")
    for name, layer in layers.items():
        layer.trainable = name in names


def selection_exit(exit_weights) -> int:
    """The exit whose validation gain picks ``best.keras``: the deepest one with a loss weight > 0."""
    supervised = [k for k, w in enumerate(exit_weights) if w > 0]
    if not supervised:
        raise ValueError(f"exit weights {list(exit_weights)}: at least one must be > 0")
    return supervised[-1]


def make_validation_pairs(cfg: TrainConfig):
    """Fixed (inputs, target, quality) pairs from the validation images, centre-cropped."""
    from daqe_tf.jpeg.qmap import qmap_from_tables
    from daqe_tf.jpeg.simulate import compress

    if not cfg.val_data:
        return []
    images = load_images(list_images(cfg.val_data, cfg.data_root)[: cfg.eval_images], cfg.grayscale, cfg.eval_crop)
    pairs = []
    for image in images:
        h, w = image.shape[:2]
        y, x = (h - cfg.eval_crop) // 2 // 16 * 16, (w - cfg.eval_crop) // 2 // 16 * 16
        crop = np.ascontiguousarray(image[y : y + cfg.eval_crop, x : x + cfg.eval_crop])
        for quality in cfg.eval_qualities:
            jpeg = compress(crop, quality)
            qmap = qmap_from_tables(jpeg.luma_table, jpeg.chroma_table, *crop.shape[:2], jpeg.subsampling)
            shape = (1, cfg.eval_crop, cfg.eval_crop, cfg.image_channels)
            inputs = {"image": (jpeg.decoded.astype(np.float32) / 255.0).reshape(shape), "qmap": qmap[None]}
            pairs.append((inputs, crop, quality, jpeg.decoded))
    return pairs


def psnr_uint8(reference: np.ndarray, output: np.ndarray) -> float:
    mse = np.mean((reference.astype(np.float64) - output.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


class Trainer:
    """Train one model family in ``cfg.run_dir``.

    ``resume=True`` continues from the run folder's last checkpoint when there is one;
    ``resume=False`` refuses a run folder that holds anything, so an earlier run is never
    overwritten or silently deleted. ``backend``: the step (default ``TensorFlowStep(cfg,
    strategy)``, whose ``strategy`` defaults to ``make_strategy(cfg.strategy)``); ``chief``
    defaults to the backend's (``is_chief(strategy)``).
    """

    def __init__(self, cfg: TrainConfig, strategy=None, chief: bool | None = None, resume: bool = True,
                 backend: TrainingStep | None = None):
        import keras

        from daqe_tf.models import build_model

        self.backend: TrainingStep = backend if backend is not None else TensorFlowStep(cfg, strategy)
        self.strategy = self.backend.strategy
        self.cfg = cfg
        self.is_chief = self.backend.is_chief if chief is None else chief
        self.replicas = self.backend.replicas
        if cfg.batch_size % self.replicas:
            raise ValueError(f"--batch_size {cfg.batch_size} is the global batch: it must be a multiple of the "
                             f"{self.replicas} replicas, which each take batch_size / replicas examples")
        self.per_replica_batch = cfg.batch_size // self.replicas
        self.folder = RunFolder(cfg.run_dir, self.is_chief, resume)
        self.run_dir = self.folder.path
        self.images = None
        self.defocus = None  # DAQE: pseudo-label sigma maps and crop candidates
        self.val_samples = {}
        with self.backend.scope():
            with global_dtype_policy("mixed_float16" if cfg.mixed_precision else keras.mixed_precision.global_policy()):
                self.model = build_model(cfg.family, cfg.image_channels, **cfg.model_config)
            freeze_except(self.model, cfg.train_layers)
            self.base_optimizer, self.schedule = make_optimizer(cfg)
            self.optimizer = self.backend.wrap_optimizer(self.base_optimizer, cfg)
            self.optimizer.build(self.model.trainable_variables)
            # The perceptual loss's VGG19 and the GAN's (discriminator, its optimizer), when their weights are > 0.
            self.perceptual, self.discriminator = self.backend.optional_losses(cfg)
        self.backend.attach(self)
        self._start(resume)

    def _start(self, resume: bool):
        """With model and optimizer built: initial state, DAQE labels, resume from the last checkpoint, config.json."""
        cfg = self.cfg
        self.exit_weights = cfg.exit_weights or default_exit_weights(self.model.num_exits)
        if len(self.exit_weights) != self.model.num_exits:
            raise ValueError(f"{len(self.exit_weights)} exit weights for a model with {self.model.num_exits} exits")
        self.selection_exit = selection_exit(self.exit_weights)
        self.state = {"step": 0, "batch_index": 0, "seed": cfg.seed, "replicas": self.replicas,
                      "best_val_psnr_gain": None, "train_seconds": 0.0}
        if cfg.family == "daqe":
            self._prepare_defocus_labels()
        found = self.folder.latest_checkpoint() if resume else None
        if found is None and cfg.init_weights:
            self._load_initial_weights(cfg.init_weights)
        if found is not None:
            self.state = {**self.state, **self.folder.restore(found, self.model, self.optimizer, self.discriminator)}
            changed = self.folder.config_changes(cfg) if self.is_chief else {}
            if self.state.get("replicas", self.replicas) != self.replicas:
                changed["replicas"] = [self.state.get("replicas"), self.replicas]
            self.log(f"resumed from {found} at step {self.step}, data batch {self.state['batch_index']}"
                     + (f", changed: {changed}" if changed else ""),
                     kind="resume", step=self.step, batch_index=self.state["batch_index"], changed=changed)
        self.backend.check_workers_agree()
        if self.is_chief:
            self.folder.save_config(cfg)
        self.backend.started()

    def _load_initial_weights(self, path):
        """Start from the weights of a ``.keras`` file of the same architecture (the optimizer starts fresh).

        Config values that are not weights (DAQE thresholds) come from ``model_config``, so a run
        from shipped weights passes the shipped file's architecture there (its ``.config.json``)."""
        from daqe_tf.inference.models import load_model
        from daqe_tf.models.daqe import DAQENet, shared_weights

        if Path(path).suffix != ".keras":
            raise ValueError(f"--init_weights {path}: expected a .keras file (a .tflite file holds no trainable weights)")
        source = load_model(path)  # ModelFileError names a missing or unreadable file
        # A DAQE file's routing readouts are fitted after training (train.fit_thresholds), not trained.
        source_weights = shared_weights(source) if isinstance(source, DAQENet) else source.weights
        ours = [tuple(v.shape) for v in self.model.weights]
        theirs = [tuple(v.shape) for v in source_weights]
        if type(source).__name__ != type(self.model).__name__ or ours != theirs:
            raise ValueError(
                f"--init_weights {path} holds a {type(source).__name__} with {len(theirs)} weight arrays; this run "
                f"builds a {type(self.model).__name__} with {len(ours)}"
                + ("" if len(ours) != len(theirs) else " of other shapes")
                + ": pass the file's own --family, --grayscale and --model_config")
        self.model.set_weights([np.asarray(v) for v in source_weights])
        digest = weights_digest(self.model)
        self.log(f"initial weights from {path} (sha256 {digest})", kind="init", path=str(path), weights_sha256=digest)

    # --- DAQE pseudo labels ------------------------------------------------------
    def _training_images(self) -> list:
        if self.images is None:
            cfg = self.cfg
            self.images = load_images(list_images(cfg.train_data, cfg.data_root), cfg.grayscale, cfg.patch_size)
            self.log(f"{len(self.images)} training images loaded")
        return self.images

    def _prepare_defocus_labels(self):
        """Sigma maps of the training images (cached), their grid crops, and cluster thresholds.

        Thresholds not given in ``model_config`` are quantiles of the crops' pseudo-label defocus
        (equal cluster shares) and are written into the model config, so the saved config and
        every ``.keras`` file carry them. After training, ``python -m train.fit_thresholds``
        refits them on the head's predictions, which is what inference clusters by.
        """
        from daqe_tf.models.daqe import fit_thresholds
        from train.defocus_labels import candidate_table, defocus_labels

        cfg, model = self.cfg, self.model
        if model.routing != "defocus":
            raise ValueError(f'model_config routing {model.routing!r}: train with routing "defocus" (the pseudo labels '
                             "cluster the crops by defocus) and fit a readout or cascade afterwards with "
                             "train.fit_thresholds --signal readout|cascade")
        if cfg.patch_size != model.patch_size:
            raise ValueError(f"--patch_size {cfg.patch_size} must equal the DAQE model's patch_size "
                             f"{model.patch_size}: the training crops are the patches that clusters route")
        images = self._training_images()
        every = max(1, len(images) // 10)
        report = lambda done, total: done % every == 0 and print(f"defocus labels: {done}/{total} images", flush=True)  # noqa: E731
        maps = defocus_labels(images, cfg.label_cache_dir, progress=report)
        candidates = candidate_table(maps, cfg.patch_size)
        if "thresholds" not in cfg.model_config:
            model.thresholds = fit_thresholds(candidates["defocus"], model.num_clusters)
            cfg.model_config = {**cfg.model_config, "thresholds": model.thresholds}
        self.defocus = {"maps": maps, "candidates": candidates}

    @property
    def step(self) -> int:
        return self.backend.step

    def log(self, message: str, **record):
        self.folder.log(message, **record)

    # --- EMA weights -------------------------------------------------------
    def _ema_variables(self):
        opt = self.base_optimizer
        return getattr(opt, "_model_variables_moving_average", None) if opt.use_ema else None

    def swap_ema(self):
        """Exchange the live weights and their EMA (call twice to undo)."""
        ema = self._ema_variables()
        if not ema:
            return
        for var, avg in zip(self.model.trainable_variables, ema):
            live = var.numpy()
            var.assign(avg.numpy())
            avg.assign(live)

    # --- data ----------------------------------------------------------------
    def make_sampler(self):
        """The numpy sampler of one replica's batches (``PairSampler``, or ``ClusterPairSampler`` for DAQE)."""
        cfg, p = self.cfg, self.cfg.patch_size
        images = self._training_images()
        if self.defocus is None:
            return PairSampler(images, p, self.per_replica_batch, cfg.degradation, cfg.seed)
        sampler = ClusterPairSampler(images, self.defocus["maps"], self.defocus["candidates"], self.model.thresholds, p,
                                     self.per_replica_batch, cfg.degradation, cfg.seed)
        shares = [int(m.size) for m in sampler.members]
        self.log(f"clusters: thresholds {np.round(self.model.thresholds, 4).tolist()}, crops per cluster {shares}",
                 kind="clusters", thresholds=self.model.thresholds, crops_per_cluster=shares)
        return sampler

    def make_dataset(self):
        """The backend's input pipeline of ``make_sampler``'s batches (TensorFlow: a distributed dataset),
        from the run's position (``state["batch_index"]``)."""
        self.sampler = self.make_sampler()
        return self.backend.make_dataset(self.sampler, self.state["batch_index"])

    def make_train_step(self):
        """The backend's compiled step (see ``TensorFlowStep.make_train_step``, ``JaxStep.make_train_step``)."""
        return self.backend.make_train_step()

    def _extra_terms(self) -> dict:
        """Log names (and labels) of the step's terms after the per-exit ones, in ``replica_step``'s order."""
        names = {}
        if self.defocus is not None:
            names["defocus_l1"] = "defocus L1"
        if self.perceptual is not None:
            names["perceptual"] = "perceptual"
        if self.discriminator is not None:
            names.update(generator_adversarial="adversarial G", discriminator="adversarial D")
        return names

    # --- validation --------------------------------------------------------------
    def validate(self, pairs) -> dict:
        """PSNR gain over JPEG per quality and exit, with the EMA weights; DAQE models also
        ``q{QF}_dynamic``: the whole crop with patches routed to exits by predicted defocus.
        The first pair of each quality is kept in ``val_samples`` for TensorBoard."""
        if not pairs:
            return {}
        self.swap_ema()
        try:
            gains, self.val_samples = {}, {}
            for inputs, target, quality, decoded in pairs:
                outputs = self.model(inputs, training=False)
                base = psnr_uint8(target, decoded)
                restored = []
                for k, out in enumerate(outputs):
                    out = np.clip(np.round(np.asarray(out, np.float32)[0] * 255.0), 0, 255).astype(np.uint8).reshape(target.shape)
                    restored.append(out)
                    gains.setdefault(f"q{quality}_exit{k}", []).append(psnr_uint8(target, out) - base)
                if self.defocus is not None:
                    routed = self._routed(decoded, quality)
                    gains.setdefault(f"q{quality}_dynamic", []).append(psnr_uint8(target, routed) - base)
                if quality not in self.val_samples:
                    sample = {"input": decoded, "target": target, **{f"output_exit{k}": o for k, o in enumerate(restored)}}
                    if self.defocus is not None:
                        sample["defocus"] = self._defocus_image(inputs, target.shape[:2])
                    self.val_samples[quality] = sample
            return {key: float(np.mean(v)) for key, v in gains.items()}
        finally:
            self.swap_ema()

    def _defocus_image(self, inputs, size) -> np.ndarray:
        """The predicted defocus map as uint8 at crop size (0 = sharp, 255 = the estimator's sigma cap)."""
        from daqe_tf.models.daqe.model import MAX_SIGMA

        cells = np.asarray(self.model.defocus(inputs), np.float32)[0, ..., 0]
        scale = size[0] // cells.shape[0]
        image = np.kron(np.clip(cells / np.log1p(MAX_SIGMA), 0, 1), np.ones((scale, scale), np.float32))
        return np.round(image * 255).astype(np.uint8)

    def _routed(self, decoded: np.ndarray, quality: int) -> np.ndarray:
        """DAQE inference (``enhance_pixels`` with exits by defocus) on a validation JPEG made with standard tables."""
        from daqe_tf.inference.pipeline import JpegEvidence, enhance_pixels
        from daqe_tf.jpeg.tables import tables_for_quality

        gray = decoded.ndim == 2
        tables = tables_for_quality(quality, grayscale=gray)
        evidence = JpegEvidence(tables[0], None if gray else tables[1], "gray" if gray else "4:2:0", quality, "jpeg-standard")
        return enhance_pixels(decoded, self.model, evidence, exit_index=None)

    def save_model(self, name: str):
        """Write a float32 ``.keras`` file with the EMA weights, atomically.

        Under mixed precision the weights go into a float32 copy of the model, so the file
        loads and exports as float32 (a mixed_float16 model keeps its policy when reloaded)."""
        from daqe_tf.models import build_model

        self.swap_ema()
        try:
            model = self.model
            if self.cfg.mixed_precision:
                with global_dtype_policy("float32"):
                    model = build_model(self.cfg.family, self.cfg.image_channels, **self.cfg.model_config)
                model.set_weights(self.model.get_weights())
            self.folder.save_model(model, name)
        finally:
            self.swap_ema()

    def _validation_images(self) -> dict:
        return {f"val/q{quality}/{name}": image for quality, sample in self.val_samples.items()
                for name, image in sample.items()}

    # --- run -------------------------------------------------------------------
    def run(self):
        """Train to ``cfg.steps`` (or the time limit); returns ``state``.

        The bookkeeping every backend shares lives here: the ``train`` log record (mean
        per-exit and extra terms since the last one, learning rate, elapsed time) every
        ``log_every`` steps, validation every ``eval_every`` steps with ``best.keras`` on a new
        best, ``snapshots/step_NNNNNN.keras`` every ``snapshot_every`` steps, a checkpoint every
        ``checkpoint_every`` steps and at the end, ``final.keras`` and the ``final`` record with the weights
        digest. Only the chief validates and writes; every worker takes the same steps and leaves
        together when any worker's step reports a stop.
        A step the optimizer did not count (the loss scaler skipped it) is taken again.

        The backend's part: ``begin`` and ``end`` around the loop, ``take_step`` for one step,
        ``sync_weights`` before the Keras variables are read, ``learning_rate`` for the log; the
        chief of a TensorFlow run also writes TensorBoard summaries.
        """
        cfg = self.cfg
        pairs = make_validation_pairs(cfg) if self.is_chief else []
        if self.is_chief and self.backend.tensorboard:
            self.folder.open_summaries()
        self.backend.begin()
        start, session_start = self.state["train_seconds"], time.time()

        def time_up() -> bool:
            return bool(cfg.time_limit_minutes) and time.time() - session_start > cfg.time_limit_minutes * 60

        losses, previous, saved = [], self.step, None
        self.overhead = {"validation_seconds": 0.0, "saving_seconds": 0.0}  # this session's time outside the steps
        last = self.step >= cfg.steps
        while not last:
            terms, stop = self.backend.take_step(previous + 1, time_up)
            self.state["batch_index"] += 1
            losses.append(terms)
            step = self.step
            last = step >= cfg.steps or stop
            if step == previous and not last:
                continue  # update skipped by the loss scaler (inf/NaN gradients): same step again
            previous = step
            self.state["step"] = step
            elapsed = start + time.time() - session_start
            if step % cfg.log_every == 0 or last:
                self._log_losses(step, losses, elapsed)
                losses = []
            validate = pairs and (step % cfg.eval_every == 0 or last)
            save = self.is_chief and (step % cfg.checkpoint_every == 0 or last)
            snapshot = self.is_chief and cfg.snapshot_every and step % cfg.snapshot_every == 0
            if validate or save or snapshot:
                self.backend.sync_weights()
            if validate:
                began = time.time()
                self._log_validation(step, pairs, elapsed)
                self.overhead["validation_seconds"] += time.time() - began
            began = time.time()
            if snapshot:
                name = f"snapshots/step_{step:06d}.keras"
                self.save_model(name)
                self.log(f"snapshot {name} at {elapsed / 3600:.3f} h", kind="snapshot", step=step, path=name,
                         train_seconds=elapsed)
            if save:
                self.state["train_seconds"] = elapsed
                self.folder.save_checkpoint(self.model, self.optimizer, self.state, self.discriminator)
                saved = step
            if snapshot or save:
                self.overhead["saving_seconds"] += time.time() - began
        self.folder.close_summaries()
        self.backend.end()
        if self.is_chief:
            if saved != self.step:
                self.state["train_seconds"] = start + time.time() - session_start
                self.folder.save_checkpoint(self.model, self.optimizer, self.state, self.discriminator)
            self.save_model("final.keras")
        digest = weights_digest(self.model)
        self.log(f"finished at step {self.step}; weights sha256 {digest}", kind="final", step=self.step, weights_sha256=digest)
        return self.state

    def _log_losses(self, step: int, losses: list, elapsed: float):
        """The ``train`` record and TensorBoard scalars: the mean of the steps' terms since the last record."""
        mean = np.mean(losses, axis=0, dtype=np.float64)
        lr = self.backend.learning_rate(step)
        # The session's validation and checkpoint/snapshot time so far: the rest of train_seconds is steps
        # (with the input pipeline) and whatever else the machine ran.
        record = {"loss_per_exit": mean[: self.model.num_exits].tolist(), **{k: round(v, 2) for k, v in self.overhead.items()}}
        scalars = {f"loss/exit{k}": v for k, v in enumerate(record["loss_per_exit"])}
        labels = self._extra_terms()
        record.update({name: float(v) for name, v in zip(labels, mean[self.model.num_exits :])})
        scalars.update({f"loss/{name}": record[name] for name in labels})
        if lr is not None:
            scalars["learning_rate"] = lr
        extra = "".join(f" {label} {record[name]:.4f}" for name, label in labels.items())
        self.log(
            f"step {step} loss/exit {np.round(mean[: self.model.num_exits], 5).tolist()}{extra} lr {lr:.2e} {elapsed / 60:.1f} min",
            kind="train", step=step, **record, lr=lr, train_seconds=elapsed,
        )
        self.folder.summaries(step, scalars)

    def _log_validation(self, step: int, pairs, elapsed: float):
        """The ``val`` record and summaries; ``best.keras`` when the mean gain of the deepest supervised
        exit (``selection_exit``: the deepest one unless its loss weight is 0) is a new best."""
        gains = self.validate(pairs)
        score = float(np.mean([v for k, v in gains.items() if k.endswith(f"exit{self.selection_exit}")]))
        self.log(f"step {step} val PSNR gain {json.dumps({k: round(v, 3) for k, v in gains.items()})}",
                 kind="val", step=step, gains=gains, train_seconds=elapsed)
        self.folder.summaries(step, {f"val_psnr_gain/{k}": v for k, v in gains.items()}, self._validation_images())
        best = self.state["best_val_psnr_gain"]
        if best is None or score > best:
            self.state["best_val_psnr_gain"] = score
            self.save_model("best.keras")

