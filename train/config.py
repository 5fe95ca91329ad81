"""The resolved training configuration: one dataclass, saved as JSON in the run folder."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from train.degradations import DegradationConfig


@dataclasses.dataclass
class TrainConfig:
    run_dir: str
    train_data: str
    val_data: str | None = None
    data_root: str | None = None
    family: str = "qga_unet"
    grayscale: bool = False
    model_config: dict = dataclasses.field(default_factory=dict)
    steps: int = 20000
    schedule_steps: int = 0  # steps the LR schedule spans; 0 = steps
    batch_size: int = 16
    patch_size: int = 96
    learning_rate: float = 2e-3
    min_learning_rate: float = 1e-5
    warmup_steps: int = 200
    weight_decay: float = 0.0
    ema_momentum: float = 0.995
    loss: str = "l2"
    exit_weights: tuple = ()
    train_layers: tuple = ()  # names of the model's layers to train; the others are frozen (empty = all)
    cluster_exit_weight: float = 1.0  # DAQE: extra weight on the exit of each batch's own cluster
    defocus_loss_weight: float = 1.0  # DAQE: weight of the defocus head's L1 on cell targets
    label_cache_dir: str = "data_cache/defocus"  # DAQE: pseudo-label cache
    perceptual_weight: float = 0.0  # VGG19 feature L1 on every exit (0 = off)
    vgg19_weights: str | None = None  # the user's ImageNet VGG19 notop weights file, for perceptual_weight
    adversarial_weight: float = 0.0  # PatchGAN generator loss on every exit (0 = off)
    discriminator_lr: float = 1e-4
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 250
    eval_every: int = 1000
    eval_qualities: tuple = (10, 30)
    eval_crop: int = 256
    eval_images: int = 10
    time_limit_minutes: float = 0.0
    snapshot_every: int = 0  # steps between snapshots/step_NNNNNN.keras (EMA weights) for learning curves; 0 = none
    init_weights: str | None = None  # a .keras file of the same architecture to start from (fresh optimizer)
    strategy: str = "auto"  # auto | mirrored | multiworker (train.loop.make_strategy)
    mixed_precision: bool = False  # mixed_float16 compute; saved .keras models stay float32
    degradation: DegradationConfig = dataclasses.field(default_factory=DegradationConfig)

    @property
    def image_channels(self) -> int:
        return 1 if self.grayscale else 3

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        data = dict(data)
        data["degradation"] = DegradationConfig(**data.get("degradation", {}))
        for key in ("exit_weights", "train_layers", "eval_qualities"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)

    def save(self, path):
        """Write atomically: another worker may be reading the file while the chief rewrites it."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2))
        os.replace(tmp, path)
