"""Copy a training run's model into daqe_tf/weights/ with its provenance.

    python scripts/ship_model.py RUN_DIR NAME [--which best|final | --model FILE.keras] --command "..." [--command "..."]

``--model`` ships a file derived from the run (e.g. a DAQE model whose thresholds
``python -m train.fit_thresholds`` refitted); its weights must be the run's.

Writes NAME.keras (atomically), NAME.log.jsonl (the training log), NAME.config.json
(the resolved training config), NAME.data.txt (the exact training list) and
NAME.md (model card: commands, data, size, compute per exit, training curve summary).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("name")
    parser.add_argument("--which", choices=("best", "final"), default="best")
    parser.add_argument("--model", type=Path, default=None, help="ship this .keras instead of RUN_DIR/<which>.keras")
    parser.add_argument("--command", action="append", default=[], help="a command that produced the run (repeat for resumes)")
    args = parser.parse_args(argv)

    import keras

    import daqe_tf.models  # noqa: F401
    from daqe_tf.complexity import macs_per_pixel

    weights = ROOT / "daqe_tf" / "weights"
    weights.mkdir(exist_ok=True)
    source = args.model or args.run_dir / f"{args.which}.keras"
    model = keras.models.load_model(source, safe_mode=True)
    tmp = weights / f".{args.name}.keras.tmp"
    shutil.copyfile(source, tmp)
    os.replace(tmp, weights / f"{args.name}.keras")
    shutil.copyfile(args.run_dir / "log.jsonl", weights / f"{args.name}.log.jsonl")
    config = json.loads((args.run_dir / "config.json").read_text())
    (weights / f"{args.name}.config.json").write_text(json.dumps(config, indent=2))
    train_list = Path(config["train_data"])
    if train_list.is_file():
        shutil.copyfile(train_list, weights / f"{args.name}.data.txt")

    records = [json.loads(line) for line in (args.run_dir / "log.jsonl").read_text().splitlines()]
    vals = [r for r in records if r["kind"] == "val"]
    last_exit = model.num_exits - 1
    curve = "\n".join(
        f"| {r['step']} | {r['train_seconds'] / 3600:.2f} | "
        + " | ".join(f"{r['gains'].get(f'q{q}_exit{last_exit}', float('nan')):+.3f}" for q in config["eval_qualities"])
        + " |"
        for r in vals
    )
    macs = [macs_per_pixel(model, k, size=256) for k in range(model.num_exits)]
    size_mb = (weights / f"{args.name}.keras").stat().st_size / 1e6
    commands = "\n".join(args.command) or "(not recorded)"
    texture = f" ({model.texture} texture)" if hasattr(model, "texture") else ""
    channels = "grayscale (Y)" if model.image_channels == 1 else "RGB"
    card = f"""# {args.name}

{type(model).__name__}{texture}, {channels}, {model.count_params():,} parameters, {size_mb:.1f} MB file.
Model config: `{json.dumps({k: v for k, v in model.get_config().items() if k not in ('name', 'trainable', 'dtype')})}`

MACs per pixel by exit (convolutions, 256×256 input): {', '.join(f'exit {k}: {m / 1e3:.1f} k' for k, m in enumerate(macs))}.

## How it was trained

Data: `{args.name}.data.txt` ({len(train_list.read_text().split()) if train_list.is_file() else '?'} images, paths relative to the
shared datasets folder; validation images `{config.get('val_data')}` are held out; no evaluation set was used).
Resolved config: `{args.name}.config.json`. Log: `{args.name}.log.jsonl`.

```
{commands}
```

Training time: {max(r.get('train_seconds', 0) for r in records) / 3600:.2f} h on 2 shared CPU cores, {max(r.get('step', 0) for r in records)} steps;
the shipped file is {f"`{args.model.name}`, derived from the run's weights" if args.model else f"the run's `{args.which}.keras`"} (EMA weights).

## Validation curve (held-out crops, PSNR gain over JPEG at the deepest exit, dB)

| step | hours | {' | '.join(f'QF{q}' for q in config['eval_qualities'])} |
|---|---|{'---|' * len(config['eval_qualities'])}
{curve}

Evaluation-set results: docs/results.md (`python -m benchmarks.{"daqe_eval" if hasattr(model, "thresholds") else "evaluate_model"}`).
"""
    (weights / f"{args.name}.md").write_text(card)
    print(card)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
