"""DAQE with dynamic exits against the same model forced through its deepest exit and a core QGA U-Net.

    python -m benchmarks.daqe_eval --color DAQE_CNN.keras DAQE_TF.keras QGA.keras \\
        --gray DAQE_CNN_G.keras QGA_G.keras [--data DIR] [--qualities 10,20,30,40] [--max_images N]

Why: DAQE's claim is quality close to running every patch through the deepest exit at a fraction
of its compute, because defocused patches leave early. So each DAQE model (CNN or Transformer
texture: any ``.keras`` on the command line) is scored twice through the same patch plan and
blending: routed by predicted defocus ("dynamic") and with every patch forced through the deepest
exit ("deepest"); QGAUNet models run their deepest exit through the tile pipeline. Colour models
run on LIVE1_color (RGB metrics), gray models on LIVE1_gray and Classic5 (Y), with the evaluation
protocol of ``benchmarks.evaluate_model``.

Compute is multiply-accumulates per image pixel (``daqe_tf.complexity``: convolutions and dense
layers): for DAQE the per-exit cost of one patch times the patches each exit enhanced, plus the
defocus head on its windows when routing, over the image area, so patch overlap is paid for; for
QGAUNet the deepest exit on each tile. Printed: PSNR | SSIM | PSNR-B per QF, then per QF the
MACs/px of each mode, the compute saved by routing and the share of patches per exit (cluster).
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.jpeg_baselines import default_data_dir
from daqe_tf.complexity import count_defocus_macs, count_macs
from daqe_tf.evaluation import evaluate_folder
from daqe_tf.inference.models import load_model
from daqe_tf.inference.pipeline import enhance
from daqe_tf.inference.routing import DEFOCUS_OVERLAP, is_defocus_aware
from daqe_tf.inference.tiling import plan_tiles

QUALITIES = (10, 20, 30, 40)
SETS = (("LIVE1_color", "rgb", False), ("LIVE1_gray", "y", True), ("Classic5", "y", True))
TILE, TILE_OVERLAP = 512, 32  # the pipeline's defaults for QGAUNet tiles and DAQE defocus windows


class ComputeMeter:
    """MACs of the calls an enhancement made, from ``count_macs`` per call shape (cached)."""

    def __init__(self, model):
        self.model = model
        self._costs: dict = {}

    def _cost(self, key, count):
        if key not in self._costs:
            self._costs[key] = count()
        return self._costs[key]

    def daqe(self, routing) -> int:
        """Each patch through its exit, plus the defocus head on its windows when it routed."""
        size = self.model.patch_size
        per_exit = [self._cost(("exit", k), lambda k=k: count_macs(self.model, size, size, k)) for k in range(routing.num_exits)]
        total = int(np.dot(routing.exit_counts(), per_exit))
        if routing.defocus is not None:
            for t in plan_tiles(routing.height, routing.width, TILE, DEFOCUS_OVERLAP, 16):
                shape = (t.y1 - t.y0, t.x1 - t.x0)
                total += self._cost(("defocus", shape), lambda s=shape: count_defocus_macs(self.model, *s))
        return total

    def tiles(self, height: int, width: int, exit_index: int) -> int:
        """The tile pipeline: one exit on every tile (each padded to the stride inside the model)."""
        total = 0
        for t in plan_tiles(height, width, TILE, TILE_OVERLAP, 16):
            shape = (t.y1 - t.y0, t.x1 - t.x0)
            total += self._cost(("tile", exit_index, shape), lambda s=shape: count_macs(self.model, *s, exit_index))
        return total


def score(model, mode: str, folder: Path, space: str, grayscale: bool, qualities, max_images: int):
    """(metrics per QF, {QF: {"macs", "pixels", "exits"}}) of one model in one mode on one set."""
    meter = ComputeMeter(model)
    usage = defaultdict(lambda: {"macs": 0, "pixels": 0, "exits": np.zeros(model.num_exits, np.int64)})
    exit_index = None if mode == "dynamic" else -1

    def enhance_fn(decoded: np.ndarray, jpeg_bytes: bytes) -> np.ndarray:
        result = enhance(jpeg_bytes, model, exit_index=exit_index)
        entry = usage[result.evidence.quality]
        height, width = decoded.shape[:2]
        if result.routing is not None:
            entry["macs"] += meter.daqe(result.routing)
            entry["exits"] += result.routing.exit_counts()
        else:
            entry["macs"] += meter.tiles(height, width, result.exit_index)
        entry["pixels"] += height * width
        return result.pixels

    metrics = evaluate_folder(folder, qualities, enhance_fn, on=space, grayscale=grayscale, progress=False, max_images=max_images)
    return metrics, dict(usage)


def label(path: str, model) -> str:
    kind = f"DAQE {getattr(model, 'texture', '')}".strip() if is_defocus_aware(model) else type(model).__name__
    return f"{Path(path).name} ({kind})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--color", nargs="*", default=[], help="colour models (.keras): DAQE and/or QGAUNet")
    parser.add_argument("--gray", nargs="*", default=[], help="grayscale models (.keras): DAQE and/or QGAUNet")
    parser.add_argument("--data", default=None, help="evaluation folder (default: benchmarks.jpeg_baselines')")
    parser.add_argument("--sets", default=",".join(s for s, _, _ in SETS))
    parser.add_argument("--qualities", default=",".join(map(str, QUALITIES)))
    parser.add_argument("--max_images", type=int, default=0, help="first N images per set (0 = all; for quick checks)")
    args = parser.parse_args(argv)
    if not args.color and not args.gray:
        parser.error("give --color and/or --gray models")
    data = Path(args.data or default_data_dir())
    qualities = [int(q) for q in args.qualities.split(",")]
    models = {False: [(p, load_model(p)) for p in args.color], True: [(p, load_model(p)) for p in args.gray]}

    quality_rows, compute_rows = [], []
    for name, space, grayscale in SETS:
        if name not in args.sets.split(",") or not models[grayscale]:
            continue
        folder = data / name
        jpeg = evaluate_folder(folder, qualities, on=space, grayscale=grayscale, progress=False, max_images=args.max_images)
        quality_rows.append((name, "JPEG", "", jpeg))
        for path, model in models[grayscale]:
            modes = ("dynamic", "deepest") if is_defocus_aware(model) else ("deepest",)
            usage = {}
            for mode in modes:
                metrics, usage[mode] = score(model, mode, folder, space, grayscale, qualities, args.max_images)
                quality_rows.append((name, label(path, model), mode, metrics))
            for q in qualities:
                per_px = {mode: usage[mode][q]["macs"] / usage[mode][q]["pixels"] for mode in modes}
                row = {"set": name, "model": label(path, model), "qf": q, **per_px}
                if "dynamic" in per_px:
                    exits = usage["dynamic"][q]["exits"]
                    row["saved"] = 1 - per_px["dynamic"] / per_px["deepest"]
                    row["shares"] = exits / exits.sum()
                compute_rows.append(row)

    print("PSNR \\| SSIM \\| PSNR-B; colour on RGB, gray on Y. dynamic = exits by predicted defocus, deepest = every patch (or tile) through the deepest exit")
    print("| set | model | mode | " + " | ".join(f"QF{q}" for q in qualities) + " |")
    print("|---|---|---|" + "---|" * len(qualities))
    for name, model_label, mode, metrics in quality_rows:
        cells = [f"{m.psnr:.2f} \\| {m.ssim:.4f} \\| {m.psnr_b:.2f}" for m in (metrics[q] for q in qualities)]
        print(f"| {name} | {model_label} | {mode} | " + " | ".join(cells) + " |")
    print()
    print("MACs per image pixel (patch overlap and the defocus head included); saved = 1 - dynamic / deepest")
    print("| set | model | QF | MACs/px dynamic | MACs/px deepest | saved | patches per exit (0 = most defocused) |")
    print("|---|---|---|---|---|---|---|")
    for row in compute_rows:
        dynamic = f"{row['dynamic']:,.0f}" if "dynamic" in row else "–"
        saved = f"{100 * row['saved']:.0f}%" if "saved" in row else "–"
        shares = " / ".join(f"{100 * s:.0f}%" for s in row["shares"]) if "shares" in row else "–"
        print(f"| {row['set']} | {row['model']} | {row['qf']} | {dynamic} | {row['deepest']:,.0f} | {saved} | {shares} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
