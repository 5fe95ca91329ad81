"""Keras model -> one LiteRT ``.tflite`` file with a signature per exit, and its metadata JSON.

Why one file with named signatures: the caller picks an exit per call (DAQE: per batch of
same-cluster patches), and signatures of one file share a single copy of the weights. Why
``keras.export.ExportArchive`` and ``TFLiteConverter.from_saved_model``: ``model.export(format=
"litert")`` writes one ``serving_default`` signature with Flex ops allowed, and ``tf.function``
wrappers around Keras 3 models converted to garbage (see shared/reference/engineering-notes.md).

Signatures and metadata keys are the file's contract (``daqe_tf.litert_contract``): ``exit_<k>``
with dynamic B, H, W (XNNPACK resizes by itself), ``defocus`` (DAQE), a cascade's ``stage_<m>`` and
``head_<m>``, and ``tile_<S>`` with a fixed shape for delegates that need static shapes.
Only LiteRT built-in ops are allowed, so a model needing a TF (Flex) op fails here rather than
on the phone. Every variant keeps float32 inputs and outputs, int8 included (the file quantizes
and dequantizes at its boundaries), so one runner serves all three.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from daqe_tf import litert_contract as contract
from daqe_tf.contracts import is_cascade, routes_patches
from daqe_tf.litert_contract import (  # noqa: F401  (the contract's names, as exported here before)
    DEFOCUS_SIGNATURE,
    INPUT_CONTEXT,
    INPUT_FEATURES,
    INPUT_IMAGE,
    INPUT_QMAP,
    INPUT_SUMMARY,
    INPUTS,
    METADATA_FORMAT,
    OUTPUT_DEFOCUS,
    OUTPUT_ENHANCED,
    OUTPUT_FEATURES,
    OUTPUT_ROUTING,
    OUTPUT_SCORE,
    OUTPUT_SUMMARY,
    exit_signature,
    head_signature,
    metadata_path,
    stage_signature,
    tile_signature,
)

VARIANTS = ("float32", "float16", "int8")


class ExportError(RuntimeError):
    """The model cannot be exported as asked, with a one-line reason."""


def model_family(model) -> str:
    """The ``daqe_tf.models.MODEL_FAMILIES`` key of ``model``."""
    from daqe_tf.models import MODEL_FAMILIES

    for family, cls in MODEL_FAMILIES.items():
        if isinstance(model, cls):
            return family
    raise ExportError(f"cannot export a {type(model).__name__}: expected one of {sorted(MODEL_FAMILIES)}")


def _input_shapes(model, batch=None, size=None) -> dict:
    return {
        INPUT_IMAGE: (batch, size, size, model.image_channels),
        INPUT_QMAP: (batch, size, size, model.qmap_channels),
    }


def float32_copy(model):
    """``model`` itself when it computes in float32; else a float32 rebuild with the same weights.

    A model built under ``mixed_float16`` exports with Flex ops (casts LiteRT cannot run), and
    ``load_model`` keeps its policy; the converter makes float16 itself when asked.
    """
    import keras

    layers = [model, *model._flatten_layers(include_self=False)]
    if all(layer.dtype_policy.compute_dtype == "float32" for layer in layers):
        return model
    config = {k: v for k, v in model.get_config().items() if k != "dtype"}
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        copy = type(model).from_config(config)
        copy.build(_input_shapes(model))
    finally:
        keras.config.set_dtype_policy(previous)
    weights = model.get_weights()
    if [w.shape for w in weights] != [w.shape for w in copy.get_weights()]:
        raise ExportError("the float32 rebuild of the mixed-precision model has different weights")
    copy.set_weights([np.asarray(w, np.float32) for w in weights])
    return copy


def signature_keys(model, tile: int) -> list[str]:
    """Exits, then ``defocus`` (DAQE), then the fixed tile: the order of the file and its metadata."""
    keys = [exit_signature(k) for k in range(model.num_exits)]
    if routes_patches(model):
        keys.append(DEFOCUS_SIGNATURE)
    if is_cascade(model):
        keys += [stage_signature(m) for m in range(model.num_exits)] + [head_signature(m) for m in range(model.num_exits)]
    return keys + [tile_signature(tile)]


def check_tile(model, tile: int) -> None:
    if tile <= 0 or tile % 16 or tile % model.stride:
        raise ExportError(f"--tile {tile} must be a positive multiple of 16 and of the model's stride {model.stride}")


def write_archive(model, directory: str | os.PathLike, tile: int) -> list[str]:
    """Write a SavedModel with one endpoint per signature; returns the signature keys."""
    import keras
    import tensorflow as tf

    check_tile(model, tile)

    def specs(batch=None, size=None):
        return [tf.TensorSpec(shape, tf.float32, name=name) for name, shape in _input_shapes(model, batch, size).items()]

    archive = keras.export.ExportArchive()
    archive.track(model)
    for k in range(model.num_exits):
        archive.add_endpoint(
            exit_signature(k),
            lambda image, qmap, k=k: {OUTPUT_ENHANCED: model({"image": image, "qmap": qmap}, exit_index=k)},
            input_signature=specs(),
        )
    if routes_patches(model):
        archive.add_endpoint(
            DEFOCUS_SIGNATURE,
            lambda image, qmap: _cell_outputs(model.cell_maps({"image": image, "qmap": qmap})),
            input_signature=specs(),
        )
    if is_cascade(model):
        _add_cascade_endpoints(archive, model, specs)
    deepest = model.num_exits - 1
    archive.add_endpoint(
        tile_signature(tile),
        lambda image, qmap: {OUTPUT_ENHANCED: model({"image": image, "qmap": qmap}, exit_index=deepest)},
        input_signature=specs(1, tile),
    )
    archive.write_out(os.fspath(directory), verbose=False)
    return signature_keys(model, tile)


def _add_cascade_endpoints(archive, model, specs) -> None:
    """``stage_m`` and ``head_m`` per branch (see ``stage_signature``); features keep their spatial size."""
    import tensorflow as tf

    def stage_outputs(outputs):
        features, summary, score = outputs
        named = {OUTPUT_FEATURES: features, OUTPUT_SUMMARY: summary}
        return named if score is None else {**named, OUTPUT_SCORE: score}

    summary_width = 0
    for m in range(model.num_exits):
        width = model.branches[m].width
        if m == 0:
            archive.add_endpoint(stage_signature(0), lambda image, qmap: stage_outputs(
                model.cascade_stage({"image": image, "qmap": qmap}, 0)), input_signature=specs())
        else:
            carried = [tf.TensorSpec((None, None, None, model.branches[m - 1].width), tf.float32, name=INPUT_CONTEXT),
                       tf.TensorSpec((None, summary_width), tf.float32, name=INPUT_SUMMARY)]
            archive.add_endpoint(stage_signature(m), lambda image, qmap, context, summary, m=m: stage_outputs(
                model.cascade_stage({"image": image, "qmap": qmap}, m, context, summary)), input_signature=specs() + carried)
        summary_width += 2 * width
        head_inputs = [tf.TensorSpec((None, None, None, width), tf.float32, name=INPUT_FEATURES), specs()[0]]
        archive.add_endpoint(head_signature(m), lambda features, image, m=m: {
            OUTPUT_ENHANCED: model.exit_from_features(m, features, image)}, input_signature=head_inputs)


def _cascade_inputs(model, inputs: dict) -> dict:
    """Calibration inputs of the ``stage_m`` / ``head_m`` signatures: the Keras stages run on ``inputs``."""
    feeds, carried = {}, {}
    for m in range(model.num_exits):
        feeds[stage_signature(m)] = {**inputs, **carried}
        features, summary, _ = model.cascade_stage(inputs, m, *carried.values())
        features, summary = np.asarray(features), np.asarray(summary)
        feeds[head_signature(m)] = {INPUT_FEATURES: features, INPUT_IMAGE: inputs[INPUT_IMAGE]}
        carried = {INPUT_CONTEXT: features, INPUT_SUMMARY: summary}
    return feeds


def _cell_outputs(cells) -> dict:
    return {OUTPUT_DEFOCUS: cells[..., :1], OUTPUT_ROUTING: cells[..., 1:]}


def convert(
    saved_model_dir: str | os.PathLike,
    keys: Sequence[str],
    variant: str,
    representative: Callable[[], Iterator[tuple[str, dict]]] | None = None,
) -> bytes:
    """SavedModel -> ``.tflite`` bytes with built-in ops only; ``representative`` is needed for int8."""
    import tensorflow as tf

    if variant not in VARIANTS:
        raise ExportError(f"variant must be one of {VARIANTS}, got {variant!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(os.fspath(saved_model_dir), signature_keys=list(keys))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        if representative is None:
            raise ExportError("int8 needs a representative dataset (--representative training images)")
        # Weights and activations int8 where LiteRT has int8 kernels; float32 inputs and outputs.
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
    try:
        return converter.convert()
    except Exception as error:  # ConverterError; its text lists the offending ops
        text = str(error)
        ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text)))
        if ops or "ERROR_NEEDS_FLEX_OPS" in text or "ERROR_NEEDS_CUSTOM_OPS" in text:
            raise ExportError(
                f"the model needs TensorFlow ops that LiteRT built-ins lack ({', '.join(ops) or 'see the converter log'}); "
                "Flex (SELECT_TF_OPS) is not allowed in this export: rewrite those layers with built-in ops"
            ) from error
        raise ExportError(f"TFLite conversion failed: {text.strip().splitlines()[-1] if text.strip() else type(error).__name__}") from error


def op_names(model_bytes: bytes) -> list[str]:
    """Sorted operator names used anywhere in a ``.tflite`` file (all signatures)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAsModel(model_bytes, 0)
    found = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        custom = code.CustomCode()
        found.add(custom.decode() if custom else names.get(builtin, str(builtin)))
    return sorted(found)


