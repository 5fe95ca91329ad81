"""``python -m train.fit_thresholds``: refit a trained DAQE model's cluster thresholds on its own predictions.

Training fits the thresholds on pseudo labels of the uncompressed images, but inference clusters
patches by what the defocus head PREDICTS from the JPEG, whose distribution differs (smoother,
shifted by compression). Quantiles of the predicted patch defocus over the training images, on
the patch plan inference uses, make the clusters equally populated where it matters.

With ``--budget B`` the thresholds instead minimise the squared error of the routed output on the
training images while the exits cost at most B x the deepest exit (``budget_thresholds``): every
patch is run through every exit once, and each patch is charged the error of the pixels it owns in
the blended image. Equal shares fix the compute and let quality fall where it may; a budget fixes
the compute saving and keeps as much quality as the defocus ordering allows. The printed
trade-off table ends with "oracle" rows: exits picked per patch knowing its errors, the bound that
no routing signal can beat, so the gap between a budget row and its oracle row is what a better
signal than defocus could still win.

With ``--signal readout`` the model routes by a learned signal instead of defocus: a linear
``RoutingReadout`` of the defocus head's features and the Q-map, fitted on the same calibration
patches (ridge regression of log(error deepest / error exit 0)) and saved in the model, and the
thresholds are fitted on its values. The defocus map is still predicted and shown (``--maps``).

With ``--signal cascade`` (needs ``--budget``) nothing is decided up front: after each branch a
``CascadeReadout`` of the branches' pooled features says whether the patch leaves there
(``DAQENet.cascade_stage``), so the defocus head does not run. Stage m is fitted, within each
image, to what the deepest exit saves the patch over exit m as a share of its image's error
(``cascade_readout_fit``); the per-stage thresholds minimise the error with every image's
errors divided by its all-deepest error, i.e. the mean per-image dB loss the benchmarks report
(the pooled squared error of the other signals favours the textured images, whose errors are
largest), and are folded into the readouts' biases. ``--max_cost C`` also caps every image: the
deepest exit goes to the patches with the lowest last-stage scores only while the image's mean
cost stays within C x the deepest exit's (stored in the model, applied at inference), so the
compute saved no longer depends on how much of an image asks for the deepest exit.

    python -m train.fit_thresholds --model runs/daqe/best.keras --train_data train/lists/train.txt \\
        --data_root ../shared/datasets --out runs/daqe/best_refit.keras [--qualities 10,20,30,40] \\
        [--budget 0.6 --max_images 60] [--signal readout|cascade]
"""
from __future__ import annotations

import argparse

import numpy as np

from daqe_tf.defocus.clusters import assign_clusters, budget_thresholds, fit_thresholds, oracle_exits


def _compressed(model, image: np.ndarray, quality: int):
    """``image`` compressed at ``quality`` (Pillow, 4:2:0) as inference sees it: (JPEG, its ``qmap_for``, the patch plan)."""
    from daqe_tf.inference.pipeline import jpeg_evidence, window_qmaps
    from daqe_tf.inference.routing import CELL, PATCH_OVERLAP
    from daqe_tf.inference.tiling import plan_tiles
    from daqe_tf.io import load_image
    from daqe_tf.jpeg.simulate import compress

    jpeg = compress(image, quality)
    qmap_for = window_qmaps(jpeg_evidence(load_image(jpeg.data)), model.image_channels)
    return jpeg, qmap_for, plan_tiles(*image.shape[:2], model.patch_size, PATCH_OVERLAP, CELL)


def patch_routing_values(model, image: np.ndarray, quality: int, channel: int = 1) -> np.ndarray:
    """Per inference patch of ``image`` at ``quality``: the model's routing value (what its thresholds
    split; ``channel`` 1) or its predicted defocus (``channel`` 0)."""
    from daqe_tf.inference.routing import patch_mean, predict_cells

    jpeg, qmap_for, patches = _compressed(model, image, quality)
    cells = predict_cells(jpeg.decoded, model, qmap_for)[..., channel]
    return np.array([patch_mean(cells, t) for t in patches], np.float32)


