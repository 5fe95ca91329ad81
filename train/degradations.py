"""JPEG degradations described as data.

A ``DegradationConfig`` says which compressions a training pair may suffer and
how often; ``degrade`` draws one from a numpy ``Generator`` and returns the
decoded image with its Q-map. Pure numpy + Pillow, so the same code feeds
tf.data (TensorFlow) and plain Python loops (JAX).

A re-saved pair (``resave``) gets the evidence the enhancer reads from a whole photo: the
compression history ``daqe_tf.jpeg.history`` finds there, with the crop cut where the enhancer
would put the origin (the dominant compression's block grid), so the last compression's grid
lands anywhere in the crop.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from daqe_tf.jpeg.history import compression_for_quality, file_compression, is_coarser
from daqe_tf.jpeg.qmap import qmap_from_tables
from daqe_tf.jpeg.simulate import compress, earlier_jpeg_crop
from daqe_tf.jpeg.tables import STD_CHROMA_TABLE, STD_LUMA_TABLE, scale_table
from daqe_tf.metrics import rgb_to_y_uint8


@dataclasses.dataclass
class DegradationConfig:
    """Probabilities and ranges of the JPEG degradations used in training.

    ``quality_low_bias`` in [0, 1) squeezes the quality distribution towards
    ``quality_min`` (QF = min + (max - min) * u ** (1 / (1 - bias))): hard
    low-QF pairs carry most of the learnable signal.
    """

    quality_min: int = 10
    quality_max: int = 90
    quality_low_bias: float = 0.5
    subsampling_probs: dict = dataclasses.field(default_factory=lambda: {"4:2:0": 0.7, "4:4:4": 0.2, "4:2:2": 0.1})
    custom_table_prob: float = 0.1
    double_jpeg_prob: float = 0.1  # a re-saved JPEG (``resave``): heavy first, then milder on other grids
    resave_quality_min: int = 60  # quality range of the last, milder save of a re-saved JPEG
    resave_quality_max: int = 95
    resave_aligned_prob: float = 0.25  # the saves share one grid
    resave_triple_prob: float = 0.15  # three saves, each milder
    resave_resize_prob: float = 0.1  # a resize between the first and the last save (no grid survives)
    grayscale_prob: float = 0.0  # colour images only: a gray pair, as a gray JPEG reaches a colour model

    def to_dict(self):
        return dataclasses.asdict(self)


SUBSAMPLINGS = ("4:2:0", "4:4:4", "4:2:2")


def parse_subsampling_probs(text: str) -> dict:
    """``"4:2:0=0.7,4:4:4=0.2,4:2:2=0.1"`` -> weights per chroma subsampling (normalised when drawn)."""
    probs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name not in SUBSAMPLINGS or not value:
            raise ValueError(f"subsampling weights are NAME=WEIGHT with NAME in {SUBSAMPLINGS}, got {item!r}")
        weight = float(value)
        if not weight >= 0:
            raise ValueError(f"subsampling weight of {name} must be >= 0, got {value}")
        probs[name] = weight
    if not sum(probs.values()) > 0:
        raise ValueError(f"subsampling weights need a positive total, got {text!r}")
    return probs


def sample_quality(rng: np.random.Generator, cfg: DegradationConfig) -> int:
    u = rng.random() ** (1.0 / (1.0 - cfg.quality_low_bias))
    return int(round(cfg.quality_min + (cfg.quality_max - cfg.quality_min) * u))


def random_custom_tables(rng: np.random.Generator, quality: int, grayscale: bool) -> list[np.ndarray]:
    """Standard tables at ``quality`` with per-frequency log-normal jitter (camera-like tables)."""
    tables = []
    for base in (STD_LUMA_TABLE,) if grayscale else (STD_LUMA_TABLE, STD_CHROMA_TABLE):
        table = scale_table(base, quality).astype(np.float64)
        table *= np.exp(rng.normal(0.0, 0.25, size=(8, 8)))
        tables.append(np.clip(np.round(table), 1, 255).astype(np.uint16))
    return tables


def _subsampling(rng: np.random.Generator, cfg: DegradationConfig, grayscale: bool) -> str:
    if grayscale:
        return "gray"
    names = list(cfg.subsampling_probs)
    probs = np.array([cfg.subsampling_probs[n] for n in names], dtype=np.float64)
    return names[rng.choice(len(names), p=probs / probs.sum())]


def degrade(rng: np.random.Generator, image: np.ndarray, cfg: DegradationConfig):
    """Compress ``image`` (uint8 HxW or HxWx3) with a random degradation.

    Returns ``(decoded uint8, qmap float32 HxWxQ, quality)``; with probability
    ``cfg.double_jpeg_prob`` the pair is a re-saved JPEG, whose target also changes (``resave``):
    use ``degrade_pair`` for the target.
    """
    return degrade_pair(rng, image, dataclasses.replace(cfg, grayscale_prob=0.0))[1:]


def _single(rng: np.random.Generator, image: np.ndarray, cfg: DegradationConfig, subsampling: str):
    """One JPEG on the crop's own grid: ``(target, decoded, qmap, quality)``."""
    grayscale = image.ndim == 2
    quality = sample_quality(rng, cfg)
    if rng.random() < cfg.custom_table_prob:
        result = compress(image, tables=random_custom_tables(rng, quality, grayscale), subsampling=subsampling)
    else:
        result = compress(image, quality, subsampling=subsampling)
    height, width = image.shape[:2]
    qmap = qmap_from_tables(result.luma_table, result.chroma_table, height, width, result.subsampling)
    return image, result.decoded, qmap, quality


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BICUBIC))


