"""The ``daqe`` command: ``daqe enhance`` files or folders, ``daqe info`` on a JPEG.

Every file of a batch is tried: a bad input gets a one-line error on stderr and
the rest still run; the exit status is 1 when any file failed. Outputs are
written atomically and never over an input. A rerun of an interrupted batch
resumes: outputs that already exist are complete (the atomic writer renames a
finished file into place), so they are skipped with a note on stderr, and the
hidden temporary files of killed runs are removed; ``--overwrite`` redoes all.

The shipped models run on LiteRT where it is installed (no TensorFlow start-up);
TensorFlow's and LiteRT's native log lines stay off the terminal unless ``--verbose``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
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


MAP_KINDS = ("defocus", "exits")


def map_paths(base: Path | None) -> list[Path]:
    return [] if base is None else [base.with_name(f"{base.name}_{kind}.png") for kind in MAP_KINDS]


def parse_quality(value: str) -> int:
    try:
        quality = int(value)
    except ValueError:
        quality = None
    if quality is None or not 1 <= quality <= 100:
        raise argparse.ArgumentTypeError(f"--quality takes a JPEG quality factor 1..100, not {value!r}")
    return quality


def parse_strength(value: str) -> float:
    from daqe_tf.inference.pipeline import MAX_STRENGTH

    try:
        strength = float(value)
    except ValueError:
        strength = float("nan")
    if not 0.0 <= strength <= MAX_STRENGTH:  # NaN fails too
        raise argparse.ArgumentTypeError(
            f"--strength takes a number from 0 (the input) through 1 (the model's output) to {MAX_STRENGTH:g}, not {value!r}")
    return strength


def write_maps(result, base: Path, source_paths, only: set[Path] | None = None) -> list[Path]:
    """``<base>_defocus.png`` (gray: black sharp, white sigma >= 8 px) and ``<base>_exits.png``
    (the input under each 16-px cell's exit colour: blue = exit 0 ... red = deepest), display orientation.
    ``only``: write just these of the two paths (a resumed run keeps the complete ones)."""
    from daqe_tf.io import apply_orientation, save_image
    from daqe_tf.routing.pictures import defocus_image, exit_overlay

    orientation = result.source.orientation
    pictures = {"defocus": lambda: defocus_image(result.routing),
                "exits": lambda: exit_overlay(result.routing, result.source.pixels)}
    written = []
    for kind, path in zip(MAP_KINDS, map_paths(base)):
        if only is None or path in only:
            written.append(save_image(apply_orientation(pictures[kind](), orientation), path, source_paths=source_paths))
    return written


UNTAGGED_TEMP_AGE_S = 600  # an untagged temporary file this old is no write in progress


def _temp_owner(entry_name: str, names: set[str]) -> tuple[str, int | None] | None:
    """(output name, writer pid or None) of the atomic writer's temporary file
    ``.<name>.<pid>.<12 hex>.tmp`` (``.<name>.<12 hex>.tmp`` before the pid tag) of one of
    ``names``; None for any other file."""
    if not (entry_name.startswith(".") and entry_name.endswith(".tmp")):
        return None
    rest, _, token = entry_name[1:-4].rpartition(".")
    if len(token) != 12 or any(c not in "0123456789abcdef" for c in token):
        return None
    name, _, pid = rest.rpartition(".")
    if pid.isdigit() and name in names:
        return name, int(pid)
    return (rest, None) if rest in names else None


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # no harmless liveness probe here: keep the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def remove_stale_temporaries(outputs: list[Path]) -> list[Path]:
    """Delete the atomic writer's temporary files that killed runs left beside ``outputs``:
    those whose writing process is gone (untagged ones: untouched for ``UNTAGGED_TEMP_AGE_S``).
    A write in progress by another live process is left alone. Returns the removed paths."""
    by_folder: dict[Path, set[str]] = {}
    for path in outputs:
        by_folder.setdefault(path.parent, set()).add(path.name)
    removed = []
    now = time.time()
    for folder, names in by_folder.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            owner = _temp_owner(entry.name, names)
            if owner is None:
                continue
            try:
                stale = (now - entry.stat().st_mtime > UNTAGGED_TEMP_AGE_S) if owner[1] is None else not _process_alive(owner[1])
                if stale and entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


def is_complete_image(path: Path) -> bool:
    """Whether ``path`` holds a whole image file (as the atomic writer leaves every output)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except Exception:  # Pillow raises many types for damaged files
        return False


def _peek_grayscale(path: Path) -> bool:
    """Whether an image file holds gray pixels, from its header (no decoding); False if unknown."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.mode in ("1", "L")  # as load_image decides
    except Exception:  # unreadable inputs get their one-line error from enhance()
        return False


def _work_units(model, loaded_size: tuple[int, int], tile: int) -> int:
    """Patches (DAQE) or tiles (QGAUNet) an image of (height, width) runs as, for its progress bar."""
    from daqe_tf.contracts import routes_patches
    from daqe_tf.inference.tiling import plan_tiles
    from daqe_tf.routing.runtime import CELL, PATCH_OVERLAP

    height, width = loaded_size
    if routes_patches(model):
        return len(plan_tiles(height, width, model.patch_size, PATCH_OVERLAP, CELL))
    return len(plan_tiles(height, width, tile, 32, 16))


def _image_size(path: Path) -> tuple[int, int] | None:
    """(height, width) of an image file in stored orientation, from its header."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.height, image.width
    except Exception:
        return None


PATCH_BAR_MIN_PIXELS = 2_000_000  # images at least this large get their own progress bar (on a terminal)
PATCH_BAR_DELAY_S = 0.5  # a bar appears only for work that takes longer


def cmd_enhance(args) -> int:
    from tqdm import tqdm

    from daqe_tf.contracts import routes_patches
    from daqe_tf.inference.models import ModelFileError, load_model
    from daqe_tf.inference.pipeline import enhance
    from daqe_tf.io import ImageInputError, output_metadata, save_image

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
    if args.maps and args.strength == 0:
        _error("--maps shows how the model routed patches; with --strength 0 no model runs")
        return 2
    if args.maps and args.ensemble:
        _error("--maps shows how the model routed one view; --ensemble averages four")
        return 2
    map_bases = plan_outputs(files, Path(args.maps), True, "") if args.maps else [None] * len(files)
    if args.maps:
        Path(args.maps).mkdir(parents=True, exist_ok=True)
    if many or output.suffix == "":
        output.mkdir(parents=True, exist_ok=True)
    removed = remove_stale_temporaries([*outputs, *(p for base in map_bases for p in map_paths(base))])
    if removed and not args.quiet:
        print(f"daqe: removed {len(removed)} temporary file(s) left by an interrupted run", file=sys.stderr)
    options = {"quality": args.quality, "strength": args.strength, "ensemble": args.ensemble}
    models: dict[bool, object] = {}
    failed = skipped = 0
    bar = tqdm(list(zip(files, outputs, map_bases)), unit="image", disable=args.quiet or len(files) == 1, file=sys.stderr)
    for src, dst, map_base in bar:
        try:
            targets = [dst, *map_paths(map_base)]
            for path in targets:
                if path.exists() and _same_input(path, src):
                    raise ImageInputError(f"{path}: output would replace the input")
            pending = set(targets) if args.overwrite else {p for p in targets if not p.exists()}
            incomplete = [p for p in targets if p not in pending and not is_complete_image(p)]
            if incomplete:
                raise FileExistsError(f"{incomplete[0]}: exists but is not a complete image (use --overwrite to replace it)")
            if not pending:
                skipped += 1
                if not args.quiet and len(files) == 1:
                    print(f"daqe: skipped {src}: {dst} exists (use --overwrite to redo it)", file=sys.stderr)
                continue
            grayscale = _peek_grayscale(src) if args.model is None else False
            key = grayscale if args.model is None else True
            if key not in models:
                models[key] = load_model(args.model, grayscale=grayscale, quiet=not args.verbose)
                if args.maps and not routes_patches(models[key]):
                    _error(f"--maps needs a defocus-aware (DAQE) model; {args.model or 'the shipped model'} "
                           f"is a {type(models[key]).__name__}, which uses one exit for the whole image")
                    return 2
            with _patch_bar(src, models[key], args, single=len(files) == 1) as progress:
                result = enhance(src, models[key], exit_index=args.exit, tile=args.tile, defocus_map=bool(args.maps),
                                 progress=progress, **options)
            if dst in pending:
                save_image(result.pixels, dst, source_paths=files, **output_metadata(result.source))
            if map_base is not None:
                write_maps(result, map_base, files, only=pending)
            if not args.quiet:
                tqdm.write(f"{src} -> {dst} [{describe_result(result, args.strength)}]", file=sys.stdout)
        except ModelFileError as error:
            _error(str(error))
            return 1
        except (ImageInputError, FileExistsError, OSError) as error:
            failed += 1
            message = str(error)
            _error(message if str(src) in message else f"{src}: {message}")
    if skipped and len(files) > 1 and not args.quiet:
        print(f"daqe: skipped {skipped} of {len(files)} images whose outputs exist (use --overwrite to redo them)",
              file=sys.stderr)
    return 1 if failed else 0


def describe_result(result, strength: float) -> str:
    """The per-file line's facts: the compression assumed, the exits taken, the strength when not 1."""
    if strength == 0:
        return f"{result.evidence.describe()}; strength 0: the input unchanged"
    facts = f"{result.evidence.describe()}; {result.describe_exits()}"
    return facts if strength == 1 else f"{facts}; strength {strength:g}"


def _same_input(path: Path, src: Path) -> bool:
    try:
        return path.resolve() == src.resolve() or os.path.samefile(path, src)
    except OSError:
        return False


class _patch_bar:
    """A progress bar over one image's patches (tiles for QGAUNet): for a single input, or for a
    large image of a batch; only on a terminal, and never with ``--quiet``. Yields ``progress(done)``
    for ``enhance`` (None when no bar is shown)."""

    def __init__(self, src: Path, model, args, single: bool):
        self.bar = None
        if args.quiet or not _stderr_is_terminal():
            return
        size = _image_size(src)
        if size is None or (not single and size[0] * size[1] < PATCH_BAR_MIN_PIXELS):
            return
        from tqdm import tqdm

        total = _work_units(model, size, args.tile)
        self.bar = tqdm(total=total, unit="patch", desc=src.name, leave=False, file=sys.stderr,
                        position=0 if single else 1, delay=PATCH_BAR_DELAY_S)

    def __enter__(self):
        if self.bar is None:
            return None

        def progress(done: int) -> None:
            self.bar.update(max(0, min(done, self.bar.total) - self.bar.n))

        return progress

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


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


def compression_summary(path: Path) -> str:
    """What the enhancer will assume about the file's compression history (``JpegEvidence.describe``)."""
    from daqe_tf.inference.pipeline import jpeg_evidence
    from daqe_tf.io import ImageInputError, load_image

    try:
        return jpeg_evidence(load_image(path)).describe()
    except ImageInputError as error:  # the header facts still print
        return f"none: the enhancer refuses this file ({error})"


def cmd_info(args) -> int:
    from daqe_tf.jpeg.reader import JpegFormatError

    failed = 0
    for item in args.inputs:
        try:
            info = jpeg_info(Path(item))
            info["compression"] = compression_summary(Path(item))
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
        print(f"  compression assumed by the enhancer: {info['compression']}")
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
    from daqe_tf.inference.models import ModelFileError, load_model

    try:
        model = load_model(args.model, quiet=not args.verbose)
    except ModelFileError as error:
        _error(str(error))
        return 1
    result = enhance(jpeg_path, model, exit_index=args.exit)
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
                   help="auto (default: a DAQE model picks an exit per patch by defocus; otherwise best), "
                        "fast, balanced, best or an exit number (0 = fastest)")
    p.add_argument("--model", help="a .tflite export (LiteRT) or a .keras model (needs TensorFlow) "
                                   "(default: the shipped model for the image kind, on LiteRT where installed)")
    p.add_argument("--quality", metavar="QF", type=parse_quality, default=None,
                   help="assume this JPEG quality (1-100, standard tables) instead of the compression history "
                        "estimated from the file and its pixels (daqe info shows the estimate)")
    p.add_argument("--strength", metavar="S", type=parse_strength, default=1.0,
                   help="0 keeps the input, 1 (default) is the model's output, up to 2 exaggerates the correction")
    p.add_argument("--ensemble", action="store_true",
                   help="average the output over four flipped and transposed views: a little better, 4x the time")
    p.add_argument("--format", choices=sorted(OUTPUT_FORMATS), default="png", help="output format for folder outputs (default png)")
    p.add_argument("--tile", type=int, default=512, help="tile size in pixels, a multiple of 16 (bounds memory)")
    p.add_argument("--maps", metavar="DIR", help="DAQE models: also write <stem>_defocus.png and <stem>_exits.png to DIR")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (inputs are never replaced); without it a rerun skips finished outputs")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or per-file lines")
    p.add_argument("-v", "--verbose", action="store_true", help="let TensorFlow and LiteRT print their log lines")
    p.set_defaults(func=cmd_enhance)
    p = sub.add_parser("demo", help="enhance a generated sample image and print the gain")
    p.add_argument("-o", "--output", default="daqe_demo", help="folder for the sample files (default daqe_demo)")
    p.add_argument("--quality", type=int, default=10, help="JPEG quality of the sample (default 10)")
    p.add_argument("--exit", type=parse_exit, default=None, help="auto (default), fast, balanced, best or an exit number")
    p.add_argument("--model", help="a .keras model or a .tflite export (LiteRT) (default: the shipped colour model)")
    p.add_argument("-v", "--verbose", action="store_true", help="let TensorFlow and LiteRT print their log lines")
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
    if not getattr(args, "verbose", False):
        # TensorFlow's C++ warnings, and its Python logger's (tf.function retracing), stay quiet;
        # the start-up lines printed before these apply are held back while a model loads.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
