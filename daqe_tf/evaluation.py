"""Benchmark loop of the evaluation protocol, shared by the JPEG baselines and model benchmarks.

Protocol (the one that reproduces the published JPEG baselines): compress each image with
Pillow at the quality factor, default chroma subsampling (4:2:0; grayscale images as a
one-channel JPEG), decode with Pillow, optionally enhance, and score in 8 bit against the
original. Per-image metrics are averaged over the folder.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from daqe_tf.io import list_image_files
from daqe_tf.jpeg.simulate import compress, earlier_jpeg_crop
from daqe_tf.metrics import Metrics, evaluate_pair, rgb_to_y_uint8

EnhanceFn = Callable[[np.ndarray, bytes], np.ndarray]
"""``enhance_fn(decoded_uint8, jpeg_bytes) -> uint8 image of the same shape``."""

def load_image(path: str | Path, grayscale: bool | None = None) -> np.ndarray:
    """uint8 HxW (grayscale) or HxWx3 image.

    ``grayscale=None`` keeps single-channel files single-channel and reads the rest as RGB;
    ``True`` turns RGB into the protocol's grayscale (MATLAB ``rgb2ycbcr`` Y, rounded);
    ``False`` reads everything as RGB.
    """
    with Image.open(path) as img:
        if img.mode == "L" and grayscale is not False:
            return np.asarray(img)
        rgb = np.asarray(img.convert("RGB"))
    return rgb_to_y_uint8(rgb) if grayscale else rgb


def _mean(results: list[Metrics]) -> Metrics:
    return Metrics(
        psnr=float(np.mean([m.psnr for m in results])),
        ssim=float(np.mean([m.ssim for m in results])),
        psnr_b=float(np.mean([m.psnr_b for m in results])),
    )


def evaluate_folder(
    folder: str | Path,
    qualities: Iterable[int],
    enhance_fn: EnhanceFn | None = None,
    *,
    on: str = "rgb",
    grayscale: bool | None = None,
    progress: bool = True,
    max_images: int = 0,
    earlier_jpeg: tuple[int, tuple[int, int]] | None = None,
    root: str | Path | None = None,
) -> dict[int, Metrics]:
    """Mean metrics over the images of ``folder`` (or of a list file, its paths relative to ``root``)
    for each JPEG quality factor.

    Without ``enhance_fn`` the decoded JPEG itself is scored (the JPEG baseline). ``on`` and
    ``grayscale`` are as in :func:`daqe_tf.metrics.evaluate_pair` and :func:`load_image`.
    ``max_images``: score only the first N images (0 = all), for quick checks.
    ``earlier_jpeg=(first_quality, (dy, dx))``: double compression; each image is first a crop at
    that offset of a JPEG at ``first_quality`` (:func:`earlier_jpeg_crop`), and ``qualities`` are
    the last compression's. Scores are against the original, never the first JPEG.
    """
    qualities = list(qualities)
    files = list_image_files(folder, root)[: max_images or None]
    per_quality: dict[int, list[Metrics]] = {q: [] for q in qualities}
    with tqdm(total=len(files) * len(qualities), desc=Path(folder).name, disable=not progress) as bar:
        for path in files:
            reference = load_image(path, grayscale)
            source = reference if earlier_jpeg is None else earlier_jpeg_crop(reference, *earlier_jpeg)
            for quality in qualities:
                jpeg = compress(source, quality)  # Pillow's tables for QF, 4:2:0
                decoded, jpeg_bytes = jpeg.decoded, jpeg.data
                output = decoded
                if enhance_fn is not None:
                    output = np.asarray(enhance_fn(decoded, jpeg_bytes))
                    if output.dtype != np.uint8 or output.shape != reference.shape:
                        raise ValueError(
                            f"enhance_fn must return uint8 {reference.shape}, got {output.dtype} {output.shape}"
                        )
                per_quality[quality].append(evaluate_pair(reference, output, on=on))
                bar.update()
    return {q: _mean(results) for q, results in per_quality.items()}
