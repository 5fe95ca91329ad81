"""Whole-image enhancement: file -> tables + Q-map -> model per tile (or per routed patch) -> image.

``enhance`` is the one call behind the Python API and the CLI, for both model families:
QGAUNet runs tiles through one exit, DAQE models route patches to exits by predicted
defocus (``daqe_tf.routing``). The compression that dominates the pixels drives
the Q-map: the file's own tables, or an earlier, coarser compression its pixels still show
(``daqe_tf.jpeg.history``), moved to the origin when its grid is shifted; the caller may set
the quality instead, and the result says which. Work happens in the stored orientation,
where the block grid is, and EXIF orientation is applied to the result.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from daqe_tf.contracts import is_model_path, routes_patches
from daqe_tf.inference.compiled import (  # noqa: F401  (compiled_patch_summaries, compiled_readout_inputs re-exported)
    compiled_cascade_stage,
    compiled_cell_maps,
    compiled_exit_from_features,
    compiled_forward,
    compiled_patch_summaries,
    compiled_readout_inputs,
)
from daqe_tf.inference.tiling import Tile, enhance_tiled
from daqe_tf.io import ImageInputError, LoadedImage, apply_orientation, load_image
from daqe_tf.jpeg.history import CompressionHistory, compression_for_quality, estimate_history, file_compression
from daqe_tf.jpeg.qmap import qmap_from_tables
from daqe_tf.jpeg.simulate import SUBSAMPLING_FACTORS
from daqe_tf.routing.runtime import Forwards, Routing, enhance_routed


@dataclasses.dataclass(frozen=True)
class JpegEvidence:
    """The compression the enhancer assumes, and where that knowledge came from.

    ``grid`` = (y, x) of a block corner of the assumed compression (``Compression.grid``): (0, 0)
    for the file's own tables, elsewhere when an earlier compression on a shifted grid dominates.
    ``history`` is what the pixels told (None when the caller set the quality).
    """

    luma_table: np.ndarray
    chroma_table: np.ndarray | None
    subsampling: str
    quality: int
    source: str  # "jpeg-standard", "jpeg-custom", "history", "blind", "blind-fallback", "override"
    grid: tuple[int, int] = (0, 0)
    history: CompressionHistory | None = None

    def describe(self) -> str:
        if self.source == "override":
            return f"QF {self.quality} as set by the caller"
        if self.source == "blind-fallback":
            return f"not a JPEG file and no JPEG trace found: assumed QF {self.quality}"
        return self.history.describe() if self.history is not None else f"QF {self.quality}"


@dataclasses.dataclass(frozen=True)
class EnhanceResult:
    pixels: np.ndarray  # uint8, display orientation (EXIF applied)
    evidence: JpegEvidence
    exit_index: int | None  # None: a DAQE model chose an exit per patch (see ``routing``)
    source: LoadedImage
    routing: Routing | None = None  # DAQE models: patch plan, exit per patch, defocus map (stored orientation)
    views: int = 1  # > 1: the average over this many flipped/transposed views (``ensemble``)

    def describe_exits(self) -> str:
        if self.views > 1:
            return f"average of {self.views} flipped and transposed views"
        return self.routing.describe() if self.routing is not None else f"exit {self.exit_index}"


BLIND_FALLBACK_QUALITY = 75


def jpeg_evidence(loaded: LoadedImage, quality: int | None = None) -> JpegEvidence:
    """The compression to build the Q-map from: the one that dominates the pixels.

    A JPEG file's own tables, unless its pixels show an earlier, coarser compression (on any
    grid: ``daqe_tf.jpeg.history``); pixels without a JPEG file get the compression found in
    them, or QF 75 when none is. ``quality`` overrides all of it (the standard tables at that
    quality on the file's grid).
    """
    header = loaded.jpeg
    grayscale = loaded.is_grayscale
    subsampling = "gray" if grayscale else "4:2:0"
    if header is not None:
        subsampling = header.subsampling
        if subsampling not in SUBSAMPLING_FACTORS:
            raise ImageInputError(f"{loaded.name or 'input'}: unsupported chroma subsampling {subsampling}")
    if quality is not None:
        assumed = compression_for_quality(quality, grayscale, subsampling)
        return JpegEvidence(assumed.luma_table, assumed.chroma_table, assumed.subsampling, assumed.quality, "override")
    last = None if header is None else file_compression(header.luma_table, header.chroma_table, subsampling)
    history = estimate_history(loaded.pixels, last)
    if history.earlier is not None:
        used, source = history.earlier, "history" if last is not None else "blind"
    elif last is not None:
        used, source = last, "jpeg-standard" if last.standard else "jpeg-custom"
    else:
        used = compression_for_quality(BLIND_FALLBACK_QUALITY, grayscale)
        source = "blind-fallback"
    chroma = None if grayscale else used.chroma_table
    return JpegEvidence(used.luma_table, chroma, "gray" if grayscale else used.subsampling, used.quality, source,
                        used.grid, history)


# BT.601 full-range YCbCr, the colour space inside JPEG files.
_TO_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def window_qmaps(evidence: JpegEvidence, image_channels: int) -> Callable[[int, int, tuple], np.ndarray]:
    """``qmap_for(height, width, origin)``: the Q-map of a window, as a model with ``image_channels`` takes it."""
    chroma = evidence.chroma_table
    subsampling = evidence.subsampling
    if image_channels == 3 and chroma is None:
        chroma, subsampling = evidence.luma_table, "4:4:4"  # gray content through a colour model
    if image_channels == 1:
        chroma, subsampling = None, "gray"
    gy, gx = evidence.grid
    return lambda height, width, origin: qmap_from_tables(
        evidence.luma_table, chroma, height, width, subsampling, origin=(origin[0] - gy, origin[1] - gx))


def _forwards() -> Forwards:
    """The routing runtime's model calls: this module's compiled functions, looked up when called."""
    return Forwards(compiled_forward, compiled_cell_maps, compiled_readout_inputs, compiled_cascade_stage,
                    compiled_exit_from_features)


def _model_runner(model, evidence: JpegEvidence, exit_index: int, image_channels: int) -> Callable:
    """``run(window_uint8, tile)`` for ``enhance_tiled``: Q-map for the window, then the model."""
    qmap_for = window_qmaps(evidence, image_channels)
    forward = compiled_forward(model, exit_index)

    def run(window: np.ndarray, tile: Tile) -> np.ndarray:
        h, w = window.shape[:2]
        qmap = qmap_for(h, w, (tile.y0, tile.x0))
        image = window.astype(np.float32).reshape(1, h, w, -1) / 255.0
        return np.asarray(forward(image, qmap[None]))[0]

    return run


def enhance_pixels(
    pixels: np.ndarray,
    model,
    evidence: JpegEvidence,
    *,
    exit_index: int | None = -1,
    tile: int = 512,
    overlap: int = 32,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Enhance uint8 pixels (stored orientation) with ``model``; returns uint8 of the same shape.

    A grayscale model on colour pixels enhances luma and keeps chroma; a colour
    model on grayscale pixels runs on the replicated channel and returns gray.
    ``exit_index=None``: DAQE models route each patch by defocus, QGAUNet takes its deepest exit.
    The evidence's block grid is put at the origin first (``enhance_evidence``).
    """
    return enhance_evidence(pixels, model, evidence, exit_index, tile, overlap, progress)[0]


def _enhance(pixels, model, evidence, exit_index, tile, overlap, progress, defocus_map=False) -> tuple[np.ndarray, Routing | None]:
    """``enhance_pixels`` that also returns the DAQE routing (None for QGAUNet)."""
    channels = model.image_channels
    if pixels.ndim == 3 and channels == 1:
        ycc = pixels.astype(np.float64) @ _TO_YCC.T + np.array([0.0, 128.0, 128.0])
        luma = np.clip(np.round(ycc[..., 0]), 0, 255).astype(np.uint8)
        ycc[..., 0], routing = _enhance(luma, model, evidence, exit_index, tile, overlap, progress, defocus_map)
        rgb = (ycc - np.array([0.0, 128.0, 128.0])) @ np.linalg.inv(_TO_YCC).T
        return np.clip(np.round(rgb), 0, 255).astype(np.uint8), routing
    if pixels.ndim == 2 and channels == 3:
        rgb, routing = _enhance(np.repeat(pixels[..., None], 3, axis=2), model, evidence, exit_index, tile, overlap, progress, defocus_map)
        return np.clip(np.round(rgb.astype(np.float64).mean(axis=2)), 0, 255).astype(np.uint8), routing
    if routes_patches(model):
        qmap_for = window_qmaps(evidence, channels)
        return enhance_routed(pixels, model, qmap_for, exit_index=exit_index, tile=tile, progress=progress,
                              defocus_map=defocus_map, forwards=_forwards())
    run = _model_runner(model, evidence, model.num_exits - 1 if exit_index is None else exit_index, channels)
    return enhance_tiled(pixels, run, tile=tile, overlap=overlap, align=16, progress=progress), None


def blend_strength(original: np.ndarray, enhanced: np.ndarray, strength: float) -> np.ndarray:
    """``original + strength * (enhanced - original)`` in uint8: 0 keeps the input, 1 is the model's
    output, values above 1 exaggerate the correction (clipped to 0..255)."""
    if strength == 1.0:
        return enhanced
    mixed = original.astype(np.float32) + np.float32(strength) * (enhanced.astype(np.float32) - original.astype(np.float32))
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def check_strength(strength: float) -> float:
    strength = float(strength)
    if not 0.0 <= strength <= MAX_STRENGTH:
        raise ValueError(f"strength must be in 0..{MAX_STRENGTH:g}, got {strength:g}")
    return strength


MAX_STRENGTH = 2.0


def enhance_evidence(pixels, model, evidence: JpegEvidence, exit_index, tile=512, overlap=32, progress=None,
                     defocus_map=False) -> tuple[np.ndarray, Routing | None]:
    """``_enhance`` with the assumed compression's block grid moved to the origin.

    The models learnt JPEG damage on blocks that start at the image's origin; an earlier
    compression on a shifted grid is shown to them the same way by padding (edge pixels) above
    and left, and the padding is cut off again. Returns pixels of the input's shape.
    """
    if tuple(evidence.grid) == (0, 0):
        return _enhance(pixels, model, evidence, exit_index, tile, overlap, progress, defocus_map)
    padded, (py, px) = pad_to_grid(pixels, evidence.grid)
    aligned = dataclasses.replace(evidence, grid=(0, 0))
    out, routing = _enhance(padded, model, aligned, exit_index, tile, overlap, progress, defocus_map)
    if routing is not None:
        routing = dataclasses.replace(routing, offset=(py, px))
    return np.ascontiguousarray(out[py:, px:]), routing


def pad_to_grid(pixels: np.ndarray, grid: tuple[int, int], multiple: int = 1) -> tuple[np.ndarray, tuple[int, int]]:
    """``pixels`` padded with edge pixels above and left so a block corner at ``grid`` lands on the
    origin, and below and right to sides that are a ``multiple``; returns it and the (top, left) pad."""
    height, width = pixels.shape[:2]
    py, px = (-grid[0]) % 8, (-grid[1]) % 8
    bottom, right = (-(height + py)) % multiple, (-(width + px)) % multiple
    return np.pad(pixels, ((py, bottom), (px, right)) + ((0, 0),) * (pixels.ndim - 2), mode="edge"), (py, px)


ENSEMBLE_VIEWS = 4  # as is, flipped left-right, flipped up-down, transposed (or turned for 4:1:1)
# Chroma layouts under a transpose (4:1:1 has no transposed layout here: its views are flips only).
_TRANSPOSED_SUBSAMPLING = {"gray": "gray", "4:4:4": "4:4:4", "4:2:0": "4:2:0", "4:2:2": "4:4:0", "4:4:0": "4:2:2"}


def ensemble_views(evidence: JpegEvidence) -> list[tuple[Callable, Callable, JpegEvidence]]:
    """(transform, inverse, evidence of the transformed image) for the four views of ``enhance_ensemble``.

    A flip maps each block's quantization lattice onto itself (a DCT coefficient only changes sign),
    so a flipped JPEG has the same tables; a transpose swaps the frequencies, so its tables (and the
    chroma layout) are transposed.
    """
    flip_lr = (lambda a: a[:, ::-1], lambda a: a[:, ::-1])
    flip_ud = (lambda a: a[::-1], lambda a: a[::-1])
    views = [(lambda a: a, lambda a: a, evidence), (*flip_lr, evidence), (*flip_ud, evidence)]
    if evidence.subsampling in _TRANSPOSED_SUBSAMPLING:
        transposed = dataclasses.replace(
            evidence, luma_table=np.asarray(evidence.luma_table).T,
            chroma_table=None if evidence.chroma_table is None else np.asarray(evidence.chroma_table).T,
            subsampling=_TRANSPOSED_SUBSAMPLING[evidence.subsampling])
        swap = lambda a: np.swapaxes(a, 0, 1)  # noqa: E731
        views.append((swap, swap, transposed))
    else:
        views.append((lambda a: a[::-1, ::-1], lambda a: a[::-1, ::-1], evidence))
    return views


def enhance_ensemble(pixels, model, evidence: JpegEvidence, exit_index, tile=512, overlap=32) -> np.ndarray:
    """The average of the model's output over four flipped/transposed views of the image (4x the compute).

    The image is padded (edge pixels) so the assumed grid sits at the origin and both sides are whole
    MCUs: every view then keeps its block grid at the origin, and each view gets the Q-map of its
    own geometry (``ensemble_views``).
    """
    sv, sh = SUBSAMPLING_FACTORS[evidence.subsampling]
    height, width = pixels.shape[:2]
    padded, (py, px) = pad_to_grid(pixels, evidence.grid, multiple=8 * max(sv, sh))
    aligned = dataclasses.replace(evidence, grid=(0, 0))
    total = np.zeros(padded.shape, np.float64)
    views = ensemble_views(aligned)
    for transform, inverse, view_evidence in views:
        out, _ = _enhance(np.ascontiguousarray(transform(padded)), model, view_evidence, exit_index, tile, overlap, None)
        total += inverse(out)
    mean = np.clip(np.round(total / len(views)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(mean[py : py + height, px : px + width])


def enhance(
    source,
    model=None,
    *,
    exit_index: int | None = None,
    quality: int | None = None,
    strength: float = 1.0,
    ensemble: bool = False,
    tile: int = 512,
    overlap: int = 32,
    progress: Callable[[int], None] | None = None,
    defocus_map: bool = False,
) -> EnhanceResult:
    """Enhance a JPEG given as a path, bytes, PIL image or uint8 array.

    ``model``: a loaded model, a ``.keras`` or ``.tflite`` (LiteRT) path, or None
    for the shipped default matching the image (grayscale stays grayscale). ``exit_index``
    picks speed (0) versus quality (-1, the deepest exit); None (default) lets a DAQE model
    pick an exit per patch by defocus (``result.routing`` says which) and means -1 otherwise.
    ``quality``: assume this JPEG quality (standard tables, the file's grid) instead of the
    compression history read from the file and its pixels (``result.evidence`` says what was
    assumed). ``strength``: 0 returns the input, 1 the model's output, up to 2 exaggerates it.
    ``ensemble``: average four flipped/transposed views (about 4x the time; no ``routing``).
    ``tile``: tile side for QGAUNet, defocus-window side for DAQE models. ``defocus_map``: also
    run the defocus head for ``result.routing.defocus`` where routing does not need it (a cascade).
    """
    from daqe_tf.inference.models import load_model

    strength = check_strength(strength)
    loaded = load_image(source)
    if model is None or is_model_path(model):
        model = load_model(model, grayscale=loaded.is_grayscale)
    evidence = jpeg_evidence(loaded, quality)
    if exit_index is not None:
        exit_index = exit_index % model.num_exits
    elif not routes_patches(model):
        exit_index = model.num_exits - 1
    pixels, routing, views = loaded.pixels, None, 1
    if strength != 0.0:
        if ensemble:
            pixels, views = enhance_ensemble(loaded.pixels, model, evidence, exit_index, tile, overlap), ENSEMBLE_VIEWS
        else:
            pixels, routing = enhance_evidence(loaded.pixels, model, evidence, exit_index, tile, overlap, progress,
                                               defocus_map)
        pixels = blend_strength(loaded.pixels, pixels, strength)
    return EnhanceResult(apply_orientation(pixels, loaded.orientation), evidence, exit_index, loaded, routing, views)
