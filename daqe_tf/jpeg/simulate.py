"""JPEG compression as a degradation, for training and evaluation.

Pillow (libjpeg) does the coding, so simulated pairs are byte-for-byte what a
user's encoder at the same settings produces, and the evaluation protocol
(Pillow, default 4:2:0) is reproduced exactly.
"""
from __future__ import annotations

import dataclasses
import io

import numpy as np
from PIL import Image

from daqe_tf.jpeg.tables import tables_for_quality

# Pillow's ``subsampling`` argument for each chroma layout.
SUBSAMPLING_CODES = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
# Chroma subsampling factors (vertical, horizontal) in luma pixels.
SUBSAMPLING_FACTORS = {"gray": (1, 1), "4:4:4": (1, 1), "4:2:2": (1, 2), "4:2:0": (2, 2), "4:4:0": (2, 1), "4:1:1": (1, 4)}


@dataclasses.dataclass(frozen=True)
class CompressedImage:
    """A compressed image: its decoded pixels, its tables and the file bytes."""

    decoded: np.ndarray  # uint8, HxW (gray) or HxWx3 (RGB)
    luma_table: np.ndarray  # 8x8 uint16, natural order
    chroma_table: np.ndarray | None
    subsampling: str
    data: bytes


def compress(
    image: np.ndarray,
    quality: int | None = None,
    *,
    tables: list[np.ndarray] | None = None,
    subsampling: str = "4:2:0",
) -> CompressedImage:
    """Compress ``image`` (uint8 HxW or HxWx3) with Pillow and decode it again.

    Give either ``quality`` (IJG scaling of the standard tables) or ``tables``
    (custom 8x8 tables, [luma] or [luma, chroma]). Grayscale input gives a
    one-component JPEG; ``subsampling`` applies to colour input only.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"compress expects uint8 pixels, got {image.dtype}")
    grayscale = image.ndim == 2
    if (quality is None) == (tables is None):
        raise ValueError("give exactly one of quality= or tables=")
    if tables is None:
        tables = tables_for_quality(quality, grayscale=grayscale)
    tables = [np.asarray(t, dtype=np.uint16).reshape(8, 8) for t in tables]
    if grayscale:
        tables = tables[:1]
        subsampling = "gray"
    elif len(tables) == 1:
        tables = [tables[0], tables[0]]
    if not grayscale and subsampling not in SUBSAMPLING_CODES:
        raise ValueError(f"subsampling must be one of {sorted(SUBSAMPLING_CODES)}, got {subsampling!r}")
    buffer = io.BytesIO()
    options = {"qtables": [t.flatten().tolist() for t in tables]}
    if not grayscale:
        options["subsampling"] = SUBSAMPLING_CODES[subsampling]
    Image.fromarray(image).save(buffer, "JPEG", **options)
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as decoded:
        pixels = np.asarray(decoded.convert("L" if grayscale else "RGB"))
    return CompressedImage(
        decoded=pixels,
        luma_table=tables[0],
        chroma_table=None if grayscale else tables[1],
        subsampling=subsampling,
        data=data,
    )


def earlier_jpeg_crop(image: np.ndarray, quality: int, offset: tuple[int, int], *, subsampling: str = "4:2:0") -> np.ndarray:
    """``image`` as it looks when cut, at ``offset`` = (dy, dx) in 0..7 px, out of an earlier JPEG.

    Why: a re-saved photo was compressed on a grid that need not be the last one (a crop or an
    edit moved it). The image is reflect-padded above and left by the offset so the earlier JPEG
    at ``quality`` covers every pixel, then the crop is cut back out; compressing the result again
    gives a double JPEG whose first grid is shifted by the offset. Offset (0, 0) is aligned.
    """
    dy, dx = (int(v) for v in offset)
    if not (0 <= dy < 8 and 0 <= dx < 8):
        raise ValueError(f"offset must be in 0..7 px, got {offset}")
    image = np.asarray(image)
    padded = np.pad(image, ((dy, 0), (dx, 0)) + ((0, 0),) * (image.ndim - 2), mode="reflect")
    return np.ascontiguousarray(compress(padded, quality, subsampling=subsampling).decoded[dy:, dx:])
