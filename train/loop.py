"""The training loop: one custom step for every tf.distribute strategy.

``Trainer`` owns the model, optimizer (with an EMA of the weights), data
sampler, validation pairs, checkpoints, logs and TensorBoard summaries of one
run folder. Keras 3's ``fit`` is not used because MultiWorkerMirroredStrategy
rejects its reductions; the step here is ``strategy.run`` +
``tf.nn.compute_average_loss`` with the global batch size.

Under multi-worker training only the chief writes into the run folder; the
other workers train in lockstep and write nothing, so they cannot clobber the
chief's files. Every worker reads the run folder's checkpoint when resuming, so
the folder must be storage that all workers see.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from train import checkpoint
from train.config import TrainConfig
from train.data import ClusterPairSampler, PairSampler, list_images, load_images
from train.losses import adversarial_losses, step_loss, weighted_exits
from train.optim import make_optimizer

STRATEGIES = ("auto", "mirrored", "multiworker")
# TensorFlow's coordination service declares a worker dead after 10 s without a heartbeat; a worker
# that shares a few busy CPU cores with its peers (or pauses in a long checkpoint write) can miss
# that, and the whole run aborts. Two minutes still stops a run soon after a worker really fails.
HEARTBEAT_TIMEOUT_SECONDS = 120


def make_strategy(name: str = "auto"):
    """The tf.distribute strategy for ``--strategy``.

    ``auto``: MirroredStrategy when several GPUs are visible, else the default (one device)
    strategy. ``mirrored``: every visible GPU, or every logical CPU device when there is no
    GPU. ``multiworker``: MultiWorkerMirroredStrategy with the cluster from ``TF_CONFIG``;
    it must be created before any other TensorFlow op, so call this first.
    """
    import tensorflow as tf

    if name == "multiworker":
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        _configure_coordination_service(resolver, HEARTBEAT_TIMEOUT_SECONDS)
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose from {STRATEGIES}")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    return tf.distribute.MirroredStrategy([d.name for d in gpus or tf.config.list_logical_devices("CPU")])


def _configure_coordination_service(resolver, heartbeat_timeout_s: float) -> None:
    """Start the coordination service the way MultiWorkerMirroredStrategy would, with a longer
    heartbeat timeout. The strategy only configures the service when nobody has yet, and offers
    no argument for the timeout, so this sets it first (TensorFlow-internal API: if it moves, the
    strategy's own 10 s default applies and a warning says so)."""
    try:
        from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
        from tensorflow.python.distribute import multi_worker_util
        from tensorflow.python.eager import context
    except ImportError as error:  # pragma: no cover - depends on the TensorFlow build
        print(f"warning: coordination service left at TensorFlow's defaults ({error})", flush=True)
        return
    spec = resolver.cluster_spec()
    jobs = [job for job in ("chief", "worker") if job in spec.jobs]
    if resolver.task_type not in jobs or context.context().coordination_service is not None:
        return
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=multi_worker_util.coordination_leader(spec),
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(name=job, num_tasks=spec.num_tasks(job)) for job in jobs],
        heartbeat_timeout_in_ms=int(heartbeat_timeout_s * 1000),
    )


def heartbeat_timeout_seconds() -> float | None:
    """The coordination service's heartbeat timeout in this process; None without a service."""
    try:
        from tensorflow.python.eager import context
    except ImportError:  # pragma: no cover
        return None
    config = context.context().coordination_service
    return config.heartbeat_timeout_in_ms / 1000 if config is not None else None


