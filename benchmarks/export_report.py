"""What each TFLite variant costs in quality and buys in size and speed.

    python -m benchmarks.export_report M.keras [M2.keras ...] [--limit N] [--data DIR] \
        [--representative train/lists/train.txt --data_root ../shared/datasets] [--tile 256] \
        [--parts quality,latency]

For every ``.keras`` model: exports float32, float16 and int8 to a temporary folder (int8
calibrated on training images, never the evaluation set), then prints
- file size per variant;
- PSNR of the whole LiteRT pipeline (tables -> Q-map -> tiles -> signature) on LIVE1 at QF 10
  and 40 (colour models on LIVE1_color in RGB, grayscale ones on LIVE1_gray in Y), next to
  the Keras pipeline's PSNR on the same images, the drop in dB, and the PSNR between the two
  pipelines' outputs on the image where they differ most (how closely the on-device pipeline
  reproduces Keras);
- LiteRT (XNNPACK) latency per signature in ms per megapixel with 1 and 2 threads, measured
  alternately in the same run so their ratio is fair. DAQE exits run a batch of
  ``patch_size`` patches covering one tile, the other signatures one tile (a cascade's stage_m / head_m
  pieces are not timed apart: together they are exit_m).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.jpeg_baselines import default_data_dir
from daqe_tf.evaluation import load_image as load_eval_image
from daqe_tf.inference.litert_runner import LiteRTModel
from daqe_tf.inference.models import load_model
from daqe_tf.inference.pipeline import enhance_pixels, jpeg_evidence
from daqe_tf.io import list_image_files, load_image
from daqe_tf.jpeg.simulate import compress
from daqe_tf.metrics import evaluate_pair
from export.converter import VARIANTS, export_tflite

QUALITIES = (10, 40)
ROOT = Path(__file__).resolve().parents[1]


def quality_table(keras_model, litert: dict, files: list[Path], exit_index: int | None) -> dict:
    """Mean PSNR per (runtime, QF) over ``files`` ("jpeg", "keras", each variant), and per
    (variant, QF, "vs keras") the PSNR between its and the Keras pipeline's output on the worst image."""
    grayscale = keras_model.image_channels == 1
    scores: dict = {}
    on = "y" if grayscale else "rgb"
    for path in files:
        reference = load_eval_image(path, grayscale)
        for quality in QUALITIES:
            jpeg = compress(reference, quality)
            evidence = jpeg_evidence(load_image(jpeg.data))
            scores.setdefault(("jpeg", quality), []).append(evaluate_pair(reference, jpeg.decoded, on=on).psnr)
            keras_output = enhance_pixels(jpeg.decoded, keras_model, evidence, exit_index=exit_index)
            scores.setdefault(("keras", quality), []).append(evaluate_pair(reference, keras_output, on=on).psnr)
            for name, model in litert.items():
                output = enhance_pixels(jpeg.decoded, model, evidence, exit_index=exit_index)
                scores.setdefault((name, quality), []).append(evaluate_pair(reference, output, on=on).psnr)
                scores.setdefault((name, quality, "vs keras"), []).append(evaluate_pair(keras_output, output, on=on).psnr)
    # "vs keras": the worst image (identical outputs score inf); the rest are means over the images
    return {key: float(np.min(values) if key[-1] == "vs keras" else np.mean(values)) for key, values in scores.items()}