def patch_cascade_inputs(model, pixels: np.ndarray, qmap_for, patches, batch_size: int = 8) -> np.ndarray:
    """(n, D + 1) per patch: ``DAQENet.patch_summaries`` (every branch's summary, the mean luma Q-map).

    Stage m of a cascade reads the first ``stage_width(model, m)`` columns and the last one.
    """
    from daqe_tf.inference.pipeline import compiled_patch_summaries
    from daqe_tf.inference.routing import _patch_window

    forward = compiled_patch_summaries(model)
    rows = []
    for first in range(0, len(patches), batch_size):
        windows = [_patch_window(pixels, t, model.patch_size, qmap_for) for t in patches[first : first + batch_size]]
        images, qmaps = (np.stack(parts) for parts in zip(*windows))
        rows.append(np.asarray(forward(images, qmaps)))
    return np.concatenate(rows)


def stage_width(model, stage: int) -> int:
    """Summary columns stage ``stage`` of a cascade reads: ``patch_summary`` of branches 0..stage."""
    return sum(2 * model.branches[m].width for m in range(stage + 1))


def stage_columns(model, stage: int, inputs: np.ndarray) -> np.ndarray:
    """The columns of ``patch_cascade_inputs`` that stage ``stage`` reads (its summary and the Q-map)."""
    return np.concatenate([inputs[:, : stage_width(model, stage)], inputs[:, -1:]], axis=1)


def calibration_patches(model, image: np.ndarray, quality: int, cascade: bool = False) -> dict:
    """Every inference patch of ``image`` at ``quality``: what routing could use, and what each exit costs it.

    Returns ``defocus`` (n,) predicted, ``readout_inputs`` (n, F + 1) the patch means a routing
    readout is fitted on, and ``errors`` (n, N): squared error through each exit, summed over the
    pixels the patch owns (``cell_owners``) in the image blended with every patch forced through
    that exit, so each pixel is charged once. ``cascade``: also ``cascade_inputs``
    (``patch_cascade_inputs``).
    """
    from daqe_tf.inference.routing import CELL, patch_mean, predict_cells, run_patches
    from daqe_tf.inference.tiling import cell_owners

    jpeg, qmap_for, patches = _compressed(model, image, quality)
    cells = predict_cells(jpeg.decoded, model, qmap_for)
    inputs = predict_cells(jpeg.decoded, model, qmap_for, maps="readout_inputs")
    height, width = image.shape[:2]
    rows, cols = cell_owners(patches, height, width, CELL)
    ncols = len({t.x0 for t in patches})
    owner = (rows[:, None] * ncols + cols[None, :]).repeat(CELL, 0).repeat(CELL, 1)[:height, :width]
    errors = np.zeros((len(patches), model.num_exits))
    for k in range(model.num_exits):
        out = run_patches(jpeg.decoded, model, qmap_for, patches, np.full(len(patches), k, np.int32))
        squared = (out.astype(np.float64) - image.astype(np.float64)) ** 2
        squared = squared.reshape(height, width, -1).sum(axis=-1)
        errors[:, k] = np.bincount(owner.ravel(), weights=squared.ravel(), minlength=len(patches))
    result = {
        "defocus": np.array([patch_mean(cells[..., 0], t) for t in patches], np.float32),
        "readout_inputs": np.stack([patch_mean(inputs, t) for t in patches]),
        "errors": errors,
    }
    if cascade:
        result["cascade_inputs"] = patch_cascade_inputs(model, jpeg.decoded, qmap_for, patches)
    return result


