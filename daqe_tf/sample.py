"""A synthetic photo-like test image, so the demo needs no downloaded data.

Smooth illumination, soft shadows, hard-edged shapes, fine stripes and text:
the content JPEG at low quality turns into blocks, ringing and colour bleeding.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def make_sample_image(width: int = 640, height: int = 448, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    sky = np.stack([90 + 80 * y / height, 140 + 60 * y / height, 220 - 40 * y / height], axis=-1)
    canvas = Image.fromarray(np.clip(sky, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    draw.ellipse([width * 0.65, height * 0.08, width * 0.85, height * 0.36], fill=(250, 220, 120))
    for i in range(9):  # buildings with windows
        left = int(i * width / 9)
        top = int(height * rng.uniform(0.35, 0.6))
        shade = tuple(int(v) for v in rng.integers(60, 180, size=3))
        draw.rectangle([left, top, left + width // 9 - 4, height], fill=shade)
        for wy in range(top + 8, height - 10, 18):
            for wx in range(left + 6, left + width // 9 - 12, 14):
                draw.rectangle([wx, wy, wx + 6, wy + 9], fill=(240, 230, 160) if rng.random() < 0.5 else (40, 50, 70))
    for k in range(0, width, 6):  # fine stripes (an awning)
        draw.line([k, int(height * 0.9), k, height], fill=(200, 40, 40) if (k // 6) % 2 else (245, 245, 245), width=3)
    draw.text((20, int(height * 0.32)), "daqe-tf sample: blocks, ringing, colour bleeding", fill=(255, 255, 255))
    blurred = canvas.filter(ImageFilter.GaussianBlur(3))  # a defocused background band
    mask = Image.fromarray(((y < height * 0.3) * 255).astype(np.uint8))
    canvas = Image.composite(blurred, canvas, mask)
    noise = rng.normal(0, 3, (height, width, 3))
    return np.clip(np.asarray(canvas, dtype=np.float64) + noise, 0, 255).astype(np.uint8)


if __name__ == "__main__":  # pragma: no cover
    Image.fromarray(make_sample_image()).save("sample.png")
