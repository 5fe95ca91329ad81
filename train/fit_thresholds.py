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

    python -m train.fit_thresholds --model runs/daqe/best.keras --train_data train/lists/train.txt \\
        --data_root ../shared/datasets --out runs/daqe/best_refit.keras [--qualities 10,20,30,40] \\
        [--budget 0.6 --max_images 60]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from daqe_tf.defocus.clusters import assign_clusters, budget_thresholds, fit_thresholds, oracle_exits


def _routing_view(model, image: np.ndarray, quality: int):
    """``image`` compressed at ``quality`` (Pillow, 4:2:0) as inference sees it:
    (JPEG, its ``qmap_for``, the patch plan, the predicted defocus of every patch)."""
    from daqe_tf.inference.pipeline import jpeg_evidence, window_qmaps
    from daqe_tf.inference.routing import CELL, PATCH_OVERLAP, patch_defocus, predict_defocus
    from daqe_tf.inference.tiling import plan_tiles
    from daqe_tf.io import load_image
    from daqe_tf.jpeg.simulate import compress

    jpeg = compress(image, quality)
    qmap_for = window_qmaps(jpeg_evidence(load_image(jpeg.data)), model.image_channels)
    defocus = predict_defocus(jpeg.decoded, model, qmap_for)
    patches = plan_tiles(*image.shape[:2], model.patch_size, PATCH_OVERLAP, CELL)
    return jpeg, qmap_for, patches, np.array([patch_defocus(defocus, t) for t in patches], np.float32)


def predicted_patch_defocus(model, image: np.ndarray, quality: int) -> np.ndarray:
    """Predicted defocus of every inference patch of ``image`` compressed at ``quality``."""
    return _routing_view(model, image, quality)[3]


def patch_exit_errors(model, image: np.ndarray, quality: int) -> tuple[np.ndarray, np.ndarray]:
    """(predicted defocus (n,), squared error (n, N) through each exit) of every inference patch.

    A patch's error is summed over the pixels it owns (``cell_owners``) in the image blended with
    every patch forced through one exit, so each pixel is charged once.
    """
    from daqe_tf.inference.routing import CELL, run_patches
    from daqe_tf.inference.tiling import cell_owners

    jpeg, qmap_for, patches, defocus = _routing_view(model, image, quality)
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
    return defocus, errors


def budget_refit(model, images: list[np.ndarray], qualities, budget: float) -> list[float]:
    """``budget_thresholds`` on every patch of images x qualities, with the exits' cost per patch."""
    from daqe_tf.complexity import count_macs

    parts = [patch_exit_errors(model, image, q) for image in images for q in qualities]
    defocus = np.concatenate([d for d, _ in parts])
    errors = np.concatenate([e for _, e in parts])
    size = model.patch_size
    costs = [count_macs(model, size, size, k) for k in range(model.num_exits)]
    thresholds = budget_thresholds(defocus, errors, costs, budget)
    # The trade-off on the calibration patches: what each budget would keep of the deepest exit's quality.
    print("| thresholds from | thresholds | patches per exit | exit cost / deepest | error / all-deepest (dB) |")
    print("|---|---|---|---|---|")
    options = [("equal shares", fit_thresholds(defocus, model.num_exits))]
    for b in sorted({0.5, 0.6, 0.7, 0.8, 0.9, budget}):
        try:
            options.append((f"budget {b:.2f}", thresholds if b == budget else budget_thresholds(defocus, errors, costs, b)))
        except ValueError:
            continue
    rows = [(name, np.round(chosen, 4).tolist(), assign_clusters(defocus, chosen)) for name, chosen in options]
    # The bound: exits picked per patch knowing its errors (what a perfect routing signal would reach).
    rows += [(f"oracle {b:.2f}", "per patch", oracle_exits(errors, costs, b)) for b in sorted({0.6, 0.7, budget})]
    for name, chosen, exits in rows:
        ratio = errors[np.arange(len(exits)), exits].sum() / errors[:, -1].sum()
        print(f"| {name} | {chosen} | {np.bincount(exits, minlength=model.num_exits).tolist()} | "
              f"{np.mean(np.take(costs, exits)) / costs[-1]:.3f} | {10 * np.log10(ratio):+.3f} |")
    return thresholds


def refit_thresholds(model, images: list[np.ndarray], qualities) -> list[float]:
    """Quantile thresholds (equal cluster shares) of the predicted patch defocus over images x qualities."""
    values = [predicted_patch_defocus(model, image, q) for image in images for q in qualities]
    return fit_thresholds(np.concatenate(values), model.num_exits)


def main(argv=None) -> int:
    from daqe_tf.inference.models import load_model
    from daqe_tf.inference.routing import is_defocus_aware
    from train.data import list_images, load_images

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a trained DAQE .keras model")
    parser.add_argument("--train_data", required=True, help="training images: a folder or a list file")
    parser.add_argument("--data_root", default=None, help="root for relative paths in a list file")
    parser.add_argument("--out", required=True, help="where to write the model with refitted thresholds")
    parser.add_argument("--qualities", default="10,20,30,40", help="JPEG qualities the predictions are taken at")
    parser.add_argument("--max_images", type=int, default=0, help="use only the first N images (0 = all)")
    parser.add_argument("--budget", type=float, default=None,
                        help="fit for the least error with the exits costing at most this fraction of the deepest")
    args = parser.parse_args(argv)

    model = load_model(args.model)
    if not is_defocus_aware(model):
        parser.error(f"{args.model} is a {type(model).__name__}, not a DAQE model")
    paths = list_images(args.train_data, args.data_root)
    if args.max_images:
        paths = paths[: args.max_images]
    images = load_images(paths, grayscale=model.image_channels == 1, min_size=16)
    qualities = [int(q) for q in args.qualities.split(",")]
    before = model.thresholds
    if args.budget is None:
        model.thresholds = refit_thresholds(model, images, qualities)
    else:
        model.thresholds = budget_refit(model, images, qualities, args.budget)
    print(f"{len(images)} images x QF {qualities}: thresholds {np.round(before, 4).tolist()} -> "
          f"{np.round(model.thresholds, 4).tolist()} (log1p sigma)")
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
