"""Which training recipe or block learns fastest? Short runs, each given the same compute.

    python -m benchmarks.recipe_sweep --out runs/recipes [--pixels 4e7] [--recipes base,patch_64,...] \\
        [--model_config '{...}'] -- --family daqe --texture cnn --train_data train/lists/train.txt \\
           --val_data train/lists/val.txt --data_root ../shared/datasets --threads 2
    python -m benchmarks.recipe_sweep --out runs/blocks --cpu_hours 0.3 --evals 6 \\
        --recipes base,block_naf,block_inverted,rebalance --model_config '{...}' -- ... --schedule_steps 20000

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

Blocks and width/depth balances (``block_*``, ``rebalance``) change the model, so their cost per
pixel differs: with ``--cpu_hours`` every recipe gets the same training time instead, as steps =
hours / its seconds per step, measured side by side at the sweep's start (the train step on one
batch held in memory, on this backend; kept in ``OUT/step_seconds_<backend>.json`` so a resumed
sweep uses the same numbers). Run it on the faster backend: here TensorFlow, 2.5x JAX's speed for
the residual block and 3.7x / 13x for the depthwise ones. The curve table then gives the gains at each validation against those
CPU-hours (``--evals`` validations per run; pass ``--schedule_steps`` after ``--`` for a long,
near-constant LR, so each point is a fair budget); ``--plot`` draws it. Every ``block_*`` and
``rebalance`` model matches ``base``'s multiply-accumulates per pixel of each exit within 12 %
(``python -m benchmarks.model_complexity``); wall time per MP is ``benchmarks.inference_speed``'s.

``--heldout`` then scores each run's ``final.keras`` on the whole validation images (``--val_data``)
at QF 10–40 through ``daqe_tf.enhance`` with every patch through the deepest exit, as the CLI runs
it: a repeated evaluation on about 2.3 times the trainer's pixels and four qualities, and on the
model's own routing patches (a block that pools over its input, as NAF's channel attention does,
sees the patch it was trained on, not the trainer's 256-px validation crop).

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
    # Blocks at the cost of the colour default's architecture (``model``: model_config changes).
    "block_naf": {"model": {"block": "naf", "widths": [24, 32, 64, 128], "bottleneck_blocks": [2, 2, 2]}},
    "block_inverted": {"model": {"block": "inverted", "widths": [20, 32, 64, 112]}},
    # Less width at full resolution, more depth at half: the finest level costs most per pixel.
    "rebalance": {"model": {"widths": [12, 24, 48, 96], "bottleneck_blocks": [1, 2, 4]}},
}


def _flag(common: list[str], name: str) -> str | None:
    """The value of ``--name`` (``--name=value`` or ``--name value``) among the trainer flags."""
    for i, arg in enumerate(common):
        if arg == f"--{name}" and i + 1 < len(common):
            return common[i + 1]
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def _is_daqe(common: list[str]) -> bool:
    return _flag(common, "family") == "daqe"


def _grayscale(common: list[str]) -> bool:
    return "--grayscale" in common or _flag(common, "grayscale") in ("true", "1")


def recipe_flags(name: str) -> dict:
    """train.main flags of a recipe (without its model changes)."""
    if name not in RECIPES:
        raise SystemExit(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return {**BASE, **{k: v for k, v in RECIPES[name].items() if k != "model"}}


def recipe_model_config(name: str, model_config: dict, common: list[str]) -> dict:
    """The sweep's model config with the recipe's changes (and, for DAQE, its patch size)."""
    config = {**model_config, **RECIPES[name].get("model", {})}
    if _is_daqe(common):
        config["patch_size"] = recipe_flags(name)["patch_size"]
    return config


def steps_for(pixels: float, patch_size: int, batch_size: int) -> int:
    """Optimizer steps that make ``pixels`` training pixels at this patch and batch size (rounded to even)."""
    return max(2, 2 * round(pixels / (patch_size**2 * batch_size) / 2))


def command(name: str, run_dir: Path, steps: int, model_config: dict, common: list[str], evals: int = 2) -> list[str]:
    flags = recipe_flags(name)
    flags.update(steps=steps, eval_every=max(1, steps // evals), warmup_steps=max(1, min(100, steps // 10)),
                 checkpoint_every=max(1, steps // (2 * evals)), log_every=max(1, steps // 10))
    flags["model_config"] = json.dumps(recipe_model_config(name, model_config, common))
    return [sys.executable, "-m", "train.main", f"--run_dir={run_dir}", *common, *(f"--{k}={v}" for k, v in flags.items())]


def train_config(name: str, model_config: dict, common: list[str]) -> dict:
    """TrainConfig fields of a recipe for measuring its step (no data or run folder yet)."""
    flags = recipe_flags(name)
    config = recipe_model_config(name, model_config, common)
    if _is_daqe(common):
        config.setdefault("texture", _flag(common, "texture") or "cnn")
    return {"family": "daqe" if _is_daqe(common) else "qga_unet", "grayscale": _grayscale(common), "patch_size": flags["patch_size"],
            "batch_size": flags["batch_size"], "loss": flags["loss"], "ema_momentum": flags["ema_momentum"],
            "learning_rate": flags["learning_rate"], "model_config": config}


def measure_step_seconds(names: list[str], model_config: dict, common: list[str], steps: int = 20) -> dict:
    """Seconds per train step of each recipe, side by side on this backend (one batch in memory)."""
    import tempfile

    import keras

    from benchmarks.training_throughput import generated_images, load_spec, make_trainer, step_rate

    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "images").mkdir()
        generated_images(work / "images", 4)
        for name in names:
            _, cfg = load_spec(json.dumps(train_config(name, model_config, common)), str(work / "images"), None, work)
            trainer = make_trainer(cfg)
            if keras.backend.backend() != "jax":
                trainer.make_dataset()  # the TensorFlow trainer's sampler comes with its dataset
            seconds[name] = 1.0 / step_rate(trainer, steps)
            print(f"   {name}: {seconds[name]:.3f} s per step", flush=True)
    return seconds


def step_seconds(out: Path, names: list[str], model_config: dict, common: list[str]) -> dict:
    """Every recipe's seconds per step on this backend: those in ``OUT/step_seconds_<backend>.json``, the rest
    measured now (and added)."""
    import keras

    path = out / f"step_seconds_{keras.backend.backend()}.json"
    known = json.loads(path.read_text()) if path.is_file() else {}
    missing = [n for n in names if n not in known]
    if missing:
        print(f"== measuring the train step of {', '.join(missing)}", flush=True)
        known.update(measure_step_seconds(missing, model_config, common))
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(known, indent=1) + "\n")
    return {n: known[n] for n in names}


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


def curve_table(rows: list[tuple[str, dict, list[dict]]], seconds: dict) -> str:
    """Gains of the deepest exit at each validation, against CPU-hours (steps x measured seconds per step)."""
    qualities = sorted(deepest_gains(rows[0][2][-1]))
    lines = ["| recipe | s / step | step | CPU-hours | " + " | ".join(f"QF{q}" for q in qualities) + " | mean |",
             "|" + "---|" * (5 + len(qualities))]
    for name, _, vals in rows:
        for record in vals:
            gains = deepest_gains(record)
            lines.append(f"| {name} | {seconds[name]:.3f} | {record['step']} | {record['step'] * seconds[name] / 3600:.3f} | "
                         + " | ".join(f"{gains[q]:+.3f}" for q in qualities) + f" | {sum(gains.values()) / len(gains):+.3f} |")
    return "\n".join(lines)


def plot_curves(rows, seconds: dict, path: Path) -> None:
    """Mean deepest-exit gain against CPU-hours, one line per recipe, from the JPEG (0 h, +0 dB)."""
    from benchmarks.learning_curve import draw_curve

    mean = lambda record: sum(deepest_gains(record).values()) / len(deepest_gains(record))  # noqa: E731
    series = {name: [(0.0, 0.0)] + [(r["step"] * seconds[name] / 3600, mean(r)) for r in vals] for name, _, vals in rows}
    qualities = ", ".join(str(q) for q in sorted(deepest_gains(rows[0][2][-1])))
    draw_curve(path, series, {"JPEG": 0.0}, f"Held-out crops, deepest exit: mean gain at QF {qualities}",
               x_label="training CPU-hours (steps x measured s/step)", y_label="gain (dB)")
    print(f"wrote {path}")


HELDOUT_QUALITIES = (10, 20, 30, 40)


def heldout_table(names: list[str], common: list[str], out: Path) -> str:
    """PSNR gain over JPEG of each run's final model on the whole validation images, deepest exit, QF 10-40."""
    from daqe_tf.evaluation import evaluate_folder
    from daqe_tf.inference.models import load_model
    from daqe_tf.inference.pipeline import enhance

    val_data, root = _flag(common, "val_data"), _flag(common, "data_root")
    if not val_data:
        raise SystemExit("--heldout needs --val_data after --")
    grayscale = _grayscale(common)
    space = "y" if grayscale else "rgb"
    jpeg = evaluate_folder(val_data, HELDOUT_QUALITIES, on=space, grayscale=grayscale, progress=False, root=root)
    lines = ["| recipe | " + " | ".join(f"QF{q}" for q in HELDOUT_QUALITIES) + " | mean |", "|" + "---|" * (2 + len(HELDOUT_QUALITIES))]
    for name in names:
        model = load_model(out / name / "final.keras")

        def deepest_exit(decoded, data, model=model):
            return enhance(data, model, exit_index=model.num_exits - 1).pixels

        scored = evaluate_folder(val_data, HELDOUT_QUALITIES, deepest_exit, on=space, grayscale=grayscale,
                                 progress=False, root=root)
        gains = [scored[q].psnr - jpeg[q].psnr for q in HELDOUT_QUALITIES]
        lines.append(f"| {name} | " + " | ".join(f"{g:+.3f}" for g in gains) + f" | {sum(gains) / len(gains):+.3f} |")
    return "\n".join(lines)


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
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--pixels", type=float, default=4e7, help="training pixels per recipe (patch² × batch × steps)")
    budget.add_argument("--cpu_hours", type=float, help="training time per recipe instead, at its measured seconds per step")
    parser.add_argument("--evals", type=int, default=2, help="validations per run (evenly spaced; the last at the end)")
    parser.add_argument("--plot", type=Path, help="--cpu_hours: draw the learning curves to this PNG")
    parser.add_argument("--heldout", action="store_true", help="also score each final model on the whole validation images")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--model_config", type=json.loads, default={}, help="JSON model arguments, as train.main takes them")
    args = parser.parse_args(own)
    if any(flag.split("=")[0] in {f"--{k}" for k in (*BASE, "steps", "run_dir", "model_config")} for flag in common):
        raise SystemExit("the flags after -- must not set what the recipes vary (or --steps / --run_dir / --model_config)")
    budget = args.pixels if args.cpu_hours is None else args.cpu_hours
    if not math.isfinite(budget) or budget <= 0 or args.evals < 1:
        raise SystemExit("the budget (--pixels or --cpu_hours) must be a positive number and --evals at least 1")
    names = args.recipes.split(",")
    for name in names:
        recipe_flags(name)  # unknown names stop the sweep before anything runs
    seconds = step_seconds(args.out, names, args.model_config, common) if args.cpu_hours else {}

    rows = []
    for name in names:
        run_dir = args.out / name
        flags = recipe_flags(name)
        if args.cpu_hours:
            steps = max(2, round(args.cpu_hours * 3600 / seconds[name]))
        else:
            steps = steps_for(args.pixels, flags["patch_size"], flags["batch_size"])
        if not finished_validations(run_dir):
            print(f"== {name}: training {steps} steps", flush=True)
            subprocess.run(command(name, run_dir, steps, args.model_config, common, args.evals), check=True)
        vals = finished_validations(run_dir)
        if not vals:
            raise SystemExit(f"{run_dir}: the run ended without a final validation")
        rows.append((name, recipe_flags(name), vals))
    if args.cpu_hours:
        print(f"\nDeepest exit, PSNR gain over JPEG on held-out crops (dB), {args.cpu_hours:g} CPU-hours per recipe")
        print(curve_table(rows, seconds))
        if args.plot:
            plot_curves(rows, seconds, args.plot)
    else:
        print(f"\nDeepest exit, PSNR gain over JPEG on held-out crops (dB) after half and all of {args.pixels:.3g} training pixels per recipe")
        print(table(rows))
    if args.heldout:
        print("\nFinal models, deepest exit through daqe_tf.enhance, PSNR gain over JPEG on the whole validation images (dB)")
        print(heldout_table(names, common, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
