"""The routing runtime: DAQE whole-image enhancement, defocus map -> clusters -> exits -> blend (or a cascade).

A DAQE exit is chosen per patch, so the tile runner's one-exit-per-call does not fit: here the
patches of each plan row are grouped by exit and batched (a batch of one cluster's patches is also
the reference set of the transformer texture), then blended with the tile runner's ramps
(``tiling.stitch``). The steps and their constants are those of the phone's ``TiledEnhancer``:

1. The defocus head runs on ``tile`` x ``tile`` windows (overlap 64, so one window for most
   photos) and gives two values per 16-px cell (``DAQENet.cell_maps``): the predicted defocus and
   the routing value (the defocus itself, or the model's learned ``RoutingReadout``); each cell
   comes from the window that owns it (``tiling.cell_owners``).
2. Patches are ``plan_tiles(H, W, model.patch_size, 0)``: on the 16-px grid, neighbours
   overlapping by 16..32 px (``plan_tiles`` keeps one grid step more than it is asked for, so
   asking for 16 would mean 32..48 px and about 3.6 patch pixels per image pixel at 64-px
   patches instead of 1.8). A patch's routing value is the mean of the cells it covers;
   ``assign_clusters`` with the model's thresholds gives its cluster, i.e. its exit.
3. Per plan row and exit, batches of ``EXIT_BATCH`` patches (windows past the image edge repeat
   the edge pixels, the Q-map continues the block grid; unused batch slots repeat the last patch)
   run through that exit; the in-image part of each output is blended.

A "cascade" model skips steps 1-2 (no defocus head runs): per band of plan rows (up to
``CASCADE_BAND`` patches), batches of patches run branch 0, the stage's readout says which leave
through exit 0, the rest run branch 1 on branch 0's features, and so on; a compute cap
(``max_cost``) grants the deepest exit to the band's neediest candidates only while the band's
mean cost allows (``run_cascade``). Blending is the same.
"""
from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

import numpy as np

from daqe_tf.contracts import CascadeModel, DefocusModel, PatchModel, routing_signal
from daqe_tf.inference import compiled
from daqe_tf.inference.tiling import Tile, cell_owners, plan_tiles, stitch, to_uint8
from daqe_tf.routing.policy import assign_clusters, capped_deepest

CELL = 16  # pixels per defocus cell side
DEFOCUS_OVERLAP = 64  # between defocus windows: owned cells stay >= 32 px inside their window
PATCH_OVERLAP = 0  # requested from plan_tiles, which overlaps neighbours by at least this + 16 px
EXIT_BATCH = 8  # patches per exit call
CASCADE_BAND = 256  # patches a cascade decides together (its cap's unit): the whole image up to ~3 MP

QmapFor = Callable[[int, int, tuple], np.ndarray]
"""``qmap_for(height, width, origin) -> float32 (height, width, Q)`` Q-map of a window at ``origin``."""


@dataclasses.dataclass(frozen=True)
class Forwards:
    """How the runtime calls a model: ``f(model, ...) -> callable`` per kind of call, compiled and
    cached (``daqe_tf.inference.compiled``, the default); the pipeline passes its own."""

    forward: Callable = compiled.compiled_forward  # (model, exit_index) -> (image, qmap) -> exit output
    cell_maps: Callable = compiled.compiled_cell_maps  # (model) -> (image, qmap) -> defocus, routing value
    readout_inputs: Callable = compiled.compiled_readout_inputs  # (model) -> (image, qmap) -> readout inputs
    cascade_stage: Callable = compiled.compiled_cascade_stage  # (model, stage) -> (image, qmap[, context, summary])
    exit_from_features: Callable = compiled.compiled_exit_from_features  # (model, stage) -> (features, image)


DEFAULT_FORWARDS = Forwards()


