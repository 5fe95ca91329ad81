"""On-disk cache of defocus pseudo labels.

The estimator takes about a second per 2-MP image and every epoch revisits the same images, so
each map is computed once and kept as compressed float16 .npz, keyed by pixels and settings.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from daqe_tf.defocus.estimator import ESTIMATOR_VERSION, estimate_defocus_map
from daqe_tf.io import load_image

_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)


def _canonical(value):
    """Numbers as floats and sequences as lists, so 1 and 1.0 give the same key."""
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return float(value)


class DefocusLabelCache:
    """Defocus maps by sha256(estimator version + settings + image shape, dtype and pixels).

    ``estimator_params`` are keyword arguments of ``estimate_defocus_map``; defaults are filled
    in, so changing any setting (or ``ESTIMATOR_VERSION``) misses instead of reusing old maps.
    """

    def __init__(self, cache_dir: str | os.PathLike, **estimator_params):
        bound = inspect.signature(estimate_defocus_map).bind(None, **estimator_params)  # TypeError on typos
        bound.apply_defaults()
        settings = {k: _canonical(v) for k, v in bound.arguments.items() if k != "image"}
        self.cache_dir = Path(cache_dir)
        self.estimator_params = dict(estimator_params)
        self._settings = json.dumps({"version": ESTIMATOR_VERSION, **settings}, sort_keys=True).encode()
        self.hits = 0
        self.misses = 0

    def key(self, image: np.ndarray) -> str:
        """Hex sha256 of the settings and the image array."""
        image = np.ascontiguousarray(image)
        digest = hashlib.sha256(self._settings)
        digest.update(f"{image.shape}{image.dtype.str}".encode())
        digest.update(image.data)
        return digest.hexdigest()

    def path(self, key: str) -> Path:
        """Entry file, sharded by the first two hex digits to keep folders small."""
        return self.cache_dir / key[:2] / f"{key}.npz"

    def get(self, source: str | os.PathLike, image: np.ndarray | None = None) -> np.ndarray:
        """Defocus map (float32 HxW) of ``image``, or of the file ``source`` when no array is given.

        The key is the pixels, never the name: renamed files share an entry and edited files miss.
        Unreadable or mismatched cache files are recomputed and overwritten.
        """
        if image is None:
            image = load_image(source).pixels
        path = self.path(self.key(image))
        try:
            with np.load(path) as stored:
                defocus = stored["defocus"]
            if defocus.shape == image.shape[:2]:
                self.hits += 1
                return defocus.astype(np.float32)
        except _UNREADABLE:
            pass
        self.misses += 1
        defocus = estimate_defocus_map(image, **self.estimator_params).astype(np.float16)
        self._write(path, defocus)
        return defocus.astype(np.float32)

    @staticmethod
    def _write(path: Path, defocus: np.ndarray) -> None:
        """Write via a temporary file and os.replace, so readers never see half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(f, defocus=defocus)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