def is_chief(strategy) -> bool:
    """Whether this process writes the run's files: the ``chief`` task, or ``worker`` 0 of a cluster
    without a chief (the convention of ``TF_CONFIG``); always true outside a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if not task_type or task_type == "chief":
        return True
    return task_type == "worker" and not resolver.task_id and "chief" not in resolver.cluster_spec().as_dict()


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
    overwritten or silently deleted. ``strategy`` defaults to ``make_strategy(cfg.strategy)``;
    ``chief`` defaults to ``is_chief(strategy)``.
    """

    def __init__(self, cfg: TrainConfig, strategy=None, chief: bool | None = None, resume: bool = True):
        import keras
        import tensorflow as tf

        from daqe_tf.models import build_model

        self.tf = tf
        self.strategy = strategy or make_strategy(cfg.strategy)
        self._open_run(cfg, is_chief(self.strategy) if chief is None else chief,
                       self.strategy.num_replicas_in_sync, resume)
        with self.strategy.scope():
            with global_dtype_policy("mixed_float16" if cfg.mixed_precision else keras.mixed_precision.global_policy()):
                self.model = build_model(cfg.family, cfg.image_channels, **cfg.model_config)
            freeze_except(self.model, cfg.train_layers)
            self.base_optimizer, self.schedule = make_optimizer(cfg)
            # float16 gradients underflow without loss scaling; the wrapper skips steps with inf/NaN.
            self.optimizer = (keras.optimizers.LossScaleOptimizer(self.base_optimizer) if cfg.mixed_precision
                              else self.base_optimizer)
            self.optimizer.build(self.model.trainable_variables)
            self._build_optional_losses()
        self._start(resume)

    def _build_optional_losses(self):
        """The perceptual loss's VGG19 and the GAN's discriminator with its own optimizer, when their weights are > 0."""
        import keras

        from train.discriminator import PatchDiscriminator
        from train.losses import PerceptualLoss

        cfg = self.cfg
        if cfg.perceptual_weight > 0:
            if not cfg.vgg19_weights:
                raise ValueError("--perceptual_weight needs --vgg19_weights: the path of Keras' ImageNet "
                                 "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
            self.perceptual = PerceptualLoss(cfg.vgg19_weights)  # FileNotFoundError names a missing file
        if cfg.adversarial_weight > 0:
            discriminator = PatchDiscriminator(cfg.image_channels)
            discriminator.build((None, cfg.patch_size, cfg.patch_size, cfg.image_channels))
            optimizer = keras.optimizers.Adam(cfg.discriminator_lr, beta_1=0.5)  # GAN practice: less momentum
            optimizer.build(discriminator.trainable_variables)
            self.discriminator = (discriminator, optimizer)

    def _open_run(self, cfg: TrainConfig, chief: bool, replicas: int, resume: bool):
        """Settings and run-folder checks every trainer makes before it builds its model."""
        self.cfg = cfg
        self.is_chief = chief
        self.replicas = replicas
        if cfg.batch_size % self.replicas:
            raise ValueError(f"--batch_size {cfg.batch_size} is the global batch: it must be a multiple of the "
                             f"{self.replicas} replicas, which each take batch_size / replicas examples")
        self.per_replica_batch = cfg.batch_size // self.replicas
        self.run_dir = Path(cfg.run_dir)
        # Every worker checks here; the chief writes config.json only after _check_workers_agree, a
        # collective that waits for every worker, so no worker can see the chief's own new files.
        if not resume and self.run_dir.is_dir() and any(self.run_dir.iterdir()):
            raise FileExistsError(
                f"{self.run_dir} already holds a run ({', '.join(sorted(p.name for p in self.run_dir.iterdir())[:5])}); "
                "--noresume starts only in a new or empty folder: pick another --run_dir, move this one away, "
                "or leave --resume on to continue it")
        if self.is_chief:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.images = None
        self.defocus = None  # DAQE: pseudo-label sigma maps and crop candidates
        self.writer = None
        self.val_samples = {}
        self.perceptual = None  # PerceptualLoss with cfg.perceptual_weight > 0
        self.discriminator = None  # (PatchDiscriminator, its optimizer) with cfg.adversarial_weight > 0

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
        found = checkpoint.latest(self.run_dir) if resume else None
        if found is None and cfg.init_weights:
            self._load_initial_weights(cfg.init_weights)
        if found is not None:
            self.state = {**self.state, **checkpoint.restore(found, self.model, self.optimizer, self.discriminator)}
            changed = self._config_changes() if self.is_chief else {}
            if self.state.get("replicas", self.replicas) != self.replicas:
                changed["replicas"] = [self.state.get("replicas"), self.replicas]
            self.log(f"resumed from {found} at step {self.step}, data batch {self.state['batch_index']}"
                     + (f", changed: {changed}" if changed else ""),
                     kind="resume", step=self.step, batch_index=self.state["batch_index"], changed=changed)
        self._check_workers_agree()
        if self.is_chief:
            cfg.save(self.run_dir / "config.json")

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

    def _check_workers_agree(self):
        """Fail clearly when workers resumed from different steps (a run folder not shared by all workers)."""
        tf, strategy = self.tf, self.strategy
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return

        @tf.function
        def spread():
            def replica():  # ReduceOp has no MIN/MAX: the steps agree when they all equal their mean
                ctx = tf.distribute.get_replica_context()
                step = tf.cast(self.optimizer.iterations, tf.float32)
                mean = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, step)
                return mean, ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.abs(step - mean))

            return [strategy.experimental_local_results(v)[0] for v in strategy.run(replica)]

        mean, deviation = (float(v) for v in spread())
        if deviation:
            raise RuntimeError(f"workers start from different steps (mean {mean:g}, this one {self.step}): every worker "
                               f"must see the chief's checkpoint in {self.run_dir} (put the run folder on shared storage)")

    def _config_changes(self) -> dict:
        """Settings that differ from the run folder's saved config (a resume may change them).

        A setting the saved config predates counts only when it differs from its default.
        """
        path = self.run_dir / "config.json"
        if not path.is_file():
            return {}
        before, now = json.loads(path.read_text()), json.loads(json.dumps(self.cfg.to_dict()))
        defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
        return {k: [before.get(k), v] for k, v in now.items()
                if (before[k] != v if k in before else k not in defaults or defaults[k] != v)}

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
        return int(self.optimizer.iterations.numpy())

    def log(self, message: str, **record):
        print(message, flush=True)
        if record and self.is_chief:
            with open(self.run_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

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
        """A distributed dataset: each worker's input pipeline makes only its own replicas' batches.

        Replica r of R at global step s gets sampler batch ``s * R + r`` of ``batch_size / R``
        examples (batch ``s`` of ``batch_size`` when R = 1), so the stream depends on the seed,
        the step and R only, and ``state["batch_index"]`` (the step count) is its position.
        """
        tf = self.tf
        cfg = self.cfg
        c, q = cfg.image_channels, self.model.qmap_channels
        p = cfg.patch_size
        spec = (
            {"image": tf.TensorSpec((None, p, p, c), tf.float32), "qmap": tf.TensorSpec((None, p, p, q), tf.float32)},
            tf.TensorSpec((None, p, p, c), tf.float32),
        )
        self.sampler = self.make_sampler()
        if self.defocus is not None:
            cells = p // self.model.defocus_head.cell_size
            spec += ({"defocus": tf.TensorSpec((None, cells, cells, 1), tf.float32), "cluster": tf.TensorSpec((None,), tf.int32)},)
        sampler, replicas, start = self.sampler, self.replicas, self.state["batch_index"]

        def dataset_fn(context):
            local = context.num_replicas_in_sync // context.num_input_pipelines
            first = context.input_pipeline_id * local

            def batches():
                step = start
                while True:
                    for r in range(first, first + local):  # consecutive elements go to consecutive local replicas
                        yield sampler.batch(step * replicas + r if replicas > 1 else step)
                    step += 1

            return tf.data.Dataset.from_generator(batches, output_signature=spec).prefetch(max(8, 2 * local))

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    # --- step ----------------------------------------------------------------
    def make_train_step(self):
        """``train_step(iterator, stop)`` -> (loss, per-exit terms, stop, this worker's per-replica batch
        sizes, global batch). ``stop`` (1.0 = this worker's time is up) is summed over replicas so all
        workers leave the loop at the same step instead of waiting on each other forever."""
        tf = self.tf
        model, optimizer, strategy = self.model, self.optimizer, self.strategy
        cfg = self.cfg
        global_batch = cfg.batch_size
        weights, kind = self.exit_weights, cfg.loss

        perceptual, gan = self.perceptual, self.discriminator

        def replica_step(stop, inputs, target, labels=None):
            """Deep supervision over every exit; with DAQE labels, extra weight on each example's
            cluster exit and the defocus head's L1 (last entry of the returned per-exit terms).
            Optional perceptual and generator terms join the per-example loss; the discriminator
            takes its own step on the same outputs."""
            with tf.GradientTape() as tape, tf.GradientTape() as disc_tape:
                outputs = [tf.cast(out, tf.float32) for out in model(inputs, training=True)]  # float16 under mixed precision
                predicted = None if labels is None else model.defocus(inputs)
                per_example, terms = step_loss(target, outputs, weights, kind, labels, predicted,
                                               cfg.cluster_exit_weight, cfg.defocus_loss_weight)
                if perceptual is not None:
                    feature_l1, _ = weighted_exits(perceptual, target, outputs, weights)
                    per_example = per_example + cfg.perceptual_weight * feature_l1
                    terms = terms + [tf.reduce_mean(feature_l1)]
                if gan is not None:
                    generator, disc = adversarial_losses(gan[0], target, outputs, weights)
                    per_example = per_example + cfg.adversarial_weight * generator
                    terms = terms + [tf.reduce_mean(generator), tf.reduce_mean(disc)]
                    disc_loss = tf.nn.compute_average_loss(disc, global_batch_size=global_batch)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
                scaled = optimizer.scale_loss(loss)  # the loss scale under mixed precision, else the loss
            grads = tape.gradient(scaled, model.trainable_variables)
            if gan is not None:  # both gradients come from the same forward pass, before either update
                disc_grads = disc_tape.gradient(disc_loss, gan[0].trainable_variables)
                gan[1].apply_gradients(zip(disc_grads, gan[0].trainable_variables))
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss, tf.stack(terms), tf.identity(stop), tf.cast(tf.shape(target)[0], tf.float32)

        @tf.function
        def train_step(iterator, stop):
            batch = next(iterator)
            loss, per_exit, stop, size = strategy.run(replica_step, args=(stop,) + tuple(batch))
            total = lambda value: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)  # noqa: E731
            return (
                total(loss),
                strategy.reduce(tf.distribute.ReduceOp.MEAN, per_exit, axis=None),
                total(stop),  # ReduceOp has no MAX; > 0 when any worker stops
                tf.stack(strategy.experimental_local_results(size)),
                total(size),
            )

        return train_step

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
        from daqe_tf.inference.models import save_model
        from daqe_tf.models import build_model

        self.swap_ema()
        try:
            model = self.model
            if self.cfg.mixed_precision:
                with global_dtype_policy("float32"):
                    model = build_model(self.cfg.family, self.cfg.image_channels, **self.cfg.model_config)
                model.set_weights(self.model.get_weights())
            save_model(model, self.run_dir / name)
        finally:
            self.swap_ema()

    # --- TensorBoard ---------------------------------------------------------------
    def _summaries(self, step: int, scalars: dict, images: dict | None = None):
        """Write scalars (and uint8 HxW[xC] images) at ``step`` to ``run_dir/tensorboard`` (chief only).

        ``tf.summary.write`` with the scalars/images plugin metadata writes what
        ``tf.summary.scalar``/``image`` write, without needing the tensorboard package to train."""
        if self.writer is None:
            return
        tf = self.tf
        from tensorflow.core.framework import summary_pb2

        def plugin(name):
            return summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=name))

        with self.writer.as_default(step=step):
            for tag, value in scalars.items():
                tf.summary.write(tag, tf.constant(value, tf.float32), metadata=plugin("scalars"))
            for tag, image in (images or {}).items():
                image = image if image.ndim == 3 else image[..., None]
                h, w = image.shape[:2]
                tensor = tf.stack([tf.as_string(w), tf.as_string(h), tf.io.encode_png(image)])  # images plugin layout
                tf.summary.write(tag, tensor, metadata=plugin("images"))
        self.writer.flush()

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

        The backend hooks: ``_begin_run`` and ``_end_run`` around the loop, ``_run_step`` for one
        step, ``_sync_weights`` before the Keras variables are read, ``_learning_rate`` for the log.
        """
        cfg = self.cfg
        pairs = make_validation_pairs(cfg) if self.is_chief else []
        self._begin_run()
        start, session_start = self.state["train_seconds"], time.time()

        def time_up() -> bool:
            return bool(cfg.time_limit_minutes) and time.time() - session_start > cfg.time_limit_minutes * 60

        losses, previous, saved = [], self.step, None
        last = self.step >= cfg.steps
        while not last:
            terms, stop = self._run_step(previous + 1, time_up)
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
                self._sync_weights()
            if validate:
                self._log_validation(step, pairs, elapsed)
            if snapshot:
                name = f"snapshots/step_{step:06d}.keras"
                self.save_model(name)
                self.log(f"snapshot {name} at {elapsed / 3600:.3f} h", kind="snapshot", step=step, path=name,
                         train_seconds=elapsed)
            if save:
                self.state["train_seconds"] = elapsed
                checkpoint.save(self.run_dir, self.model, self.optimizer, self.state, self.discriminator)
                saved = step
        self._end_run()
        if self.is_chief:
            if saved != self.step:
                self.state["train_seconds"] = start + time.time() - session_start
                checkpoint.save(self.run_dir, self.model, self.optimizer, self.state, self.discriminator)
            self.save_model("final.keras")
        digest = weights_digest(self.model)
        self.log(f"finished at step {self.step}; weights sha256 {digest}", kind="final", step=self.step, weights_sha256=digest)
        return self.state

    def _log_losses(self, step: int, losses: list, elapsed: float):
        """The ``train`` record and TensorBoard scalars: the mean of the steps' terms since the last record."""
        mean = np.mean(losses, axis=0, dtype=np.float64)
        lr = self._learning_rate(step)
        record = {"loss_per_exit": mean[: self.model.num_exits].tolist()}
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
        self._summaries(step, scalars)

    def _log_validation(self, step: int, pairs, elapsed: float):
        """The ``val`` record and summaries; ``best.keras`` when the mean gain of the deepest supervised
        exit (``selection_exit``: the deepest one unless its loss weight is 0) is a new best."""
        gains = self.validate(pairs)
        score = float(np.mean([v for k, v in gains.items() if k.endswith(f"exit{self.selection_exit}")]))
        self.log(f"step {step} val PSNR gain {json.dumps({k: round(v, 3) for k, v in gains.items()})}",
                 kind="val", step=step, gains=gains, train_seconds=elapsed)
        self._summaries(step, {f"val_psnr_gain/{k}": v for k, v in gains.items()}, self._validation_images())
        best = self.state["best_val_psnr_gain"]
        if best is None or score > best:
            self.state["best_val_psnr_gain"] = score
            self.save_model("best.keras")

    # --- run hooks (TensorFlow) ----------------------------------------------------
    def _begin_run(self):
        """Before the first step: the chief's TensorBoard writer, the distributed iterator, the step function."""
        if self.is_chief:
            self.writer = self.tf.summary.create_file_writer(str(self.run_dir / "tensorboard"))
        self._iterator = iter(self.make_dataset())
        self._train_step = self.make_train_step()
        self._distribute_logged = False

    def _run_step(self, step: int, time_up) -> tuple:
        """Take step ``step`` -> (its per-exit and extra terms as numpy, whether any worker stops).

        ``time_up()`` (this worker's time limit) goes into the step, so every worker learns of a
        stop at the same step. The first step logs the ``distribute`` record."""
        tf = self.tf
        loss, per_exit, stop, replica_batches, global_batch = self._train_step(self._iterator, tf.constant(float(time_up())))
        if not self._distribute_logged:
            self._distribute_logged = True
            local = [int(b) for b in replica_batches.numpy()]
            heartbeat = heartbeat_timeout_seconds()
            self.log(f"{type(self.strategy).__name__}: {self.replicas} replicas, batches of this worker's "
                     f"replicas {local}, global batch {int(global_batch)}",
                     kind="distribute", strategy=type(self.strategy).__name__, replicas=self.replicas,
                     local_replica_batches=local, global_batch=int(global_batch), step=step,
                     **({"heartbeat_timeout_s": heartbeat} if heartbeat is not None else {}))
        return per_exit.numpy(), bool(stop)

    def _sync_weights(self):
        """Before validation and saving: the Keras variables already hold the weights."""

    def _learning_rate(self, step: int) -> float | None:
        lr = self.optimizer.learning_rate
        return float(lr.numpy()) if hasattr(lr, "numpy") else None

    def _end_run(self):
        """After the last step: close the writer, drop the iterator."""
        if self.writer is not None:
            self.writer.close()
        self._iterator = self._train_step = None
