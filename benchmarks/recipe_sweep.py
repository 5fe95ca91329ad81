"""Which training recipe learns fastest? Short runs of one model, each given the same compute.

    python -m benchmarks.recipe_sweep --out runs/recipes [--pixels 4e7] [--recipes base,patch_64,...] \\
        [--model_config '{...}'] -- --family daqe --texture cnn --train_data train/lists/train.txt \\
           --val_data train/lists/val.txt --data_root ../shared/datasets --threads 2

Why: CPU hours are scarce, so the long run should use the recipe that buys the most PSNR per
hour. Every recipe here starts from scratch on the same data with the flags after ``--`` and
differs from ``base`` only in what its name says. Compute is equalised as training pixels
(patch² × batch × steps = ``--pixels``): for a fully convolutional model the cost of a step is
proportional to its pixels, and this budget does not depend on what else the machine runs
(wall time is printed too, but is only comparable between runs on an otherwise idle machine).
Each run validates at half and at the full budget (the trainer's held-out crops, EMA weights
where the recipe keeps an EMA); printed: PSNR gain over JPEG of the deepest exit per QF.
A DAQE model's training crops are its routing patches, so for ``--family daqe`` the recipe's
patch size is also written into ``--model_config``.

A run folder that already holds a finished run is read, not retrained, so a sweep can be
resumed or extended with more recipes.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

# What each recipe changes from ``base`` (train.main flags). ``base`` is the shipped DAQE recipe.
BASE = {"patch_size": 128, "batch_size": 8, "loss": "l2", "ema_momentum": 0.995, "learning_rate": 1e-3}
RECIPES = {
    "base": {},
    "patch_64": {"patch_size": 64, "batch_size": 32},  # same pixels per step, 4x the crops
    "patch_192": {"patch_size": 192, "batch_size": 4},  # larger context, fewer crops (1.1x the pixels per step)
    "batch_4": {"batch_size": 4},  # twice the steps for the same pixels
    "charbonnier": {"loss": "charbonnier"},
    "l1": {"loss": "l1"},
    "no_ema": {"ema_momentum": 0.0},
    "lr_2e-3": {"learning_rate": 2e-3},
    "lr_5e-4": {"learning_rate": 5e-4},
}


def recipe_flags(name: str) -> dict:
    if name not in RECIPES:
        raise SystemExit(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return {**BASE, **RECIPES[name]}


def steps_for(pixels: float, patch_size: int, batch_size: int) -> int:
    """Optimizer steps that make ``pixels`` training pixels at this patch and batch size (rounded to even)."""
    return max(2, 2 * round(pixels / (patch_size**2 * batch_size) / 2))


def command(name: str, run_dir: Path, pixels: float, model_config: dict, common: list[str]) -> list[str]:
    flags = recipe_flags(name)
    steps = steps_for(pixels, flags["patch_size"], flags["batch_size"])
    flags.update(steps=steps, eval_every=steps // 2, warmup_steps=max(1, min(100, steps // 10)),
                 checkpoint_every=max(1, steps // 4), log_every=max(1, steps // 10))
    if "daqe" in common or "--family=daqe" in common:
        model_config = {**model_config, "patch_size": flags["patch_size"]}
    flags["model_config"] = json.dumps(model_config)
    return [sys.executable, "-m", "train.main", f"--run_dir={run_dir}", *common, *(f"--{k}={v}" for k, v in flags.items())]


def finished_validations(run_dir: Path) -> list[dict]:
    """The run's ``val`` records, or [] when it has not finished (no final.keras)."""
    log = run_dir / "log.jsonl"
    if not (run_dir / "final.keras").is_file() or not log.is_file():
        return []
    return [r for r in map(json.loads, log.read_text().splitlines()) if r["kind"] == "val"]


def deepest_gains(record: dict) -> dict[int, float]:
    """QF -> PSNR gain of the deepest exit in a ``val`` record."""
    deepest = max(int(k.split("_exit")[1]) for k in record["gains"] if "_exit" in k)  # DAQE also logs q*_dynamic
    return {int(k[1:].split("_")[0]): v for k, v in record["gains"].items() if k.endswith(f"_exit{deepest}")}


def table(rows: list[tuple[str, dict, list[dict]]]) -> str:
    qualities = sorted(deepest_gains(rows[0][2][-1]))
    head = ("| recipe | patch × batch | loss | EMA | lr | steps | wall min | "
            + " | ".join(f"QF{q} half / full" for q in qualities) + " |")
    lines = [head, "|" + "---|" * (7 + len(qualities))]
    for name, flags, vals in rows:
        half, full = deepest_gains(vals[0]), deepest_gains(vals[-1])
        lines.append(
            f"| {name} | {flags['patch_size']} × {flags['batch_size']} | {flags['loss']} | {flags['ema_momentum']:g} | "
            f"{flags['learning_rate']:g} | {vals[-1]['step']} | {vals[-1]['train_seconds'] / 60:.1f} | "
            + " | ".join(f"{half[q]:+.3f} / {full[q]:+.3f}" for q in qualities) + " |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    common = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder of the recipes' run folders")
    parser.add_argument("--pixels", type=float, default=4e7, help="training pixels per recipe (patch² × batch × steps)")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--model_config", type=json.loads, default={}, help="JSON model arguments, as train.main takes them")
    args = parser.parse_args(own)
    if any(flag.split("=")[0] in {f"--{k}" for k in (*BASE, "steps", "run_dir", "model_config")} for flag in common):
        raise SystemExit("the flags after -- must not set what the recipes vary (or --steps / --run_dir / --model_config)")
    if not math.isfinite(args.pixels) or args.pixels <= 0:
        raise SystemExit("--pixels must be a positive number")

    rows = []
    for name in args.recipes.split(","):
        run_dir = args.out / name
        if not finished_validations(run_dir):
            print(f"== {name}: training", flush=True)
            subprocess.run(command(name, run_dir, args.pixels, args.model_config, common), check=True)
        vals = finished_validations(run_dir)
        if not vals:
            raise SystemExit(f"{run_dir}: the run ended without a final validation")
        rows.append((name, recipe_flags(name), vals))
    print(f"\nDeepest exit, PSNR gain over JPEG on held-out crops (dB) after half and all of {args.pixels:.3g} training pixels per recipe")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
