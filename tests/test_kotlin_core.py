"""The Android demo's plain-Kotlin core against the Python pipeline, through shared test vectors.

The phone must parse JPEG headers, build Q-maps, cut tiles, route patches to exits, blend
results and read the exporter's metadata exactly as the Python side does. This test writes vectors
from the Python code (JPEGs made here with Pillow, parser results, Q-maps, tile plans, blend
weights, cluster ids, routing by a routing map that differs from the defocus map, stitched and
end-to-end pipeline outputs (one exit, routed per patch, and routed by a cascade's stage scores,
with and without its compute cap, one case in small bands),
EXIF orientations, model metadata from ``export.converter`` with and without the routing keys and
for a cascade), compiles the Kotlin core and its
JUnit tests with Debian's ``kotlinc`` (cached by a hash of the sources) and runs JUnit on the
vector folder.

Without ``kotlinc`` or junit4 the test is skipped with the reason, never passed silently.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daqe_tf.inference import pipeline
from daqe_tf.inference.tiling import _ramp, _starts, enhance_tiled, plan_tiles
from daqe_tf.io import apply_orientation, load_image
from daqe_tf.jpeg.qmap import normalize_steps, qmap_from_tables
from daqe_tf.jpeg.reader import JpegFormatError, parse_jpeg_header
from daqe_tf.routing.runtime import CELL
from tests.helpers import encode_jpeg, join_segments, natural_image, split_segments

ROOT = Path(__file__).resolve().parents[1]
APP_SRC = ROOT / "android_demo" / "app" / "src"
CORE_DIRS = [APP_SRC / "main/java/org/daqe/demo/core", APP_SRC / "test/java/org/daqe/demo/core"]
TEST_PACKAGE = "org.daqe.demo.core"
JAVA_LIBS = Path("/usr/share/java")
INSTALL_HINT = "apt-get install -y kotlin junit4"


# --------------------------------------------------------------------------------------------
# JPEG vectors
# --------------------------------------------------------------------------------------------


def _is_sof(marker: int) -> bool:
    return 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)


def _edit_sof(data: bytes, edit) -> bytes:
    """Apply ``edit(marker, bytearray payload) -> marker`` to the frame header."""
    segments, rest = split_segments(data)
    out = []
    for marker, payload in segments:
        if _is_sof(marker):
            payload = bytearray(payload)
            marker = edit(marker, payload)
            payload = bytes(payload)
        out.append((marker, payload))
    return join_segments(out, rest)


def _with_sampling(data: bytes, factors) -> bytes:
    def edit(marker, payload):
        for c, (h, v) in enumerate(factors):
            payload[7 + 3 * c] = (h << 4) | v
        return marker

    return _edit_sof(data, edit)


def _edit_dqt(data: bytes, edit) -> bytes:
    segments, rest = split_segments(data)
    out = []
    done = False
    for marker, payload in segments:
        if marker == 0xDB and not done:
            payload, done = bytes(edit(bytearray(payload))), True
        out.append((marker, payload))
    return join_segments(out, rest)


def _set(payload: bytearray, index: int, value: int) -> bytearray:
    payload[index] = value
    return payload


def _sof_bytes(data: bytes, values: dict[int, int]) -> bytes:
    """The frame header with payload bytes {index: value} replaced."""

    def edit(marker, payload):
        for index, value in values.items():
            payload[index] = value
        return marker

    return _edit_sof(data, edit)


def _jpeg_cases() -> dict[str, bytes]:
    colour = natural_image(37, 53, 3, seed=1)
    gray = natural_image(45, 31, 1, seed=2)
    base = encode_jpeg(colour, quality=75)
    cases = {
        "c420_q75_37x53": base,
        "c422_q50_23x40": encode_jpeg(natural_image(23, 40, 3, seed=3), quality=50, subsampling=1),
        "c444_q90_17x17": encode_jpeg(natural_image(17, 17, 3, seed=4), quality=90, subsampling=0),
        "gray_q60_45x31": encode_jpeg(gray, quality=60),
        "progressive_q80": encode_jpeg(colour, quality=80, progressive=True),
        "custom8_3tables": encode_jpeg(colour, qtables=[[1 + i for i in range(64)], [2 + i for i in range(64)], [200 - i for i in range(64)]]),
        "custom16_sof1": encode_jpeg(colour, qtables=[list(range(1, 65)), [300 + 7 * i for i in range(64)]]),
        "app_exif_comment": encode_jpeg(colour, quality=70, exif=_exif_orientation(6), comment=b"daqe vectors"),
        "sampling_411": _with_sampling(base, [(4, 1), (1, 1), (1, 1)]),
        "sampling_440": _with_sampling(base, [(1, 2), (1, 1), (1, 1)]),
        "sampling_h3v1": _with_sampling(base, [(3, 1), (1, 1), (1, 1)]),
        "fill_bytes": base[:2] + b"\xff\xff\xff" + base[2:],
        "extraneous_bytes": base[:2] + b"\x00\x12\xff\x00\x7f" + base[2:],
        "restart_and_tem": base[:2] + b"\xff\xd0\xff\x01" + base[2:],
        # Malformed: each must fail on both sides with the same message.
        "empty": b"",
        "not_jpeg": b"GIF89a\x01\x00\x01\x00",
        "soi_only": b"\xff\xd8",
        "lossless_sof3": _edit_sof(base, lambda m, p: 0xC3),
        "zero_step": _edit_dqt(base, lambda p: _set(p, 5, 0)),
        "table_id_4": _edit_dqt(base, lambda p: _set(p, 0, 0x04)),
        "table_precision_2": _edit_dqt(base, lambda p: _set(p, 0, 0x20)),
        "truncated_dqt": _edit_dqt(base, lambda p: p[:40]),
        "missing_table": _sof_bytes(base, {8: 3}),
        "second_sof": _second_sof(base),
        "eoi_early": base[:2] + b"\xff\xd9" + base[2:],
        "sos_first": join_segments([s for s in split_segments(base)[0] if not _is_sof(s[0])], split_segments(base)[1]),
        "bad_length": base[:2] + b"\xff\xfe\x00\x01" + base[2:],
        "zero_sampling": _with_sampling(base, [(0, 1), (1, 1), (1, 1)]),
        "precision_16": _sof_bytes(base, {0: 16}),
        "zero_width": _sof_bytes(base, {3: 0, 4: 0}),
        "count_mismatch": _sof_bytes(base, {5: 2}),
        "segment_past_end": base[:2] + b"\xff\xe1\x40\x00abc",
        "truncated_header": base[:300],
    }
    return cases


def _exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def _second_sof(data: bytes) -> bytes:
    segments, rest = split_segments(data)
    i = next(i for i, (m, _) in enumerate(segments) if _is_sof(m))
    return join_segments(segments[: i + 1] + [segments[i]] + segments[i + 1 :], rest)


def _header_json(data: bytes) -> dict:
    """The Python parser's verdict: header fields, or the error message."""
    try:
        h = parse_jpeg_header(data)
    except JpegFormatError as e:
        return {"error": str(e)}
    return {
        "width": h.width,
        "height": h.height,
        "precision": h.precision,
        "progressive": h.progressive,
        "components": [[c.id, c.h_sampling, c.v_sampling, c.table_id] for c in h.components],
        "tables": {str(k): [int(v) for v in t.ravel()] for k, t in h.tables.items()},
        "table_precision": {str(k): v for k, v in h.table_precision.items()},
        "subsampling": h.subsampling,
    }


def _header_length(data: bytes) -> int:
    segments, rest = split_segments(data)
    return len(data) - len(rest)


def _write_jpeg_vectors(folder: Path, manifest: dict) -> None:
    cases = _jpeg_cases()
    entries = []
    for name, data in cases.items():
        (folder / f"{name}.jpg").write_bytes(data)
        entries.append({"name": name, "file": f"{name}.jpg", "expected": _header_json(data)})
    manifest["jpeg"] = entries
    assert sum("error" not in e["expected"] for e in entries) >= 14
    assert sum("error" in e["expected"] for e in entries) >= 15

    # Every truncation prefix of a header and seeded single-byte mutations of it: the Kotlin
    # parser must reach the same verdict (same header or same message) on each.
    base_name = "c420_q75_37x53"
    base = cases[base_name]
    end = _header_length(base)
    rng = np.random.default_rng(7)
    mutations = [[int(rng.integers(0, end)), int(rng.integers(0, 256))] for _ in range(400)]
    mutations += [[int(p), 0xFF] for p in rng.integers(0, end, 50)] + [[int(p), 0x00] for p in rng.integers(0, end, 50)]
    outcomes = []
    for length in range(end + 1):
        outcomes.append(_header_json(base[:length]))
    for pos, value in mutations:
        mutated = bytearray(base)
        mutated[pos] = value
        outcomes.append(_header_json(bytes(mutated)))
    manifest["jpeg_variants"] = {"base": f"{base_name}.jpg", "truncations": end + 1, "mutations": mutations, "expected": outcomes}


# --------------------------------------------------------------------------------------------
# Q-map, tiling, clusters, stitching and pipeline vectors
# --------------------------------------------------------------------------------------------


def _f32(folder: Path, name: str, array: np.ndarray) -> str:
    np.ascontiguousarray(array, dtype="<f4").tofile(folder / name)
    return name


def _u8(folder: Path, name: str, array: np.ndarray) -> str:
    np.ascontiguousarray(array, dtype=np.uint8).tofile(folder / name)
    return name


