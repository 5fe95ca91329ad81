"""JPEG degradations described as data.

A ``DegradationConfig`` says which compressions a training pair may suffer and
how often; ``degrade`` draws one from a numpy ``Generator`` and returns the
decoded image with its Q-map. Pure numpy + Pillow, so the same code feeds
tf.data (TensorFlow) and plain Python loops (JAX).
"""
from __future__ import annotations

import dataclasses

import numpy as np

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
    double_jpeg_prob: float = 0.1
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


def degrade(rng: np.random.Generator, image: np.ndarray, cfg: DegradationConfig):
    """Compress ``image`` (uint8 HxW or HxWx3) with a random degradation.

    Returns ``(decoded uint8, qmap float32 HxWxQ, quality)``. A double JPEG treats ``image``
    as a crop, offset by (dy, dx) in 0..7 px, of an earlier JPEG: every pixel is compressed
    twice, first on a grid shifted by the offset, and the Q-map describes the last compression
    (the one whose grid the output keeps).
    """
    grayscale = image.ndim == 2
    quality = sample_quality(rng, cfg)
    subsampling = "gray"
    if not grayscale:
        names = list(cfg.subsampling_probs)
        probs = np.array([cfg.subsampling_probs[n] for n in names], dtype=np.float64)
        subsampling = names[rng.choice(len(names), p=probs / probs.sum())]
    if rng.random() < cfg.double_jpeg_prob:
        dy, dx = (int(v) for v in rng.integers(0, 8, size=2))
        first_quality = sample_quality(rng, cfg)
        image = earlier_jpeg_crop(image, first_quality, (dy, dx), subsampling=subsampling)
    if rng.random() < cfg.custom_table_prob:
        result = compress(image, tables=random_custom_tables(rng, quality, grayscale), subsampling=subsampling)
    else:
        result = compress(image, quality, subsampling=subsampling)
    height, width = image.shape[:2]
    qmap = qmap_from_tables(result.luma_table, result.chroma_table, height, width, result.subsampling)
    return result.decoded, qmap, quality


def degrade_pair(rng: np.random.Generator, image: np.ndarray, cfg: DegradationConfig):
    """One training pair from a clean uint8 patch: ``(target, decoded, qmap, quality)``.

    With probability ``cfg.grayscale_prob`` a colour patch becomes gray content as
    ``daqe_tf.inference`` feeds a gray JPEG to a colour model: the Y channel (BT.601, as the
    evaluation's gray sets) compressed as a one-component JPEG, replicated into the three
    channels of input and target, with the luma table as the 4:4:4 chroma table of the Q-map.
    No random number is drawn when the probability is 0, so existing data streams stay the same.
    """
    if image.ndim == 3 and cfg.grayscale_prob and rng.random() < cfg.grayscale_prob:
        luma = rgb_to_y_uint8(image)
        decoded, qmap, quality = degrade(rng, luma, cfg)
        rgb = lambda gray: np.repeat(gray[..., None], 3, axis=2)  # noqa: E731
        return rgb(luma), rgb(decoded), np.repeat(qmap, 2, axis=2), quality
    return (image, *degrade(rng, image, cfg))
