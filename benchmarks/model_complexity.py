"""Size and per-exit compute of model configs: what picking a config or an exit costs on a device.

    python -m benchmarks.model_complexity SPEC [SPEC ...] [--size 512]

SPEC is a `.keras` file or a JSON object: the constructor config, plus optional
"family" (default "qga_unet") and "image_channels" (default 3). Prints a Markdown
table: parameters, float32 weight size in MB (10^6 bytes), and multiply-accumulates
per pixel of each exit at SIZE x SIZE (convolutions and dense layers only, see
`daqe_tf.complexity`). Counting runs the model once per exit on zeros.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import keras

from daqe_tf.complexity import macs_per_pixel
from daqe_tf.models import build_model


def load_spec(spec: str):
    """(label, model, config note) for a `.keras` path or a JSON config."""
    if spec.endswith(".keras"):
        return Path(spec).name, keras.models.load_model(spec, safe_mode=True), None
    config = json.loads(spec)
    family = config.pop("family", "qga_unet")
    image_channels = config.pop("image_channels", 3)
    label = f"{family} {'gray' if image_channels == 1 else 'colour'}"
    return label, build_model(family, image_channels, **config), json.dumps(config)


def complexity_table(specs, size: int) -> str:
    rows, notes = [], []
    for i, spec in enumerate(specs, 1):
        label, model, note = load_spec(spec)
        if note is not None:
            label, notes = f"{label} [{i}]", notes + [f"[{i}] `{note}`"]
        per_exit = [macs_per_pixel(model, k, size) for k in range(model.num_exits)]
        rows.append((label, model.count_params(), per_exit))
    exits = max(len(per_exit) for _, _, per_exit in rows)
    header = ["model", "params", "float32 weights (MB)"] + [f"MACs/px exit {k}" for k in range(exits)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, params, per_exit in rows:
        cells = [label, f"{params:,}", f"{params * 4 / 1e6:.2f}"] + [f"{m:,.0f}" for m in per_exit]
        lines.append("| " + " | ".join(cells + [""] * (exits - len(per_exit))) + " |")
    return "\n".join([f"MACs per pixel at {size}x{size}.", "", *lines, "", *notes])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", help="a .keras file or a JSON model config")
    parser.add_argument("--size", type=int, default=512, help="square input size the MACs are counted at")
    args = parser.parse_args(argv)
    print(complexity_table(args.specs, args.size))


if __name__ == "__main__":
    main()
