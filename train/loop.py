"""The training loop: one custom step for every tf.distribute strategy.

``Trainer`` owns the model, optimizer (with an EMA of the weights), data
sampler, validation pairs, checkpoints and logs of one run folder. Keras 3's
``fit`` is not used because MultiWorkerMirroredStrategy rejects its reductions;
the step here is ``strategy.run`` + ``tf.nn.compute_average_loss``.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from train import checkpoint
from train.config import TrainConfig
from train.data import ClusterPairSampler, PairSampler, list_images, load_images
from train.losses import deep_supervision_loss, defocus_loss


def default_exit_weights(num_exits: int) -> tuple:
    """Deeper exits weigh more; every exit keeps a real share so early exits learn too."""
    return tuple(float(w) for w in np.linspace(0.5, 1.0, num_exits))


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
    """Train one model family in ``cfg.run_dir``, resuming from its last checkpoint."""

    def __init__(self, cfg: TrainConfig, strategy=None, is_chief: bool = True):
        import keras
        import tensorflow as tf

        from daqe_tf.models import build_model

        self.cfg = cfg
        self.tf = tf
        self.strategy = strategy or tf.distribute.get_strategy()
        self.is_chief = is_chief
        self.run_dir = Path(cfg.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.images = None
        self.defocus = None  # DAQE: pseudo-label sigma maps and crop candidates
        with self.strategy.scope():
            self.model = build_model(cfg.family, cfg.image_channels, **cfg.model_config)
            schedule = keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=cfg.learning_rate / 10,
                decay_steps=max(cfg.steps - cfg.warmup_steps, 1),
                alpha=cfg.min_learning_rate / cfg.learning_rate,
                warmup_target=cfg.learning_rate,
                warmup_steps=cfg.warmup_steps,
            )
            self.optimizer = keras.optimizers.AdamW(
                learning_rate=schedule,
                weight_decay=cfg.weight_decay,
                clipnorm=None,
                use_ema=cfg.ema_momentum > 0,
                ema_momentum=cfg.ema_momentum or 0.99,
            )
            self.optimizer.build(self.model.trainable_variables)
        self.exit_weights = cfg.exit_weights or default_exit_weights(self.model.num_exits)
        self.state = {"batch_index": 0, "best_val_psnr_gain": None, "train_seconds": 0.0}
        if cfg.family == "daqe":
            self._prepare_defocus_labels()
        found = checkpoint.latest(self.run_dir)
        if found is not None:
            self.state = checkpoint.restore(found, self.model, self.optimizer)
            changed = self._config_changes()
            self.log(f"resumed from {found} at step {self.step}" + (f", changed: {changed}" if changed else ""),
                     kind="resume", step=self.step, changed=changed)
        if is_chief:
            cfg.save(self.run_dir / "config.json")

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
        return getattr(self.optimizer, "_model_variables_moving_average", None) if self.optimizer.use_ema else None

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
    def make_dataset(self):
        tf = self.tf
        cfg = self.cfg
        images = self._training_images()
        c, q = cfg.image_channels, self.model.qmap_channels
        p = cfg.patch_size
        spec = (
            {"image": tf.TensorSpec((None, p, p, c), tf.float32), "qmap": tf.TensorSpec((None, p, p, q), tf.float32)},
            tf.TensorSpec((None, p, p, c), tf.float32),
        )
        if self.defocus is None:
            self.sampler = PairSampler(images, p, cfg.batch_size, cfg.degradation, cfg.seed, self.state["batch_index"])
        else:
            self.sampler = ClusterPairSampler(
                images, self.defocus["maps"], self.defocus["candidates"], self.model.thresholds, p, cfg.batch_size,
                cfg.degradation, cfg.seed, self.state["batch_index"],
            )
            cells = p // self.model.defocus_head.cell_size
            spec += ({"defocus": tf.TensorSpec((None, cells, cells, 1), tf.float32), "cluster": tf.TensorSpec((None,), tf.int32)},)
            shares = [int(m.size) for m in self.sampler.members]
            self.log(f"clusters: thresholds {np.round(self.model.thresholds, 4).tolist()}, crops per cluster {shares}",
                     kind="clusters", thresholds=self.model.thresholds, crops_per_cluster=shares)
        dataset = tf.data.Dataset.from_generator(lambda: self.sampler, output_signature=spec).prefetch(8)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))

    # --- step ----------------------------------------------------------------
    def make_train_step(self):
        tf = self.tf
        model, optimizer, strategy = self.model, self.optimizer, self.strategy
        cfg = self.cfg
        global_batch = cfg.batch_size
        weights, kind = self.exit_weights, cfg.loss

        def replica_step(inputs, target, labels=None):
            """Deep supervision over every exit; with DAQE labels, extra weight on each example's
            cluster exit and the defocus head's L1 (last entry of the returned per-exit terms)."""
            with tf.GradientTape() as tape:
                outputs = model(inputs, training=True)
                own_exit = None if labels is None else labels["cluster"]
                per_example, terms = deep_supervision_loss(target, outputs, weights, kind, own_exit, cfg.cluster_exit_weight)
                if labels is not None:
                    head_l1 = defocus_loss(model.defocus(inputs), labels["defocus"])
                    per_example = per_example + cfg.defocus_loss_weight * head_l1
                    terms = terms + [tf.reduce_mean(head_l1)]
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss, tf.stack(terms)

        @tf.function
        def train_step(iterator):
            batch = next(iterator)
            loss, per_exit = strategy.run(replica_step, args=batch)
            return (
                strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.MEAN, per_exit, axis=None),
            )

        return train_step

    # --- validation --------------------------------------------------------------
    def validate(self, pairs) -> dict:
        """PSNR gain over JPEG per quality and exit, with the EMA weights; DAQE models also
        ``q{QF}_dynamic``: the whole crop with patches routed to exits by predicted defocus."""
        if not pairs:
            return {}
        self.swap_ema()
        try:
            gains = {}
            for inputs, target, quality, decoded in pairs:
                outputs = self.model(inputs, training=False)
                base = psnr_uint8(target, decoded)
                for k, out in enumerate(outputs):
                    out = np.clip(np.round(np.asarray(out)[0] * 255.0), 0, 255).astype(np.uint8).reshape(target.shape)
                    gains.setdefault(f"q{quality}_exit{k}", []).append(psnr_uint8(target, out) - base)
                if self.defocus is not None:
                    routed = self._routed(decoded, quality)
                    gains.setdefault(f"q{quality}_dynamic", []).append(psnr_uint8(target, routed) - base)
            return {key: float(np.mean(v)) for key, v in gains.items()}
        finally:
            self.swap_ema()

    def _routed(self, decoded: np.ndarray, quality: int) -> np.ndarray:
        """DAQE inference (``enhance_pixels`` with exits by defocus) on a validation JPEG made with standard tables."""
        from daqe_tf.inference.pipeline import JpegEvidence, enhance_pixels
        from daqe_tf.jpeg.tables import tables_for_quality

        gray = decoded.ndim == 2
        tables = tables_for_quality(quality, grayscale=gray)
        evidence = JpegEvidence(tables[0], None if gray else tables[1], "gray" if gray else "4:2:0", quality, "jpeg-standard")
        return enhance_pixels(decoded, self.model, evidence, exit_index=None)

    def save_model(self, name: str):
        """Write a float32 ``.keras`` file with the EMA weights, atomically."""
        import os

        self.swap_ema()
        try:
            tmp = self.run_dir / f".{name}.tmp.keras"
            self.model.save(tmp)
            os.replace(tmp, self.run_dir / name)
        finally:
            self.swap_ema()

    # --- run -------------------------------------------------------------------
    def run(self):
        cfg = self.cfg
        pairs = make_validation_pairs(cfg)
        iterator = iter(self.make_dataset())
        train_step = self.make_train_step()
        start, session_start = self.state["train_seconds"], time.time()
        losses = []
        while self.step < cfg.steps:
            loss, per_exit = train_step(iterator)
            self.state["batch_index"] += 1
            losses.append(per_exit.numpy())
            step = self.step
            elapsed = start + time.time() - session_start
            if step % cfg.log_every == 0:
                mean = np.mean(losses, axis=0)
                lr = float(self.optimizer.learning_rate.numpy()) if hasattr(self.optimizer.learning_rate, "numpy") else None
                record = {"loss_per_exit": mean[: self.model.num_exits].tolist()}
                if self.defocus is not None:
                    record["defocus_l1"] = float(mean[-1])
                extra = f" defocus L1 {record['defocus_l1']:.4f}" if self.defocus is not None else ""
                self.log(
                    f"step {step} loss/exit {np.round(mean[: self.model.num_exits], 5).tolist()}{extra} lr {lr:.2e} {elapsed / 60:.1f} min",
                    kind="train", step=step, **record, lr=lr, train_seconds=elapsed,
                )
                losses = []
            last = step >= cfg.steps or (cfg.time_limit_minutes and time.time() - session_start > cfg.time_limit_minutes * 60)
            if pairs and (step % cfg.eval_every == 0 or last):
                gains = self.validate(pairs)
                deepest = [v for k, v in gains.items() if k.endswith(f"exit{self.model.num_exits - 1}")]
                score = float(np.mean(deepest))
                self.log(f"step {step} val PSNR gain {json.dumps({k: round(v, 3) for k, v in gains.items()})}",
                         kind="val", step=step, gains=gains, train_seconds=elapsed)
                best = self.state["best_val_psnr_gain"]
                if self.is_chief and (best is None or score > best):
                    self.state["best_val_psnr_gain"] = score
                    self.save_model("best.keras")
            if self.is_chief and (step % cfg.checkpoint_every == 0 or last):
                self.state["train_seconds"] = elapsed
                checkpoint.save(self.run_dir, self.model, self.optimizer, self.state)
            if last:
                break
        if self.is_chief:
            self.state["train_seconds"] = start + time.time() - session_start
            checkpoint.save(self.run_dir, self.model, self.optimizer, self.state)
            self.save_model("final.keras")
        return self.state
