"""The TensorFlow step: one custom step for every tf.distribute strategy, and the strategies.

Keras 3's ``fit`` is not used because MultiWorkerMirroredStrategy rejects its reductions; the
step here is ``strategy.run`` + ``tf.nn.compute_average_loss`` with the global batch size.
``TensorFlowStep`` is the backend a ``train.loop.Trainer`` runs by default: it holds the
strategy, builds what only TensorFlow trains (loss scaling, the perceptual loss, the GAN's
discriminator), feeds the replicas and takes the steps.
"""
from __future__ import annotations

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


class TensorFlowStep:
    """The training step on TensorFlow under ``strategy`` (default ``make_strategy(cfg.strategy)``).

    A ``Trainer`` builds its model and optimizer in ``scope()``, then ``attach``es itself; the
    step reads the run's model, optimizer, exit weights and optional losses from it.
    """

    tensorboard = True  # the run folder writes TensorBoard summaries while this step trains

    def __init__(self, cfg, strategy=None):
        import tensorflow as tf

        self.tf = tf
        self.strategy = strategy or make_strategy(cfg.strategy)
        self.replicas = self.strategy.num_replicas_in_sync
        self.is_chief = is_chief(self.strategy)
        self.run = None

    def scope(self):
        return self.strategy.scope()

    def wrap_optimizer(self, optimizer, cfg):
        """float16 gradients underflow without loss scaling; the wrapper skips steps with inf/NaN."""
        import keras

        return keras.optimizers.LossScaleOptimizer(optimizer) if cfg.mixed_precision else optimizer

    def optional_losses(self, cfg) -> tuple:
        """(the perceptual loss's VGG19, the GAN's (discriminator, its optimizer)), each None unless its weight is > 0."""
        import keras

        from train.discriminator import PatchDiscriminator
        from train.losses import PerceptualLoss

        perceptual = discriminator = None
        if cfg.perceptual_weight > 0:
            if not cfg.vgg19_weights:
                raise ValueError("--perceptual_weight needs --vgg19_weights: the path of Keras' ImageNet "
                                 "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
            perceptual = PerceptualLoss(cfg.vgg19_weights)  # FileNotFoundError names a missing file
        if cfg.adversarial_weight > 0:
            model = PatchDiscriminator(cfg.image_channels)
            model.build((None, cfg.patch_size, cfg.patch_size, cfg.image_channels))
            optimizer = keras.optimizers.Adam(cfg.discriminator_lr, beta_1=0.5)  # GAN practice: less momentum
            optimizer.build(model.trainable_variables)
            discriminator = (model, optimizer)
        return perceptual, discriminator

    def attach(self, run) -> None:
        """The run whose model this step trains (its model and optimizer are built)."""
        self.run = run

    def started(self) -> None:
        """The run is built and restored: nothing to set up before its steps."""

    @property
    def step(self) -> int:
        return int(self.run.optimizer.iterations.numpy())

    def check_workers_agree(self):
        """Fail clearly when workers resumed from different steps (a run folder not shared by all workers)."""
        tf, strategy, run = self.tf, self.strategy, self.run
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return

        @tf.function
        def spread():
            def replica():  # ReduceOp has no MIN/MAX: the steps agree when they all equal their mean
                ctx = tf.distribute.get_replica_context()
                step = tf.cast(run.optimizer.iterations, tf.float32)
                mean = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, step)
                return mean, ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.abs(step - mean))

            return [strategy.experimental_local_results(v)[0] for v in strategy.run(replica)]

        mean, deviation = (float(v) for v in spread())
        if deviation:
            raise RuntimeError(f"workers start from different steps (mean {mean:g}, this one {self.step}): every worker "
                               f"must see the chief's checkpoint in {run.run_dir} (put the run folder on shared storage)")

    # --- data ----------------------------------------------------------------
    def make_dataset(self, sampler, start: int):
        """A distributed dataset: each worker's input pipeline makes only its own replicas' batches.

        Replica r of R at global step s gets sampler batch ``s * R + r`` of ``batch_size / R``
        examples (batch ``s`` of ``batch_size`` when R = 1), so the stream depends on the seed,
        the step and R only, and ``state["batch_index"]`` (the step count, ``start`` here) is its position.
        """
        tf, run = self.tf, self.run
        cfg = run.cfg
        c, q = cfg.image_channels, run.model.qmap_channels
        p = cfg.patch_size
        spec = (
            {"image": tf.TensorSpec((None, p, p, c), tf.float32), "qmap": tf.TensorSpec((None, p, p, q), tf.float32)},
            tf.TensorSpec((None, p, p, c), tf.float32),
        )
        if run.defocus is not None:
            cells = p // run.model.defocus_head.cell_size
            spec += ({"defocus": tf.TensorSpec((None, cells, cells, 1), tf.float32), "cluster": tf.TensorSpec((None,), tf.int32)},)
        replicas = self.replicas

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
        from train.losses import adversarial_losses, step_loss, weighted_exits

        tf, run = self.tf, self.run
        model, optimizer, strategy = run.model, run.optimizer, self.strategy
        cfg = run.cfg
        global_batch = cfg.batch_size
        weights, kind = run.exit_weights, cfg.loss

        perceptual, gan = run.perceptual, run.discriminator

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

    # --- what ``Trainer.run`` calls -------------------------------------------------
    def begin(self):
        """Before the first step: the distributed iterator, the step function."""
        self._iterator = iter(self.run.make_dataset())
        self._train_step = self.make_train_step()
        self._distribute_logged = False

    def take_step(self, step: int, time_up) -> tuple:
        """Take step ``step`` -> (its per-exit and extra terms as numpy, whether any worker stops).

        ``time_up()`` (this worker's time limit) goes into the step, so every worker learns of a
        stop at the same step. The first step logs the ``distribute`` record."""
        tf = self.tf
        loss, per_exit, stop, replica_batches, global_batch = self._train_step(self._iterator, tf.constant(float(time_up())))
        if not self._distribute_logged:
            self._distribute_logged = True
            local = [int(b) for b in replica_batches.numpy()]
            heartbeat = heartbeat_timeout_seconds()
            self.run.log(f"{type(self.strategy).__name__}: {self.replicas} replicas, batches of this worker's "
                         f"replicas {local}, global batch {int(global_batch)}",
                         kind="distribute", strategy=type(self.strategy).__name__, replicas=self.replicas,
                         local_replica_batches=local, global_batch=int(global_batch), step=step,
                         **({"heartbeat_timeout_s": heartbeat} if heartbeat is not None else {}))
        return per_exit.numpy(), bool(stop)

    def sync_weights(self):
        """Before validation and saving: the Keras variables already hold the weights."""

    def learning_rate(self, step: int) -> float | None:
        lr = self.run.optimizer.learning_rate
        return float(lr.numpy()) if hasattr(lr, "numpy") else None

    def end(self):
        """After the last step: drop the iterator."""
        self._iterator = self._train_step = None