def calibrate(model, images: list[np.ndarray], qualities, cascade: bool = False) -> dict:
    """``calibration_patches`` of images x qualities, concatenated, with ``image`` (n,): which
    image x quality each patch came from."""
    parts = [calibration_patches(model, image, q, cascade) for image in images for q in qualities]
    for index, part in enumerate(parts):
        part["image"] = np.full(len(part["errors"]), index)
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def per_image_errors(errors: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Each patch's exit errors divided by its image's all-deepest error: summed, the mean dB loss to first order."""
    errors = np.asarray(errors, np.float64)
    totals = np.bincount(image, weights=errors[:, -1])
    return errors / np.maximum(totals[image], 1e-12)[:, None]


def fit_cascade(model, patches: dict, costs, budget: float, ridge: float, max_cost: float | None = None):
    """A copy of ``model`` routing by a fitted cascade within ``budget`` (and its per-image cap
    ``max_cost``, stored in the model); prints the trade-off table."""
    from daqe_tf.defocus.clusters import budget_cascade_thresholds, capped_cascade_exits
    from daqe_tf.models.daqe import cascade_readout_fit, with_routing

    stages = range(model.num_exits - 1)
    fits = [cascade_readout_fit(stage_columns(model, m, patches["cascade_inputs"]), patches["errors"], m, ridge, patches["image"])
            for m in stages]
    scores = np.column_stack([stage_columns(model, m, patches["cascade_inputs"]) @ w + b for m, (w, b) in zip(stages, fits)])
    errors = per_image_errors(patches["errors"], patches["image"])
    cap = {"groups": patches["image"], "max_cost": max_cost}
    table = {b: budget_cascade_thresholds(scores, errors, costs, b, **cap) for b in sorted({0.5, 0.6, 0.7, 0.8, 0.9, budget})}
    print(f"| cascade budget (cap {max_cost or 'none'}) | thresholds | patches per exit | exit cost / deepest | "
          "mean per-image error / all-deepest (dB) |")
    print("|---|---|---|---|---|")
    rows = [(f"budget {b:.2f}", np.round(t, 4).tolist(),
             capped_cascade_exits(scores - np.asarray(t), patches["image"], costs, max_cost)) for b, t in table.items()]
    rows += [(f"oracle {b:.2f}", "per patch", oracle_exits(errors, costs, b)) for b in sorted({0.6, 0.7, budget})]
    for name, chosen, exits in rows:
        print(f"| {name} | {chosen} | {np.bincount(exits, minlength=model.num_exits).tolist()} | "
              f"{np.mean(np.take(costs, exits)) / costs[-1]:.3f} | {mean_image_db(patches, exits):+.3f} |")
    fitted = [(w, b - t) for (w, b), t in zip(fits, table[budget])]
    relative = None if max_cost is None else [float(c) / float(costs[-1]) for c in costs]
    return with_routing(model, "cascade", model.thresholds, fitted, max_cost=max_cost, exit_costs=relative)


def mean_image_db(patches: dict, exits: np.ndarray) -> float:
    """Mean over calibration images of 10 log10(routed error / all-deepest error)."""
    errors = patches["errors"]
    routed = np.bincount(patches["image"], weights=errors[np.arange(len(exits)), exits])
    deepest = np.bincount(patches["image"], weights=errors[:, -1])
    return float(np.mean(10 * np.log10(routed / np.maximum(deepest, 1e-12))))


def signal_model(model, signal: str, patches: dict, ridge: float):
    """(model routing by ``signal``, each calibration patch's value of that signal).

    "readout" fits ``routing_readout_fit`` on the patches; the returned model's thresholds are
    placeholders until the caller fits them on the returned values.
    """
    from daqe_tf.models.daqe import routing_readout_fit, with_routing

    if signal == "defocus":
        values = patches["defocus"]
        readout = None
    else:
        readout = routing_readout_fit(patches["readout_inputs"], patches["errors"], ridge)
        values = (patches["readout_inputs"] @ readout[0] + readout[1]).astype(np.float32)
    placeholder = fit_thresholds(values, model.num_exits)
    return with_routing(model, signal, placeholder, readout), values


def budget_thresholds_table(values, errors, costs, budget: float, num_exits: int) -> list[float]:
    """``budget_thresholds`` at ``budget``, after printing the trade-off on the calibration patches."""
    thresholds = budget_thresholds(values, errors, costs, budget)
    print("| thresholds from | thresholds | patches per exit | exit cost / deepest | error / all-deepest (dB) |")
    print("|---|---|---|---|---|")
    options = [("equal shares", fit_thresholds(values, num_exits))]
    for b in sorted({0.5, 0.6, 0.7, 0.8, 0.9, budget}):
        try:
            options.append((f"budget {b:.2f}", thresholds if b == budget else budget_thresholds(values, errors, costs, b)))
        except ValueError:
            continue
    rows = [(name, np.round(chosen, 4).tolist(), assign_clusters(values, chosen)) for name, chosen in options]
    # The bound: exits picked per patch knowing its errors (what a perfect routing signal would reach).
    rows += [(f"oracle {b:.2f}", "per patch", oracle_exits(errors, costs, b)) for b in sorted({0.6, 0.7, budget})]
    for name, chosen, exits in rows:
        ratio = errors[np.arange(len(exits)), exits].sum() / errors[:, -1].sum()
        print(f"| {name} | {chosen} | {np.bincount(exits, minlength=num_exits).tolist()} | "
              f"{np.mean(np.take(costs, exits)) / costs[-1]:.3f} | {10 * np.log10(ratio):+.3f} |")
    return thresholds


def refit(model, images: list[np.ndarray], qualities, signal: str = "defocus", budget: float | None = None,
          ridge: float = 3.0, max_cost: float | None = None):
    """A copy of ``model`` routing by ``signal`` with thresholds refitted on images x qualities.

    Without ``budget``: equal cluster shares of the signal. With it: the least routed error on the
    calibration patches within ``budget`` x the deepest exit's cost (``budget_thresholds``).
    """
    from daqe_tf.complexity import count_macs
    from daqe_tf.models.daqe import with_routing

    if signal == "defocus" and budget is None:  # needs no exit errors: the cheap path
        values = np.concatenate([patch_routing_values(model, image, q, channel=0) for image in images for q in qualities])
        return with_routing(model, "defocus", fit_thresholds(values, model.num_exits))
    if signal == "cascade":
        if budget is None:
            raise ValueError("a cascade is fitted to a compute budget: pass --budget")
        size = model.patch_size
        costs = [count_macs(model, size, size, k) for k in range(model.num_exits)]
        return fit_cascade(model, calibrate(model, images, qualities, cascade=True), costs, budget, ridge, max_cost)
    if max_cost is not None:
        raise ValueError("--max_cost caps a cascade: it needs --signal cascade")
    patches = calibrate(model, images, qualities)
    routed, values = signal_model(model, signal, patches, ridge)
    if budget is None:
        routed.thresholds = fit_thresholds(values, model.num_exits)
    else:
        size = model.patch_size
        costs = [count_macs(model, size, size, k) for k in range(model.num_exits)]
        routed.thresholds = budget_thresholds_table(values, patches["errors"], costs, budget, model.num_exits)
    return routed


def spread(paths: list, count: int) -> list:
    """``count`` of ``paths`` evenly spaced from the first to the last: a list grouped by source
    folder is sampled across all of them (its first N are often one folder only)."""
    if count >= len(paths):
        return list(paths)
    return [paths[i] for i in np.linspace(0, len(paths) - 1, count).round().astype(int)]


def main(argv=None) -> int:
    from daqe_tf.inference.models import load_model, save_model
    from daqe_tf.inference.routing import is_defocus_aware
    from train.data import list_images, load_images

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a trained DAQE .keras model")
    parser.add_argument("--train_data", required=True, help="training images: a folder or a list file")
    parser.add_argument("--data_root", default=None, help="root for relative paths in a list file")
    parser.add_argument("--out", required=True, help="where to write the model with refitted thresholds")
    parser.add_argument("--qualities", default="10,20,30,40", help="JPEG qualities the predictions are taken at")
    parser.add_argument("--max_images", type=int, default=0, help="use only N images (0 = all): the first N, or with --spread N spread over the list")
    parser.add_argument("--spread", action="store_true",
                        help="take the --max_images images evenly spaced over the list (every source folder), not the first N")
    parser.add_argument("--budget", type=float, default=None,
                        help="fit for the least error with the exits costing at most this fraction of the deepest")
    parser.add_argument("--signal", choices=("defocus", "readout", "cascade"), default="defocus",
                        help="route by the predicted defocus, by a readout of the head's features, or by a cascade "
                             "of readouts of the branches' features (needs --budget); readouts are fitted here")
    parser.add_argument("--max_cost", type=float, default=None,
                        help="cascade: no image may spend more than this fraction of the deepest exit's cost "
                             "(the deepest exit goes to its neediest patches first); stored in the model")
    parser.add_argument("--ridge", type=float, default=None,
                        help="ridge penalty of the readout fits (standardised inputs; default 3 readout, 300 cascade)")
    args = parser.parse_args(argv)

    model = load_model(args.model)
    if not is_defocus_aware(model):
        parser.error(f"{args.model} is a {type(model).__name__}, not a DAQE model")
    paths = list_images(args.train_data, args.data_root)
    if args.max_images:
        paths = spread(paths, args.max_images) if args.spread else paths[: args.max_images]
    images = load_images(paths, grayscale=model.image_channels == 1, min_size=16)
    qualities = [int(q) for q in args.qualities.split(",")]
    before = (model.routing, np.round(model.thresholds, 4).tolist())
    ridge = args.ridge if args.ridge is not None else (300.0 if args.signal == "cascade" else 3.0)
    model = refit(model, images, qualities, args.signal, args.budget, ridge, args.max_cost)
    print(f"{len(images)} images x QF {qualities}: routing {before[0]} thresholds {before[1]} -> "
          f"{model.routing} thresholds {np.round(model.thresholds, 4).tolist()}")
    print(f"wrote {save_model(model, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