def metadata(model, keys: Sequence[str], variant: str, tile: int, ops: Sequence[str]) -> dict:
    """What an app needs besides the file: shapes, exits, routing (DAQE) and signature names."""
    family = model_family(model)
    meta = {
        "format": METADATA_FORMAT,
        "family": family,
        "variant": variant,
        "io_dtype": "float32",
        "image_channels": model.image_channels,
        "qmap_channels": model.qmap_channels,
        "num_exits": model.num_exits,
        "stride": model.stride,
        "tile_size": tile,
        contract.SIGNATURES: {
            contract.EXITS: [k for k in keys if k.startswith("exit_")],
            contract.DEFOCUS: DEFOCUS_SIGNATURE if DEFOCUS_SIGNATURE in keys else None,
            contract.TILE: tile_signature(tile),
            **({contract.STAGES: [stage_signature(m) for m in range(model.num_exits)],
                contract.HEADS: [head_signature(m) for m in range(model.num_exits)]} if is_cascade(model) else {}),
        },
        "inputs": list(INPUTS),
        contract.OUTPUTS: {contract.EXITS: OUTPUT_ENHANCED, contract.DEFOCUS: OUTPUT_DEFOCUS, contract.ROUTING: OUTPUT_ROUTING,
                           **({contract.FEATURES: OUTPUT_FEATURES, contract.SUMMARY: OUTPUT_SUMMARY,
                               contract.SCORE: OUTPUT_SCORE} if is_cascade(model) else {})},
        "ops": list(ops),
        "model_config": {k: v for k, v in model.get_config().items() if k not in ("name", "trainable", "dtype")},
    }
    if family == "daqe":
        from daqe_tf.routing.runtime import PATCH_OVERLAP

        meta.update(
            patch_size=model.patch_size,
            # The overlap the Python routing asks plan_tiles for, so an app plans the same patches.
            patch_overlap=PATCH_OVERLAP,
            thresholds=list(model.thresholds),
            # What the thresholds split: "defocus", or "readout" (the ``routing`` output differs from
            # ``defocus``); "cascade": no thresholds to apply, the ``stage_m`` scores decide (leave when > 0).
            routing=model.routing,
            defocus_cell=model.defocus_head.cell_size,
        )
    return meta


