"""The ``daqe`` command: ``daqe enhance`` files or folders, ``daqe info`` on a JPEG.

Every file of a batch is tried: a bad input gets a one-line error on stderr and
the rest still run; the exit status is 1 when any file failed. Outputs are
written atomically and never over an input.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

OUTPUT_FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tiff": ".tif"}
EXIT_NAMES = {"auto": None, "fast": 0, "balanced": 1, "best": -1}  # auto: DAQE routes by defocus, else best


def _error(message: str) -> None:
    print(f"daqe: error: {message}", file=sys.stderr)


def expand_inputs(inputs: list[str]) -> tuple[list[Path], bool]:
    """Files to process (folders expand to their images) and whether OUTPUT must be a folder."""
    files: list[Path] = []
    many = len(inputs) > 1
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            many = True
            from daqe_tf.io import list_image_files

            try:
                files.extend(list_image_files(path))
            except FileNotFoundError:
                pass  # an empty folder adds nothing; "no input images" is reported once below
        else:
            files.append(path)  # missing files are reported per file, later
    return files, many


def plan_outputs(files: list[Path], output: Path, many: bool, suffix: str) -> list[Path]:
    """One output path per input: OUTPUT itself for one file, else OUTPUT/<stem><suffix> (unique)."""
    if not many and not output.is_dir() and output.suffix:
        return [output]
    taken: set[str] = set()
    outputs = []
    for f in files:
        name, n = f.stem + suffix, 1
        while name in taken:
            n += 1
            name = f"{f.stem}_{n}{suffix}"
        taken.add(name)
        outputs.append(output / name)
    return outputs


def parse_exit(value: str) -> int | None:
    if value in EXIT_NAMES:
        return EXIT_NAMES[value]
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--exit takes auto, fast, balanced, best or an exit number, not {value!r}") from None


def write_maps(result, base: Path, source_paths) -> list[Path]:
    """``<base>_defocus.png`` (gray: black sharp, white sigma >= 8 px) and ``<base>_exits.png``
    (the input under each 16-px cell's exit colour: blue = exit 0 ... red = deepest), display orientation."""
    from daqe_tf.inference.routing import defocus_image, exit_overlay
    from daqe_tf.io import apply_orientation, save_image

    orientation = result.source.orientation
    pictures = {"defocus": defocus_image(result.routing), "exits": exit_overlay(result.routing, result.source.pixels)}
    return [save_image(apply_orientation(pixels, orientation), base.with_name(f"{base.name}_{kind}.png"), source_paths=source_paths)
            for kind, pixels in pictures.items()]


def cmd_enhance(args) -> int:
    from tqdm import tqdm

    from daqe_tf.inference.models import ModelFileError, load_model
    from daqe_tf.inference.pipeline import enhance
    from daqe_tf.inference.routing import is_defocus_aware
    from daqe_tf.io import ImageInputError, reset_exif_orientation, save_image

    files, many = expand_inputs(args.inputs)
    if not files:
        _error("no input images found")
        return 1
    suffix = OUTPUT_FORMATS[args.format]
    output = Path(args.output)
    outputs = plan_outputs(files, output, many, suffix)
    if args.maps and args.exit is not None:
        _error("--maps shows how a DAQE model routes patches by defocus; it needs --exit auto")
        return 2
    map_bases = plan_outputs(files, Path(args.maps), True, "") if args.maps else [None] * len(files)
    if args.maps:
        Path(args.maps).mkdir(parents=True, exist_ok=True)
    if many or output.suffix == "":
        output.mkdir(parents=True, exist_ok=True)
    models: dict[bool, object] = {}
    failed = 0
    bar = tqdm(list(zip(files, outputs, map_bases)), unit="image", disable=args.quiet or len(files) == 1, file=sys.stderr)
    for src, dst, map_base in bar:
        try:
            map_paths = [] if map_base is None else [map_base.with_name(f"{map_base.name}_{k}.png") for k in ("defocus", "exits")]
            for path in [dst, *map_paths]:
                if path.exists() and not args.overwrite:
                    if path.resolve() == src.resolve():
                        raise ImageInputError(f"{path}: output would replace the input")
                    raise FileExistsError(f"{path}: output exists (use --overwrite to replace it)")
            from daqe_tf.io import load_image

            grayscale = load_image(src).is_grayscale if args.model is None else False
            key = grayscale if args.model is None else True
            if key not in models:
                models[key] = load_model(args.model, grayscale=grayscale)
                if args.maps and not is_defocus_aware(models[key]):
                    _error(f"--maps needs a defocus-aware (DAQE) model; {args.model or 'the shipped model'} "
                           f"is a {type(models[key]).__name__}, which uses one exit for the whole image")
                    return 2
            result = enhance(src, models[key], exit_index=args.exit, tile=args.tile, defocus_map=bool(args.maps))
            exif = reset_exif_orientation(result.source.exif) if result.source.exif else None
            save_image(result.pixels, dst, exif=exif, icc_profile=result.source.icc_profile, source_paths=files)
            if map_base is not None:
                write_maps(result, map_base, files)
            if not args.quiet:
                tqdm.write(f"{src} -> {dst} [{result.evidence.describe()}; {result.describe_exits()}]", file=sys.stdout)
        except ModelFileError as error:
            _error(str(error))
            return 1
        except (ImageInputError, FileExistsError, OSError) as error:
            failed += 1
            message = str(error)
            _error(message if str(src) in message else f"{src}: {message}")
    return 1 if failed else 0


def jpeg_info(path: Path) -> dict:
    """Header facts of one JPEG, as plain data."""
    from daqe_tf.jpeg.reader import read_jpeg_header
    from daqe_tf.jpeg.tables import estimate_quality

    header = read_jpeg_header(path)
    quality, exact = estimate_quality(header.luma_table, header.chroma_table)
    return {
        "file": str(path),
        "width": header.width,
        "height": header.height,
        "components": len(header.components),
        "subsampling": header.subsampling,
        "progressive": header.progressive,
        "tables": {str(i): {"precision_bits": header.table_precision[i], "steps": np.asarray(t).tolist()} for i, t in sorted(header.tables.items())},
        "component_tables": [c.table_id for c in header.components],
        "estimated_quality": quality,
        "standard_tables": exact,
    }


def cmd_info(args) -> int:
    from daqe_tf.jpeg.reader import JpegFormatError

    failed = 0
    for item in args.inputs:
        try:
            info = jpeg_info(Path(item))
        except (JpegFormatError, OSError) as error:
            failed += 1
            _error(f"{item}: {error}")
            continue
        if args.json:
            print(json.dumps(info))
            continue
        kind = "progressive" if info["progressive"] else "baseline"
        exact = "standard IJG tables" if info["standard_tables"] else "custom tables, nearest standard QF"
        print(f"{info['file']}: {info['width']}x{info['height']}, {info['components']} component(s), {info['subsampling']}, {kind}")
        print(f"  estimated quality: {info['estimated_quality']} ({exact})")
        for tid, table in info["tables"].items():
            users = [i for i, t in enumerate(info["component_tables"]) if str(t) == tid]
            print(f"  table {tid} ({table['precision_bits']}-bit, components {users}):")
            for row in table["steps"]:
                print("    " + " ".join(f"{v:4d}" for v in row))
    return 1 if failed else 0


def cmd_demo(args) -> int:
    """Make a sample photo, compress it at QF 10, enhance it and report the gain."""
    from daqe_tf.inference.pipeline import enhance
    from daqe_tf.io import save_image
    from daqe_tf.jpeg.simulate import compress
    from daqe_tf.metrics import evaluate_pair
    from daqe_tf.sample import make_sample_image

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    original = make_sample_image()
    jpeg = compress(original, args.quality)
    jpeg_path = out / f"sample_q{args.quality}.jpg"
    tmp = jpeg_path.with_suffix(".jpg.tmp")
    tmp.write_bytes(jpeg.data)
    os.replace(tmp, jpeg_path)
    save_image(original, out / "sample_original.png")
    result = enhance(jpeg_path, args.model, exit_index=args.exit)
    save_image(result.pixels, out / "sample_enhanced.png", source_paths=[jpeg_path])
    before, after = evaluate_pair(original, jpeg.decoded), evaluate_pair(original, result.pixels)
    print(f"wrote {out}/sample_original.png, {jpeg_path.name}, sample_enhanced.png")
    print(f"PSNR   JPEG {before.psnr:6.2f} dB -> enhanced {after.psnr:6.2f} dB ({after.psnr - before.psnr:+.2f})")
    print(f"PSNR-B JPEG {before.psnr_b:6.2f} dB -> enhanced {after.psnr_b:6.2f} dB ({after.psnr_b - before.psnr_b:+.2f})")
    print(f"SSIM   JPEG {before.ssim:6.4f}    -> enhanced {after.ssim:6.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="daqe", description="Enhance JPEG-compressed images.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("enhance", help="enhance images (files or folders)")
    p.add_argument("inputs", nargs="+", help="JPEG files or folders")
    p.add_argument("-o", "--output", required=True, help="output file (one input) or folder")
    p.add_argument("--exit", type=parse_exit, default=None,
                   help="auto (default: a DAQE model picks an exit per patch by defocus; otherwise best), fast, balanced, best or an exit number (0 = fastest)")
    p.add_argument("--model", help="a .keras model or a .tflite export (LiteRT) (default: the shipped model for the image kind)")
    p.add_argument("--format", choices=sorted(OUTPUT_FORMATS), default="png", help="output format for folder outputs (default png)")
    p.add_argument("--tile", type=int, default=512, help="tile size in pixels, a multiple of 16 (bounds memory)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (inputs are never replaced)")
    p.add_argument("--maps", metavar="DIR", help="DAQE models: also write <stem>_defocus.png and <stem>_exits.png to DIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or per-file lines")
    p.set_defaults(func=cmd_enhance)
    p = sub.add_parser("demo", help="enhance a generated sample image and print the gain")
    p.add_argument("-o", "--output", default="daqe_demo", help="folder for the sample files (default daqe_demo)")
    p.add_argument("--quality", type=int, default=10, help="JPEG quality of the sample (default 10)")
    p.add_argument("--exit", type=parse_exit, default=None, help="auto (default), fast, balanced, best or an exit number")
    p.add_argument("--model", help="a .keras model or a .tflite export (LiteRT) (default: the shipped colour model)")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("info", help="print a JPEG's quantization tables, subsampling and estimated quality")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "enhance" and (args.tile % 16 or args.tile < 64):
        _error("--tile must be a multiple of 16 and at least 64")
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
