"""A training run's folder: its checks, log, checkpoints, config, ``.keras`` files and TensorBoard summaries.

Under multi-worker training only the chief writes here; the other workers train in lockstep and
write nothing, so they cannot clobber the chief's files. Every worker reads the folder's
checkpoint when resuming, so the folder must be storage that all workers see. The checkpoint
format is ``train.checkpoint``'s, the same for every backend.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from train import checkpoint
from train.config import TrainConfig


class RunFolder:
    """``cfg.run_dir`` of one run; ``chief``: whether this process writes into it.

    ``resume=False`` refuses a folder that holds anything, so an earlier run is never
    overwritten or silently deleted.
    """

    def __init__(self, run_dir, chief: bool, resume: bool):
        self.path = Path(run_dir)
        self.chief = chief
        # Every worker checks here; the chief writes config.json only after the workers agree (a
        # collective that waits for every worker), so no worker can see the chief's own new files.
        if not resume and self.path.is_dir() and any(self.path.iterdir()):
            raise FileExistsError(
                f"{self.path} already holds a run ({', '.join(sorted(p.name for p in self.path.iterdir())[:5])}); "
                "--noresume starts only in a new or empty folder: pick another --run_dir, move this one away, "
                "or leave --resume on to continue it")
        if self.chief:
            self.path.mkdir(parents=True, exist_ok=True)
        self.writer = None  # TensorBoard, while a TensorFlow run trains

    def log(self, message: str, **record):
        """Print ``message``; the chief also appends ``record`` (when given) to ``log.jsonl``."""
        print(message, flush=True)
        if record and self.chief:
            with open(self.path / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    # --- checkpoints and config ---------------------------------------------------
    def latest_checkpoint(self) -> Path | None:
        return checkpoint.latest(self.path)

    def restore(self, found: Path, model, optimizer, discriminator=None) -> dict:
        return checkpoint.restore(found, model, optimizer, discriminator)

    def save_checkpoint(self, model, optimizer, state: dict, discriminator=None) -> Path:
        return checkpoint.save(self.path, model, optimizer, state, discriminator)

    def save_config(self, cfg: TrainConfig) -> None:
        cfg.save(self.path / "config.json")

    def config_changes(self, cfg: TrainConfig) -> dict:
        """Settings of ``cfg`` that differ from the folder's saved config (a resume may change them).

        A setting the saved config predates counts only when it differs from its default.
        """
        path = self.path / "config.json"
        if not path.is_file():
            return {}
        before, now = json.loads(path.read_text()), json.loads(json.dumps(cfg.to_dict()))
        defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
        return {k: [before.get(k), v] for k, v in now.items()
                if (before[k] != v if k in before else k not in defaults or defaults[k] != v)}

    def save_model(self, model, name: str) -> None:
        """``model`` as ``.keras`` file ``name`` (atomically)."""
        from daqe_tf.inference.models import save_model

        save_model(model, self.path / name)

    # --- TensorBoard ------------------------------------------------------------------
    def open_summaries(self) -> None:
        """Start writing TensorBoard summaries to ``tensorboard/`` (the chief of a TensorFlow run)."""
        import tensorflow as tf

        self.writer = tf.summary.create_file_writer(str(self.path / "tensorboard"))

    def close_summaries(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def summaries(self, step: int, scalars: dict, images: dict | None = None):
        """Write scalars (and uint8 HxW[xC] images) at ``step`` to ``tensorboard/`` while it is open.

        ``tf.summary.write`` with the scalars/images plugin metadata writes what
        ``tf.summary.scalar``/``image`` write, without needing the tensorboard package to train."""
        if self.writer is None:
            return
        import tensorflow as tf
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
