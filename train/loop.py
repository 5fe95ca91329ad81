"""The training loop: one custom step for every tf.distribute strategy.

``Trainer`` owns the model, optimizer (with an EMA of the weights), data
sampler, validation pairs, checkpoints and logs of one run folder. Keras 3's
``fit`` is not used because MultiWorkerMirroredStrategy rejects its reductions;
the step here is ``strategy.run`` + ``tf.nn.compute_average_loss``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from train import checkpoint
from train.config import TrainConfig
from train.data import PairSampler, list_images, load_images
from train.losses import deep_supervision_loss


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
        found = checkpoint.latest(self.run_dir)
        if found is not None:
            self.state = checkpoint.restore(found, self.model, self.optimizer)
            changed = self._config_changes()
            self.log(f"resumed from {found} at step {self.step}" + (f", changed: {changed}" if changed else ""),
                     kind="resume", step=self.step, changed=changed)
        if is_chief:
            cfg.save(self.run_dir / "config.json")

    def _config_changes(self) -> dict:
        """Settings that differ from the run folder's saved config (a resume may change them)."""
        path = self.run_dir / "config.json"
        if not path.is_file():
            return {}
        before, now = json.loads(path.read_text()), json.loads(json.dumps(self.cfg.to_dict()))
        return {k: [before.get(k), v] for k, v in now.items() if before.get(k) != v}

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
        images = load_images(list_images(cfg.train_data, cfg.data_root), cfg.grayscale, cfg.patch_size)
        self.log(f"{len(images)} training images loaded")
        self.sampler = PairSampler(images, cfg.patch_size, cfg.batch_size, cfg.degradation, cfg.seed, self.state["batch_index"])
        c, q = cfg.image_channels, self.model.qmap_channels
        p = cfg.patch_size
        spec = (
            {"image": tf.TensorSpec((None, p, p, c), tf.float32), "qmap": tf.TensorSpec((None, p, p, q), tf.float32)},
            tf.TensorSpec((None, p, p, c), tf.float32),
        )
        dataset = tf.data.Dataset.from_generator(lambda: self.sampler, output_signature=spec).prefetch(8)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))

    # --- step ----------------------------------------------------------------
    def make_train_step(self):
        tf = self.tf
        model, optimizer, strategy = self.model, self.optimizer, self.strategy
        global_batch = self.cfg.batch_size
        weights, kind = self.exit_weights, self.cfg.loss

        def replica_step(inputs, target):
            with tf.GradientTape() as tape:
                outputs = model(inputs, training=True)
                per_example, per_exit = deep_supervision_loss(target, outputs, weights, kind)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss, tf.stack(per_exit)

        @tf.function
        def train_step(iterator):
            inputs, target = next(iterator)
            loss, per_exit = strategy.run(replica_step, args=(inputs, target))
            return (
                strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.MEAN, per_exit, axis=None),
            )

        return train_step

    # --- validation --------------------------------------------------------------
    def validate(self, pairs) -> dict:
        """PSNR gain over JPEG per quality and exit, with the EMA weights."""
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
            return {key: float(np.mean(v)) for key, v in gains.items()}
        finally:
            self.swap_ema()

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
                self.log(
                    f"step {step} loss/exit {np.round(mean, 5).tolist()} lr {lr:.2e} {elapsed / 60:.1f} min",
                    kind="train", step=step, loss_per_exit=mean.tolist(), lr=lr, train_seconds=elapsed,
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
