"""``python -m train.gray_from_color``: a trained colour model as a grayscale model, to start grayscale training from.

The colour model already enhances gray JPEGs (as R = G = B = Y); ``daqe_tf.models.convert``
folds it into the one-channel architecture exactly, so grayscale training can begin where the
colour training ended instead of from scratch (``python -m train.main --grayscale
--init_weights OUT --model_config`` with the colour model's architecture).

    python -m train.gray_from_color --model COLOR.keras --out runs/gray_init.keras
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def check_equivalence(color, gray, size: int = 64, seed: int = 0) -> float:
    """Largest difference between the colour model on a random gray image (as the pipeline runs it)
    and the grayscale model, over every exit, in 0..1 units."""
    from daqe_tf.jpeg.qmap import qmap_from_tables
    from daqe_tf.jpeg.tables import tables_for_quality

    luma = tables_for_quality(20, grayscale=True)[0]
    y = np.random.default_rng(seed).uniform(0, 1, (1, size, size, 1)).astype("float32")
    color_inputs = {"image": np.repeat(y, 3, axis=-1), "qmap": qmap_from_tables(luma, luma, size, size, "4:4:4")[None]}
    gray_inputs = {"image": y, "qmap": qmap_from_tables(luma, None, size, size, "gray")[None]}
    pairs = zip(color(color_inputs), gray(gray_inputs))  # every exit's output
    return max(float(np.abs(np.asarray(c).mean(axis=-1) - np.asarray(g)[..., 0]).max()) for c, g in pairs)


def main(argv=None) -> int:
    from daqe_tf.inference.models import load_model, save_model
    from daqe_tf.models.convert import grayscale_from_color

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a colour .keras model (QGAUNet or DAQENet)")
    parser.add_argument("--out", required=True, help="where to write the grayscale .keras model")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.resolve() == Path(args.model).resolve():
        parser.error("--out must not be the input model")
    color = load_model(args.model)  # ModelFileError names a missing or unreadable file
    try:
        gray = grayscale_from_color(color)
    except ValueError as error:
        parser.error(f"{args.model}: {error}")
    difference = check_equivalence(color, gray)
    if difference > 1e-4:
        raise SystemExit(f"the grayscale model differs from the colour model on gray content by {difference:.2e}")
    save_model(gray, out)
    print(f"wrote {out}: {type(gray).__name__} for grayscale images, {gray.count_params():,} parameters; "
          f"on gray content within {difference:.1e} of {args.model}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
