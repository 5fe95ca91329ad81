"""DAQE with dynamic exits against the same model forced through its deepest exit and a core QGA U-Net.

    python -m benchmarks.daqe_eval --color DAQE_CNN.keras DAQE_TF.keras QGA.keras \\
        --gray DAQE_CNN_G.keras QGA_G.keras [--data DIR] [--qualities 10,20,30,40] [--max_images N] \\
        [--all_exits]

Why: DAQE's claim is quality close to running every patch through the deepest exit at a fraction
of its compute, because defocused patches leave early. So each DAQE model (CNN or Transformer
texture: any ``.keras`` on the command line) is scored twice through the same patch plan and
blending: routed by the model's routing (predicted defocus, its readout, or a cascade of readouts
after each branch: "dynamic") and with every patch forced through the deepest
exit; QGAUNet models run their deepest exit through the tile pipeline. ``--all_exits`` also forces
every other exit (DAQE: every patch of the plan through exit k; QGAUNet: exit k on every tile),
which answers the ablation directly: is routing by defocus better than one fixed exit of the same
model at the same compute, and better than the core model at the compute of each of its exits?
Colour models run on LIVE1_color (RGB metrics), gray models on LIVE1_gray and Classic5 (Y), with
the evaluation protocol of ``benchmarks.evaluate_model``.

Compute is multiply-accumulates per image pixel (``daqe_tf.complexity``: convolutions and dense
layers): for DAQE the per-exit cost of one patch times the patches each exit enhanced, plus the
defocus head on its windows when routing needs it (not for a cascade), over the image area, so
patch overlap is paid for; for
QGAUNet the exit on each tile. Printed: PSNR | SSIM | PSNR-B per QF and mode, MACs/px per QF and
mode, and for each DAQE model the targets per QF: compute saved by routing, PSNR lost
against all-deepest, and the share of patches per exit (cluster).
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.jpeg_baselines import default_data_dir
from daqe_tf.complexity import count_defocus_macs, count_macs
from daqe_tf.contracts import routes_patches
from daqe_tf.evaluation import evaluate_folder
from daqe_tf.inference.models import load_model
from daqe_tf.inference.pipeline import enhance
from daqe_tf.inference.tiling import plan_tiles
from daqe_tf.routing.runtime import DEFOCUS_OVERLAP

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
        """Each patch through its exit, plus the defocus head on its windows when it ran (routing by it)."""
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


def score(model, mode: str, folder: Path, space: str, grayscale: bool, qualities, max_images: int, earlier_jpeg=None):
    """(metrics per QF, {QF: {"macs", "pixels", "exits"}}) of one model in one mode on one set.

    ``mode``: "dynamic" (DAQE exits by the model's routing value) or "exit k" (every patch or tile through exit k).
    ``earlier_jpeg``: double compression, as in :func:`daqe_tf.evaluation.evaluate_folder`.
    """
    meter = ComputeMeter(model)
    usage = defaultdict(lambda: {"macs": 0, "pixels": 0, "exits": np.zeros(model.num_exits, np.int64)})
    exit_index = None if mode == "dynamic" else int(mode.split()[1])

    def enhance_fn(decoded: np.ndarray, jpeg_bytes: bytes) -> np.ndarray:
        result = enhance(jpeg_bytes, model, exit_index=exit_index)
        history = result.evidence.history
        # Keyed by the file's own QF: a re-saved file is enhanced for its earlier compression.
        entry = usage[history.last.quality if history is not None and history.last is not None else result.evidence.quality]
        height, width = decoded.shape[:2]
        if result.routing is not None:
            entry["macs"] += meter.daqe(result.routing)
            entry["exits"] += result.routing.exit_counts()
        else:
            entry["macs"] += meter.tiles(height, width, result.exit_index)
        entry["pixels"] += height * width
        return result.pixels

    metrics = evaluate_folder(folder, qualities, enhance_fn, on=space, grayscale=grayscale, progress=False,
                              max_images=max_images, earlier_jpeg=earlier_jpeg)
    return metrics, dict(usage)


def modes_of(model, all_exits: bool) -> list[str]:
    """The modes scored for ``model``: DAQE routes and takes its deepest exit; ``all_exits`` adds every exit."""
    deepest = model.num_exits - 1
    fixed = [f"exit {k}" for k in (range(model.num_exits) if all_exits else [deepest])]
    return (["dynamic"] if routes_patches(model) else []) + fixed


def label(path: str, model) -> str:
    kind = f"DAQE {getattr(model, 'texture', '')}".strip() if routes_patches(model) else type(model).__name__
    return f"{Path(path).name} ({kind})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--color", nargs="*", default=[], help="colour models (.keras): DAQE and/or QGAUNet")
    parser.add_argument("--gray", nargs="*", default=[], help="grayscale models (.keras): DAQE and/or QGAUNet")
    parser.add_argument("--data", default=None, help="evaluation folder (default: benchmarks.jpeg_baselines')")
    parser.add_argument("--sets", default=",".join(s for s, _, _ in SETS))
    parser.add_argument("--qualities", default=",".join(map(str, QUALITIES)))
    parser.add_argument("--max_images", type=int, default=0, help="first N images per set (0 = all; for quick checks)")
    parser.add_argument("--all_exits", action="store_true", help="also force every exit, not only the deepest")
    args = parser.parse_args(argv)
    if not args.color and not args.gray:
        parser.error("give --color and/or --gray models")
    data = Path(args.data or default_data_dir())
    qualities = [int(q) for q in args.qualities.split(",")]
    models = {False: [(p, load_model(p)) for p in args.color], True: [(p, load_model(p)) for p in args.gray]}

    rows, target_rows = [], []  # (set, model, mode, metrics per QF, MACs/px per QF); DAQE target checks
    for name, space, grayscale in SETS:
        if name not in args.sets.split(",") or not models[grayscale]:
            continue
        folder = data / name
        jpeg = evaluate_folder(folder, qualities, on=space, grayscale=grayscale, progress=False, max_images=args.max_images)
        rows.append((name, "JPEG", "", jpeg, None))
        for path, model in models[grayscale]:
            scored = {}
            for mode in modes_of(model, args.all_exits):
                metrics, usage = score(model, mode, folder, space, grayscale, qualities, args.max_images)
                scored[mode] = (metrics, usage)
                rows.append((name, label(path, model), mode, metrics, {q: usage[q]["macs"] / usage[q]["pixels"] for q in qualities}))
            if "dynamic" in scored:
                deepest = f"exit {model.num_exits - 1}"
                for q in qualities:
                    (dyn, dyn_use), (deep, deep_use) = scored["dynamic"], scored[deepest]
                    exits = dyn_use[q]["exits"]
                    target_rows.append((name, label(path, model), q, dyn[q].psnr - deep[q].psnr,
                                        1 - (dyn_use[q]["macs"] / dyn_use[q]["pixels"]) / (deep_use[q]["macs"] / deep_use[q]["pixels"]),
                                        exits / exits.sum()))

    print("PSNR \\| SSIM \\| PSNR-B; colour on RGB, gray on Y. dynamic = exits by the model's routing (defocus, readout or cascade), "
          "exit k = every patch (DAQE) or tile (QGAUNet) through exit k")
    print("| set | model | mode | " + " | ".join(f"QF{q}" for q in qualities) + " |")
    print("|---|---|---|" + "---|" * len(qualities))
    for name, model_label, mode, metrics, _ in rows:
        cells = [f"{m.psnr:.2f} \\| {m.ssim:.4f} \\| {m.psnr_b:.2f}" for m in (metrics[q] for q in qualities)]
        print(f"| {name} | {model_label} | {mode} | " + " | ".join(cells) + " |")
    print()
    print("kMACs per image pixel (patch or tile overlap and, when routing by it, the defocus head included)")
    print("| set | model | mode | " + " | ".join(f"QF{q}" for q in qualities) + " |")
    print("|---|---|---|" + "---|" * len(qualities))
    for name, model_label, mode, _, macs in rows:
        if macs is not None:
            print(f"| {name} | {model_label} | {mode} | " + " | ".join(f"{macs[q] / 1e3:.3g}" for q in qualities) + " |")
    if target_rows:
        print()
        print("Routing against all-deepest (targets: saved >= 30 %, PSNR change >= -0.05 dB)")
        print("| set | model | QF | PSNR dynamic - deepest (dB) | MACs saved | patches per exit (0 = cheapest) |")
        print("|---|---|---|---|---|---|")
        for name, model_label, q, delta, saved, shares in target_rows:
            print(f"| {name} | {model_label} | {q} | {delta:+.3f} | {100 * saved:.0f}% | "
                  + " / ".join(f"{100 * s:.0f}%" for s in shares) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
