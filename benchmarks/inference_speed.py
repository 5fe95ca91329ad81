"""Seconds per megapixel of each exit, in Keras and in LiteRT (XNNPACK, 1 and 2 threads), beside its MACs.

    python -m benchmarks.inference_speed --recipes base,block_naf,block_inverted,rebalance \\
        --model_config '{"patch_size": 128, "stem_stride": 1, "widths": [16, 24, 48, 96], ...}'
    python -m benchmarks.inference_speed SPEC [SPEC ...]      # .keras files or JSON configs

Why: a depthwise block does fewer multiply-accumulates per byte it moves than a dense 3x3, so
MACs flatter it; what a phone or a CPU pays is wall time. Each model (random weights: the cost
does not depend on them) runs every exit on a batch of its routing patches covering
``--megapixels``, as the routing runtime feeds them: compiled Keras on this backend, and the
model's float16 LiteRT export (the shipped variant) with 1 and 2 threads. Every timing is the median of
``--repeats`` runs taken in turn with the other models' runs, so the ratios between rows are fair
on a machine whose load changes; the absolute numbers are only as idle as the machine was.
``--recipes`` names ``benchmarks.recipe_sweep`` recipes (their model changes on ``--model_config``),
a SPEC is what ``benchmarks.model_complexity`` takes.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _models(args) -> list[tuple[str, object]]:
    from benchmarks.model_complexity import load_spec
    from benchmarks.recipe_sweep import recipe_model_config
    from daqe_tf.models import build_model

    models = [load_spec(spec)[:2] for spec in args.specs]
    for name in filter(None, args.recipes.split(",")):
        config = recipe_model_config(name, {"texture": "cnn", **args.model_config}, ["--family=daqe"])
        models.append((name, build_model("daqe", 1 if args.gray else 3, **config)))
    if not models:
        raise SystemExit("name at least one SPEC or --recipes")
    return models


def patch_inputs(model, megapixels: float) -> dict:
    """Random patches of the model's routing size (or 256-px tiles for a QGA U-Net) covering ``megapixels``."""
    side = getattr(model, "patch_size", 256)
    batch = max(1, round(megapixels * 1e6 / side**2))
    rng = np.random.default_rng(0)
    return {"image": rng.uniform(0, 1, (batch, side, side, model.image_channels)).astype(np.float32),
            "qmap": np.full((batch, side, side, model.qmap_channels), 0.6, np.float32)}


def speed_table(models, megapixels: float, repeats: int, batch: int) -> str:
    from daqe_tf.complexity import macs_per_pixel
    from daqe_tf.inference.compiled import compiled_forward
    from daqe_tf.inference.litert_runner import LiteRTModel
    from export.converter import export_tflite

    runs = {}  # (model, exit, runtime) -> callable running the whole input once
    with tempfile.TemporaryDirectory(prefix="daqe_speed_") as tmp:
        for i, (name, model) in enumerate(models):
            inputs = patch_inputs(model, megapixels)
            path = Path(tmp) / f"model{i}.tflite"
            export_tflite(model, {"float16": path}, tile=256)
            runners = {threads: LiteRTModel(path, num_threads=threads) for threads in (1, 2)}
            for k in range(model.num_exits):
                forward = compiled_forward(model, k)

                def keras_run(forward=forward, inputs=inputs):
                    for s in range(0, len(inputs["image"]), batch):
                        np.asarray(forward(inputs["image"][s : s + batch], inputs["qmap"][s : s + batch]))

                runs[(name, k, "keras")] = keras_run
                for threads, runner in runners.items():
                    runs[(name, k, f"litert{threads}")] = lambda runner=runner, inputs=inputs, k=k: runner(inputs, k)
        for run in runs.values():
            run()  # warm-up: tracing, allocation, XNNPACK set-up
        times = {key: [] for key in runs}
        for _ in range(repeats):
            for key, run in runs.items():
                start = time.perf_counter()
                run()
                times[key].append(time.perf_counter() - start)
    covered = {name: patch_inputs(model, megapixels)["image"].shape for name, model in models}
    lines = ["| model | params | exit | kMAC/px | Keras s/MP | LiteRT s/MP, 1 thread | LiteRT s/MP, 2 threads |",
             "|---|---|---|---|---|---|---|"]
    for name, model in models:
        b, h, w, _ = covered[name]
        mp = b * h * w / 1e6
        for k in range(model.num_exits):
            cells = [statistics.median(times[(name, k, r)]) / mp for r in ("keras", "litert1", "litert2")]
            lines.append(f"| {name} | {model.count_params():,} | {k} | {macs_per_pixel(model, k, h) / 1e3:.1f} | "
                         + " | ".join(f"{c:.3f}" for c in cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", help="`.keras` files or JSON configs (as benchmarks.model_complexity)")
    parser.add_argument("--recipes", default="", help="comma-separated benchmarks.recipe_sweep recipes")
    parser.add_argument("--model_config", type=json.loads, default={}, help="DAQE config the recipes change")
    parser.add_argument("--gray", action="store_true", help="recipes as one-channel models")
    parser.add_argument("--megapixels", type=float, default=0.5, help="pixels per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="patches per Keras call")
    args = parser.parse_args(argv)
    if args.megapixels <= 0 or args.repeats < 1 or args.batch < 1:
        raise SystemExit("--megapixels must be positive, --repeats and --batch at least 1")
    import keras

    print(f"Keras backend {keras.backend.backend()}; float16 LiteRT exports; {args.megapixels:g} MP of patches per run, "
          f"median of {args.repeats} interleaved runs")
    print(speed_table(_models(args), args.megapixels, args.repeats, args.batch))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