def signature_inputs(meta: dict, key: str, tile: int) -> dict:
    """Inputs for one timing call of signature ``key``: one tile, or a tile's worth of DAQE patches."""
    rng = np.random.default_rng(0)
    batch, side = 1, tile
    if meta["family"] == "daqe" and key.startswith("exit_"):
        side = meta["patch_size"]
        batch = (tile // side) ** 2
    return {
        "image": rng.uniform(0, 1, (batch, side, side, meta["image_channels"])).astype(np.float32),
        "qmap": np.full((batch, side, side, meta["qmap_channels"]), 0.6, np.float32),
    }


def latency_rows(path: Path, tile: int, repeats: int) -> list[tuple[str, float, float]]:
    """(signature, ms/MP with 1 thread, ms/MP with 2 threads), medians of ``repeats`` alternating runs."""
    runners = {threads: LiteRTModel(path, num_threads=threads) for threads in (1, 2)}
    meta = runners[1].metadata
    rows = []
    for key in runners[1].signature_keys():
        if key.startswith(("stage_", "head_")):
            continue  # a cascade's pieces: together they cost what exit_<m> does, which is timed
        inputs = signature_inputs(meta, key, tile)
        megapixels = inputs["image"].shape[0] * inputs["image"].shape[1] * inputs["image"].shape[2] / 1e6
        times: dict = {1: [], 2: []}
        for runner in runners.values():
            runner.run(key, inputs)  # warm-up: allocation and XNNPACK set-up
        for _ in range(repeats):
            for threads, runner in runners.items():
                start = time.perf_counter()
                runner.run(key, inputs)
                times[threads].append(time.perf_counter() - start)
        rows.append((key, *(1e3 * statistics.median(times[t]) / megapixels for t in (1, 2))))
    return rows


def report(model_path: str, args, images: list[Path]) -> None:
    keras_model = load_model(model_path)
    grayscale = keras_model.image_channels == 1
    eval_set = "LIVE1_gray" if grayscale else "LIVE1_color"
    files = list_image_files(Path(args.data or default_data_dir()) / eval_set)[: args.limit]
    exit_index = None if args.exit is None else args.exit % keras_model.num_exits
    scored = "routed (DAQE) or the deepest" if exit_index is None else exit_index
    print(f"\n## {model_path} ({type(keras_model).__name__}, {keras_model.image_channels} channel(s), exit {scored})\n")
    with tempfile.TemporaryDirectory(prefix="daqe_export_report_") as folder:
        paths = {variant: Path(folder) / f"model_{variant}.tflite" for variant in VARIANTS}
        export_tflite(keras_model, paths, tile=args.tile, representative_images=images, calibration_samples=args.calibration_samples)
        if "quality" in args.parts:
            litert = {variant: LiteRTModel(path, num_threads=2) for variant, path in paths.items()}
            scores = quality_table(keras_model, litert, files, exit_index)
            space = "Y" if grayscale else "RGB"
            print(f"PSNR ({space}) on {len(files)} image(s) of {eval_set}; drop = Keras - LiteRT; "
                  "vs Keras = PSNR between the LiteRT and the Keras pipeline's outputs on the image where they differ most\n")
            print("| runtime | size (MB) | " + " | ".join(f"QF{q} PSNR | QF{q} drop | QF{q} vs Keras" for q in QUALITIES) + " |")
            print("|---|---|" + "---|---|---|" * len(QUALITIES))
            print("| JPEG | – | " + " | ".join(f"{scores[('jpeg', q)]:.2f} | – | –" for q in QUALITIES) + " |")
            print("| Keras | – | " + " | ".join(f"{scores[('keras', q)]:.2f} | – | –" for q in QUALITIES) + " |")
            for variant, path in paths.items():
                cells = [f"{scores[(variant, q)]:.2f} | {scores[('keras', q)] - scores[(variant, q)]:+.3f} | "
                         f"{scores[(variant, q, 'vs keras')]:.1f}" for q in QUALITIES]
                print(f"| LiteRT {variant} | {os.path.getsize(path) / 1e6:.3f} | " + " | ".join(cells) + " |")
        if "latency" not in args.parts:
            return
        print(f"\nLiteRT (XNNPACK) latency, ms per megapixel, median of {args.repeats} (tile {args.tile})\n")
        print("| variant | signature | 1 thread | 2 threads | 1 / 2 threads |")
        print("|---|---|---|---|---|")
        for variant, path in paths.items():
            for key, one, two in latency_rows(path, args.tile, args.repeats):
                print(f"| {variant} | {key} | {one:.1f} | {two:.1f} | {one / two:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help=".keras files")
    parser.add_argument("--data", default=None, help="evaluation folder holding LIVE1_color / LIVE1_gray")
    parser.add_argument("--limit", type=int, default=None, help="only the first N evaluation images")
    parser.add_argument("--exit", type=int, default=None,
                        help="exit scored in the PSNR table (default: DAQE routes by its routing, QGAUNet the deepest)")
    parser.add_argument("--representative", default=str(ROOT / "train" / "lists" / "train.txt"), help="int8 calibration images")
    parser.add_argument("--data_root", default=str(ROOT.parent / "shared" / "datasets"), help="root of a list file's paths")
    parser.add_argument("--calibration_samples", type=int, default=32)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--parts", default="quality,latency",
                        help="quality (PSNR per variant), latency (ms/MP per signature), or both; time latency on an idle machine")
    args = parser.parse_args(argv)
    args.parts = set(args.parts.split(","))
    if not args.parts <= {"quality", "latency"}:
        parser.error(f"--parts takes quality and/or latency, got {sorted(args.parts)}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    images = list_image_files(args.representative, args.data_root, recursive=True)
    for model_path in args.models:
        report(model_path, args, images)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
