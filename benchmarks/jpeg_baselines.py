"""Reproduce the published JPEG baselines: the check that our metrics and protocol are right.

    python -m benchmarks.jpeg_baselines [--data DIR]

DIR defaults to $DAQE_EVAL_DIR, else ../shared/datasets/eval next to the repository. Prints a
Markdown table against the published values; exits 1 unless every PSNR is within 0.01 dB.

The published LIVE1_color SSIM (.759/.841/.875/.894) is not the protocol's SSIM (per-channel
RGB, Gaussian window, valid region), which reads .743/.826/.861/.882; no SSIM variant we
tried (Y, skimage defaults, full-image replicate padding, 3-D window) gives .759.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from daqe_tf.evaluation import evaluate_folder

QUALITIES = (10, 20, 30, 40)
PSNR_TOLERANCE_DB = 0.01

# set -> (on, grayscale, {QF: (PSNR, SSIM, PSNR-B)})
PUBLISHED = {
    "LIVE1_color": ("rgb", False, {
        10: (25.69, 0.759, 24.20), 20: (28.06, 0.841, 26.49),
        30: (29.37, 0.875, 27.84), 40: (30.28, 0.894, 28.84),
    }),
    "LIVE1_gray": ("y", True, {
        10: (27.77, 0.773, 25.33), 20: (30.07, 0.851, 27.57),
        30: (31.41, 0.885, 28.92), 40: (32.35, 0.904, 29.96),
    }),
    "Classic5": ("y", True, {
        10: (27.82, 0.760, 25.21), 20: (30.12, 0.834, 27.50),
        30: (31.48, 0.867, 28.94), 40: (32.43, 0.885, 29.92),
    }),
}


def default_data_dir() -> Path:
    env = os.environ.get("DAQE_EVAL_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "eval"


def _cell(ours: float, published: float, digits: int) -> str:
    return f"{ours:.{digits + 2}f} | {published:.{digits}f} | {ours - published:+.{digits + 2}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="folder holding LIVE1_color, LIVE1_gray, Classic5")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    args = parser.parse_args(argv)
    data = args.data or default_data_dir()

    print("| set | QF | PSNR | pub. | Δ | SSIM | pub. | Δ | PSNR-B | pub. | Δ |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    psnr_ok = True
    for name, (on, grayscale, published) in PUBLISHED.items():
        results = evaluate_folder(data / name, QUALITIES, on=on, grayscale=grayscale, progress=not args.no_progress)
        for quality in QUALITIES:
            m, (p_psnr, p_ssim, p_psnr_b) = results[quality], published[quality]
            psnr_ok &= abs(m.psnr - p_psnr) <= PSNR_TOLERANCE_DB + 1e-9
            print(f"| {name} | {quality} | {_cell(m.psnr, p_psnr, 2)} | {_cell(m.ssim, p_ssim, 3)} "
                  f"| {_cell(m.psnr_b, p_psnr_b, 2)} |")
    verdict = "yes" if psnr_ok else "NO"
    print(f"\nAll PSNR values within ±{PSNR_TOLERANCE_DB} dB of the published baselines: {verdict}")
    return 0 if psnr_ok else 1


if __name__ == "__main__":
    sys.exit(main())
