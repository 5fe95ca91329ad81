"""The ``--ensemble`` quality mode against the default: PSNR gain and time, side by side.

    python -m benchmarks.ensemble_eval [--sets LIVE1_color] [--qualities 10] [--data DIR] [--max_images N]

Each evaluation image is compressed as in the published protocol (Pillow, 4:2:0 for colour) and
enhanced through ``daqe_tf.enhance`` with the shipped default (as the CLI runs it), once as usual
and once averaging four flipped/transposed views; the two runs of each image alternate, so the
time ratio is measured under the same load.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.jpeg_baselines import default_data_dir
from daqe_tf.evaluation import load_image
from daqe_tf.inference.models import load_model
from daqe_tf.inference.pipeline import enhance
from daqe_tf.io import list_image_files
from daqe_tf.jpeg.simulate import compress
from daqe_tf.metrics import psnr

SETS = {"LIVE1_color": False, "LIVE1_gray": True, "Classic5": True}


def measure(folder: Path, grayscale: bool, quality: int, max_images: int) -> dict:
    model = load_model(None, grayscale=grayscale)
    gains = {False: [], True: []}
    seconds = {False: 0.0, True: 0.0}
    for path in list_image_files(folder)[: max_images or None]:
        reference = load_image(path, grayscale)
        jpeg = compress(reference, quality)
        for ensemble in (False, True):
            start = time.perf_counter()
            out = enhance(jpeg.data, model, ensemble=ensemble).pixels
            seconds[ensemble] += time.perf_counter() - start
            gains[ensemble].append(psnr(reference, out) - psnr(reference, jpeg.decoded))
    return {"default": float(np.mean(gains[False])), "ensemble": float(np.mean(gains[True])),
            "time": seconds[True] / seconds[False], "images": len(gains[False])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="LIVE1_color")
    parser.add_argument("--qualities", default="10")
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--max_images", type=int, default=0)
    args = parser.parse_args(argv)
    data = args.data or default_data_dir()
    print("| set | QF | images | default gain (dB) | ensemble gain (dB) | difference | time, ensemble / default |")
    print("|---|---|---|---|---|---|---|")
    for name in filter(None, args.sets.split(",")):
        if name not in SETS:
            parser.error(f"unknown set {name!r}; known: {', '.join(SETS)}")
        for quality in (int(q) for q in args.qualities.split(",")):
            row = measure(data / name, SETS[name], quality, args.max_images)
            print(f"| {name} | {quality} | {row['images']} | {row['default']:+.3f} | {row['ensemble']:+.3f} | "
                  f"{row['ensemble'] - row['default']:+.3f} | {row['time']:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
