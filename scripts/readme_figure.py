"""The before/after picture of the README, made from the generated sample photo (no downloaded data).

    python scripts/readme_figure.py [--out docs/before_after.png] [--quality 10] [--model M]
    python scripts/readme_figure.py --resaved 10,90,4,4 --out docs/resaved_before_after.png

Compresses ``daqe_tf.sample.make_sample_image()`` as a JPEG at ``--quality``, enhances it with the
shipped default (or ``--model``), and writes a crop of JPEG | enhanced | original, each enlarged 2x
(nearest neighbour, so the 8x8 blocks stay visible), with the whole image's PSNR against the original in each label.
``--resaved FIRST,LAST,DY,DX``: a re-saved photo instead (QF FIRST, cut at offset DY,DX, then saved
again at QF LAST), enhanced trusting the file's tables and with the estimated compression history.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daqe_tf.inference.pipeline import enhance  # noqa: E402
from daqe_tf.jpeg.simulate import compress, earlier_jpeg_crop  # noqa: E402
from daqe_tf.metrics import psnr  # noqa: E402
from daqe_tf.sample import make_sample_image  # noqa: E402

CROP = (16, 112, 224, 272)  # left, top, right, bottom: text, windows, shadows and the sky's edge
SCALE = 2
LABEL_HEIGHT = 22


def panel(pixels: np.ndarray, label: str) -> Image.Image:
    left, top, right, bottom = CROP
    crop = Image.fromarray(pixels[top:bottom, left:right])
    crop = crop.resize((crop.width * SCALE, crop.height * SCALE), Image.NEAREST)
    out = Image.new("RGB", (crop.width, crop.height + LABEL_HEIGHT), (255, 255, 255))
    out.paste(crop, (0, LABEL_HEIGHT))
    ImageDraw.Draw(out).text((6, 5), label, fill=(0, 0, 0))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/before_after.png")
    parser.add_argument("--quality", type=int, default=10)
    parser.add_argument("--model", default=None, help="a .keras or .tflite model (default: the shipped one)")
    parser.add_argument("--resaved", default=None, help="FIRST,LAST,DY,DX: a re-saved JPEG (see above)")
    args = parser.parse_args(argv)

    original = make_sample_image()
    if args.resaved:
        first, last, dy, dx = (int(v) for v in args.resaved.split(","))
        jpeg = compress(earlier_jpeg_crop(original, first, (dy, dx)), last)
        trusting = enhance(jpeg.data, model=args.model, quality=last)
        result = enhance(jpeg.data, model=args.model)
        panels = [
            panel(jpeg.decoded, f"QF {first}, re-saved at QF {last}: {psnr(original, jpeg.decoded):.2f} dB"),
            panel(trusting.pixels, f"file's tables (QF {last}): {psnr(original, trusting.pixels):.2f} dB"),
            panel(result.pixels, f"estimated history: {psnr(original, result.pixels):.2f} dB"),
            panel(original, "original"),
        ]
        print(result.evidence.describe())
    else:
        jpeg = compress(original, args.quality)
        result = enhance(jpeg.data, model=args.model)
        panels = [
            panel(jpeg.decoded, f"JPEG quality {args.quality}: {psnr(original, jpeg.decoded):.2f} dB"),
            panel(result.pixels, f"daqe-tf: {psnr(original, result.pixels):.2f} dB"),
            panel(original, "original"),
        ]
    gap = 6
    figure = Image.new("RGB", (sum(p.width for p in panels) + gap * (len(panels) - 1), panels[0].height), (255, 255, 255))
    x = 0
    for p in panels:
        figure.paste(p, (x, 0))
        x += p.width + gap
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    figure.save(args.out, optimize=True)
    print(f"{args.out}: {figure.width}x{figure.height}, {Path(args.out).stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