def metadata_text(meta: dict) -> str:
    """The text of ``<out>.json`` (apps read this file as written)."""
    return json.dumps(meta, indent=1) + "\n"


def save(model_bytes: bytes, meta: dict, out: str | os.PathLike) -> Path:
    """Write ``out`` and ``<out>.json`` atomically; returns the metadata path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta_path = metadata_path(out)
    for path, data in ((out, model_bytes), (meta_path, metadata_text(meta).encode())):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return meta_path


def export_tflite(
    model,
    outputs: Mapping[str, str | os.PathLike],
    *,
    tile: int = 256,
    representative_images: Sequence[str | os.PathLike] | None = None,
    calibration_samples: int = 32,
) -> dict[str, dict]:
    """Export ``model`` (QGAUNet or DAQENet) as each ``{variant: out}`` to ``out`` and ``<out>.json``.

    The SavedModel is written once and converted per variant. ``representative_images``:
    training image files for int8 calibration. Returns the metadata per variant.
    """
    model = float32_copy(model)
    model_family(model)
    unknown = set(outputs) - set(VARIANTS)
    if unknown:
        raise ExportError(f"variant must be one of {VARIANTS}, got {sorted(unknown)}")
    if "int8" in outputs and not representative_images:
        raise ExportError("int8 needs representative training images (--representative DIR_OR_LIST)")
    written = {}
    with tempfile.TemporaryDirectory(prefix="daqe_export_") as directory:
        keys = write_archive(model, directory, tile)
        for variant, out in outputs.items():
            representative = None
            if variant == "int8":
                representative = representative_dataset(model, representative_images, keys, tile, calibration_samples)
            model_bytes = convert(directory, keys, variant, representative)
            written[variant] = metadata(model, keys, variant, tile, op_names(model_bytes))
            save(model_bytes, written[variant], out)
    return written


def representative_dataset(
    model,
    images: Sequence[str | os.PathLike],
    keys: Sequence[str],
    crop: int,
    count: int = 32,
    seed: int = 0,
) -> Callable[[], Iterator[tuple[str, dict]]]:
    """Calibration samples as the converter wants them for several signatures: ``(key, {input: array})``.

    Each of ``count`` random crops of the training ``images`` (crop x crop, the tile size, so the
    fixed tile signature takes them too) is JPEG-compressed at a random quality (10..90, 4:2:0)
    with ``daqe_tf.jpeg.simulate``; the decoded crop and its Q-map go to every signature.
    """
    from daqe_tf.evaluation import load_image
    from daqe_tf.jpeg.qmap import qmap_from_tables
    from daqe_tf.jpeg.simulate import compress

    images = [Path(p) for p in images]
    if not images:
        raise ExportError("no representative images")
    grayscale = model.image_channels == 1

    def samples():
        rng = np.random.default_rng(seed)
        for i in range(count):
            pixels = load_image(images[i % len(images)], grayscale=grayscale)
            pad = [(0, max(crop - pixels.shape[0], 0)), (0, max(crop - pixels.shape[1], 0))] + [(0, 0)] * (pixels.ndim - 2)
            pixels = np.pad(pixels, pad, mode="symmetric")
            y = rng.integers(0, pixels.shape[0] - crop + 1)
            x = rng.integers(0, pixels.shape[1] - crop + 1)
            jpeg = compress(np.ascontiguousarray(pixels[y : y + crop, x : x + crop]), int(rng.integers(10, 91)))
            qmap = qmap_from_tables(jpeg.luma_table, jpeg.chroma_table, crop, crop, jpeg.subsampling)
            image = jpeg.decoded.astype(np.float32).reshape(1, crop, crop, model.image_channels) / 255.0
            inputs = {INPUT_IMAGE: image, INPUT_QMAP: qmap[None]}
            chained = _cascade_inputs(model, inputs) if is_cascade(model) else {}
            for key in keys:
                yield key, chained.get(key, inputs)

    return samples
