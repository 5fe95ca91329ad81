"""How well a DAQE model's defocus head, seeing only the JPEG, agrees with the pseudo labels.

    python -m benchmarks.defocus_head_agreement --model DAQE.keras \\
        [--data train/lists/val.txt --data_root ../shared/datasets] [--qualities 10,40] [--max_images N]

Routing is only as good as the head's ORDER of patches (clusters are quantiles), so the measure is
Spearman's rho per image between the predicted and the pseudo-label patch defocus, on the model's
own non-overlapping patch grid (``patch_defocus_from_map``; partial patches average their cells).
Labels come from the classical estimator on the UNCOMPRESSED held-out image (cached under
data_cache/, on the same pixels training uses: RGB, or Y for gray models); predictions from the
whole-image head (``routing.predict_defocus``) on the image compressed at each QF. Also printed:
pooled Spearman over all patches, the cells' mean absolute error (log1p sigma) and the share of
patches whose predicted cluster is their label cluster (``defocus_clusters``: under the model's
thresholds when it routes by defocus; a model routed by its readout has thresholds on the readout,
so its defocus is split into equal label shares instead).
"""
from __future__ import annotations

import argparse

import numpy as np

from benchmarks.stats import spearman
from daqe_tf.contracts import routes_patches
from daqe_tf.defocus import DefocusLabelCache
from daqe_tf.inference.models import load_model
from daqe_tf.inference.pipeline import jpeg_evidence, window_qmaps
from daqe_tf.io import load_image
from daqe_tf.jpeg.simulate import compress
from daqe_tf.models.daqe import assign_clusters, defocus_cell_targets, patch_defocus_from_map
from daqe_tf.routing.policy import fit_thresholds
from daqe_tf.routing.runtime import predict_defocus

CELL = 16


def defocus_clusters(model, labels: np.ndarray) -> tuple[list[float], str]:
    """(defocus thresholds the cluster agreement is measured with, how they were chosen).

    The model's own when it routes by defocus; for a readout-routed model (thresholds on another
    scale) the label defocus quantiles with one equal share per exit.
    """
    if getattr(model, "routing", "defocus") == "defocus":
        return list(model.thresholds), "the model's thresholds"
    return fit_thresholds(labels, model.num_exits), f"equal label shares ({model.num_exits} clusters; the model routes by its readout)"


def agreement(model, images: list[np.ndarray], quality: int, cache: DefocusLabelCache) -> dict:
    """Per-image Spearman, pooled Spearman, cell MAE and cluster agreement at one QF."""
    patch_cells = model.patch_size // CELL
    per_image, labels_all, predicted_all, errors = [], [], [], []
    for image in images:
        label_cells = defocus_cell_targets(cache.get(None, image), CELL)
        jpeg = compress(image, quality)
        predicted_cells = predict_defocus(jpeg.decoded, model, window_qmaps(jpeg_evidence(load_image(jpeg.data)), model.image_channels))
        errors.append(np.abs(predicted_cells - label_cells).ravel())
        labels = patch_defocus_from_map(label_cells[None, ..., None], patch_cells).ravel()
        predicted = patch_defocus_from_map(predicted_cells[None, ..., None], patch_cells).ravel()
        if labels.size >= 4:
            per_image.append(spearman(predicted, labels))
        labels_all.append(labels)
        predicted_all.append(predicted)
    labels, predicted = np.concatenate(labels_all), np.concatenate(predicted_all)
    thresholds, chosen = defocus_clusters(model, labels)
    same = assign_clusters(predicted, thresholds) == assign_clusters(labels, thresholds)
    return {
        "median": float(np.nanmedian(per_image)), "mean": float(np.nanmean(per_image)), "pooled": spearman(predicted, labels),
        "mae": float(np.concatenate(errors).mean()), "cluster_agreement": float(same.mean()), "clusters_from": chosen,
        "images": len(images), "patches": int(labels.size),
    }


def main(argv=None) -> int:
    from train.data import list_images, load_images

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a DAQE .keras model")
    parser.add_argument("--data", default="train/lists/val.txt", help="held-out images: a folder or a list file")
    parser.add_argument("--data_root", default="../shared/datasets", help="root for relative paths in a list file")
    parser.add_argument("--qualities", default="10,40")
    parser.add_argument("--cache", default="data_cache/defocus", help="pseudo-label cache folder")
    parser.add_argument("--max_images", type=int, default=0, help="first N images (0 = all)")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    if not routes_patches(model):
        parser.error(f"{args.model} is a {type(model).__name__}, not a DAQE model")
    paths = list_images(args.data, args.data_root)[: args.max_images or None]
    images = load_images(paths, grayscale=model.image_channels == 1, min_size=model.patch_size)
    cache = DefocusLabelCache(args.cache)
    print(f"Defocus head vs pseudo labels on {len(images)} held-out images, {model.patch_size}-px patches")
    print("| QF | Spearman per image (median / mean) | pooled Spearman | cell MAE (log1p sigma) | same cluster | patches |")
    print("|---|---|---|---|---|---|")
    for q in (int(q) for q in args.qualities.split(",")):
        a = agreement(model, images, q, cache)
        chosen = a["clusters_from"]
        print(f"| {q} | {a['median']:.3f} / {a['mean']:.3f} | {a['pooled']:.3f} | {a['mae']:.3f} "
              f"| {100 * a['cluster_agreement']:.0f}% | {a['patches']} |")
    print(f"same cluster: clusters of the patch defocus by {chosen}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
