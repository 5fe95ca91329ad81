"""Compression history: which JPEG compression really damaged the pixels.

Photos are often saved more than once: a heavily compressed picture re-saved by an editor or a
messenger at QF 75-95 carries mild tables in its file but the damage of the earlier, coarser
compression in its pixels. Trusting the file's last tables then tells the enhancer the damage is
mild. This module reads the history from the decoded pixels (numpy only):

1. **Grid.** A coarse JPEG leaves a step between neighbouring pixels on its block boundaries.
   The mean absolute difference across each of the 8 column (row) phases peaks at the phase of
   the boundaries, so the two strongest phases per axis (and the file's own grid) are the only
   grids worth testing: at most five of the 64.
2. **Tables.** On the right grid, block DCT coefficients lie near integer multiples of the
   quantization steps that produced them, and only there (the forensic observation behind
   double-JPEG detection). Each candidate grid is scored against every standard (IJG-scaled)
   luma table; each local minimum of the misfit under ``FIT_THRESHOLD`` is a compression the
   pixels went through, and the coarsest one is the one that dominates. A later, milder
   compression on the same grid fits too but is finer, so it never wins. Tables no IJG scaling
   explains (cameras, editors) are searched frequency by frequency on grids whose boundaries
   stand out, and reported as their nearest standard quality.
3. **Chroma.** IJG scaling ties the chroma table to the luma quality, so the earlier chroma
   table follows from the luma fit. Its 16-px 4:2:0 phase is not estimated: re-subsampled chroma
   keeps little of it, and the enhanced output did not change with it (docs/history.md).

The work is bounded: the grid profiles read at most ``MAX_PROFILE_LINES`` rows and columns and
the DCT at most ``MAX_BLOCKS`` blocks per grid, whatever the image size. Where no grid is found
(a resize between saves destroys it; pixels that never were a JPEG have none), the estimate says
so and the caller keeps the file's tables.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from daqe_tf.jpeg.tables import STD_CHROMA_TABLE, STD_LUMA_TABLE, estimate_quality, scale_table

__all__ = [
    "Compression",
    "CompressionHistory",
    "estimate_history",
    "compression_for_quality",
    "FIT_THRESHOLD",
    "file_compression",
]

# Orthonormal 8-point DCT-II matrix.
_K = np.arange(8)
DCT8 = np.sqrt(2 / 8) * np.cos(np.pi * (2 * _K[None, :] + 1) * _K[:, None] / 16)
DCT8[0] /= np.sqrt(2)

# Frequencies scored: the low ones carry most non-zero coefficients; DC is left out (its
# distribution depends on the image's brightness more than on the step).
_SCORED = np.zeros((8, 8), bool)
_SCORED[:4, :4] = True
_SCORED[0, 0] = False

# Mean distance (in steps) from the nearest multiple: ~0.25 for coefficients that were never
# quantized with that table, ~0.02-0.12 for the table (or a re-saved copy of it) that did.
FIT_THRESHOLD = 0.15
# A compression counts as earlier and stronger than the file's only when its steps are on average
# this much coarser (mean log ratio over the scored frequencies; 0.2 ~ 22 % larger steps).
COARSER_LOG_RATIO = 0.2
MIN_COEFFICIENTS = 200
ZERO_BAND = 0.25  # coefficients within this many steps of zero are zeros of any table: not scored
MAX_BLOCKS = 1024
# A grid whose boundary steps are this much above the median phase on both axes is searched for
# custom tables (standard ones are fitted on every candidate grid).
PEAK = 1.1
# Custom tables: the step of each scored frequency is searched in this range; a frequency needs
# this many coefficients off zero, and this many frequencies must fit, for an estimate.
CUSTOM_STEPS = np.arange(2, 161, dtype=np.float32)
MIN_PER_FREQUENCY = 40
MIN_FITTED_FREQUENCIES = 6
MAX_PROFILE_LINES = 1024
# Pixel steps are clipped here in the grid profiles: a block boundary is a small step everywhere,
# while a few strong edges of the content (a building, text) would otherwise outvote it.
STEP_CLIP = 16.0
# Steps this fine are indistinguishable from 8-bit rounding noise: such tables are not scored.
_MIN_SCORED_STEP = 3

_LUMA_BANK = np.stack([scale_table(STD_LUMA_TABLE, q) for q in range(1, 101)]).astype(np.float64)
_CHROMA_BANK = np.stack([scale_table(STD_CHROMA_TABLE, q) for q in range(1, 101)]).astype(np.float64)
_SCORABLE_QUALITIES = np.flatnonzero(_LUMA_BANK[:, _SCORED].min(axis=1) >= _MIN_SCORED_STEP) + 1

_TO_Y = np.array([0.299, 0.587, 0.114])


@dataclasses.dataclass(frozen=True)
class Compression:
    """One JPEG compression: tables, chroma layout and where its block grid lies.

    ``grid`` = (y, x) in 0..7 of a block corner: pixel (y, x) starts a block when
    ``y % 8 == grid[0]`` and ``x % 8 == grid[1]``. (0, 0) is the file's own grid.
    """

    luma_table: np.ndarray
    chroma_table: np.ndarray | None
    subsampling: str
    quality: int  # IJG quality; for custom tables the nearest standard scaling
    standard: bool  # tables are exactly the IJG scaling of ``quality``
    grid: tuple[int, int] = (0, 0)
    misfit: float = 0.0  # how well the pixels fit the tables (0 = exactly); 0 for a file's own tables

    @property
    def shifted(self) -> bool:
        return tuple(self.grid) != (0, 0)

    @property
    def name(self) -> str:
        return f"QF {self.quality}" if self.standard else f"custom tables ≈ QF {self.quality}"

    def describe(self) -> str:
        if self.shifted:
            return f"{self.name} on a grid shifted by ({self.grid[0]}, {self.grid[1]})"
        return f"{self.name} on the aligned grid"


@dataclasses.dataclass(frozen=True)
class CompressionHistory:
    """What the pixels went through, as far as they tell.

    ``last``: the file's own tables (None when the input is not a JPEG file). ``earlier``: a
    coarser compression found in the pixels on any grid, or None. ``dominant`` is the one that
    damaged the pixels most: the enhancer should assume it.
    """

    last: Compression | None
    earlier: Compression | None
    grid_found: bool  # some JPEG grid (the file's or another) fits the pixels

    @property
    def dominant(self) -> Compression | None:
        return self.earlier if self.earlier is not None else self.last

    @property
    def confidence(self) -> float:
        """0..1: how far the earlier compression's fit is from chance (1 = exact multiples)."""
        if self.earlier is None:
            return 0.0
        return float(np.clip(1.0 - self.earlier.misfit / 0.25, 0.0, 1.0))

    def describe(self) -> str:
        if self.last is not None:
            head = f"{self.last.name} file"
            if self.earlier is None:
                return f"{head}; no earlier compression found"
            return f"{head}; earlier compression ≈ {self.earlier.describe()}"
        if self.earlier is None:
            return "not a JPEG file; no JPEG trace found"
        return f"not a JPEG file; JPEG trace ≈ {self.earlier.describe()}"