def _bytes(folder: Path, name: str, data: bytes) -> str:
    (folder / name).write_bytes(data)
    return name


def _write_qmap_vectors(folder: Path, manifest: dict) -> None:
    standard = parse_jpeg_header(_jpeg_cases()["c420_q75_37x53"])
    wide = parse_jpeg_header(_jpeg_cases()["custom16_sof1"])
    luma, chroma = standard.luma_table, standard.chroma_table
    cases = [
        (luma, chroma, "4:2:0", 37, 53),
        (luma, chroma, "4:2:2", 23, 40),
        (luma, chroma, "4:4:4", 17, 17),
        (luma, chroma, "4:4:0", 40, 24),
        (luma, chroma, "4:1:1", 33, 70),
        (luma, None, "gray", 45, 31),
        (wide.luma_table, wide.chroma_table, "4:2:0", 20, 36),
    ]
    entries = []
    for i, (lt, ct, sub, h, w) in enumerate(cases):
        qmap = qmap_from_tables(lt, ct, h, w, sub)
        rounded = _correctly_rounded_qmap(lt, ct, h, w, sub)
        entries.append({
            "luma": [int(v) for v in lt.ravel()],
            "chroma": None if ct is None else [int(v) for v in ct.ravel()],
            "subsampling": sub,
            "height": h,
            "width": w,
            "channels": int(qmap.shape[-1]),
            "file": _f32(folder, f"qmap_{i}.f32", qmap),
            "correctly_rounded": _f32(folder, f"qmap_{i}_exact.f32", rounded),
            # numpy's float32 log2 is not correctly rounded everywhere, and where depends on the CPU
            # (its SIMD loops: on AVX-512 machines steps 6, 12, 99, 173 and 198 come out 1 ulp off).
            "exact": bool(np.array_equal(qmap, rounded)),
        })
    manifest["qmap"] = entries
    steps = np.arange(1, 65536)
    numpy_steps = normalize_steps(steps)
    correctly_rounded = _CORRECTLY_ROUNDED_STEPS
    manifest["steps"] = {
        "count": int(steps.size),
        "numpy": _f32(folder, "steps_numpy.f32", numpy_steps),
        "correctly_rounded": _f32(folder, "steps_exact.f32", correctly_rounded),
        # Where this machine's numpy is off (the Kotlin side must differ from numpy there and only there).
        "numpy_off": [int(s) for s in steps[numpy_steps != correctly_rounded]],
    }


# log2(step) / 8 for steps 1..65535, from float64 log2 rounded once to float32 (what the app computes).
_CORRECTLY_ROUNDED_STEPS = np.array([math.log2(s) for s in range(1, 65536)], dtype=np.float32) / np.float32(8)


def _numpy_steps_exact(evidence) -> bool:
    """Whether numpy's normalised steps of the evidence's tables are the correctly rounded ones."""
    steps = np.concatenate([np.ravel(t) for t in (evidence.luma_table, evidence.chroma_table) if t is not None]).astype(np.int64)
    steps = np.maximum(steps, 1)
    return bool(np.array_equal(normalize_steps(steps), _CORRECTLY_ROUNDED_STEPS[steps - 1]))


def _correctly_rounded_qmap(luma, chroma, height, width, subsampling) -> np.ndarray:
    """``qmap_from_tables`` with every step's log2 correctly rounded (independent of numpy's log2 loops)."""
    from daqe_tf.jpeg.qmap import step_map
    from daqe_tf.jpeg.simulate import SUBSAMPLING_FACTORS

    maps = [step_map(luma, height, width)]
    if chroma is not None:
        maps.append(step_map(chroma, height, width, SUBSAMPLING_FACTORS[subsampling]))
    steps = np.maximum(np.stack(maps, axis=-1).astype(np.int64), 1)
    return _CORRECTLY_ROUNDED_STEPS[steps - 1]


TILE_OVERLAPS = [(16, 0), (32, 0), (32, 16), (64, 0), (64, 16), (64, 32), (64, 48), (128, 32), (256, 48), (512, 32), (512, 64)]


def _write_plan_vectors(manifest: dict) -> None:
    lengths = list(range(1, 301)) + [511, 512, 513, 1000, 1023, 1024, 1025, 3000, 3024, 4000, 4032, 12345]
    manifest["starts"] = [
        {"tile": tile, "overlap": overlap, "lengths": lengths, "starts": [_starts(n, tile, overlap, 16) for n in lengths]}
        for tile, overlap in TILE_OVERLAPS
    ]
    plans = []
    for h, w, tile, overlap in [(37, 50, 64, 16), (1000, 777, 256, 32), (513, 1025, 128, 48), (16, 16, 64, 16),
                                (1, 1, 16, 0), (100, 100, 32, 16), (300, 410, 128, 32), (64, 65, 64, 16)]:
        tiles = plan_tiles(h, w, tile, overlap)
        plans.append({"height": h, "width": w, "tile": tile, "overlap": overlap, "tiles": [[t.y0, t.x0, t.y1, t.x1] for t in tiles]})
    manifest["plans"] = plans
    errors = []
    for h, w, tile, overlap in [(100, 100, 100, 16), (100, 100, 64, 64), (100, 100, 64, 8), (100, 100, 64, -16),
                                (100, 100, 0, 0), (100, 100, 64, 80)]:
        with pytest.raises(ValueError):
            plan_tiles(h, w, tile, overlap)
        errors.append([h, w, tile, overlap])
    manifest["plan_errors"] = errors
    ramps = []
    for length in [1, 2, 3, 5, 16, 17, 32, 33, 48, 64, 100, 512]:
        for start in [0, 1, 2, 7, 16, 32, 48]:
            for end in [0, 1, 3, 16, 32]:
                if start <= length and end <= length:
                    ramps.append({"length": length, "start": start, "end": end, "weights": [float(v) for v in _ramp(length, start, end)]})
    manifest["ramps"] = ramps


