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

from daqe_tf.routing.calibration import (  # noqa: F401  (calibration_patches, patch_routing_values re-exported)
    calibrate,
    calibration_patches,
    mean_image_db,
    patch_routing_values,
    per_image_errors,
    stage_columns,
)
from daqe_tf.routing.policy import assign_clusters, budget_thresholds, fit_thresholds, oracle_exits


def fit_cascade(model, patches: dict, costs, budget: float, ridge: float, max_cost: float | None = None):
    """A copy of ``model`` routing by a fitted cascade within ``budget`` (and its per-image cap
    ``max_cost``, stored in the model); prints the trade-off table."""
    from daqe_tf.models.daqe import with_routing
    from daqe_tf.routing.calibration import cascade_readout_fit
    from daqe_tf.routing.policy import budget_cascade_thresholds, capped_cascade_exits

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


def signal_model(model, signal: str, patches: dict, ridge: float):
    """(model routing by ``signal``, each calibration patch's value of that signal).

    "readout" fits ``routing_readout_fit`` on the patches; the returned model's thresholds are
    placeholders until the caller fits them on the returned values.
    """
    from daqe_tf.models.daqe import with_routing
    from daqe_tf.routing.calibration import routing_readout_fit

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
    from daqe_tf.contracts import routes_patches
    from daqe_tf.inference.models import load_model, save_model
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
    if not routes_patches(model):
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
