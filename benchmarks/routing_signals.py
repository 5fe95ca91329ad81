"""Which per-patch signal should pick a DAQE model's exits? Predicted defocus against a learned readout.

    python -m benchmarks.routing_signals --model MODEL.keras \\
        --train_data train/lists/train.txt --data_root ../shared/datasets [--set LIVE1_color] \\
        [--max_train_images 40] [--qualities 10,20,30,40] [--budgets 0.60,0.64] [--ridge 3]

``MODEL`` is any DAQE model with a defocus head (the shipped defaults have one; their own routing
is the cascade, which ``benchmarks.daqe_eval`` measures).

Why: routing by defocus keeps less of the deepest exit's quality than the exits allow
(``train.fit_thresholds`` prints an oracle that beats all-deepest at 0.64 of its cost). This
measures how much of that gap each signal closes, on an evaluation set, next to that oracle:

- every inference patch of the training images (the first ``--max_train_images``) and of one
  evaluation set, compressed at each QF, goes through every exit once; its squared error is that
  of the pixels it owns in the blended image (``train.fit_thresholds.calibration_patches``);
- signals per patch: the predicted defocus, and the routing readout that ``train.fit_thresholds
  --signal readout`` builds into a model (``RoutingReadout``: ridge regression, on the training
  patches, of log(error deepest / error exit 0) on the defocus head's last features and the mean
  luma Q-map, pooled over the patch's cells);
- for each signal and budget, thresholds are fitted on the training patches
  (``clusters.budget_thresholds``) and applied to the evaluation patches; printed per QF: mean
  over images of PSNR routed - PSNR all-deepest, MACs saved against all-deepest (exits on the
  patch plan plus the defocus head on its windows, as ``benchmarks.daqe_eval`` counts), and the
  patches per exit; also every patch through exit N-2 alone, and the oracle (exits picked per
  patch knowing its errors) at the same budget.

Approximations, stated: a routed image's error is assembled from each patch's owned pixels
through its exit (exact when all patches take one exit; blending across a border between two
exits is not modelled), and the head's features are computed on the whole image in one window.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.daqe_eval import TILE
from benchmarks.jpeg_baselines import default_data_dir
from benchmarks.stats import spearman
from daqe_tf.complexity import count_defocus_macs, count_macs
from daqe_tf.routing.policy import assign_clusters, budget_thresholds, oracle_exits

SIGNALS = ("defocus", "readout")


def collect(model, images, qualities) -> dict:
    """Every patch of ``images`` x ``qualities`` (``train.fit_thresholds.calibration_patches``), and
    per patch its image, QF and the defocus head's MACs on that image."""
    from daqe_tf.inference.tiling import plan_tiles
    from daqe_tf.routing.runtime import DEFOCUS_OVERLAP
    from train.fit_thresholds import calibration_patches

    parts = {k: [] for k in ("defocus", "readout_inputs", "errors", "image", "quality", "head_macs")}
    for index, image in enumerate(images):
        height, width = image.shape[:2]
        head = sum(count_defocus_macs(model, t.y1 - t.y0, t.x1 - t.x0) for t in plan_tiles(height, width, TILE, DEFOCUS_OVERLAP, 16))
        for quality in qualities:
            patches = calibration_patches(model, image, quality)
            n = len(patches["errors"])
            for key, value in patches.items():
                parts[key].append(value)
            parts["image"].append(np.full(n, index))
            parts["quality"].append(np.full(n, quality))
            parts["head_macs"].append(np.full(n, head / n))  # spread over the image's patches
    return {k: np.concatenate(v) for k, v in parts.items()}


def route_quality(data: dict, exits: np.ndarray, exit_macs) -> dict:
    """{QF: (mean PSNR routed - all-deepest over images, MACs saved, patches per exit)}.

    Routed cost = exits on the patches + the defocus head; all-deepest = every patch through the last exit.
    """
    exit_macs = np.asarray(exit_macs, np.float64)
    errors = data["errors"]
    routed = errors[np.arange(len(exits)), exits]
    out = {}
    for quality in np.unique(data["quality"]):
        at_q = data["quality"] == quality
        deltas = []
        for index in np.unique(data["image"][at_q]):
            mask = at_q & (data["image"] == index)
            deltas.append(10 * np.log10(errors[mask, -1].sum() / max(routed[mask].sum(), 1e-12)))
        cost = exit_macs[exits[at_q]].sum() + data["head_macs"][at_q].sum()
        saved = 1 - cost / (exit_macs[-1] * at_q.sum())
        out[int(quality)] = (float(np.mean(deltas)), float(saved), np.bincount(exits[at_q], minlength=len(exit_macs)))
    return out


