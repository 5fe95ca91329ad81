"""The contract of an exported LiteRT model: the ``.tflite`` file's signatures and its ``<file>.json``.

``export.converter`` writes both, ``daqe_tf.inference.litert_runner`` reads them, and so does the
app (``android_demo``), checked against the Python side through the Kotlin test vectors. Names
and keys live here once. No TensorFlow or Keras import: a LiteRT-only install reads files too.

Signatures (inputs ``image`` [B, H, W, C] float32 in [0, 1] and ``qmap`` [B, H, W, Q] float32):
    exit_<k>   -> ``enhanced``
    defocus    DAQE only -> ``defocus`` (log1p sigma per 16-px cell) and ``routing`` (the value
               the thresholds split)
    stage_<m>  a cascade: (image, qmap[, context, summary]) -> features, summary[, score]
    head_<m>   a cascade: (features, image) -> ``enhanced``
    tile_<S>   [1, S, S, .] fixed, the deepest exit
"""
from __future__ import annotations

import os
from pathlib import Path

METADATA_FORMAT = 1  # the metadata's ``format``

# Signature inputs.
INPUT_IMAGE, INPUT_QMAP = "image", "qmap"
INPUTS = (INPUT_IMAGE, INPUT_QMAP)
INPUT_CONTEXT, INPUT_SUMMARY = "context", "summary"  # stage_<m>, m > 0: what stage m - 1 gave
INPUT_FEATURES = "features"  # head_<m>, with ``image``

# Signature outputs.
OUTPUT_ENHANCED = "enhanced"
OUTPUT_DEFOCUS = "defocus"
OUTPUT_ROUTING = "routing"
OUTPUT_FEATURES, OUTPUT_SUMMARY, OUTPUT_SCORE = "features", "summary", "score"

DEFOCUS_SIGNATURE = "defocus"


def exit_signature(k: int) -> str:
    return f"exit_{k}"


def stage_signature(m: int) -> str:
    return f"stage_{m}"


def head_signature(m: int) -> str:
    return f"head_{m}"


def tile_signature(size: int) -> str:
    return f"tile_{size}"


def metadata_path(model_path: str | os.PathLike) -> Path:
    """``M.tflite`` -> ``M.tflite.json`` (never clashes with a model's other JSON files)."""
    return Path(f"{os.fspath(model_path)}.json")


# Metadata keys: every file, and DAQE files besides.
METADATA_KEYS = ("format", "family", "variant", "io_dtype", "image_channels", "qmap_channels", "num_exits", "stride",
                 "tile_size", "signatures", "inputs", "outputs", "ops", "model_config")
DAQE_METADATA_KEYS = ("patch_size", "patch_overlap", "thresholds", "routing", "defocus_cell")
# ``signatures``: signature names by group (``exits``, ``stages``, ``heads``: lists; ``defocus``: None
# unless DAQE; ``stages`` and ``heads`` only in a cascade).
SIGNATURES = "signatures"
EXITS, DEFOCUS, TILE, STAGES, HEADS = "exits", "defocus", "tile", "stages", "heads"
# ``outputs``: output names by role (``exits``: the enhanced output of exit and head signatures).
OUTPUTS = "outputs"
ROUTING, FEATURES, SUMMARY, SCORE = "routing", "features", "summary", "score"
