"""Training throughput on this machine: does the on-the-fly JPEG input keep up with the model?

    python -m benchmarks.training_throughput [--data FOLDER] [--steps 20] [--batch N] [--workers 1,2]
    KERAS_BACKEND=jax python -m benchmarks.training_throughput ...      # the JAX trainer

For each model spec (default: the shipped defaults' training configs, the core QGA U-Net in colour
and gray, and the DAQE default with the transformer texture) it builds the run's trainer (``train.loop.Trainer``, or
``train.jax_loop.JaxTrainer`` under JAX) and prints one Markdown row:

- input: patches per second of the trainer's own input pipeline (the sampler with on-the-fly
  JPEG; ``PairSampler``, or ``ClusterPairSampler`` with defocus labels for DAQE) through
  ``Trainer.make_dataset`` (tf.data, 1 generator worker), through a tf.data interleave of
  ``--workers`` generators, or (JAX) through ``JaxStep.batches``;
- model: optimizer steps per second, and patches per second, of the trainer's train step on
  one batch held in memory (the step alone, after a compiling warm-up).

The input keeps up when its patches/s is at least the model's (the two share the CPU cores).
A SPEC is a ``*.config.json`` of a run (``train.config.TrainConfig``) or a JSON object of
TrainConfig fields. Without ``--data``, generated photo-like images (``daqe_tf.sample``) are used.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

import keras
from PIL import Image

_QGA_UNET = {"family": "qga_unet", "patch_size": 96, "batch_size": 16,
             "model_config": {"widths": [48, 64, 96, 128], "encoder_blocks": [2, 2, 2], "decoder_blocks": [2, 1], "stem_stride": 2}}
DEFAULT_SPECS = [  # the shipped defaults' own training configs, the core QGA U-Net, and the DAQE transformer texture
    "daqe_tf/weights/daqe_cnn_color_r2_cascade.config.json",
    "daqe_tf/weights/daqe_cnn_gray_g3_cascade.config.json",
    json.dumps(_QGA_UNET),
    json.dumps({**_QGA_UNET, "grayscale": True}),
    '{"family": "daqe", "patch_size": 128, "batch_size": 8, "model_config": {"patch_size": 128, "texture": "transformer"}}',
]


def load_spec(spec: str, data: str, batch: int | None, work: Path):
    """(label, TrainConfig) of a spec, training on ``data`` with ``batch`` (default: the spec's own batch
    size, else 16) and writing only under ``work``."""
    from train.config import TrainConfig

    if spec.endswith(".json") and Path(spec).is_file():
        fields, label = json.loads(Path(spec).read_text()), Path(spec).name.removesuffix(".config.json")
    else:
        fields = json.loads(spec)
        label = " ".join([fields.get("family", "qga_unet"), fields.get("model_config", {}).get("texture", ""),
                          "gray" if fields.get("grayscale") else "colour"]).replace("  ", " ")
    run_dir = work / f"run{len(list(work.glob('run*')))}"
    cfg = TrainConfig.from_dict({**fields, "run_dir": str(run_dir), "train_data": data, "val_data": None,
                                 "data_root": None, "batch_size": batch or fields.get("batch_size", 16), "label_cache_dir": str(work / "labels")})
    return label, cfg


def make_trainer(cfg):
    """The trainer of ``cfg`` for the active Keras backend, its log lines kept off the table."""
    with contextlib.redirect_stdout(io.StringIO()):
        if keras.backend.backend() == "jax":
            from train.jax_loop import JaxTrainer

            return JaxTrainer(cfg)
        from train.loop import Trainer

        return Trainer(cfg)


def interleaved_dataset(sampler, workers: int):
    """tf.data over ``workers`` parallel generators; generator w makes batches w, w + workers, ..."""
    import tensorflow as tf

    example = sampler.batch(0)
    spec = tf.nest.map_structure(lambda a: tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype)), example)

    def batches(worker):
        for index in range(int(worker), 1 << 62, workers):
            yield sampler.batch(index)

    return tf.data.Dataset.range(workers).interleave(
        lambda w: tf.data.Dataset.from_generator(batches, args=(w,), output_signature=spec),
        cycle_length=workers, num_parallel_calls=workers, deterministic=True,
    ).prefetch(8)


def rate(iterator, steps: int, warmup: int = 1) -> float:
    """Items per second of ``next(iterator)`` after ``warmup`` items."""
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return steps / (time.perf_counter() - start)


def input_rates(trainer, workers: list[int], steps: int) -> dict:
    """Batches per second of the input pipeline, per number of generator workers."""
    with contextlib.redirect_stdout(io.StringIO()):
        if keras.backend.backend() == "jax":
            return {1: rate(trainer.backend.batches(trainer.make_sampler(), 0), steps)}
        dataset = trainer.make_dataset()  # also creates trainer.sampler
    return {n: rate(iter(dataset if n == 1 else interleaved_dataset(trainer.sampler, n)), steps) for n in workers}


def step_rate(trainer, steps: int) -> float:
    """Optimizer steps per second of the trainer's train step on one in-memory batch."""
    if keras.backend.backend() == "jax":
        import jax

        with contextlib.redirect_stdout(io.StringIO()):
            batch = trainer.make_sampler().batch(0)
        train_step, state = trainer.make_train_step(), [trainer.backend.arrays()]

        def steps_():
            while True:
                state[0], terms = train_step(state[0], batch)
                yield jax.block_until_ready(terms)

        return rate(steps_(), steps, warmup=2)
    import tensorflow as tf

    batch = trainer.sampler.batch(0)
    data = trainer.strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch).repeat())
    iterator, train_step, go_on = iter(data), trainer.make_train_step(), tf.constant(0.0)

    def steps_():
        while True:
            yield train_step(iterator, go_on)[0].numpy()

    return rate(steps_(), steps, warmup=2)