@dataclasses.dataclass(frozen=True)
class Routing:
    """How a DAQE model enhanced one image (stored orientation)."""

    height: int
    width: int
    patches: list[Tile]  # the patch plan, row-major
    exits: np.ndarray  # int32 exit per patch
    num_exits: int
    defocus: np.ndarray | None  # predicted log1p(sigma) per 16-px cell; None unless the head ran
    signal: str = "defocus"  # what chose the exits: the model's routing, or "forced"
    # Rows and columns padded above and left of the image before routing (to put the dominant
    # compression's block grid at the origin): height, width and patches are of the padded frame.
    offset: tuple[int, int] = (0, 0)

    def exit_counts(self) -> np.ndarray:
        """Patches per exit."""
        return np.bincount(self.exits, minlength=self.num_exits)

    def exit_cells(self) -> np.ndarray:
        """Exit per 16-px cell: that of the patch owning the cell, (ceil(H/16), ceil(W/16))."""
        rows, cols = cell_owners(self.patches, self.height, self.width, CELL)
        grid = self.exits.reshape(len({t.y0 for t in self.patches}), -1)
        return grid[rows[:, None], cols[None, :]]

    def describe(self) -> str:
        counts = self.exit_counts()
        shares = ", ".join(f"{k}: {100 * n / counts.sum():.0f}%" for k, n in enumerate(counts))
        if self.signal == "forced":
            return f"exit {int(self.exits[0])} for all {counts.sum()} patches"
        by = "cascade" if self.signal == "cascade" else "defocus"
        return f"exits by {by} ({shares} of {counts.sum()} patches)"


