"""The optimizer every trainer uses (keras only, so the JAX trainer builds it without TensorFlow)."""
from __future__ import annotations

from train.config import TrainConfig


def make_optimizer(cfg: TrainConfig):
    """(AdamW with EMA, its learning-rate schedule): linear warm-up from lr/10, then cosine decay."""
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.learning_rate / 10,
        decay_steps=max((cfg.schedule_steps or cfg.steps) - cfg.warmup_steps, 1),
        alpha=cfg.min_learning_rate / cfg.learning_rate,
        warmup_target=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps,
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=cfg.weight_decay,
        clipnorm=None,
        use_ema=cfg.ema_momentum > 0,
        ema_momentum=cfg.ema_momentum or 0.99,
    )
    return optimizer, schedule
