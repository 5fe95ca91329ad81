"""Small images and models made by the tests themselves (no external data)."""
from __future__ import annotations

import io
import struct

import numpy as np
from PIL import Image


def natural_image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth random field with a few hard edges: JPEG-like content in uint8."""
    rng = np.random.default_rng(seed)
    field = np.cumsum(np.cumsum(rng.normal(size=(height, width, channels)), axis=0), axis=1)
    field -= field.min(axis=(0, 1))
    field /= np.maximum(field.max(axis=(0, 1)), 1e-9)
    image = 40 + 170 * field
    for _ in range(4):
        y, x = rng.integers(0, height), rng.integers(0, width)
        image[y : y + height // 4, x : x + width // 4] += rng.uniform(-60, 60, size=channels)
    image = np.clip(image, 0, 255).astype(np.uint8)
    return image[..., 0] if channels == 1 else image


TINY_MODEL_CONFIG = {"widths": [8, 8, 8, 8], "encoder_blocks": [1, 1, 1], "decoder_blocks": [1, 1], "stem_stride": 2}
# A tiny DAQENet (3 exits, 32-px routing patches, 16-px defocus cells) for training and routing tests.
TINY_DAQE_CONFIG = {
    "widths": [4, 4, 8, 8], "encoder_blocks": [1, 1, 1], "bottleneck_blocks": [1, 1, 1], "decoder_blocks": [1, 0, 0],
    "patch_size": 32, "key_dim": 4, "defocus_widths": [4, 4, 4, 4], "defocus_blocks": [1, 1, 1, 1],
}


def daqe_train_config(run_dir, image_folder, steps: int, **overrides):
    """A ``TrainConfig`` for a few steps of ``TINY_DAQE_CONFIG`` on ``image_folder`` (train and validation)."""
    from train.config import TrainConfig

    settings = dict(
        run_dir=str(run_dir), train_data=str(image_folder), val_data=str(image_folder), family="daqe",
        model_config=dict(TINY_DAQE_CONFIG), steps=steps, batch_size=2, patch_size=32, warmup_steps=1,
        log_every=2, checkpoint_every=4, eval_every=4, eval_crop=64, eval_images=1, eval_qualities=(10,),
        label_cache_dir=str(run_dir.parent / "labels"),
    )
    return TrainConfig(**{**settings, **overrides})


def write_image_folder(folder, count: int, height: int, width: int, first_seed: int = 0):
    """``count`` ``natural_image`` PNGs (img0.png, ...) in ``folder``, for trainer tests; returns ``folder``."""
    for i in range(count):
        Image.fromarray(natural_image(height, width, seed=first_seed + i)).save(folder / f"img{i}.png")
    return folder


def tiny_model(image_channels: int = 3, seed: int = 0):
    import keras

    from daqe_tf.models import build_model

    keras.utils.set_random_seed(seed)
    model = build_model("qga_unet", image_channels, **TINY_MODEL_CONFIG)
    # Heads start at zero (identity model); give them weights so exits differ.
    rng = np.random.default_rng(seed)
    for head in model.heads:
        head.kernel.assign(rng.normal(0, 0.05, head.kernel.shape).astype("float32"))
    return model


def encode_jpeg(pixels: np.ndarray, **save_kwargs) -> bytes:
    """Pillow JPEG bytes of ``pixels`` (save options passed through)."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", **save_kwargs)
    return buf.getvalue()


def split_segments(data: bytes):
    """Split a well-formed JPEG into [(marker, payload), ...] up to SOS, and the rest."""
    pos, segments = 2, []
    while True:
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segments.append((marker, data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
        if marker == 0xDA:
            return segments, data[pos:]


def join_segments(segments, rest=b"") -> bytes:
    """Inverse of ``split_segments``."""
    out = bytearray(b"\xff\xd8")
    for marker, payload in segments:
        out += bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
    return bytes(out) + rest


def markdown_table(lines, header_start: str) -> list[list[str]]:
    """Cells of the body rows of the first Markdown table in ``lines`` whose header starts with
    ``header_start`` (escaped pipes stay inside their cell), for tests of benchmark output."""
    import re

    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def open_layer_scales(model, values) -> None:
    """Set every NAFBlock's layer scales (``beta``, ``gamma``; zero at start, which hides the block's
    other weights) to ``values(shape)``; layer norms' own beta/gamma are left alone."""
    from daqe_tf.layers.blocks import NAFBlock

    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, NAFBlock):
            for scale in (layer.beta, layer.gamma):
                scale.assign(np.asarray(values(scale.shape), "float32"))
