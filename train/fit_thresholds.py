"""``python -m train.fit_thresholds``: refit a trained DAQE model's cluster thresholds on its own predictions.

Training fits the thresholds on pseudo labels of the uncompressed images, but inference clusters
patches by what the defocus head PREDICTS from the JPEG, whose distribution differs (smoother,
shifted by compression). Quantiles of the predicted patch defocus over the training images, on
the patch plan inference uses, make the clusters equally populated where it matters.

    python -m train.fit_thresholds --model runs/daqe/best.keras --train_data train/lists/train.txt \\
        --data_root ../shared/datasets --out runs/daqe/best_refit.keras [--qualities 10,20,30,40]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np


def predicted_patch_defocus(model, image: np.ndarray, quality: int) -> np.ndarray:
    """Predicted defocus of every inference patch of ``image`` compressed at ``quality`` (Pillow, 4:2:0)."""
    from daqe_tf.inference.pipeline import jpeg_evidence, window_qmaps
    from daqe_tf.inference.routing import CELL, PATCH_OVERLAP, patch_defocus, predict_defocus
    from daqe_tf.inference.tiling import plan_tiles
    from daqe_tf.io import load_image
    from daqe_tf.jpeg.simulate import compress

    jpeg = compress(image, quality)
    qmap_for = window_qmaps(jpeg_evidence(load_image(jpeg.data)), model.image_channels)
    defocus = predict_defocus(jpeg.decoded, model, qmap_for)
    patches = plan_tiles(*image.shape[:2], model.patch_size, PATCH_OVERLAP, CELL)
    return np.array([patch_defocus(defocus, t) for t in patches], np.float32)


def refit_thresholds(model, images: list[np.ndarray], qualities) -> list[float]:
    """Quantile thresholds (equal cluster shares) of the predicted patch defocus over images x qualities."""
    from daqe_tf.models.daqe import fit_thresholds

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
    model.thresholds = refit_thresholds(model, images, qualities)
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