def generated_images(folder: Path, count: int):
    from daqe_tf.sample import make_sample_image

    for i in range(count):
        Image.fromarray(make_sample_image(384, 320, seed=i)).save(folder / f"generated{i}.png")


def throughput_table(specs, data: str | None, steps: int, batch: int, workers: list[int], images: int) -> str:
    source = data or f"{images} generated 384x320 images"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if data is None:
            data = str(work / "images")
            os.makedirs(data)
            generated_images(Path(data), images)
        workers = workers if keras.backend.backend() != "jax" else [1]
        header = ["model", "patch", "batch"] + [f"input patches/s ({n} worker{'s' if n > 1 else ''})" for n in workers]
        header += ["train steps/s", "train patches/s", "input / train"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for spec in specs:
            label, cfg = load_spec(spec, data, batch, work)
            trainer = make_trainer(cfg)
            inputs = input_rates(trainer, workers, steps)
            steps_per_s = step_rate(trainer, steps)
            size = cfg.batch_size
            cells = [label, str(cfg.patch_size), str(size)] + [f"{inputs[n] * size:.1f}" for n in workers]
            cells += [f"{steps_per_s:.2f}", f"{steps_per_s * size:.1f}", f"{max(inputs.values()) / steps_per_s:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
            keras.backend.clear_session()
    note = (f"Keras backend {keras.backend.backend()}, {os.cpu_count()} CPUs, {steps} timed steps, data: {source}. "
            "input / train >= 1: the input pipeline keeps up with the train step.")
    return "\n".join([note, "", *lines])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", default=DEFAULT_SPECS, help="a run's .config.json or a JSON object of TrainConfig fields")
    parser.add_argument("--data", help="folder (or list file) of training images; default: generated images")
    parser.add_argument("--images", type=int, default=8, help="how many images to generate without --data")
    parser.add_argument("--steps", type=int, default=20, help="timed batches and train steps per model")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: each spec's own, else 16)")
    parser.add_argument("--workers", default="1,2", help="comma-separated numbers of parallel generator workers (tf.data)")
    args = parser.parse_args(argv)
    workers = [int(n) for n in args.workers.split(",")]
    print(throughput_table(args.specs, args.data, args.steps, args.batch, workers, args.images))


if __name__ == "__main__":
    main()