def _tile_defocus_reference(dmap: np.ndarray, tile) -> float:
    """Mean of the cells under an overlapping tile: `patch_defocus_from_map` generalised to tiles
    that start on any multiple of 16 (cells [y0 / 16, ceil(y1 / 16)), clamped to the map)."""
    mh, mw = dmap.shape
    r0 = min(tile.y0 // 16, mh - 1)
    r1 = max(min(-(-tile.y1 // 16), mh), r0 + 1)
    c0 = min(tile.x0 // 16, mw - 1)
    c1 = max(min(-(-tile.x1 // 16), mw), c0 + 1)
    return float(np.float32(np.mean(dmap[r0:r1, c0:c1], dtype=np.float64)))


def _write_cluster_vectors(folder: Path, manifest: dict) -> None:
    # The model's own routing code (imports Keras, hence here and not at module level).
    from daqe_tf.models.daqe.clusters import assign_clusters, patch_defocus_from_map

    rng = np.random.default_rng(11)
    entries = []
    for thresholds in [[0.5, 1.0], [0.3], [], [0.1, 0.2, 0.9], [-1.0, 0.0, 2.5], [0.4, 0.4, 0.8]]:
        t32 = np.asarray(thresholds, np.float32)
        ties = [t32, np.nextafter(t32, np.float32(-np.inf)), np.nextafter(t32, np.float32(np.inf))]
        values = np.concatenate([rng.uniform(-1.5, 3.0, 60).astype(np.float32), *ties]).astype(np.float32)
        entries.append({
            "thresholds": [float(t) for t in t32], "values": [float(v) for v in values],
            "ids": assign_clusters(values, thresholds).tolist(),
        })
    manifest["clusters"] = entries

    grid = []
    for i, (mh, mw) in enumerate([(7, 9), (4, 4), (19, 26), (1, 1), (5, 12)]):
        dmap = rng.uniform(0.0, 1.2, (mh, mw)).astype(np.float32)
        means = patch_defocus_from_map(dmap[None, ..., None], 4)[0]
        thresholds = [0.4, 0.6]
        grid.append({
            "height": 16 * mh - 3, "width": 16 * mw - 3, "patch": 64, "map_height": mh, "map_width": mw,
            "map": _f32(folder, f"defocus_grid_{i}.f32", dmap), "thresholds": thresholds,
            "rows": int(means.shape[0]), "cols": int(means.shape[1]),
            "means": [float(v) for v in means.ravel()], "ids": assign_clusters(means, thresholds).ravel().tolist(),
        })
    manifest["patch_defocus"] = grid

    tiles = []
    for i, (h, w, mh, mw) in enumerate([(100, 130, 7, 9), (100, 130, 6, 8), (64, 64, 4, 4), (300, 410, 19, 26), (40, 40, 1, 1)]):
        dmap = rng.uniform(0.0, 1.0, (mh, mw)).astype(np.float32)
        means = np.array([_tile_defocus_reference(dmap, t) for t in plan_tiles(h, w, 64, 16)], np.float32)
        thresholds = [0.4, 0.6]
        tiles.append({
            "height": h, "width": w, "tile": 64, "overlap": 16,
            "map_height": mh, "map_width": mw, "map": _f32(folder, f"defocus_tiles_{i}.f32", dmap),
            "thresholds": thresholds, "means": [float(m) for m in means], "ids": assign_clusters(means, thresholds).tolist(),
        })
    manifest["tile_defocus"] = tiles


def _half_way_values(count: int) -> np.ndarray:
    """float32 values v with v * 255 exactly n + 0.5: rounding must go to the even neighbour."""
    found = []
    for n in range(255):
        v = np.float32((n + 0.5) / 255)
        for candidate in (v, np.nextafter(v, np.float32(0)), np.nextafter(v, np.float32(1))):
            if float(np.float32(candidate) * np.float32(255)) == n + 0.5:
                found.append(candidate)
                break
    assert len(found) >= count
    return np.array(found[:count], dtype=np.float32)


def _write_stitch_vectors(folder: Path, manifest: dict) -> None:
    rng = np.random.default_rng(5)
    entries = []
    for i, (h, w, c, tile, overlap) in enumerate([(37, 53, 3, 32, 16), (100, 70, 1, 64, 16), (130, 200, 3, 64, 32),
                                                  (16, 16, 3, 64, 16), (300, 410, 3, 128, 32), (70, 300, 1, 64, 48)]):
        tiles = plan_tiles(h, w, tile, overlap)
        results = {}
        for t in tiles:
            values = rng.uniform(-0.05, 1.05, (t.y1 - t.y0, t.x1 - t.x0, c)).astype(np.float32)
            results[(t.y0, t.x0)] = values
        if i == 3:  # one tile, weight 1: exact halves must round to even
            flat = results[(0, 0)].reshape(-1)
            halves = _half_way_values(60)
            flat[: halves.size] = halves
        blank = np.zeros((h, w, c) if c > 1 else (h, w), np.uint8)
        expected = enhance_tiled(blank, lambda window, t, results=results: results[(t.y0, t.x0)], tile=tile, overlap=overlap)
        ordered = np.concatenate([results[(t.y0, t.x0)].reshape(-1) for t in tiles])
        entries.append({
            "height": h, "width": w, "channels": c, "tile": tile, "overlap": overlap,
            "results": _f32(folder, f"stitch_{i}_in.f32", ordered), "expected": _u8(folder, f"stitch_{i}_out.u8", expected),
        })
    manifest["stitch"] = entries


# The fake model of the pipeline vectors: pointwise, so padding a window changes nothing inside it.
FAKE = {"scale": 1.1, "luma_q": 0.2, "last_q": 0.1, "bias": 0.05}


def _fake_forward(image, qmap):
    f = {k: np.float32(v) for k, v in FAKE.items()}
    return image * f["scale"] + qmap[..., :1] * f["luma_q"] + qmap[..., -1:] * f["last_q"] - f["bias"]


def _write_pipeline_vectors(folder: Path, manifest: dict) -> None:
    cases = [
        ("c420", encode_jpeg(natural_image(67, 90, 3, seed=21), quality=40), 3, 64, 16),
        ("c422", encode_jpeg(natural_image(50, 130, 3, seed=22), quality=60, subsampling=1), 3, 32, 16),
        ("c444_gray_model", encode_jpeg(natural_image(61, 47, 3, seed=23), quality=30, subsampling=0), 1, 64, 16),
        ("gray_colour_model", encode_jpeg(natural_image(45, 77, 1, seed=24), quality=50), 3, 64, 16),
        ("gray_gray_model", encode_jpeg(natural_image(80, 33, 1, seed=25), quality=20), 1, 32, 16),
        ("wide_tables", encode_jpeg(natural_image(40, 52, 3, seed=26), qtables=[list(range(1, 65)), [300 + 7 * i for i in range(64)]]), 3, 64, 32),
    ]
    entries = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "compiled_forward", lambda model, exit_index: _fake_forward)
        for name, data, model_channels, tile, overlap in cases:
            loaded = load_image(data)
            evidence = pipeline.jpeg_evidence(loaded)
            model = types.SimpleNamespace(image_channels=model_channels, num_exits=1)
            out = pipeline.enhance_pixels(loaded.pixels, model, evidence, tile=tile, overlap=overlap)
            (folder / f"pipe_{name}.jpg").write_bytes(data)
            entries.append({
                "name": name, "jpeg": f"pipe_{name}.jpg", "height": loaded.pixels.shape[0], "width": loaded.pixels.shape[1],
                "channels": 1 if loaded.pixels.ndim == 2 else 3, "model_channels": model_channels, "tile": tile, "overlap": overlap,
                "pixels": _u8(folder, f"pipe_{name}_in.u8", loaded.pixels), "expected": _u8(folder, f"pipe_{name}_out.u8", out),
                # Where numpy's float32 log2 is 1 ulp off for a step of the tables (16-bit steps, and some
                # 8-bit ones on some CPUs) the Q-maps differ; gray models: YCbCr round trips in float64
                # whose last bits depend on numpy's matmul.
                "exact": name not in ("wide_tables", "c444_gray_model") and _numpy_steps_exact(evidence),
            })
    manifest["pipeline"] = {"fake_model": FAKE, "cases": entries}


# The fake DAQE model of the routed vectors. Cell maps from each cell's top-left pixel (present in
# Python's cropped edge windows and the phone's padded ones alike): defocus d, routing value 1 - d,
# so routing by the wrong map picks other exits. Exits differ in scale, so the pixels show which exit ran.
ROUTED_FAKE = {"exit_scales": [0.8, 1.0, 1.2], "luma_q": 0.2, "last_q": 0.1, "bias": 0.05, "patch": 64, "defocus_window": 128}


def _fake_cell_maps(image, qmap=None):
    defocus = image[:, ::CELL, ::CELL, :1]
    return np.concatenate([defocus, np.float32(1) - defocus], axis=-1)


def _fake_exit(exit_index):
    f = {k: np.float32(v) for k, v in ROUTED_FAKE.items() if k in ("luma_q", "last_q", "bias")}
    scale = np.float32(ROUTED_FAKE["exit_scales"][exit_index])
    return lambda image, qmap: image * scale + qmap[..., :1] * f["luma_q"] + qmap[..., -1:] * f["last_q"] - f["bias"]


def _write_routing_vectors(folder: Path, manifest: dict) -> None:
    """Patches clustered by a routing map that differs from the defocus map: the exits must follow
    the routing map, through ``route_patches`` alone and through the whole routed pipeline."""
    from daqe_tf.routing.policy import fit_thresholds
    from daqe_tf.routing.runtime import PATCH_OVERLAP, patch_mean, route_patches

    rng = np.random.default_rng(13)
    thresholds = [0.35, 0.6]
    entries = []
    for i, (h, w) in enumerate([(150, 230), (100, 300), (300, 410), (37, 90)]):
        mh, mw = -(-h // CELL), -(-w // CELL)
        # Blur growing left to right, the routing value top to bottom: patch means spread over all clusters.
        rows, cols = np.meshgrid(np.linspace(0.0, 1.0, mh), np.linspace(0.0, 1.0, mw), indexing="ij")
        defocus = (cols + rng.normal(0.0, 0.1, (mh, mw))).astype(np.float32)
        routing = (rows + rng.normal(0.0, 0.1, (mh, mw))).astype(np.float32)
        patches = plan_tiles(h, w, 64, PATCH_OVERLAP)
        ids = route_patches(routing, patches, thresholds)
        by_defocus = route_patches(defocus, patches, thresholds)
        assert np.mean(ids != by_defocus) >= 0.3, (i, ids, by_defocus)
        entries.append({
            "height": h, "width": w, "patch": 64, "overlap": PATCH_OVERLAP, "map_height": mh, "map_width": mw,
            "defocus": _f32(folder, f"routing_{i}_defocus.f32", defocus), "routing": _f32(folder, f"routing_{i}_routing.f32", routing),
            "thresholds": thresholds, "ids": ids.tolist(), "ids_by_defocus": by_defocus.tolist(),
        })
    manifest["routing_clusters"] = entries

    cases = [
        ("c420", encode_jpeg(natural_image(150, 230, 3, seed=31), quality=40), 3),
        ("gray", encode_jpeg(natural_image(140, 170, 1, seed=32), quality=50), 1),
    ]
    routed = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "compiled_cell_maps", lambda model: _fake_cell_maps)
        mp.setattr(pipeline, "compiled_forward", lambda model, exit_index: _fake_exit(exit_index))
        for name, data, model_channels in cases:
            pixels = load_image(data).pixels
            height, width = pixels.shape[:2]
            cells = _fake_cell_maps(pixels.reshape(1, height, width, -1).astype(np.float32) / np.float32(255))[0]
            # As fit_thresholds does on a training set: equal shares of the patches' routing means.
            patches = plan_tiles(height, width, ROUTED_FAKE["patch"], PATCH_OVERLAP)
            thresholds = fit_thresholds([patch_mean(cells[..., 1], p) for p in patches], len(ROUTED_FAKE["exit_scales"]))
            model = types.SimpleNamespace(
                image_channels=model_channels, num_exits=len(ROUTED_FAKE["exit_scales"]), patch_size=ROUTED_FAKE["patch"],
                thresholds=thresholds, cell_maps=_fake_cell_maps,
            )
            result = pipeline.enhance(data, model, tile=ROUTED_FAKE["defocus_window"])
            loaded, out, routing = result.source, result.pixels, result.routing
            assert loaded.orientation == 1 and routing is not None and np.array_equal(routing.defocus, cells[..., 0])
            assert np.array_equal(routing.exits, route_patches(cells[..., 1], patches, thresholds))
            by_defocus = route_patches(cells[..., 0], patches, thresholds)
            assert np.mean(routing.exits != by_defocus) >= 0.3 and np.all(routing.exit_counts() > 0), routing.exits
            routed.append({
                "name": name, "jpeg": _bytes(folder, f"routed_{name}.jpg", data),
                "height": loaded.pixels.shape[0], "width": loaded.pixels.shape[1],
                "channels": 1 if loaded.pixels.ndim == 2 else 3, "model_channels": model_channels, "overlap": PATCH_OVERLAP,
                "thresholds": thresholds,
                "pixels": _u8(folder, f"routed_{name}_in.u8", loaded.pixels), "expected": _u8(folder, f"routed_{name}_out.u8", out),
                "patches": [[t.y0, t.x0, t.y1, t.x1] for t in routing.patches], "exits": routing.exits.tolist(),
                "defocus": _f32(folder, f"routed_{name}_defocus.f32", cells[..., 0]),
                "routing": _f32(folder, f"routed_{name}_routing.f32", cells[..., 1]),
            })
    manifest["routed_pipeline"] = {"fake_model": ROUTED_FAKE, "cases": routed}


# The fake cascade of the cascade vectors (``routing.run_cascade``'s interface, per patch, so batching
# changes nothing). Stage m works at 1/d of the patch side, d = 2^(N-1-m): features channel 0 = the
# first image channel, channel 1 = the last Q-map channel x its gain, each plus the previous stage's
# context (nearest-upsampled; channel 0 x context_gain); the summary appends the features at one
# position per stage; the score mixes this stage's and stage 0's summary entries minus the stage's
# offset (per case: the exits spread, and one patch per stage scores exactly 0). Head m: image x its
# scale + the upsampled features x gains - bias, so the pixels show the exit and the features a patch was given.
CASCADE_FAKE = {
    "patch": 64, "exits": 3, "context_gain": 0.5, "qmap_gains": [0.3, 0.6, 0.9], "summary_gain": 1.5, "first_weight": 0.75,
    "qmap_weight": 0.5, "exit_scales": [0.8, 1.0, 1.2], "feature_gains": [0.1, 0.2], "bias": 0.05, "defocus_window": 128,
}


def _upsample(x: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(x, factor, axis=1), factor, axis=2)


def _cascade_down(stage: int) -> int:
    return 2 ** (CASCADE_FAKE["exits"] - 1 - stage)


def _fake_cascade_stage(stage: int, offsets: list):
    """``compiled_cascade_stage(model, stage)`` of the fake; ``offsets`` is read at each call."""
    f = {k: np.float32(CASCADE_FAKE[k]) for k in ("context_gain", "summary_gain", "first_weight", "qmap_weight")}
    gain = np.float32(CASCADE_FAKE["qmap_gains"][stage])
    d, last = _cascade_down(stage), CASCADE_FAKE["exits"] - 1

    def forward(image, qmap, *carried):
        x0 = image[:, ::d, ::d, 0]
        x1 = qmap[:, ::d, ::d, -1] * gain
        if carried:
            context, _ = carried
            x0 = x0 + _upsample(context[..., 0], 2) * f["context_gain"]
            x1 = x1 + _upsample(context[..., 1], 2)
        features = np.stack([x0, x1], axis=-1)
        k = features.shape[1] * (stage + 1) // (last + 2)
        pooled = features[:, k, k, :]
        summary = np.concatenate([carried[1], pooled], axis=-1) if carried else pooled
        if stage == last:
            return features, summary, None
        score = summary[:, 2 * stage] * f["summary_gain"] - summary[:, 0] * f["first_weight"] \
            + summary[:, 2 * stage + 1] * f["qmap_weight"] - np.float32(offsets[stage])
        return features, summary, score[:, None]

    return forward


def _fake_cascade_head(stage: int):
    """``compiled_exit_from_features(model, stage)`` of the fake."""
    scale, (g0, g1), bias = (np.float32(v) for v in (CASCADE_FAKE["exit_scales"][stage], CASCADE_FAKE["feature_gains"], CASCADE_FAKE["bias"]))
    d = _cascade_down(stage)

    def forward(features, image):
        return image * scale + _upsample(features[..., :1], d) * g0 + _upsample(features[..., 1:], d) * g1 - bias

    return forward


def _raw_cascade_scores(pixels: np.ndarray, qmap_for, patches) -> np.ndarray:
    """(patches, N - 1) stage scores with zero offsets, every patch through every stage."""
    from daqe_tf.routing.runtime import _patch_window

    images, qmaps = (np.stack(parts) for parts in zip(*(_patch_window(pixels, t, CASCADE_FAKE["patch"], qmap_for) for t in patches)))
    carried, scores = (), []
    for stage in range(CASCADE_FAKE["exits"] - 1):
        features, summary, score = _fake_cascade_stage(stage, [0.0] * CASCADE_FAKE["exits"])(images, qmaps, *carried)
        carried = (features, summary)
        scores.append(score[:, 0])
    return np.stack(scores, axis=1)


def _offset_at(values: np.ndarray, share: float) -> float:
    """One of the float32 ``values``, with about ``share`` of them above it: that patch's score is
    then exactly 0, which is not > 0 (it stays), so a ">=" on either side would pick another exit."""
    ordered = np.unique(values)
    return float(ordered[min(max(int(round(len(ordered) * (1 - share))), 0), len(ordered) - 2)])


# Per-patch costs of the capped cascade vectors' exits (relative, the deepest 1; not powers of two,
# so the cap's sums round as real MAC ratios do).
CASCADE_COSTS = [0.3, 0.55, 1.0]


def _cascade_bands(rows: int, cols: int, band: int) -> np.ndarray:
    """The band of every patch of a rows x cols plan: whole rows, at most ``band`` patches (at least one row)."""
    per_band = max(1, band // cols)
    return np.repeat(np.arange(rows) // per_band, cols)


def _cap_for_half(scores: np.ndarray, costs) -> float:
    """A ``max_cost`` that lets about half of an image's deepest-exit candidates through (as one band),
    half-way between two counts so float rounding cannot move it."""
    from daqe_tf.routing.policy import cascade_exits

    uncapped = cascade_exits(scores)
    last = scores.shape[1]
    base = float(np.sum(np.asarray(costs)[np.minimum(uncapped, last - 1)]))
    room = int(np.sum(uncapped == last)) // 2
    return (base + (room + 0.5) * (costs[-1] - costs[-2])) / (len(uncapped) * costs[-1])


def _highest_first(scores: np.ndarray, capped: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``capped`` with each band's deep places given to its highest-scoring candidates instead: a wrong cap."""
    from daqe_tf.routing.policy import cascade_exits

    uncapped = cascade_exits(scores)
    last = scores.shape[1]
    wrong = capped.copy()
    for group in np.unique(groups):
        candidates = np.flatnonzero((groups == group) & (uncapped == last))
        room = int(np.sum(capped[candidates] == last))
        wrong[candidates] = last - 1
        wrong[candidates[np.argsort(-scores[candidates, -1].astype(np.float64), kind="stable")[:room]]] = last
    return wrong


def _write_cascade_vectors(folder: Path, manifest: dict) -> None:
    """Cascade-routed pipeline (``enhance_routed`` with routing "cascade") on the fake: the exits come
    from the stage scores as the patches run, first positive stage first; no defocus head unless a
    defocus map is asked for. Capped cases: the model's ``max_cost`` grants the deepest exit to about
    half of the candidates, lowest stage N - 2 scores first, per band of plan rows (``CASCADE_BAND``;
    one case with 7-patch bands, 2 rows of its 3-patch rows each, so bands of whole rows rounded up
    or the whole image as one band pick other exits)."""
    from daqe_tf.routing import runtime as routing_module
    from daqe_tf.routing.policy import capped_cascade_exits, cascade_exits
    from daqe_tf.routing.runtime import PATCH_OVERLAP

    cases = [
        # 10 patches per row: batches of 8 and 2; the defocus map is asked for.
        ("c420_wide", encode_jpeg(natural_image(150, 460, 3, seed=41), quality=40), 3, True, False, None),
        ("gray", encode_jpeg(natural_image(140, 170, 1, seed=42), quality=50), 1, False, False, None),
        ("gray_colour_model", encode_jpeg(natural_image(100, 200, 1, seed=43), quality=30), 3, False, False, None),
        # 44 patches in one band, capped.
        ("c420_capped", encode_jpeg(natural_image(200, 520, 3, seed=44), quality=35), 3, False, True, None),
        # 7 rows of 3 patches in bands of 7 patches (2 rows, then 2, 2 and 1), capped.
        ("gray_banded", encode_jpeg(natural_image(330, 140, 1, seed=45), quality=45), 1, False, True, 7),
    ]
    exits_count = CASCADE_FAKE["exits"]
    offsets = [0.0] * (exits_count - 1)
    default_band = routing_module.CASCADE_BAND
    entries = []
    with pytest.MonkeyPatch.context() as mp:
        captured = {}
        routed = pipeline.enhance_routed

        def capture(pixels, model, qmap_for, **kwargs):
            captured.update(pixels=pixels, qmap_for=qmap_for)
            return routed(pixels, model, qmap_for, **kwargs)

        mp.setattr(pipeline, "enhance_routed", capture)
        mp.setattr(pipeline, "compiled_cascade_stage", lambda model, stage: _fake_cascade_stage(stage, offsets))
        mp.setattr(pipeline, "compiled_exit_from_features", lambda model, stage: _fake_cascade_head(stage))
        mp.setattr(pipeline, "compiled_cell_maps", lambda model: _fake_cell_maps)
        for name, data, model_channels, with_map, capped, band in cases:
            mp.setattr(routing_module, "CASCADE_BAND", band or default_band)
            model = types.SimpleNamespace(
                image_channels=model_channels, num_exits=exits_count, patch_size=CASCADE_FAKE["patch"], routing="cascade",
                thresholds=[0.0] * (exits_count - 1), cell_maps=_fake_cell_maps,  # placeholders: a cascade uses neither
                max_cost=None, exit_costs=None,
            )
            # The pixels the model sees (after gray/colour adaptation) give the offsets: ~35% leave at
            # stage 0, about half of the rest at stage 1.
            offsets[:] = [0.0] * (exits_count - 1)
            pipeline.enhance(data, model, tile=CASCADE_FAKE["defocus_window"])
            pixels, qmap_for = captured["pixels"], captured["qmap_for"]
            patches = plan_tiles(pixels.shape[0], pixels.shape[1], CASCADE_FAKE["patch"], PATCH_OVERLAP)
            raw = _raw_cascade_scores(pixels, qmap_for, patches)
            offsets[0] = _offset_at(raw[:, 0], 0.35)
            offsets[1] = _offset_at(raw[raw[:, 0] <= offsets[0], 1], 0.5)
            scores = raw - np.array(offsets, np.float32)  # the fake's own float32 scores
            first = cascade_exits(scores)
            if capped:
                model.max_cost, model.exit_costs = _cap_for_half(scores, CASCADE_COSTS), list(CASCADE_COSTS)
            result = pipeline.enhance(data, model, tile=CASCADE_FAKE["defocus_window"], defocus_map=with_map)
            loaded, out, routing = result.source, result.pixels, result.routing
            leaves = scores > 0
            assert np.array_equal(first, np.where(leaves[:, 0], 0, np.where(leaves[:, 1], 1, 2)))
            assert np.sum(raw[:, 0] == offsets[0]) >= 1 and np.sum(raw[first >= 1, 1] == offsets[1]) >= 1, (raw, offsets)
            assert loaded.orientation == 1 and routing.signal == "cascade", routing.signal
            assert np.all(routing.exit_counts() > 0), routing.exit_counts()
            # Leaving at the first positive stage, not the last: exit-0 patches whose stage-1 score is positive too.
            assert np.sum(leaves[:, 0] & leaves[:, 1]) >= 1, leaves
            rows, cols = len({t.y0 for t in patches}), len({t.x0 for t in patches})
            if capped:
                groups = _cascade_bands(rows, cols, band or default_band)
                expected = capped_cascade_exits(scores, groups, CASCADE_COSTS, model.max_cost)
                assert np.array_equal(routing.exits, expected), (routing.exits, expected)
                # The cap binds (candidates sent out at N - 2), and neither the highest scores nor no cap give these exits.
                assert np.sum((first == 2) & (routing.exits == 1)) >= 2 and np.sum(routing.exits == 2) >= 2, (first, routing.exits)
                assert not np.array_equal(_highest_first(scores, expected, groups), expected)
                if band is not None:
                    # Several bands, each its own budget: as one band, or with bands of whole rows rounded up, other exits.
                    assert len(np.unique(groups)) >= 3 and band % cols
                    whole = capped_cascade_exits(scores, np.zeros(len(patches)), CASCADE_COSTS, model.max_cost)
                    wider = capped_cascade_exits(scores, np.repeat(np.arange(rows) // -(-band // cols), cols), CASCADE_COSTS, model.max_cost)
                    assert not np.array_equal(whole, expected) and not np.array_equal(wider, expected), (whole, wider, expected)
            else:
                assert len(patches) <= default_band and np.array_equal(routing.exits, first), (routing.exits, first)
            if with_map:
                cells = _fake_cell_maps(pixels.reshape(1, *pixels.shape[:2], -1).astype(np.float32) / np.float32(255))[0]
                assert np.array_equal(routing.defocus, cells[..., 0])
            else:
                assert routing.defocus is None
            entries.append({
                "name": name, "jpeg": _bytes(folder, f"cascade_{name}.jpg", data),
                "height": loaded.pixels.shape[0], "width": loaded.pixels.shape[1],
                "channels": 1 if loaded.pixels.ndim == 2 else 3, "model_channels": model_channels, "overlap": PATCH_OVERLAP,
                "offsets": list(offsets), "max_cost": model.max_cost, "exit_costs": model.exit_costs, "band": band,
                "uncapped_exits": first.tolist(),
                "pixels": _u8(folder, f"cascade_{name}_in.u8", loaded.pixels), "expected": _u8(folder, f"cascade_{name}_out.u8", out),
                "patches": [[t.y0, t.x0, t.y1, t.x1] for t in routing.patches], "exits": routing.exits.tolist(),
                "defocus": _f32(folder, f"cascade_{name}_defocus.f32", routing.defocus) if with_map else None,
            })
    manifest["cascade_pipeline"] = {"fake_model": CASCADE_FAKE, "default_band": default_band, "cases": entries}


# --------------------------------------------------------------------------------------------
# Compression history (re-saved photos), the evidence the enhancer assumes, grid padding, strength
# --------------------------------------------------------------------------------------------


def _textured(h: int, w: int, channels: int, seed: int) -> np.ndarray:
    """Natural content with sensor-like noise (as tests/test_history.py uses)."""
    rng = np.random.default_rng(seed)
    base = natural_image(h, w, channels, seed).astype(np.float64)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _history_cases() -> list[tuple[str, np.ndarray, bytes | None, bool | None]]:
    """(name, decoded pixels, JPEG file or None, whether an earlier compression must be found or None: either)."""
    from daqe_tf.jpeg.simulate import compress, earlier_jpeg_crop

    def resaved(image, first, offset, last, **kwargs):
        result = compress(earlier_jpeg_crop(image, first, offset), last, **kwargs)
        return result.decoded, result.data

    def custom_first(image, luma, offset, last):
        """Re-saved after a first save with custom tables (no IJG quality explains them) on a shifted grid."""
        dy, dx = offset
        padded = np.pad(image, ((dy, 0), (dx, 0), (0, 0)), mode="reflect")
        first = compress(padded, tables=[luma, np.full(64, 40)]).decoded[dy:, dx:]
        result = compress(np.ascontiguousarray(first), last)
        return result.decoded, result.data

    rng = np.random.default_rng(61)
    blocky = np.repeat(np.repeat(rng.integers(0, 256, (9, 12), dtype=np.uint8), 8, axis=0), 8, axis=1)[3:, 5:]
    cases = [
        ("resaved_c420_shifted", *resaved(_textured(128, 160, 3, 51), 15, (3, 5), 90), True),
        ("resaved_c444_aligned", *resaved(_textured(120, 136, 3, 52), 20, (0, 0), 85, subsampling="4:4:4"), True),
        ("resaved_gray_shifted", *resaved(_textured(112, 128, 1, 53), 15, (2, 6), 85), True),
        # 33 x 34 blocks: the DCT reads MAX_BLOCKS of them, evenly thinned.
        ("resaved_thinned_blocks", *resaved(_textured(264, 272, 3, 54), 25, (1, 7), 90), True),
        # 2056 rows: the column profile reads every other row (MAX_PROFILE_LINES).
        ("resaved_tall_gray", *resaved(_textured(2056, 32, 1, 55), 12, (6, 1), 85), True),
        ("triple_c420", *resaved(compress(_textured(128, 128, 3, 56), 10).decoded[3:, 2:], 50, (0, 0), 92), True),
        ("resaved_custom_first", *custom_first(_textured(128, 144, 3, 63), np.random.default_rng(3).integers(20, 60, 64), (4, 1), 90), True),
        ("single_c420_q50", compress(_textured(96, 120, 3, 57), 50).decoded, compress(_textured(96, 120, 3, 57), 50).data, False),
        ("single_gray_q30", compress(_textured(104, 96, 1, 58), 30).decoded, compress(_textured(104, 96, 1, 58), 30).data, False),
        ("custom_tables", *(lambda r: (r.decoded, r.data))(compress(_textured(96, 96, 3, 59), tables=[np.full(64, 7), np.full(64, 9)])), False),
        ("png_colour", _textured(96, 112, 3, 60), None, False),
        ("png_gray_trace", compress(earlier_jpeg_crop(_textured(120, 120, 1, 62), 20, (5, 3)), 90).decoded, None, True),
        ("png_blocky_noise", np.ascontiguousarray(blocky), None, None),
        ("png_noise_small", rng.integers(0, 256, (17, 31, 3), dtype=np.uint8), None, None),
        ("png_flat_row", np.zeros((1, 40, 3), np.uint8), None, False),
    ]
    return cases


def _robust(misfit: np.ndarray, threshold: float, margin: float) -> bool:
    """Where a local-minimum decision is taken (a value under the threshold against its neighbours
    within 2), no two values nearer than ``margin`` (relative) unless equal (equal tables): a
    different float summation order cannot flip it."""
    for i in np.flatnonzero(misfit < threshold * (1 + margin)):
        for j in range(max(0, i - 2), min(len(misfit), i + 3)):
            a, b = misfit[i], misfit[j]
            if np.isfinite(b) and a != b and abs(a - b) <= margin * max(abs(a), abs(b)):
                return False
    return True


def _evidence_json(evidence) -> dict:
    return {
        "source": evidence.source, "quality": evidence.quality, "grid": [int(g) for g in evidence.grid],
        "subsampling": evidence.subsampling, "luma": [int(v) for v in np.ravel(evidence.luma_table)],
        "chroma": None if evidence.chroma_table is None else [int(v) for v in np.ravel(evidence.chroma_table)],
    }


def _write_history_vectors(folder: Path, manifest: dict) -> None:
    """``estimate_history`` and ``jpeg_evidence`` on re-saved JPEGs (shifted and aligned first grids,
    gray, a triple save, thinned blocks, strided profile lines), single JPEGs, custom tables, and pixels
    without a file (plain, with a JPEG trace, blocky noise, noise, one row): every stage's result
    (profiles, candidate grids, misfits per quality) and the decisions, which must match exactly.
    Each case is checked here to be far from any tie float rounding could flip."""
    from daqe_tf.jpeg import history as h
    from daqe_tf.jpeg.reader import parse_jpeg_header

    entries = []
    found_shifted = 0
    for name, pixels, data, expect_found in _history_cases():
        loaded = load_image(data) if data is not None else None
        if loaded is not None:
            assert np.array_equal(loaded.pixels, pixels), name
        luma = h._luma(pixels)
        profiles = [h.boundary_profile(luma, axis) for axis in (0, 1)]
        # (grid, prominent) pairs where custom tables are searched on prominent grids; plain grids before.
        candidates = h.candidate_grids(luma)
        grids = [tuple(c[0]) if isinstance(c[0], tuple) else tuple(c) for c in candidates]
        prominent = [bool(c[1]) for c in candidates] if isinstance(candidates[0][0], tuple) else None
        misfits = [h.misfit_per_quality(h.block_coefficients(luma, g)) for g in grids]
        header = parse_jpeg_header(data) if data is not None else None
        last = None if header is None else h.file_compression(header.luma_table, header.chroma_table, header.subsampling)
        history = h.estimate_history(pixels, last)
        evidence = pipeline.jpeg_evidence(loaded) if loaded is not None else pipeline.jpeg_evidence(
            types.SimpleNamespace(jpeg=None, is_grayscale=pixels.ndim == 2, pixels=pixels, name=name))
        override = pipeline.jpeg_evidence(loaded, quality=40) if loaded is not None else pipeline.jpeg_evidence(
            types.SimpleNamespace(jpeg=None, is_grayscale=pixels.ndim == 2, pixels=pixels, name=name), quality=40)
        if expect_found is not None:
            assert (history.earlier is not None) == expect_found, (name, history.describe())
        if history.earlier is not None and history.earlier.shifted:
            found_shifted += 1
        # Far from ties: the top phases of each profile, every misfit from its neighbours and from the threshold.
        for profile in profiles:
            top = np.sort(profile)[::-1]
            assert top[1] == top[2] or top[1] - top[2] > 1e-9 * max(top[1], 1e-9), (name, profile)
        for m in misfits:
            assert _robust(m, h.FIT_THRESHOLD, 1e-5), (name, m)
            assert not np.any(np.abs(m[np.isfinite(m)] - h.FIT_THRESHOLD) < 1e-5), (name, m)
        entries.append({
            "name": name, "height": pixels.shape[0], "width": pixels.shape[1], "channels": 1 if pixels.ndim == 2 else 3,
            "pixels": _u8(folder, f"history_{name}.u8", pixels), "jpeg": None if data is None else _bytes(folder, f"history_{name}.jpg", data),
            "profiles": [[float(v) for v in p] for p in profiles],
            "grids": [list(g) for g in grids], "prominent": prominent,
            "misfits": [[float(v) for v in m] for m in misfits],
            "last": None if last is None else {"quality": last.quality, "standard": bool(last.standard)},
            "grid_found": bool(history.grid_found),
            "earlier": None if history.earlier is None else {
                "quality": history.earlier.quality, "grid": list(history.earlier.grid), "misfit": float(history.earlier.misfit),
                "subsampling": history.earlier.subsampling, "chroma": history.earlier.chroma_table is not None,
                "standard": bool(history.earlier.standard),
            },
            "describe": history.describe(),
            "evidence": _evidence_json(evidence), "override_40": _evidence_json(override),
        })
    assert found_shifted >= 4
    # The coarser-than-the-file test, on table pairs around its threshold.
    from daqe_tf.jpeg.tables import STD_LUMA_TABLE, scale_table

    pairs = []
    for a in (10, 30, 50, 60, 70, 75, 80, 90):
        for b in (50, 60, 70, 75, 80, 85, 90, 95):
            ta, tb = scale_table(STD_LUMA_TABLE, a), scale_table(STD_LUMA_TABLE, b)
            ratio = float((np.log(ta.astype(np.float64)[h._SCORED]) - np.log(tb.astype(np.float64)[h._SCORED])).mean())
            assert abs(ratio - h.COARSER_LOG_RATIO) > 1e-9
            pairs.append([a, b, bool(h.is_coarser(ta, tb))])
    assert {p[2] for p in pairs} == {True, False}
    manifest["history"] = {"cases": entries, "coarser": pairs}


def _write_strength_vectors(folder: Path, manifest: dict) -> None:
    """``blend_strength`` on random pixels (halves included: 0.5 x odd differences), ``check_strength``'s
    refusals, and the edge padding ``enhance_evidence`` puts above and left for each grid."""
    rng = np.random.default_rng(71)
    original = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    enhanced = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    blends = []
    for i, strength in enumerate([0.0, 0.25, 0.5, 1 / 3, 0.7, 1.0, 1.5, 1.9, 2.0]):
        out = pipeline.blend_strength(original, enhanced, pipeline.check_strength(strength))
        blends.append({"strength": strength, "expected": _u8(folder, f"blend_{i}.u8", out)})
    refused = []
    for strength in (-0.01, 2.01, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="strength"):
            pipeline.check_strength(strength)
        refused.append(strength)
    pads = []
    for i, (shape, grid) in enumerate([((5, 7, 3), (3, 5)), ((6, 4), (0, 1)), ((9, 9, 3), (7, 0)), ((4, 3), (1, 1)), ((5, 7, 3), (0, 0))]):
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        py, px = (-grid[0]) % 8, (-grid[1]) % 8
        padded = np.pad(pixels, ((py, 0), (px, 0)) + ((0, 0),) * (pixels.ndim - 2), mode="edge")
        pads.append({"height": shape[0], "width": shape[1], "channels": 1 if len(shape) == 2 else 3, "grid": list(grid),
                     "pad": [py, px], "pixels": _u8(folder, f"pad_{i}_in.u8", pixels), "expected": _u8(folder, f"pad_{i}_out.u8", padded)})
    manifest["strength"] = {
        "shape": list(original.shape), "original": _u8(folder, "blend_original.u8", original),
        "enhanced": _u8(folder, "blend_enhanced.u8", enhanced), "blends": blends, "refused": refused,
        "max": pipeline.MAX_STRENGTH, "pads": pads,
    }


def _write_resaved_pipeline_vectors(folder: Path, manifest: dict) -> None:
    """``pipeline.enhance`` end to end (fake pointwise model) on re-saved JPEGs whose earlier grid is
    shifted, so the padding and crop change the output, with a quality override and several strengths."""
    from daqe_tf.jpeg.simulate import compress, earlier_jpeg_crop

    colour = compress(earlier_jpeg_crop(_textured(100, 130, 3, 81), 15, (3, 5)), 90).data
    gray = compress(earlier_jpeg_crop(_textured(90, 70, 1, 82), 20, (6, 2)), 88).data
    cases = [
        ("colour_default", colour, 3, 64, 16, None, 1.0),
        ("colour_strength_07", colour, 3, 64, 16, None, 0.7),
        ("colour_strength_17", colour, 3, 32, 16, None, 1.7),
        ("colour_override_30", colour, 3, 64, 16, 30, 1.0),
        ("colour_strength_0", colour, 3, 64, 16, None, 0.0),
        ("colour_gray_model", colour, 1, 64, 16, None, 1.3),
        ("gray_default", gray, 1, 32, 16, None, 1.0),
        ("gray_colour_model", gray, 3, 64, 16, None, 0.5),
    ]
    entries = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "compiled_forward", lambda model, exit_index: _fake_forward)
        for name, data, model_channels, tile, overlap, quality, strength in cases:
            model = types.SimpleNamespace(image_channels=model_channels, num_exits=1)
            result = pipeline.enhance(data, model, quality=quality, strength=strength, tile=tile, overlap=overlap)
            loaded, evidence = result.source, result.evidence
            assert loaded.orientation == 1
            if quality is None:
                assert evidence.source == "history" and evidence.grid != (0, 0), (name, evidence.describe())
                # The padding matters: without it (the same tables on the file's grid) the pixels differ.
                if strength != 0.0:
                    unshifted = pipeline.enhance_pixels(loaded.pixels, model, dataclasses.replace(evidence, grid=(0, 0)), tile=tile, overlap=overlap)
                    assert not np.array_equal(pipeline.blend_strength(loaded.pixels, unshifted, strength), result.pixels), name
            entries.append({
                "name": name, "jpeg": _bytes(folder, f"resaved_{name}.jpg", data),
                "height": loaded.pixels.shape[0], "width": loaded.pixels.shape[1], "channels": 1 if loaded.pixels.ndim == 2 else 3,
                "model_channels": model_channels, "tile": tile, "overlap": overlap, "quality": quality, "strength": strength,
                "evidence": _evidence_json(evidence),
                "pixels": _u8(folder, f"resaved_{name}_in.u8", loaded.pixels), "expected": _u8(folder, f"resaved_{name}_out.u8", result.pixels),
                # As the pipeline vectors: numpy's log2 1 ulp off for a step, or a gray model's float64 round trip.
                "exact": model_channels == 1 and loaded.pixels.ndim == 2 or model_channels == 3 and _numpy_steps_exact(evidence),
            })
    manifest["resaved_pipeline"] = {"fake_model": FAKE, "cases": entries}


def _write_orientation_vectors(folder: Path, manifest: dict) -> None:
    entries = []
    for name, pixels in [("rgb", np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)), ("gray", np.arange(4 * 6, dtype=np.uint8).reshape(4, 6))]:
        for orientation in range(1, 9):
            upright = apply_orientation(pixels, orientation)
            entries.append({
                "orientation": orientation, "width": pixels.shape[1], "height": pixels.shape[0],
                "channels": 1 if pixels.ndim == 2 else 3, "pixels": _u8(folder, f"orient_{name}.u8", pixels),
                "upright_width": upright.shape[1], "upright_height": upright.shape[0],
                "expected": _u8(folder, f"orient_{name}_{orientation}.u8", upright),
            })
    manifest["orientation"] = entries


# --------------------------------------------------------------------------------------------
# Model metadata: the exporter's own <out>.tflite.json, which the app reads as written
# --------------------------------------------------------------------------------------------

# What ModelMeta.parse needs; dropping any of them must fail naming it.
META_KEYS = ("format", "family", "io_dtype", "defocus_cell", "image_channels", "qmap_channels",
             "num_exits", "patch_size", "patch_overlap", "thresholds")
GRAY_DAQE = dict(
    num_clusters=3, widths=[4, 4, 8, 8], encoder_blocks=[1, 1, 1], bottleneck_blocks=[1, 1, 1], decoder_blocks=[1, 0, 0],
    patch_size=64, defocus_widths=[4, 4, 4, 4], defocus_blocks=[1, 1, 1, 1], thresholds=[0.5, 1.25],
)


def _write_meta_vectors(folder: Path, manifest: dict) -> None:
    """Metadata of tiny DAQE models written by export.converter's own ``metadata``/``metadata_text``
    (the conversion is skipped: the app ignores ``ops``), the model facts the app must read from it,
    and broken copies it must refuse with a message naming the key."""
    from daqe_tf.models import build_model
    from daqe_tf.models.daqe.model import DAQENet
    from daqe_tf.routing.runtime import PATCH_OVERLAP
    from export.converter import (
        OUTPUT_FEATURES,
        OUTPUT_ROUTING,
        OUTPUT_SCORE,
        OUTPUT_SUMMARY,
        head_signature,
        is_cascade,
        metadata,
        metadata_text,
        signature_keys,
        stage_signature,
    )
    from tests.export_cases import TILE, build_case
    from tests.helpers import tiny_model

    def exported_meta(model) -> dict:
        return metadata(model, signature_keys(model, TILE), "float16", TILE, ["CONV_2D"])

    def legacy(meta: dict) -> dict:
        """The same metadata as exporters before the routing output wrote it: no routing keys."""
        old = {k: v for k, v in meta.items() if k != "routing"}
        old["outputs"] = {k: v for k, v in meta["outputs"].items() if k != "routing"}
        return old

    def cascade_names(model) -> dict | None:
        """What the app must find in a cascade's metadata, from the exporter's own names."""
        if not is_cascade(model):
            return None
        n = model.num_exits
        return {"stages": [stage_signature(m) for m in range(n)], "heads": [head_signature(m) for m in range(n)],
                "features": OUTPUT_FEATURES, "summary": OUTPUT_SUMMARY, "score": OUTPUT_SCORE}

    valid = []
    colour = None
    gray_model = build_model("daqe", 1, texture="cnn", **GRAY_DAQE)
    cascade_model = build_case("daqe_cascade")
    cascade = exported_meta(cascade_model)
    # A cascade's thresholds are placeholders: the app reads them but does not hold them to the exit count.
    placeholders = {**cascade, "thresholds": []}
    # The same cascade with a compute cap, as the model stores it (its own checks pass on it).
    capped_costs = [float(c) for c in np.linspace(0.45, 1.0, cascade_model.num_exits)]
    capped_model = DAQENet.from_config({**cascade_model.get_config(), "max_cost": 0.7, "exit_costs": capped_costs})
    capped = exported_meta(capped_model)
    assert capped["model_config"]["max_cost"] == 0.7 and capped["model_config"]["exit_costs"] == capped_costs
    # Exports from before the cap: no such config keys.
    uncapped_legacy = {**cascade, "model_config": {k: v for k, v in cascade["model_config"].items() if k not in ("max_cost", "exit_costs")}}
    for name, model, meta in [("daqe_colour", build_case("daqe_cnn"), None), ("daqe_gray", gray_model, None),
                              ("daqe_gray_legacy", gray_model, "legacy"), ("daqe_cascade", cascade_model, cascade),
                              ("daqe_cascade_placeholders", cascade_model, placeholders),
                              ("daqe_cascade_capped", capped_model, capped), ("daqe_cascade_before_cap", cascade_model, uncapped_legacy)]:
        legacy_file = meta == "legacy"
        meta = legacy(exported_meta(model)) if legacy_file else meta or exported_meta(model)
        colour = colour or meta
        (folder / f"{name}.tflite.json").write_text(metadata_text(meta))
        valid.append({"name": name, "file": f"{name}.tflite.json", "expected": {
            "image_channels": model.image_channels, "qmap_channels": model.qmap_channels, "num_exits": model.num_exits,
            "patch_size": model.patch_size, "patch_overlap": PATCH_OVERLAP, "thresholds": [float(t) for t in meta["thresholds"]],
            # Older files route by the defocus output (LiteRTModel.cell_maps does the same).
            "routing": "defocus" if legacy_file else model.routing, "routing_output": None if legacy_file else OUTPUT_ROUTING,
            "cascade": cascade_names(model),
            "max_cost": meta["model_config"].get("max_cost"), "exit_costs": meta["model_config"].get("exit_costs"),
        }})
    assert {v["expected"]["num_exits"] for v in valid} == {2, 3}
    assert [v["expected"]["routing"] for v in valid] == ["readout", "defocus", "defocus", "cascade", "cascade", "cascade", "cascade"]
    assert [v["expected"]["max_cost"] for v in valid] == [None] * 5 + [0.7, None]
    assert colour["routing"] == "readout" and colour["outputs"]["routing"] == OUTPUT_ROUTING
    assert cascade["routing"] == "cascade" and cascade["signatures"]["stages"] == cascade_names(cascade_model)["stages"]
    assert [float(t) for t in cascade["thresholds"]] == [float(t) for t in cascade_model.thresholds]

    broken = [(f"no_{key}", {k: v for k, v in colour.items() if k != key}, [f"missing key '{key}'"]) for key in META_KEYS]
    for name, changes, key in [
        ("format_2", {"format": 2}, "format"),
        ("io_uint8", {"io_dtype": "uint8"}, "io_dtype"),
        ("cell_8", {"defocus_cell": 8}, "defocus_cell"),
        ("channels_2", {"image_channels": 2}, "image_channels"),
        ("qmap_mismatch", {"qmap_channels": 1}, "qmap_channels"),
        ("no_exits", {"num_exits": 0, "thresholds": []}, "num_exits"),
        ("patch_24", {"patch_size": 24}, "patch_size"),
        ("patch_fraction", {"patch_size": 32.5}, "patch_size"),
        ("overlap_8", {"patch_overlap": 8}, "patch_overlap"),
        ("overlap_patch", {"patch_overlap": colour["patch_size"]}, "patch_overlap"),
        ("overlap_string", {"patch_overlap": "16"}, "patch_overlap"),
        ("thresholds_count", {"thresholds": []}, "thresholds"),
        ("thresholds_decreasing", {"num_exits": 3, "thresholds": [1.0, 0.5]}, "thresholds"),
        ("thresholds_nan", {"thresholds": [float("nan")]}, "thresholds"),
        ("thresholds_text", {"thresholds": ["0.7"]}, "thresholds"),
        ("routing_unknown", {"routing": "sharpness"}, "routing"),
        ("routing_number", {"routing": 1}, "routing"),
        ("outputs_list", {"outputs": ["enhanced", "defocus", "routing"]}, "outputs"),
        ("routing_output_number", {"outputs": {**colour["outputs"], "routing": 1}}, "outputs"),
        # A readout's thresholds are not in defocus units: without the routing output there is nothing to route by.
        ("readout_without_output", {"outputs": legacy(colour)["outputs"]}, "outputs"),
    ]:
        broken.append((name, {**colour, **changes}, [f"'{key}'"]))
    signatures, outputs, config = cascade["signatures"], cascade["outputs"], capped["model_config"]
    without = lambda d, key: {k: v for k, v in d.items() if k != key}  # noqa: E731
    for name, changes, expect in [
        ("cascade_no_stages", {"signatures": without(signatures, "stages")}, ["'signatures'", "'stages'", "'cascade'"]),
        ("cascade_no_heads", {"signatures": without(signatures, "heads")}, ["'signatures'", "'heads'"]),
        ("cascade_signatures_list", {"signatures": list(signatures)}, ["'signatures'", "'cascade'"]),
        ("cascade_no_signatures", {"signatures": None}, ["'signatures'"]),
        ("cascade_stage_number", {"signatures": {**signatures, "stages": [0, 1]}}, ["'signatures'", "'stages'"]),
        ("cascade_stages_short", {"signatures": {**signatures, "stages": signatures["stages"][:1]}},
         ["'signatures'", "one stage and one head per exit"]),
        ("cascade_heads_long", {"signatures": {**signatures, "heads": signatures["heads"] + ["head_9"]}}, ["'signatures'", "3 heads"]),
        ("cascade_no_features_output", {"outputs": without(outputs, "features")}, ["'outputs'", "'features'", "'cascade'"]),
        ("cascade_no_summary_output", {"outputs": without(outputs, "summary")}, ["'outputs'", "'summary'"]),
        ("cascade_no_score_output", {"outputs": without(outputs, "score")}, ["'outputs'", "'score'"]),
        ("cascade_score_number", {"outputs": {**outputs, "score": 3}}, ["'outputs'", "'score'"]),
        ("cascade_no_outputs", {"outputs": None}, ["'outputs'", "'features'"]),
        ("cascade_thresholds_text", {"thresholds": ["0.0"]}, ["'thresholds'"]),
        ("cascade_config_list", {"model_config": [0.7]}, ["'model_config'", "object"]),
        ("cascade_cap_text", {"model_config": {**config, "max_cost": "0.7"}}, ["'model_config.max_cost'", "number"]),
        ("cascade_cap_no_costs", {"model_config": {**config, "exit_costs": None}}, ["'model_config.exit_costs'", "'max_cost'"]),
        ("cascade_cap_costs_short", {"model_config": {**config, "exit_costs": [1.0]}},
         ["'model_config.exit_costs'", f"one cost per exit ({cascade_model.num_exits})"]),
        ("cascade_cap_cost_text", {"model_config": {**config, "exit_costs": ["0.45", "1.0"]}}, ["'model_config.exit_costs'", "numbers"]),
    ]:
        meta = {k: v for k, v in {**cascade, **changes}.items() if v is not None}
        broken.append((name, meta, expect))
    # Python refuses a cap on any other routing; so does the app.
    broken.append(("readout_capped", {**colour, "model_config": {**colour["model_config"], "max_cost": 0.7, "exit_costs": [0.45, 1.0]}},
                   ["'model_config.max_cost'", "cascade", "'readout'"]))
    # A real QGAUNet export: no routing keys, refused for its family before any of them is missed.
    broken.append(("qga_unet", exported_meta(tiny_model(3)), ["'family'", "'qga_unet'"]))
    entries = []
    for name, meta, expect in broken:
        (folder / f"meta_{name}.json").write_text(metadata_text(meta))
        entries.append({"file": f"meta_{name}.json", "expect": expect})
    (folder / "meta_truncated.json").write_text(metadata_text(colour)[:200])
    entries.append({"file": "meta_truncated.json", "expect": ["not valid JSON"]})
    manifest["model_meta"] = {"valid": valid, "broken": entries}


def _write_vectors(folder: Path) -> dict:
    manifest: dict = {}
    _write_jpeg_vectors(folder, manifest)
    _write_qmap_vectors(folder, manifest)
    _write_plan_vectors(manifest)
    _write_cluster_vectors(folder, manifest)
    _write_stitch_vectors(folder, manifest)
    _write_pipeline_vectors(folder, manifest)
    _write_routing_vectors(folder, manifest)
    _write_cascade_vectors(folder, manifest)
    _write_orientation_vectors(folder, manifest)
    _write_history_vectors(folder, manifest)
    _write_strength_vectors(folder, manifest)
    _write_resaved_pipeline_vectors(folder, manifest)
    _write_meta_vectors(folder, manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return manifest


# --------------------------------------------------------------------------------------------
# Kotlin build (cached) and JUnit run
# --------------------------------------------------------------------------------------------


def _toolchain() -> dict:
    kotlinc = shutil.which("kotlinc")
    java = shutil.which("java")
    if kotlinc is None or java is None:
        pytest.skip(f"kotlinc not found: {INSTALL_HINT}")
    jars = {name: JAVA_LIBS / f"{name}.jar" for name in ("junit4", "hamcrest-core", "kotlin-stdlib")}
    missing = [str(p) for p in jars.values() if not p.is_file()]
    if missing:
        pytest.skip(f"junit4/kotlin jars not found ({', '.join(missing)}): {INSTALL_HINT}")
    return {"kotlinc": kotlinc, "java": java, **{k: str(v) for k, v in jars.items()}}


def _sources() -> list[Path]:
    files = sorted(p for d in CORE_DIRS for p in d.glob("*.kt"))
    assert files, f"no Kotlin sources under {CORE_DIRS}"
    return files


def _compile(tools: dict) -> Path:
    """Class folder for the current sources, compiled once per source hash and kept between runs."""
    sources = _sources()
    digest = hashlib.sha256()
    compiler = Path(os.path.realpath(tools["kotlinc"]))
    digest.update(f"{compiler}:{compiler.stat().st_mtime_ns}".encode())
    for path in sources:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    cache = Path(os.environ.get("DAQE_KOTLIN_CACHE", Path(tempfile.gettempdir()) / "daqe-kotlin-core"))
    target = cache / digest.hexdigest()[:20]
    if (target / "OK").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
    cmd = [tools["kotlinc"], *map(str, sources), "-cp", tools["junit4"], "-d", str(work)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        pytest.fail(f"kotlinc failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    (work / "OK").write_text("compiled\n")
    try:
        work.rename(target)
    except OSError:  # another session finished the same build first
        shutil.rmtree(work, ignore_errors=True)
    _prune(cache, keep=target)
    return target


def _prune(cache: Path, keep: Path, count: int = 4) -> None:
    """Drop all but the newest few builds (each source edit makes a new one)."""
    builds = sorted((p for p in cache.iterdir() if (p / "OK").is_file()), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in builds[count:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def _test_classes() -> list[str]:
    return [f"{TEST_PACKAGE}.{p.stem}" for p in sorted(CORE_DIRS[1].glob("*Test.kt"))]


@pytest.fixture(scope="module")
def kotlin_run(tmp_path_factory):
    tools = _toolchain()
    folder = tmp_path_factory.mktemp("kotlin_vectors")
    manifest = _write_vectors(folder)
    classes = _compile(tools)
    classpath = os.pathsep.join([str(classes), tools["junit4"], tools["hamcrest-core"], tools["kotlin-stdlib"]])
    cmd = [tools["java"], f"-Ddaqe.vectors={folder}", "-Ddaqe.vectors.required=true", "-cp", classpath,
           "org.junit.runner.JUnitCore", *_test_classes()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return manifest, proc


@pytest.mark.slow  # compiles the Kotlin core and its JUnit tests
def test_kotlin_core_passes_junit_on_python_vectors(kotlin_run):
    _, proc = kotlin_run
    output = proc.stdout + proc.stderr
    ok = re.search(r"^OK \((\d+) tests?\)", output, re.M)
    assert proc.returncode == 0 and ok, f"JUnit failed (exit {proc.returncode}):\n{output[-20000:]}"
    assert int(ok.group(1)) > 0
    assert len(_test_classes()) >= 6


@pytest.mark.slow  # the same Kotlin build
def test_kotlin_tests_read_every_vector_set(kotlin_run):
    """Each vector set was read and checked case by case, not skipped for lack of the folder."""
    manifest, proc = kotlin_run
    seen = {m.group(1): int(m.group(2)) for m in re.finditer(r"VECTORS (\S+) (\d+)$", proc.stdout, re.M)}
    variants = manifest["jpeg_variants"]
    expected = {
        "jpeg": len(manifest["jpeg"]),
        "jpeg_variants": variants["truncations"] + len(variants["mutations"]),
        "qmap": len(manifest["qmap"]),
        "steps": manifest["steps"]["count"],
        "starts": sum(len(s["lengths"]) for s in manifest["starts"]),
        "plans": len(manifest["plans"]),
        "plan_errors": len(manifest["plan_errors"]),
        "ramps": len(manifest["ramps"]),
        "clusters": sum(len(c["values"]) for c in manifest["clusters"]),
        "patch_defocus": len(manifest["patch_defocus"]),
        "tile_defocus": len(manifest["tile_defocus"]),
        "stitch": len(manifest["stitch"]),
        "pipeline": len(manifest["pipeline"]["cases"]),
        "routing_clusters": len(manifest["routing_clusters"]),
        "routed_pipeline": len(manifest["routed_pipeline"]["cases"]),
        "cascade_pipeline": len(manifest["cascade_pipeline"]["cases"]),
        "orientation": len(manifest["orientation"]),
        "model_meta": len(manifest["model_meta"]["valid"]) + len(manifest["model_meta"]["broken"]),
        "history": len(manifest["history"]["cases"]) + len(manifest["history"]["coarser"]),
        "strength": len(manifest["strength"]["blends"]) + len(manifest["strength"]["refused"]) + len(manifest["strength"]["pads"]),
        "resaved_pipeline": len(manifest["resaved_pipeline"]["cases"]),
    }
    assert seen == expected, proc.stdout[-5000:]


if __name__ == "__main__":
    # Write the vectors to a folder for the Gradle unit tests:
    #   python -m tests.test_kotlin_core /tmp/daqe-vectors
    #   DAQE_VECTORS=/tmp/daqe-vectors ./gradlew :app:testDebugUnitTest   (in android_demo/)
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "daqe-vectors")
    target.mkdir(parents=True, exist_ok=True)
    _write_vectors(target)
    print(f"test vectors written to {target}")