def signal_values(signal: str, data: dict, readout) -> np.ndarray:
    """Routing value per patch, higher = cheaper exit: the predicted defocus, or the fitted readout."""
    if signal == "defocus":
        return data["defocus"]
    weights, bias = readout
    return data["readout_inputs"] @ weights + bias


def run(model, train_images, eval_images, qualities, budgets, ridge: float) -> list[tuple]:
    """Rows (signal, budget, QF, delta dB, saved, patches per exit) and the Spearman of each signal."""
    from daqe_tf.models.daqe import routing_readout_fit

    size = model.patch_size
    exit_macs = [count_macs(model, size, size, k) for k in range(model.num_exits)]
    train, held = collect(model, train_images, qualities), collect(model, eval_images, qualities)
    readout = routing_readout_fit(train["readout_inputs"], train["errors"], ridge)
    gain = np.log((held["errors"][:, 0] + 1e-9) / (held["errors"][:, -1] + 1e-9))
    rows, ranks = [], {}
    for signal in SIGNALS:
        ranks[signal] = spearman(-signal_values(signal, held, readout), gain)
    one_below = np.full(len(held["errors"]), model.num_exits - 2)
    for quality, (delta, saved, counts) in route_quality(held, one_below, exit_macs).items():
        rows.append((f"exit {model.num_exits - 2} alone", "-", quality, delta, saved, counts))
    for budget in budgets:
        for signal in SIGNALS:
            thresholds = budget_thresholds(signal_values(signal, train, readout), train["errors"], exit_macs, budget)
            exits = assign_clusters(signal_values(signal, held, readout), thresholds)
            for quality, (delta, saved, counts) in route_quality(held, exits, exit_macs).items():
                rows.append((signal, f"{budget:.2f}", quality, delta, saved, counts))
        oracle = oracle_exits(held["errors"], exit_macs, budget)
        for quality, (delta, saved, counts) in route_quality(held, oracle, exit_macs).items():
            rows.append(("oracle (knows the errors)", f"{budget:.2f}", quality, delta, saved, counts))
    return rows, ranks


def main(argv=None) -> int:
    from daqe_tf.contracts import routes_patches
    from daqe_tf.evaluation import load_image
    from daqe_tf.inference.models import load_model
    from daqe_tf.io import list_image_files
    from train.data import list_images, load_images

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a trained DAQE .keras model")
    parser.add_argument("--train_data", required=True, help="training images (folder or list file): the readout and thresholds are fitted here")
    parser.add_argument("--data_root", default=None)
    parser.add_argument("--max_train_images", type=int, default=40)
    parser.add_argument("--data", default=None, help="evaluation folder (default: benchmarks.jpeg_baselines')")
    parser.add_argument("--set", default=None, help="evaluation set (default LIVE1_color for colour models, LIVE1_gray for gray)")
    parser.add_argument("--max_images", type=int, default=0, help="first N evaluation images (0 = all)")
    parser.add_argument("--qualities", default="10,20,30,40")
    parser.add_argument("--budgets", default="0.60,0.64", help="exit cost on the patches / the deepest exit's")
    parser.add_argument("--ridge", type=float, default=3.0)
    args = parser.parse_args(argv)

    model = load_model(args.model)
    if not routes_patches(model):
        parser.error(f"{args.model} is a {type(model).__name__}, not a DAQE model")
    grayscale = model.image_channels == 1
    name = args.set or ("LIVE1_gray" if grayscale else "LIVE1_color")
    eval_paths = list_image_files(Path(args.data or default_data_dir()) / name)[: args.max_images or None]
    train_paths = list_images(args.train_data, args.data_root)[: args.max_train_images or None]
    train_images = load_images(train_paths, grayscale=grayscale, min_size=16)
    eval_images = [load_image(p, grayscale) for p in eval_paths]
    qualities = [int(q) for q in args.qualities.split(",")]
    budgets = [float(b) for b in args.budgets.split(",")]
    rows, ranks = run(model, train_images, eval_images, qualities, budgets, args.ridge)

    print(f"{Path(args.model).name} on {name} ({len(eval_images)} images); readout and thresholds fitted on "
          f"{len(train_images)} training images x QF {qualities}")
    print("Spearman with the patch's gain log(error exit 0 / error deepest): "
          + ", ".join(f"{s} {r:.2f}" for s, r in ranks.items()))
    print("| signal | budget | QF | PSNR routed - deepest (dB) | MACs saved | patches per exit |")
    print("|---|---|---|---|---|---|")
    for signal, budget, quality, delta, saved, counts in rows:
        print(f"| {signal} | {budget} | {quality} | {delta:+.3f} | {100 * saved:.0f}% | {' / '.join(map(str, counts))} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
