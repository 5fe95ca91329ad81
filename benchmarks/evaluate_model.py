"""Quality and speed of trained models on the published protocol.

    python -m benchmarks.evaluate_model [--color M.keras] [--gray M.keras] [--data DIR]

Scores every exit of the colour model on LIVE1_color (RGB) and of the grayscale
model on LIVE1_gray and Classic5 (Y) at QF 10/20/30/40, next to JPEG and the
published methods (../shared/reference/published.md), and times the whole
pipeline (tables -> Q-map -> tiles -> model) in seconds per megapixel.
Defaults: the shipped models and the evaluation folder of benchmarks.jpeg_baselines.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.jpeg_baselines import default_data_dir
from daqe_tf.evaluation import evaluate_folder
from daqe_tf.inference.models import default_model_path, load_model
from daqe_tf.inference.pipeline import enhance_pixels, jpeg_evidence
from daqe_tf.io import load_image

QUALITIES = (10, 20, 30, 40)
# (set, metric space, grayscale model?)
SETS = (("LIVE1_color", "rgb", False), ("LIVE1_gray", "y", True), ("Classic5", "y", True))
# Published PSNR | SSIM | PSNR-B (see shared/reference/published.md for sources).
PUBLISHED = {
    "LIVE1_color": {
        "QGAC": {10: (27.65, 0.819, 27.43), 20: (29.88, 0.882, 29.56), 30: (31.17, 0.908, 30.77), 40: (32.08, 0.922, 31.64)},
        "FBCNN": {10: (27.77, 0.816, 27.51), 20: (30.11, 0.881, 29.70), 30: (31.43, 0.908, 30.92), 40: (32.34, 0.923, 31.80)},
        "ARCNN": {10: (26.91, None, None)},
    },
    "LIVE1_gray": {
        "ARCNN": {10: (28.96, .808, 28.68), 20: (31.29, .873, 30.76), 30: (32.67, .904, 32.14), 40: (33.61, .920, 33.11)},
        "QGAC": {10: (29.51, .825, 29.13), 20: (31.83, .888, 31.25), 30: (33.20, .914, 32.47), 40: (34.16, .929, 33.36)},
        "FBCNN": {10: (29.75, .827, 29.40), 20: (32.13, .889, 31.57), 30: (33.54, .916, 32.83), 40: (34.53, .931, 33.74)},
    },
    "Classic5": {
        "ARCNN": {10: (29.03, .793, 28.76), 20: (31.15, .852, 30.59), 30: (32.51, .881, 31.98), 40: (33.32, .895, 32.79)},
        "QGAC": {10: (29.84, .812, 29.43), 20: (31.98, .869, 31.37), 30: (33.22, .892, 32.42), 40: (34.05, .905, 33.12)},
        "FBCNN": {10: (30.12, .822, 29.80), 20: (32.31, .872, 31.74), 30: (33.54, .894, 32.78), 40: (34.35, .907, 33.48)},
    },
}


def make_enhancer(model, exit_index: int, timer: dict):
    def enhance_fn(decoded: np.ndarray, jpeg_bytes: bytes) -> np.ndarray:
        start = time.perf_counter()
        evidence = jpeg_evidence(load_image(jpeg_bytes))
        out = enhance_pixels(decoded, model, evidence, exit_index=exit_index)
        timer["seconds"] += time.perf_counter() - start
        timer["megapixels"] += decoded.shape[0] * decoded.shape[1] / 1e6
        return out

    return enhance_fn


def fmt(metrics) -> str:
    psnr, ssim, psnr_b = metrics
    if ssim is None:
        return f"{psnr:.2f}"
    return f"{psnr:.2f} \\| {ssim:.3f} \\| {psnr_b:.2f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--color", default=str(default_model_path(False)))
    parser.add_argument("--gray", default=str(default_model_path(True)))
    parser.add_argument("--data", default=None)
    parser.add_argument("--sets", default=",".join(s for s, _, _ in SETS))
    parser.add_argument("--qualities", default=",".join(map(str, QUALITIES)))
    parser.add_argument("--exits", default="all", help="'all' or comma-separated exit indices")
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    args = parser.parse_args(argv)
    data = args.data or default_data_dir()
    qualities = [int(q) for q in args.qualities.split(",")]
    models = {False: load_model(args.color), True: load_model(args.gray)}
    raw = {}
    rows = []
    for name, space, grayscale in SETS:
        if name not in args.sets.split(","):
            continue
        model = models[grayscale]
        exits = range(model.num_exits) if args.exits == "all" else [int(e) for e in args.exits.split(",")]
        jpeg = evaluate_folder(f"{data}/{name}", qualities, on=space, grayscale=grayscale, progress=False)
        rows.append((name, "JPEG", {q: (m.psnr, m.ssim, m.psnr_b) for q, m in jpeg.items()}, ""))
        for exit_index in exits:
            timer = {"seconds": 0.0, "megapixels": 0.0}
            ours = evaluate_folder(f"{data}/{name}", qualities, make_enhancer(model, exit_index, timer), on=space,
                                   grayscale=grayscale, progress=False)
            speed = timer["seconds"] / timer["megapixels"]
            rows.append((name, f"ours, exit {exit_index}", {q: (m.psnr, m.ssim, m.psnr_b) for q, m in ours.items()}, f"{speed:.2f}"))
            raw[f"{name}/exit{exit_index}"] = {"metrics": {q: vars(m) for q, m in ours.items()}, "seconds_per_mp": speed}
            gains = {q: ours[q].psnr - jpeg[q].psnr for q in qualities}
            raw[f"{name}/exit{exit_index}"]["psnr_gain"] = gains
        for method, numbers in PUBLISHED[name].items():
            rows.append((name, f"{method} (published)", numbers, ""))
    print("PSNR \\| SSIM \\| PSNR-B; colour on RGB, gray on Y; s/MP = whole pipeline on this CPU")
    print("| set | method | " + " | ".join(f"QF{q}" for q in qualities) + " | s/MP |")
    print("|---|---|" + "---|" * len(qualities) + "---|")
    for name, method, numbers, speed in rows:
        cells = [fmt(numbers[q]) if q in numbers else "–" for q in qualities]
        print(f"| {name} | {method} | " + " | ".join(cells) + f" | {speed} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