def predict_cells(pixels: np.ndarray, model: DefocusModel, qmap_for: QmapFor, tile: int = 512, maps: str = "cell_maps",
                  forwards: Forwards = DEFAULT_FORWARDS) -> np.ndarray:
    """A per-cell output of the model over a uint8 image: float32 (ceil(H/16), ceil(W/16), C).

    ``maps``: "cell_maps" (defocus and routing value, ``DAQENet.cell_maps``) or "readout_inputs"
    (what a routing readout is fitted on; Keras models only). Windows of at most ``tile`` px
    (overlap ``DEFOCUS_OVERLAP``); each cell from its owning window.
    """
    forward = {"cell_maps": forwards.cell_maps, "readout_inputs": forwards.readout_inputs}[maps](model)
    height, width = pixels.shape[:2]
    windows = plan_tiles(height, width, tile, DEFOCUS_OVERLAP, CELL)
    owner_rows, owner_cols = cell_owners(windows, height, width, CELL)
    cells = None
    row_starts = sorted({t.y0 for t in windows})
    col_starts = sorted({t.x0 for t in windows})
    for t in windows:
        window = pixels[t.y0 : t.y1, t.x0 : t.x1]
        h, w = window.shape[:2]
        image = window.astype(np.float32).reshape(1, h, w, -1) / 255.0
        out = np.asarray(forward(image, qmap_for(h, w, (t.y0, t.x0))[None]))[0]
        if cells is None:
            cells = np.empty((owner_rows.size, owner_cols.size, out.shape[-1]), np.float32)
        rows = np.flatnonzero(owner_rows == row_starts.index(t.y0))
        cols = np.flatnonzero(owner_cols == col_starts.index(t.x0))
        cells[rows[:, None], cols[None, :]] = out[rows[:, None] - t.y0 // CELL, cols[None, :] - t.x0 // CELL]
    return cells


def predict_defocus(pixels: np.ndarray, model: DefocusModel, qmap_for: QmapFor, tile: int = 512) -> np.ndarray:
    """The defocus head over a uint8 image: log1p(sigma) per 16-px cell, float32 (ceil(H/16), ceil(W/16))."""
    return predict_cells(pixels, model, qmap_for, tile)[..., 0]


def patch_mean(cells: np.ndarray, patch: Tile) -> np.ndarray:
    """Mean of the cells under ``patch`` (cell rows [y0/16, ceil(y1/16)), likewise columns), clamped to the map.

    ``cells`` (rows, cols) or (rows, cols, C) -> a scalar or (C,). On the model's own patch grid
    this is ``patch_defocus_from_map``; overlapping patches average the cells they cover.
    """
    rows, cols = cells.shape[:2]
    r0 = min(patch.y0 // CELL, rows - 1)
    r1 = max(min(-(-patch.y1 // CELL), rows), r0 + 1)
    c0 = min(patch.x0 // CELL, cols - 1)
    c1 = max(min(-(-patch.x1 // CELL), cols), c0 + 1)
    return np.mean(cells[r0:r1, c0:c1], axis=(0, 1), dtype=np.float64).astype(np.float32)


def route_patches(routing: np.ndarray, patches: list[Tile], thresholds) -> np.ndarray:
    """Exit (= cluster) of every patch from its mean routing value (predicted defocus, or the readout)."""
    values = np.array([patch_mean(routing, p) for p in patches], np.float32)
    return assign_clusters(values, thresholds)


def _patch_window(pixels: np.ndarray, t: Tile, size: int, qmap_for: QmapFor) -> tuple[np.ndarray, np.ndarray]:
    """Patch pixels (edge-padded to ``size``) as float32 in [0, 1], and its Q-map."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    crop = pixels[t.y0 : t.y1, t.x0 : t.x1].reshape(t.y1 - t.y0, t.x1 - t.x0, channels)
    padded = np.pad(crop, [(0, size - crop.shape[0]), (0, size - crop.shape[1]), (0, 0)], mode="edge")
    return padded.astype(np.float32) / 255.0, qmap_for(size, size, (t.y0, t.x0))


def _fill(count: int, batch_size: int) -> list[int]:
    """Batch slots for ``count`` items: each once, then the last repeated (one traced shape per batch)."""
    return list(range(count)) + [count - 1] * (batch_size - count)


def _stitch_rows(pixels: np.ndarray, patches: list[Tile], row_results) -> np.ndarray:
    """Blend ``row_results(row) -> [output per patch]`` into uint8 pixels shaped like ``pixels``."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    output = np.empty_like(pixels)

    def write(y0: int, y1: int, blended: np.ndarray) -> None:
        output[y0:y1] = to_uint8(blended).reshape(output[y0:y1].shape)

    stitch(height, width, channels, patches, row_results, write)
    return output


def run_patches(
    pixels: np.ndarray,
    model: PatchModel,
    qmap_for: QmapFor,
    patches: list[Tile],
    exits: np.ndarray,
    batch_size: int = EXIT_BATCH,
    progress: Callable[[int], None] | None = None,
    forwards: Forwards = DEFAULT_FORWARDS,
) -> np.ndarray:
    """Each patch through its exit, batched per plan row and exit, blended into uint8 pixels."""
    size = model.patch_size
    exit_of = dict(zip(((t.y0, t.x0) for t in patches), (int(e) for e in exits)))
    done = 0

    def row_results(row: list[Tile]) -> list[np.ndarray]:
        nonlocal done
        results: dict[Tile, np.ndarray] = {}
        for exit_index in sorted({exit_of[(t.y0, t.x0)] for t in row}):
            members = [t for t in row if exit_of[(t.y0, t.x0)] == exit_index]
            forward = forwards.forward(model, exit_index)
            for first in range(0, len(members), batch_size):
                batch = members[first : first + batch_size]
                images, qmaps = zip(*(_patch_window(pixels, t, size, qmap_for) for t in batch))
                slots = _fill(len(batch), batch_size)
                out = np.asarray(forward(np.stack([images[i] for i in slots]), np.stack([qmaps[i] for i in slots])))
                for i, t in enumerate(batch):
                    results[t] = out[i, : t.y1 - t.y0, : t.x1 - t.x0]
                done += len(batch)
                if progress is not None:
                    progress(done)
        return [results[t] for t in row]

    return _stitch_rows(pixels, patches, row_results)


def run_cascade(
    pixels: np.ndarray,
    model: CascadeModel,
    qmap_for: QmapFor,
    patches: list[Tile],
    batch_size: int = EXIT_BATCH,
    progress: Callable[[int], None] | None = None,
    forwards: Forwards = DEFAULT_FORWARDS,
) -> tuple[np.ndarray, np.ndarray]:
    """A "cascade" model's patches, band by band: branch by branch, each patch leaving where its
    stage readout says (``DAQENet.cascade_stage``), within the model's compute cap (``max_cost``).
    Returns (uint8 pixels, int32 exit per patch)."""
    rows = [list(group) for _, group in itertools.groupby(patches, key=lambda t: t.y0)]
    bands, current = [], []
    for row in rows:  # consecutive plan rows, at most CASCADE_BAND patches (at least one row)
        if current and sum(map(len, current)) + len(row) > CASCADE_BAND:
            bands.append(current)
            current = []
        current.append(row)
    bands.append(current)
    band_of = {row[0].y0: i for i, band in enumerate(bands) for row in band}
    results: dict[Tile, np.ndarray] = {}
    exit_of: dict[Tile, int] = {}
    done = 0

    def row_results(row: list[Tile]) -> list[np.ndarray]:
        nonlocal done
        if row[0] not in results:  # the first row of a band: run the whole band
            tiles = [t for band_row in bands[band_of[row[0].y0]] for t in band_row]
            _cascade_band(pixels, model, qmap_for, tiles, batch_size, results, exit_of, forwards)
            done += len(tiles)
            if progress is not None:
                progress(done)
        return [results.pop(t) for t in row]

    output = _stitch_rows(pixels, patches, row_results)
    return output, np.array([exit_of[t] for t in patches], np.int32)


def _cascade_band(pixels, model: CascadeModel, qmap_for, tiles: list[Tile], batch_size: int, results: dict, exit_of: dict,
                  forwards: Forwards) -> None:
    """One band's patches through the cascade; writes each patch's output and exit."""
    size, last = model.patch_size, model.num_exits - 1
    max_cost = model.max_cost

    def windows(batch):
        images, qmaps = zip(*(_patch_window(pixels, t, size, qmap_for) for t in batch))
        return np.stack(images), np.stack(qmaps)

    running, carried = list(tiles), {}
    for stage in range(model.num_exits):
        state = {}  # tile -> (features, summary, score)
        for first in range(0, len(running), batch_size):
            batch = running[first : first + batch_size]
            slots = _fill(len(batch), batch_size)
            images, qmaps = windows(batch)
            extra = [] if stage == 0 else [np.stack([carried[t][k] for t in batch])[slots] for k in (0, 1)]
            features, summary, score = forwards.cascade_stage(model, stage)(images[slots], qmaps[slots], *extra)
            features, summary = np.asarray(features), np.asarray(summary)
            for i, t in enumerate(batch):
                state[t] = (features[i], summary[i], None if score is None else float(np.asarray(score)[i, 0]))
        staying = [t for t in running if stage < last and state[t][2] <= 0]
        if stage == last - 1 and max_cost is not None and staying:
            costs = model.exit_costs
            base = sum(costs[exit_of[t]] for t in tiles if t in exit_of) + costs[last - 1] * len(running)
            go = capped_deepest([state[t][2] for t in staying], base, len(tiles), costs, max_cost)
            staying = [t for t, keep in zip(staying, go) if keep]
        kept = set(staying)
        leaving = [t for t in running if t not in kept]
        for first in range(0, len(leaving), batch_size):
            batch = leaving[first : first + batch_size]
            slots = _fill(len(batch), batch_size)
            images, _ = windows(batch)
            features = np.stack([state[t][0] for t in batch])[slots]
            out = np.asarray(forwards.exit_from_features(model, stage)(features, images[slots]))
            for i, t in enumerate(batch):
                results[t], exit_of[t] = out[i, : t.y1 - t.y0, : t.x1 - t.x0], stage
        running, carried = staying, {t: state[t][:2] for t in staying}
        if not running:
            break


def enhance_routed(
    pixels: np.ndarray,
    model: DefocusModel | CascadeModel,
    qmap_for: QmapFor,
    *,
    exit_index: int | None = None,
    tile: int = 512,
    batch_size: int = EXIT_BATCH,
    progress: Callable[[int], None] | None = None,
    defocus_map: bool = False,
    forwards: Forwards = DEFAULT_FORWARDS,
) -> tuple[np.ndarray, Routing]:
    """Enhance uint8 pixels (channels matching the model) patch by patch; returns (pixels, routing).

    ``exit_index=None`` routes each patch by the model's routing; an int forces that exit for
    every patch through the same plan and blending (the all-deepest reference of the benchmarks).
    ``defocus_map``: a cascade does not run the defocus head; True runs it anyway for the map.
    """
    height, width = pixels.shape[:2]
    patches = plan_tiles(height, width, model.patch_size, PATCH_OVERLAP, CELL)
    signal = "forced" if exit_index is not None else routing_signal(model)
    defocus = None
    if signal == "cascade":
        if defocus_map:
            defocus = predict_cells(pixels, model, qmap_for, tile, forwards=forwards)[..., 0]
        out, exits = run_cascade(pixels, model, qmap_for, patches, batch_size, progress, forwards)
        return out, Routing(height, width, patches, exits, model.num_exits, defocus, signal)
    if signal == "forced":
        exits = np.full(len(patches), exit_index % model.num_exits, np.int32)
    else:
        cells = predict_cells(pixels, model, qmap_for, tile, forwards=forwards)
        defocus = cells[..., 0]
        exits = route_patches(cells[..., 1], patches, model.thresholds)
    out = run_patches(pixels, model, qmap_for, patches, exits, batch_size, progress, forwards)
    return out, Routing(height, width, patches, exits.astype(np.int32), model.num_exits, defocus, signal)