def resave(rng: np.random.Generator, image: np.ndarray, cfg: DegradationConfig, subsampling: str):
    """A re-saved JPEG of ``image`` with the evidence the enhancer reads: ``(target, decoded, qmap, quality)``.

    The first save is heavy (``sample_quality``), on a grid shifted by 0..7 px from the last
    (aligned with ``cfg.resave_aligned_prob``); a third save in between (``resave_triple_prob``)
    or an upscale between the saves that destroys the first grid (``resave_resize_prob``) may
    follow; the last save is milder (``resave_quality_min..max``, custom tables as often as for
    single JPEGs). The evidence is what ``estimate_history`` finds on a whole photo, where it found
    the first save with its quality and grid in every re-saved case measured (docs/history.md): the
    first save when it is coarser than the last by the estimator's own margin (``is_coarser``),
    else the file's tables, and the file's tables after a resize (no grid is found). Estimating on
    the crop itself instead missed the first save on about half of the 128-px training crops and
    taught the model to distrust mild tables. The crop is cut at the dominant compression's grid
    (8 px of reflected context below and right of ``image`` make room), with its Q-map.
    ``quality``: the dominant compression's.
    """
    grayscale = image.ndim == 2
    height, width = image.shape[:2]
    clean = np.pad(image, ((0, 8), (0, 8)) + ((0, 0),) * (image.ndim - 2), mode="reflect")

    def offset():
        return (0, 0) if rng.random() < cfg.resave_aligned_prob else tuple(int(v) for v in rng.integers(0, 8, size=2))

    first_quality = sample_quality(rng, cfg)
    last_quality = int(rng.integers(max(cfg.resave_quality_min, first_quality), cfg.resave_quality_max + 1))
    first_grid = None  # where the first save's blocks start, while its grid survives
    if rng.random() < cfg.resave_resize_prob:
        scale = rng.uniform(1.1, 1.6)
        large = (int(np.ceil(clean.shape[0] * scale)), int(np.ceil(clean.shape[1] * scale)))
        first = compress(_resize(clean, large), first_quality, subsampling=subsampling).decoded
        clean, pixels = _resize(_resize(clean, large), clean.shape[:2]), _resize(first, clean.shape[:2])
    else:
        dy, dx = offset()
        pixels = earlier_jpeg_crop(clean, first_quality, (dy, dx), subsampling=subsampling)
        first_grid = ((8 - dy) % 8, (8 - dx) % 8)  # earlier_jpeg_crop pads by the offset above and left
    if rng.random() < cfg.resave_triple_prob:
        middle = int(rng.integers(first_quality, last_quality + 1))
        pixels = earlier_jpeg_crop(pixels, middle, offset(), subsampling=subsampling)
    if rng.random() < cfg.custom_table_prob:
        result = compress(pixels, tables=random_custom_tables(rng, last_quality, grayscale), subsampling=subsampling)
    else:
        result = compress(pixels, last_quality, subsampling=subsampling)
    used = file_compression(result.luma_table, result.chroma_table, result.subsampling)
    earliest = compression_for_quality(first_quality, grayscale, result.subsampling)
    if first_grid is not None and is_coarser(earliest.luma_table, used.luma_table):
        used = dataclasses.replace(earliest, grid=first_grid)
    gy, gx = used.grid
    window = (slice(gy, gy + height), slice(gx, gx + width))
    chroma = None if grayscale else used.chroma_table
    qmap = qmap_from_tables(used.luma_table, chroma, height, width, "gray" if grayscale else used.subsampling)
    return clean[window], result.decoded[window], qmap, used.quality


def degrade_pair(rng: np.random.Generator, image: np.ndarray, cfg: DegradationConfig):
    """One training pair from a clean uint8 patch: ``(target, decoded, qmap, quality)``.

    With probability ``cfg.grayscale_prob`` a colour patch becomes gray content as
    ``daqe_tf.inference`` feeds a gray JPEG to a colour model: the Y channel (BT.601, as the
    evaluation's gray sets) compressed as a one-component JPEG, replicated into the three
    channels of input and target, with the luma table as the 4:4:4 chroma table of the Q-map.
    No random number is drawn when the probability is 0, so existing data streams stay the same.
    With probability ``cfg.double_jpeg_prob`` the pair is re-saved (``resave``), else one JPEG.
    """
    if image.ndim == 3 and cfg.grayscale_prob and rng.random() < cfg.grayscale_prob:
        target, decoded, qmap, quality = degrade_pair(rng, rgb_to_y_uint8(image), dataclasses.replace(cfg, grayscale_prob=0.0))
        rgb = lambda gray: np.repeat(gray[..., None], 3, axis=2)  # noqa: E731
        return rgb(target), rgb(decoded), np.repeat(qmap, 2, axis=2), quality
    subsampling = _subsampling(rng, cfg, image.ndim == 2)
    if rng.random() < cfg.double_jpeg_prob:
        return resave(rng, image, cfg, subsampling)
    return _single(rng, image, cfg, subsampling)
