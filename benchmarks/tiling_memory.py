"""Tiling parity and peak memory of whole-image enhancement.

    python -m benchmarks.tiling_memory [--model M.keras] [--megapixels 50]

1. Parity: a generated ~2 MP photo at QF 10 is enhanced untiled (one window)
   and tiled (512 px tiles, 32 px overlap); prints the PSNR of both against the
   original and between them.
2. Memory: a generated N-MP JPEG (default 50) is written by this process and
   enhanced in a fresh one, which prints its peak resident memory (VmHWM)
   before and after loading the model and after enhancing, and the time per
   megapixel.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def parity(model_path: str | None) -> dict:
    from daqe_tf.inference.models import load_model
    from daqe_tf.inference.pipeline import enhance_pixels, jpeg_evidence
    from daqe_tf.io import load_image
    from daqe_tf.jpeg.simulate import compress
    from daqe_tf.metrics import psnr
    from daqe_tf.sample import make_sample_image

    original = make_sample_image(1728, 1152)  # 1.99 MP
    jpeg = compress(original, 10)
    loaded = load_image(jpeg.data)
    model = load_model(model_path)
    evidence = jpeg_evidence(loaded)
    untiled = enhance_pixels(loaded.pixels, model, evidence, tile=1728, overlap=32)
    tiled = enhance_pixels(loaded.pixels, model, evidence, tile=512, overlap=32)
    return {
        "megapixels": original.shape[0] * original.shape[1] / 1e6,
        "psnr_jpeg": psnr(original, jpeg.decoded),
        "psnr_untiled": psnr(original, untiled),
        "psnr_tiled": psnr(original, tiled),
        "psnr_tiled_vs_untiled": psnr(untiled, tiled),
    }


def make_big_jpeg(megapixels: float, path: str) -> tuple[int, int]:
    """Write a generated JPEG (QF 30) of about ``megapixels`` to ``path``; returns (width, height)."""
    from daqe_tf.jpeg.simulate import compress
    from daqe_tf.sample import make_sample_image

    width = int(round(np.sqrt(megapixels * 1e6 * 3 / 2) / 16) * 16)
    height = int(round(width * 2 / 3 / 16) * 16)
    tile = make_sample_image(1024, 704)
    image = np.tile(tile, (height // 704 + 1, width // 1024 + 1, 1))[:height, :width]
    with open(path, "wb") as f:
        f.write(compress(np.ascontiguousarray(image), 30).data)
    return width, height


def _child(model_path: str | None, jpeg_path: str) -> None:
    """Runs in a fresh process: load the model, enhance the file, report peak RSS."""
    from daqe_tf.inference.models import load_model
    from daqe_tf.inference.pipeline import enhance

    def kib() -> int:
        """Peak resident memory of this process image (VmHWM; ru_maxrss would include the parent's)."""
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

    before_model = kib()
    model = load_model(model_path)
    after_model = kib()
    start = time.perf_counter()
    result = enhance(jpeg_path, model)
    seconds = time.perf_counter() - start
    height, width = result.pixels.shape[:2]
    print(json.dumps({
        "width": width, "height": height, "megapixels": width * height / 1e6,
        "peak_rss_mb_before_model": before_model / 1024, "peak_rss_mb_after_model": after_model / 1024,
        "peak_rss_mb_after_enhance": kib() / 1024, "seconds": seconds,
        "seconds_per_mp": seconds / (width * height / 1e6),
    }))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="colour .keras model (default: shipped)")
    parser.add_argument("--megapixels", type=float, default=50.0)
    parser.add_argument("--skip-parity", action="store_true")
    parser.add_argument("--jpeg", default=None, help="enhance this JPEG instead of a generated one")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.model, args.jpeg)
        return 0
    if not args.skip_parity:
        p = parity(args.model)
        print(f"| 2-MP parity | JPEG {p['psnr_jpeg']:.3f} dB | untiled {p['psnr_untiled']:.3f} dB | tiled {p['psnr_tiled']:.3f} dB "
              f"| difference {p['psnr_untiled'] - p['psnr_tiled']:+.4f} dB | tiled vs untiled {p['psnr_tiled_vs_untiled']:.2f} dB |")
    jpeg_path = args.jpeg or os.path.join(tempfile.mkdtemp(), "big.jpg")
    if not args.jpeg:
        make_big_jpeg(args.megapixels, jpeg_path)
    command = [sys.executable, "-m", "benchmarks.tiling_memory", "--child", "--jpeg", jpeg_path]
    if args.model:
        command += ["--model", args.model]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    m = json.loads(out)
    print(f"| {m['megapixels']:.1f} MP ({m['width']}x{m['height']}) | peak RSS {m['peak_rss_mb_after_enhance']:.0f} MB "
          f"(model loaded: {m['peak_rss_mb_after_model']:.0f} MB, before: {m['peak_rss_mb_before_model']:.0f} MB) "
          f"| {m['seconds']:.0f} s, {m['seconds_per_mp']:.2f} s/MP |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
