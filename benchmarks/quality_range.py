"""Gain over JPEG across the whole quality range and on double-compressed JPEGs.

    python -m benchmarks.quality_range [--color M.keras] [--gray M.keras] [--data DIR] \\
        [--qualities 10,20,...,90] [--double 30>10@4,4,...] [--modes default|deepest|default,deepest] \\
        [--max_images N]

Why: the published tables stop at QF 40, but users' photos are mostly QF 70-95 and often
re-saved. A model that gains at QF 10 but hurts at QF 90, or on a JPEG of a JPEG, is not safe
to run by default. Each case compresses the evaluation images as in ``benchmarks.daqe_eval``
(Pillow, 4:2:0): single JPEGs at each ``--qualities`` QF, and double JPEGs "A>B@dy,dx": first
at QF A, cut at offset (dy, dx) so the first grid is shifted (``@0,0``: aligned), then at QF B;
the metrics are against the original. Printed per set and mode: JPEG and model PSNR, the gain
in PSNR and PSNR-B, and the mean multiply-accumulates per image pixel. ``default`` is what the
CLI runs (DAQE: exits by its routing value; QGA U-Net: its deepest exit); ``deepest`` forces
the deepest exit everywhere. Defaults: the shipped models on LIVE1 colour, LIVE1 gray and Classic5.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from benchmarks.daqe_eval import SETS, score
from benchmarks.jpeg_baselines import default_data_dir
from daqe_tf.contracts import routes_patches
from daqe_tf.evaluation import evaluate_folder
from daqe_tf.inference.models import default_model_path, load_model

QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
# Double JPEGs: the earlier QF above, below and equal-ish to the last one, shifted and aligned grids.
DOUBLE = ("10>30@4,4", "30>10@4,4", "30>50@4,4", "50>30@4,4", "50>90@4,4", "90>50@4,4", "30>10@0,0")
_DOUBLE_RE = re.compile(r"^(\d+)>(\d+)@([0-7]),([0-7])$")


def parse_double(text: str) -> tuple[int, int, tuple[int, int]]:
    """``"A>B@dy,dx"`` -> (first QF A, last QF B, offset (dy, dx))."""
    match = _DOUBLE_RE.match(text.strip())
    if not match:
        raise ValueError(f"double JPEG case must look like 30>10@4,4 (first QF > last QF @ dy,dx in 0..7), got {text!r}")
    first, last, dy, dx = (int(g) for g in match.groups())
    for quality in (first, last):
        if not 1 <= quality <= 100:
            raise ValueError(f"quality factors are 1..100, got {quality} in {text!r}")
    return first, last, (dy, dx)


def mode_name(model, mode: str) -> str:
    """The ``daqe_eval.score`` mode for ``default`` / ``deepest``."""
    deepest = f"exit {model.num_exits - 1}"
    if mode == "deepest":
        return deepest
    if mode == "default":
        return "dynamic" if routes_patches(model) else deepest
    raise ValueError(f"mode must be 'default' or 'deepest', got {mode!r}")


def cases(qualities, doubles):
    """(label, last QF, earlier_jpeg or None) for every case, single JPEGs first."""
    out = [(f"QF{q}", q, None) for q in qualities]
    for text in doubles:
        first, last, offset = parse_double(text)
        out.append((f"QF{first} then QF{last}, grid shift {offset[0]},{offset[1]}", last, (first, offset)))
    return out


def measure(model, modes, folder: Path, space: str, grayscale: bool, case_list, max_images: int):
    """Rows (case, mode, JPEG metrics, model metrics, MACs/px), one per case and mode."""
    rows = []
    for label, quality, earlier in case_list:
        (jpeg,) = evaluate_folder(folder, [quality], on=space, grayscale=grayscale, progress=False,
                                  max_images=max_images, earlier_jpeg=earlier).values()
        for mode in modes:
            metrics, usage = score(model, mode_name(model, mode), folder, space, grayscale, [quality], max_images, earlier)
            (use,) = usage.values()  # one QF per call (keyed by the file's own, last QF)
            rows.append((label, mode, jpeg, metrics[quality], use["macs"] / use["pixels"]))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--color", default=str(default_model_path(False)))
    parser.add_argument("--gray", default=str(default_model_path(True)))
    parser.add_argument("--data", default=None, help="evaluation folder (default: benchmarks.jpeg_baselines')")
    parser.add_argument("--sets", default=",".join(s for s, _, _ in SETS))
    parser.add_argument("--qualities", default=",".join(map(str, QUALITIES)))
    parser.add_argument("--double", default=",".join(DOUBLE), help="double JPEG cases A>B@dy,dx, comma-separated ('' = none)")
    parser.add_argument("--modes", default="default", help="default (what the CLI runs) and/or deepest")
    parser.add_argument("--max_images", type=int, default=0, help="first N images per set (0 = all; for quick checks)")
    args = parser.parse_args(argv)
    try:
        doubles = [t for t in re.split(r",(?=\d+>)", args.double) if t.strip()]
        case_list = cases([int(q) for q in args.qualities.split(",") if q.strip()], doubles)
    except ValueError as error:
        parser.error(str(error))
    modes = [m.strip() for m in args.modes.split(",")]
    if not set(modes) <= {"default", "deepest"}:
        parser.error(f"--modes takes default and/or deepest, got {args.modes!r}")
    data = Path(args.data or default_data_dir())
    sets = [(name, space, grayscale) for name, space, grayscale in SETS if name in args.sets.split(",")]
    paths = {False: args.color, True: args.gray}
    models = {gray: (paths[gray], load_model(paths[gray])) for gray in {g for _, _, g in sets}}  # only those needed

    print("PSNR on RGB (colour) or Y (gray), dB; gain = model - JPEG; kMAC/px = mean multiply-accumulates per image pixel")
    print("| set | model | mode | case | JPEG PSNR | model PSNR | PSNR gain | PSNR-B gain | kMAC/px |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, space, grayscale in sets:
        path, model = models[grayscale]
        for label, mode, jpeg, out, macs in measure(model, modes, data / name, space, grayscale, case_list, args.max_images):
            print(f"| {name} | {Path(path).name} | {mode} | {label} | {jpeg.psnr:.2f} | {out.psnr:.2f} | "
                  f"{out.psnr - jpeg.psnr:+.2f} | {out.psnr_b - jpeg.psnr_b:+.2f} | {macs / 1e3:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
