"""The routing policy in numpy: which exit each patch leaves through, within which budget.

Clusters by thresholds, thresholds fitted to equal shares or to a compute budget, the per-patch
oracle, and a cascade's exits under its compute cap (``max_cost``).

Defocused patches lost little detail to JPEG and gain little from deep branches, so MORE
defocus means a LOWER cluster id and an earlier, cheaper exit. Thresholds are quantiles of the
predicted patch defocus over the training set, so the clusters start out equally populated.
No Keras here: data preparation and the LiteRT-only runtime use these; the model's
``keras.ops`` versions live in ``daqe_tf.models.daqe.clusters``.
"""
from __future__ import annotations

import numpy as np


def validate_thresholds(thresholds) -> np.ndarray:
    """Thresholds as a flat float32 array; ValueError unless non-decreasing."""
    thresholds = np.asarray(thresholds, np.float32).reshape(-1)
    if np.any(np.diff(thresholds) < 0):
        raise ValueError(f"thresholds must be non-decreasing, got {thresholds.tolist()}")
    return thresholds


def fit_thresholds(values, num_clusters: int) -> list[float]:
    """The ``num_clusters - 1`` quantiles (k / num_clusters) of patch defocus ``values``, ascending."""
    values = np.asarray(values, np.float64).reshape(-1)
    if num_clusters < 1 or values.size == 0:
        raise ValueError("need num_clusters >= 1 and at least one value")
    quantiles = np.arange(1, num_clusters) / num_clusters
    return [float(t) for t in np.quantile(values, quantiles)]



def budget_thresholds(patch_defocus, exit_errors, exit_costs, budget: float, grid: int = 50) -> list[float]:
    """Thresholds that lose the least quality while the exits cost at most ``budget`` x the deepest.

    Equal-share quantiles fix the compute and let the quality fall where it may; this fixes the
    compute budget and picks, among thresholds on a quantile grid of ``patch_defocus`` (``grid``
    steps), the ones whose routing has the smallest total error. Clusters stay ordered by defocus.

    Args:
        patch_defocus: (n,) predicted defocus per calibration patch.
        exit_errors: (n, N) each patch's squared error through each exit (sum over its pixels).
        exit_costs: (N,) MACs of one patch through each exit, ascending.
        budget: largest allowed mean cost as a fraction of ``exit_costs[-1]``.
    Raises ValueError when no threshold choice meets the budget (not even all-cheapest).
    """
    import itertools

    defocus = np.asarray(patch_defocus, np.float64).reshape(-1)
    errors = np.asarray(exit_errors, np.float64)
    costs = np.asarray(exit_costs, np.float64).reshape(-1)
    n, exits = errors.shape
    if defocus.size != n or costs.size != exits or n == 0:
        raise ValueError("need one defocus value and one error per exit for each patch, one cost per exit")
    candidates = np.unique(np.quantile(defocus, np.linspace(0.0, 1.0, grid + 1)))
    candidates = np.concatenate([[defocus.min() - 1.0], candidates])  # below every patch: no sharp cluster
    best, best_error = None, np.inf
    for choice in itertools.combinations_with_replacement(candidates, exits - 1):
        clusters = assign_clusters(defocus, choice)
        if costs[clusters].mean() > budget * costs[-1] + 1e-9:
            continue
        error = errors[np.arange(n), clusters].sum()
        if error < best_error:
            best, best_error = choice, error
    if best is None:
        raise ValueError(f"no thresholds meet a budget of {budget:.2f} x the deepest exit's cost")
    return [float(t) for t in best]

def oracle_exits(exit_errors, exit_costs, budget: float) -> np.ndarray:
    """Each patch's exit chosen knowing its errors: the least total error within the budget.

    Not a router (inference does not know the errors): the bound on what any routing signal
    could reach, to compare with routing by defocus. Solved by Lagrangian relaxation: patch i
    takes argmin_k errors[i, k] + lam * costs[k], with the smallest lam >= 0 whose mean cost is
    at most ``budget`` x ``exit_costs[-1]``; each such choice is optimal for the cost it spends.
    Raises ValueError when not even every patch through the cheapest exit meets the budget.
    """
    errors = np.asarray(exit_errors, np.float64)
    costs = np.asarray(exit_costs, np.float64).reshape(-1)
    limit = budget * costs[-1] + 1e-9
    if costs.min() > limit:
        raise ValueError(f"no routing meets a budget of {budget:.2f} x the deepest exit's cost")

    def pick(lam: float) -> np.ndarray:
        return np.argmin(errors + lam * costs[None, :], axis=1).astype(np.int32)

    if costs[pick(0.0)].mean() <= limit:
        return pick(0.0)
    low, high = 0.0, 1.0
    while costs[pick(high)].mean() > limit:
        high *= 2.0
    for _ in range(100):
        middle = 0.5 * (low + high)
        low, high = (low, middle) if costs[pick(middle)].mean() <= limit else (middle, high)
    return pick(high)


def assign_clusters(patch_defocus, thresholds) -> np.ndarray:
    """Cluster id per value: N - 1 minus the number of thresholds the value exceeds (ties go sharp).

    0 = most defocused, N - 1 = sharpest, N = len(thresholds) + 1.
    """
    thresholds = validate_thresholds(thresholds)
    exceeded = np.asarray(patch_defocus, np.float32)[..., None] > thresholds
    return (thresholds.size - exceeded.sum(axis=-1)).astype(np.int32)