def compression_for_quality(quality: int, grayscale: bool, subsampling: str = "4:2:0") -> Compression:
    """The standard compression at ``quality`` (what ``--quality`` asks the enhancer to assume)."""
    quality = int(quality)
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    return Compression(
        luma_table=scale_table(STD_LUMA_TABLE, quality),
        chroma_table=None if grayscale else scale_table(STD_CHROMA_TABLE, quality),
        subsampling="gray" if grayscale else subsampling,
        quality=quality,
        standard=True,
    )


def _luma(pixels: np.ndarray) -> np.ndarray:
    """JPEG's Y (BT.601 full range) as float64; gray pixels as they are."""
    if pixels.ndim == 2:
        return pixels.astype(np.float64)
    return pixels[..., :3].astype(np.float64) @ _TO_Y


def _strided_lines(n: int) -> slice:
    return slice(None, None, max(1, n // MAX_PROFILE_LINES))


def boundary_profile(luma: np.ndarray, axis: int) -> np.ndarray:
    """Mean |difference| (clipped at ``STEP_CLIP``) across each of the 8 phases along ``axis``, over the median.

    Entry g is the step between pixel g-1 and g (mod 8): a block boundary at phase g shows as
    a peak. At most ``MAX_PROFILE_LINES`` lines are read.
    """
    lines = luma[_strided_lines(luma.shape[0]), :] if axis == 1 else luma[:, _strided_lines(luma.shape[1])]
    diff = np.minimum(np.abs(np.diff(lines, axis=axis)), STEP_CLIP)  # edges of the content count as one step
    n = diff.shape[axis] // 8 * 8
    if n == 0:
        return np.ones(8)
    if axis == 1:
        profile = diff[:, :n].reshape(diff.shape[0], -1, 8).mean(axis=(0, 1))
    else:
        profile = diff[:n].reshape(-1, 8, diff.shape[1]).mean(axis=(0, 2))
    profile = np.roll(profile, 1)  # diff[k] is the step before pixel k + 1
    return profile / max(float(np.median(profile)), 1e-9)


def candidate_grids(luma: np.ndarray, per_axis: int = 2) -> list[tuple[tuple[int, int], bool]]:
    """The file's grid (0, 0) and the grids at the strongest boundary phases of each axis.

    Each comes with whether its boundaries stand out on both axes (``PEAK`` over the median):
    only such grids are worth the per-frequency search for custom tables.
    """
    rows, cols = boundary_profile(luma, 0), boundary_profile(luma, 1)
    grids = [((0, 0), bool(rows[0] >= PEAK and cols[0] >= PEAK))]
    for gy in np.argsort(-rows, kind="stable")[:per_axis]:
        for gx in np.argsort(-cols, kind="stable")[:per_axis]:
            grid = (int(gy), int(gx))
            if grid != (0, 0):
                grids.append((grid, bool(rows[gy] >= PEAK and cols[gx] >= PEAK)))
    return grids


def _block_origins(height: int, width: int, gy: int, gx: int, size: int, max_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners of whole ``size`` blocks on the grid through (gy, gx), evenly thinned to ``max_blocks``."""
    ys = np.arange(gy % size, height - size + 1, size)
    xs = np.arange(gx % size, width - size + 1, size)
    if ys.size == 0 or xs.size == 0:
        return np.zeros(0, int), np.zeros(0, int)
    index = np.arange(ys.size * xs.size)
    if index.size > max_blocks:
        index = index[np.linspace(0, index.size - 1, max_blocks).astype(int)]
    return ys[index // xs.size], xs[index % xs.size]


def _gather(plane: np.ndarray, ys: np.ndarray, xs: np.ndarray, size: int) -> np.ndarray:
    r = np.arange(size)
    return plane[ys[:, None, None] + r[None, :, None], xs[:, None, None] + r[None, None, :]]


def block_coefficients(plane: np.ndarray, grid: tuple[int, int], max_blocks: int = MAX_BLOCKS) -> np.ndarray:
    """DCT of (at most ``max_blocks``) 8x8 blocks of a level-shifted plane on ``grid``: (N, 8, 8)."""
    ys, xs = _block_origins(plane.shape[0], plane.shape[1], grid[0], grid[1], 8, max_blocks)
    return DCT8 @ (_gather(plane, ys, xs, 8) - 128.0) @ DCT8.T


def misfit(coefficients: np.ndarray, table: np.ndarray) -> float:
    """Mean distance, in steps, of ``coefficients`` (N, 8, 8) from the nearest multiple of ``table``.

    Coefficients within a quarter step of zero do not count (zeros fit every table, so coarse
    tables would look right); those between a quarter and a half step count with their distance
    from zero, so a table twice too coarse, which would see the true step's first multiples as
    zeros, does not fit. inf when fewer than ``MIN_COEFFICIENTS`` count.
    """
    ratio = coefficients[:, _SCORED] / np.asarray(table, np.float64)[_SCORED]
    used = np.abs(ratio) >= ZERO_BAND
    if int(used.sum()) < MIN_COEFFICIENTS:
        return float("inf")
    return float(np.abs(ratio - np.round(ratio))[used].mean())


def misfit_per_quality(coefficients: np.ndarray, bank: np.ndarray = _LUMA_BANK) -> np.ndarray:
    """``misfit`` to each standard table of ``bank`` (100, 8, 8) -> (100,), inf where not judged."""
    out = np.full(len(bank), np.inf)
    if len(coefficients) == 0:
        return out
    values = coefficients[:, _SCORED].astype(np.float32)
    steps = bank[_SCORABLE_QUALITIES - 1][:, _SCORED].astype(np.float32)  # (Q, F)
    ratio = values[None] / steps[:, None, :]  # (Q, N, F)
    used = np.abs(ratio) >= ZERO_BAND
    distance = np.abs(ratio - np.round(ratio))
    distance *= used
    counts = used.sum(axis=(1, 2))
    judged = counts >= MIN_COEFFICIENTS
    out[_SCORABLE_QUALITIES[judged] - 1] = distance.sum(axis=(1, 2))[judged] / counts[judged]
    return out


def fitted_qualities(misfit: np.ndarray) -> list[int]:
    """Qualities at local minima of ``misfit`` (within 2 QF on each side) that fit (< ``FIT_THRESHOLD``)."""
    found = []
    for index in np.flatnonzero(misfit < FIT_THRESHOLD):
        window = misfit[max(0, index - 2) : index + 3]
        if misfit[index] <= window.min():
            found.append(int(index) + 1)
    return found


def is_coarser(table: np.ndarray, than: np.ndarray) -> bool:
    """Whether ``table`` is coarser than ``than`` by enough to be reported as an earlier compression."""
    ratio = np.log(np.asarray(table, np.float64)[_SCORED]) - np.log(np.maximum(np.asarray(than, np.float64)[_SCORED], 1))
    return float(ratio.mean()) > COARSER_LOG_RATIO


def fitted_steps(coefficients: np.ndarray) -> np.ndarray:
    """Per scored frequency, the coarsest step whose multiples the coefficients sit on (nan: none fits).

    For tables no IJG scaling explains (cameras, editors): each frequency on its own, the largest
    step of ``CUSTOM_STEPS`` at a local minimum of the misfit under ``FIT_THRESHOLD``.
    """
    values = coefficients[:, _SCORED].astype(np.float32)  # (N, F)
    ratio = values[None] / CUSTOM_STEPS[:, None, None]  # (S, N, F)
    used = np.abs(ratio) >= ZERO_BAND
    distance = np.abs(ratio - np.round(ratio))
    distance *= used
    counts = used.sum(axis=1)  # (S, F)
    misfit = np.where(counts >= MIN_PER_FREQUENCY, distance.sum(axis=1) / np.maximum(counts, 1), np.inf)
    steps = np.full(values.shape[1], np.nan)
    for f in range(values.shape[1]):
        for index in np.flatnonzero(misfit[:, f] < FIT_THRESHOLD)[::-1]:
            if misfit[index, f] <= misfit[max(0, index - 2) : index + 3, f].min():
                steps[f] = CUSTOM_STEPS[index]
                break
    return steps


def nearest_standard_quality(steps: np.ndarray) -> int:
    """The IJG quality whose luma steps are nearest ``steps`` (scored frequencies, nan ignored) in log distance."""
    known = ~np.isnan(steps)
    bank = _LUMA_BANK[:, _SCORED][:, known]
    return int(np.argmin(np.abs(np.log(bank) - np.log(steps[known])).mean(axis=1))) + 1


def _custom_compression(coefficients: np.ndarray, grid: tuple[int, int]) -> Compression | None:
    steps = fitted_steps(coefficients)
    if int((~np.isnan(steps)).sum()) < MIN_FITTED_FREQUENCIES:
        return None
    quality = nearest_standard_quality(steps)
    fit = misfit(coefficients, _custom_table(steps, quality))
    return Compression(scale_table(STD_LUMA_TABLE, quality), None, "gray", quality, False, grid, fit)


def _custom_table(steps: np.ndarray, quality: int) -> np.ndarray:
    """The standard table at ``quality`` with the fitted steps in their frequencies."""
    table = _LUMA_BANK[quality - 1].copy()
    scored = table[_SCORED]
    known = ~np.isnan(steps)
    scored[known] = steps[known]
    table[_SCORED] = scored
    return table


def file_compression(luma_table, chroma_table, subsampling: str) -> Compression:
    """The compression a JPEG file's header describes, on its own grid."""
    quality, exact = estimate_quality(luma_table, chroma_table)
    return Compression(np.asarray(luma_table), None if chroma_table is None else np.asarray(chroma_table),
                       subsampling, quality, exact)


def estimate_history(pixels: np.ndarray, last: Compression | None = None) -> CompressionHistory:
    """Find the compression that dominates ``pixels`` (uint8 HxW or HxWx3, stored orientation).

    ``last``: the file's own compression (``file_compression`` of its header), None for pixels
    without a JPEG file. The result's ``earlier`` is a compression coarser than ``last`` found on
    any grid, or None when the pixels show nothing stronger than the file says.
    """
    pixels = np.asarray(pixels)
    grayscale = pixels.ndim == 2
    luma = _luma(pixels)
    found: list[Compression] = []
    for grid, prominent in candidate_grids(luma):
        coefficients = block_coefficients(luma, grid)
        misfits = misfit_per_quality(coefficients)
        qualities = fitted_qualities(misfits)
        if qualities:
            quality = min(qualities)  # the coarsest compression seen on this grid
            found.append(Compression(scale_table(STD_LUMA_TABLE, quality), None, "gray", quality, True, grid,
                                     float(misfits[quality - 1])))
        elif prominent and (grid != (0, 0) or last is None):  # the file's own grid holds its own tables
            custom = _custom_compression(coefficients, grid)
            if custom is not None:
                found.append(custom)
    grid_found = bool(found)
    candidates = [c for c in found if last is None or is_coarser(c.luma_table, last.luma_table)]
    if not candidates:
        return CompressionHistory(last, None, grid_found)
    # The coarsest; between equally coarse ones, the better fit.
    earlier = min(candidates, key=lambda c: (c.quality, c.misfit))
    if not grayscale:
        # IJG scaling ties the chroma table to the luma quality; the earlier chroma layout cannot be
        # read reliably from pixels re-subsampled since, so the file's (else 4:2:0) is assumed.
        earlier = dataclasses.replace(earlier, chroma_table=scale_table(STD_CHROMA_TABLE, earlier.quality),
                                      subsampling=last.subsampling if last is not None and last.subsampling != "gray" else "4:2:0")
    return CompressionHistory(last, earlier, grid_found)
