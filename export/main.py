"""``python -m export.main``: a ``.keras`` model -> ``.tflite`` with exit signatures + ``<out>.json``.

    python -m export.main --model M.keras --out M.tflite --variant float32|float16|int8 \
        [--tile 256] [--representative DIR_OR_LIST --data_root ROOT] [--calibration_samples 32]

int8 calibrates on crops of training images (``--representative``: a folder, searched
recursively, or a list file whose relative paths resolve against ``--data_root``). Never
calibrate on an evaluation set. Every variant keeps float32 inputs and outputs.
"""
from __future__ import annotations

import argparse
import os
import sys

from export.converter import VARIANTS, ExportError, export_tflite, metadata_path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m export.main", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a .keras QGAUNet or DAQENet")
    parser.add_argument("--out", required=True, help="the .tflite file to write (metadata goes to <out>.json)")
    parser.add_argument("--variant", choices=VARIANTS, default="float32")
    parser.add_argument("--tile", type=int, default=256, help="side of the fixed-shape tile_<S> signature (default 256)")
    parser.add_argument("--representative", help="training images for int8 calibration: a folder or a list file")
    parser.add_argument("--data_root", help="root for relative paths of a --representative list file")
    parser.add_argument("--calibration_samples", type=int, default=32, help="int8 calibration crops (default 32)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from daqe_tf.inference.models import ModelFileError, load_model
    from daqe_tf.io import list_image_files

    try:
        if args.model.endswith(".tflite"):
            raise ExportError("--model must be a .keras file")
        model = load_model(args.model)
        images = None
        if args.representative:
            images = list_image_files(args.representative, args.data_root, recursive=True)
        meta = export_tflite(
            model, {args.variant: args.out}, tile=args.tile,
            representative_images=images, calibration_samples=args.calibration_samples,
        )[args.variant]
    except (ExportError, ModelFileError, FileNotFoundError) as error:
        print(f"export: error: {error}", file=sys.stderr)
        return 1
    size = os.path.getsize(args.out)
    print(f"wrote {args.out} ({size / 1e6:.2f} MB, {meta['variant']}, {meta['family']}) and {metadata_path(args.out)}")
    sigs = meta["signatures"]
    keys = [*sigs["exits"], *filter(None, [sigs["defocus"]]), *sigs.get("stages", []), *sigs.get("heads", []), sigs["tile"]]
    print(f"signatures: {', '.join(keys)}")
    print(f"ops: {', '.join(meta['ops'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