def patch_defocus_from_map(defocus_map, patch_cells: int) -> np.ndarray:
    """Mean of a (B, h, w, 1) cell map per ``patch_cells`` x ``patch_cells`` patch -> (B, ceil(h/p), ceil(w/p)).

    Partial patches at the bottom/right average the cells they hold.
    """
    cells = np.asarray(defocus_map, np.float64)[..., 0]
    batch, height, width = cells.shape
    rows, cols = -(-height // patch_cells), -(-width // patch_cells)
    padding = [(0, 0), (0, rows * patch_cells - height), (0, cols * patch_cells - width)]
    sums = np.pad(cells, padding).reshape(batch, rows, patch_cells, cols, patch_cells).sum(axis=(2, 4))
    counts = np.pad(np.ones_like(cells), padding).reshape(batch, rows, patch_cells, cols, patch_cells).sum(axis=(2, 4))
    return (sums / counts).astype(np.float32)


def cascade_exits(stage_scores) -> np.ndarray:
    """Exit of every patch in a cascade: the first stage whose score is positive, else the deepest.

    ``stage_scores`` (n, N - 1): each stage's readout (threshold folded in) -> int32 (n,).
    """
    scores = np.asarray(stage_scores, np.float64)
    if scores.ndim != 2:
        raise ValueError("need (patches, stages) cascade scores")
    leaving = scores > 0
    return np.where(leaving.any(axis=1), np.argmax(leaving, axis=1), scores.shape[1]).astype(np.int32)


def budget_cascade_thresholds(stage_scores, exit_errors, exit_costs, budget: float, grid: int = 40,
                              groups=None, max_cost: float | None = None) -> list[float]:
    """Per-stage thresholds of a cascade with the least total error within ``budget`` x the deepest's cost.

    Stage m sends a patch out through exit m when its score exceeds threshold m; candidates are
    quantiles of each stage's scores (``grid`` steps, and one above all: nobody leaves there).
    ``exit_errors`` as in ``budget_thresholds`` (pass per-image-normalised errors to minimise the
    mean per-image dB loss). With ``max_cost`` the per-image cap (``capped_cascade_exits`` over
    ``groups``) is applied to every candidate. Exhaustive over the stages' grids: meant for a handful of exits.
    Raises ValueError when no choice meets the budget.
    """
    import itertools

    scores = np.asarray(stage_scores, np.float64)
    errors = np.asarray(exit_errors, np.float64)
    costs = np.asarray(exit_costs, np.float64).reshape(-1)
    n, exits = errors.shape
    if scores.shape != (n, exits - 1) or costs.size != exits or n == 0:
        raise ValueError("need one score per stage (exits - 1) and one error per exit for each patch, one cost per exit")
    grids = [np.concatenate([[s.max() + 1.0], np.unique(np.quantile(s, np.linspace(0.0, 1.0, grid + 1)))]) for s in scores.T]
    best, best_error = None, np.inf
    for choice in itertools.product(*grids):
        chosen = capped_cascade_exits(scores - np.asarray(choice)[None, :], groups, costs, max_cost)
        if costs[chosen].mean() > budget * costs[-1] + 1e-9:
            continue
        error = errors[np.arange(n), chosen].sum()
        if error < best_error:
            best, best_error = choice, error
    if best is None:
        raise ValueError(f"no cascade thresholds meet a budget of {budget:.2f} x the deepest exit's cost")
    return [float(t) for t in best]


def capped_deepest(last_scores, base_cost: float, patches: int, exit_costs, max_cost: float) -> np.ndarray:
    """Which of a band's deepest-exit candidates a cascade's compute cap lets through, bool (c,).

    The candidates are the patches whose second-to-last stage score is not positive; each costs
    ``exit_costs[-2]`` already counted in ``base_cost`` (the band's cost if every candidate left at
    exit N - 2). The cap allows ``max_cost x patches x exit_costs[-1]``; the candidates with the
    lowest scores (the most to gain, ties in plan order) go deep while it lasts, the rest leave at N - 2.
    """
    scores = np.asarray(last_scores, np.float64).reshape(-1)
    costs = np.asarray(exit_costs, np.float64).reshape(-1)
    step = costs[-1] - costs[-2]
    allowed = max_cost * patches * costs[-1]
    room = int(np.floor((allowed - base_cost) / step + 1e-9)) if step > 0 else scores.size
    chosen = np.zeros(scores.size, bool)
    chosen[np.argsort(scores, kind="stable")[: int(np.clip(room, 0, scores.size))]] = True
    return chosen


def capped_cascade_exits(stage_scores, groups, exit_costs, max_cost: float | None) -> np.ndarray:
    """``cascade_exits`` with at most ``max_cost`` x the deepest exit's cost spent per group (image).

    ``groups`` (n,): the band each patch belongs to (one image here); ``None`` cap = no cap.
    """
    exits = cascade_exits(stage_scores)
    if max_cost is None:
        return exits
    scores = np.asarray(stage_scores, np.float64)
    costs = np.asarray(exit_costs, np.float64).reshape(-1)
    last = scores.shape[1]  # the deepest exit
    groups = np.asarray(groups).reshape(-1)
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        candidates = members[exits[members] == last]
        base = costs[np.minimum(exits[members], last - 1)].sum()
        go = capped_deepest(scores[candidates, -1], base, members.size, costs, max_cost)
        exits[candidates[~go]] = last - 1
    return exits
