"""Training data: images in memory, random crops, augmentation, on-the-fly JPEG.

``PairSampler`` is a plain numpy iterator of (inputs, target) batches; the
TensorFlow trainer wraps it in ``tf.data`` and the JAX trainer consumes it
directly. Its position is its seed and batch counter, so a resumed run draws
the same stream it would have drawn.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from daqe_tf.io import list_image_files
from train.degradations import DegradationConfig, degrade_pair


def list_images(source: str, root: str | None = None) -> list[str]:
    """Training images: a folder (recursive) or a list file (see ``daqe_tf.io.list_image_files``)."""
    return [str(p) for p in list_image_files(source, root, recursive=True)]


def load_images(paths: list[str], grayscale: bool, min_size: int) -> list[np.ndarray]:
    """Decode every image once (uint8), as Y (BT.601) for grayscale or RGB; skip too-small ones."""
    from daqe_tf.metrics import rgb_to_y_uint8

    images = []
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB")
            arr = np.asarray(im)
        if grayscale:
            arr = rgb_to_y_uint8(arr)  # the evaluation protocol's Y
        if min(arr.shape[:2]) >= min_size:
            images.append(arr)
    if not images:
        raise ValueError(f"no image is at least {min_size}x{min_size}")
    return images


def augment(rng: np.random.Generator, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """One of the 8 flips/rotations (dihedral group), the same one for every array (patch, label map)."""
    turns, flip = int(rng.integers(4)), rng.random() < 0.5
    out = []
    for array in arrays:
        array = np.rot90(array, k=turns)
        out.append(np.ascontiguousarray(array[:, ::-1] if flip else array))
    return tuple(out)


class PairSampler:
    """Endless batches of (decoded JPEG, Q-map) -> clean target patches, float32 in [0, 1]."""

    def __init__(self, images, patch_size: int, batch_size: int, degradation: DegradationConfig, seed: int = 0, start_batch: int = 0):
        self.images = images
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.degradation = degradation
        self.seed = seed
        self.batch_index = start_batch
        # Sample images in proportion to their area so large images are not under-used.
        areas = np.array([im.shape[0] * im.shape[1] for im in images], dtype=np.float64)
        self.weights = areas / areas.sum()

    def _sample(self, rng, index: int):
        """A clean uint8 patch and its labels (None here) for batch ``index``."""
        image = self.images[rng.choice(len(self.images), p=self.weights)]
        y = int(rng.integers(0, image.shape[0] - self.patch_size + 1))
        x = int(rng.integers(0, image.shape[1] - self.patch_size + 1))
        return augment(rng, image[y : y + self.patch_size, x : x + self.patch_size])[0], None

    def batch(self, index: int):
        """Batch number ``index`` (deterministic in seed and index): (inputs, target[, labels])."""
        rng = np.random.default_rng([self.seed, index])
        decoded, qmaps, targets, labels = [], [], [], []
        for _ in range(self.batch_size):
            patch, label = self._sample(rng, index)
            target, jpeg, qmap, _ = degrade_pair(rng, patch, self.degradation)
            decoded.append(jpeg)
            qmaps.append(qmap)
            targets.append(target)
            labels.append(label)
        to_float = lambda xs: np.stack(xs).astype(np.float32).reshape(len(xs), self.patch_size, self.patch_size, -1) / 255.0  # noqa: E731
        pair = ({"image": to_float(decoded), "qmap": np.stack(qmaps)}, to_float(targets))
        if labels[0] is None:
            return pair
        return pair + ({key: np.stack([label[key] for label in labels]) for key in labels[0]},)

    def __iter__(self):
        return self

    def __next__(self):
        out = self.batch(self.batch_index)
        self.batch_index += 1
        return out


class ClusterPairSampler(PairSampler):
    """Cluster-aware batches for DAQE: every batch from one pseudo-label cluster, with defocus targets.

    Batch i draws from cluster ``cluster_order[i % len(cluster_order)]`` (clusters that no crop
    falls in are skipped), so each exit's own cluster comes round every N batches. Crops are the
    ``candidates`` (``train.defocus_labels.candidate_table``: crops on the 16-px grid, drawn
    uniformly, hence in proportion to image area) under a random dihedral transform. Yields
    ``(inputs, target, {"defocus": (B, P/16, P/16, 1) log1p sigma, "cluster": (B,) int32})``.
    """

    def __init__(self, images, sigma_maps, candidates: dict, thresholds, patch_size: int, batch_size: int,
                 degradation: DegradationConfig, seed: int = 0, start_batch: int = 0):
        from daqe_tf.models.daqe import assign_clusters

        super().__init__(images, patch_size, batch_size, degradation, seed, start_batch)
        self.sigma_maps = sigma_maps
        self.candidates = candidates
        clusters = assign_clusters(candidates["defocus"], thresholds)
        self.members = [np.flatnonzero(clusters == c) for c in range(len(thresholds) + 1)]
        self.cluster_order = [c for c, members in enumerate(self.members) if members.size]
        if not self.cluster_order:
            raise ValueError(f"no training image holds a {patch_size}x{patch_size} crop")

    def _sample(self, rng, index: int):
        from train.defocus_labels import crop_with_labels

        cluster = self.cluster_order[index % len(self.cluster_order)]
        pick = rng.choice(self.members[cluster])
        i, y, x = (int(self.candidates[key][pick]) for key in ("image", "y", "x"))
        patch, cells = crop_with_labels(rng, self.images[i], self.sigma_maps[i], y, x, self.patch_size)
        return patch, {"defocus": cells, "cluster": np.int32(cluster)}
