"""Image input and output: the one gate between user files and the enhancer.

Every source (path, bytes, PIL image, numpy array) becomes a validated uint8
grayscale or RGB array in the *stored* orientation, because the JPEG 8x8 block
grid lives there; the JPEG header, EXIF and ICC profile travel alongside for
the output. Anything the enhancer cannot handle faithfully (alpha, CMYK,
16-bit, tiny or huge images, truncated files) is refused with a one-line
:class:`ImageInputError` naming the input. Outputs are written atomically and
never over an input.
"""
from __future__ import annotations

import contextlib
import io
import os
import secrets
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, JpegImagePlugin, UnidentifiedImageError

from daqe_tf.jpeg.reader import Component, JpegFormatError, JpegHeader, parse_jpeg_header

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "ImageInputError",
    "LoadedImage",
    "apply_orientation",
    "encode_image",
    "list_image_files",
    "load_image",
    "output_metadata",
    "reset_exif_orientation",
    "save_image",
    "write_file_atomically",
]

DEFAULT_MAX_PIXELS = 200_000_000
MIN_SIDE = 8
EXIF_ORIENTATION = 0x0112

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_HIGH_DEPTH_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
_ACCEPTED_MODES = frozenset({"1", "L", "P", "RGB"})
_truncation_lock = threading.Lock()

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray


IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".tif", ".tiff", ".webp"})


def list_image_files(source: str | os.PathLike, root: str | os.PathLike | None = None, recursive: bool = False) -> list[Path]:
    """Image files of a folder (sorted), or the paths listed in a text file (one per line, # comments).

    Relative paths in a list file are resolved against ``root`` (default: the
    list file's folder), so a committed list can point into any data folder.
    """
    path = Path(source)
    if path.is_dir():
        found = path.rglob("*") if recursive else path.iterdir()
        files = sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file():
        base = Path(root) if root else path.parent
        lines = (line.strip() for line in path.read_text().splitlines())
        files = [base / line for line in lines if line and not line.startswith("#")]
    else:
        raise FileNotFoundError(f"no image folder or list file at {source}")
    if not files:
        raise FileNotFoundError(f"no images found in {source}")
    return files


class ImageInputError(ValueError):
    """An input image that cannot be enhanced, with a one-line reason naming it."""


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """A validated image in stored orientation, with what the output should keep."""

    pixels: np.ndarray
    is_grayscale: bool
    jpeg: JpegHeader | None
    source_format: str
    exif: bytes | None = None
    icc_profile: bytes | None = None
    orientation: int = 1
    name: str | None = None


def load_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Validate ``source`` and return its pixels (uint8 HxW or HxWx3) and metadata.

    Files are fully decoded here, so truncated or corrupt data fails now.
    Pillow's own decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) still
    applies on top of ``max_pixels``.
    """
    if isinstance(source, np.ndarray):
        return _load_array(source, max_pixels)
    if isinstance(source, Image.Image):
        filename = getattr(source, "filename", "")
        label = str(filename) if filename else "<PIL image>"
        name = Path(filename).stem if filename else None
        return _load_pillow(source, label, name, _header_from_pillow(source), max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _load_encoded(bytes(source), "<bytes>", None, max_pixels)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return _load_encoded(_read_file(path), str(path), path.stem, max_pixels)
    raise TypeError(f"unsupported image source type {type(source).__name__}")


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageInputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ImageInputError(f"{path}: is a directory, not an image file") from None
    except PermissionError:
        raise ImageInputError(f"{path}: permission denied") from None
    except OSError as e:
        raise ImageInputError(f"{path}: cannot read file ({e.strerror or e})") from None


def _load_encoded(data: bytes, label: str, name: str | None, max_pixels: int) -> LoadedImage:
    jpeg = None
    if data[:2] == b"\xff\xd8":
        try:
            jpeg = parse_jpeg_header(data)
        except JpegFormatError as e:
            raise ImageInputError(f"{label}: invalid or unsupported JPEG: {e}") from None
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check replaces Pillow's warning; its hard error still applies.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageInputError(f"{label}: refused by Pillow's decompression-bomb guard: {e}") from None
    except UnidentifiedImageError:
        what = "a JPEG that Pillow cannot decode" if jpeg else "not an image file, or an unsupported format"
        raise ImageInputError(f"{label}: {what}") from None
    with image:
        return _load_pillow(image, label, name, jpeg, max_pixels)


def _header_from_pillow(image: Image.Image) -> JpegHeader | None:
    """JPEG header from an already opened Pillow JPEG, unless it was drafted (DCT-downscaled).

    Pillow does not keep the table precision; tables with a step above 255
    are reported as 16-bit.
    """
    if not isinstance(image, JpegImagePlugin.JpegImageFile):
        return None
    if image.decoderconfig[:1] not in ((), (1,)):
        return None
    tables = {}
    for table_id, values in image.quantization.items():
        table = np.array(values, dtype=np.uint16).reshape(8, 8)
        table.flags.writeable = False
        tables[table_id] = table
    components = tuple(Component(*layer) for layer in image.layer)
    if not components or any(c.table_id not in tables for c in components):
        return None
    return JpegHeader(
        width=image.width,
        height=image.height,
        precision=image.bits,
        progressive=bool(image.info.get("progressive")),
        components=components,
        tables=tables,
        table_precision={i: 16 if int(t.max()) > 255 else 8 for i, t in tables.items()},
    )


def _check_size(width: int, height: int, label: str, max_pixels: int) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageInputError(f"{label}: image is {width}x{height} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    if width * height > max_pixels:
        raise ImageInputError(
            f"{label}: image is {width}x{height} = {width * height} pixels, above the limit of {max_pixels}"
        )


def _check_mode(image: Image.Image, label: str) -> None:
    mode = image.mode
    if mode in _ALPHA_MODES or "transparency" in image.info:
        raise ImageInputError(f"{label}: image has transparency ({mode}); flatten it onto an opaque background first")
    if mode == "CMYK":
        raise ImageInputError(f"{label}: CMYK images are not supported; convert to RGB first")
    if mode in _HIGH_DEPTH_MODES:
        raise ImageInputError(f"{label}: high bit depth images ({mode}) are not supported; convert to 8-bit first")
    if mode not in _ACCEPTED_MODES:
        raise ImageInputError(f"{label}: colour mode {mode} is not supported; convert to RGB or grayscale first")


@contextlib.contextmanager
def _truncated_images_refused():
    """Make Pillow fail on truncated data even if someone enabled LOAD_TRUNCATED_IMAGES."""
    if not ImageFile.LOAD_TRUNCATED_IMAGES:
        yield
        return
    with _truncation_lock:
        previous, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _load_pillow(
    image: Image.Image, label: str, name: str | None, jpeg: JpegHeader | None, max_pixels: int
) -> LoadedImage:
    _check_size(image.width, image.height, label, max_pixels)
    _check_mode(image, label)
    try:
        with _truncated_images_refused():
            image.load()
    except Image.DecompressionBombError as e:
        raise ImageInputError(f"{label}: refused by Pillow's decompression-bomb guard: {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageInputError(f"{label}: corrupt or truncated image data: {e}") from None
    orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    target_mode = {"1": "L", "P": "RGB"}.get(image.mode)
    pixels = image.convert(target_mode) if target_mode else image
    return LoadedImage(
        pixels=np.array(pixels, dtype=np.uint8),
        is_grayscale=pixels.mode == "L",
        jpeg=jpeg,
        source_format=image.format or "PIL",
        exif=image.info.get("exif") or None,
        icc_profile=image.info.get("icc_profile") or None,
        orientation=orientation if orientation in range(1, 9) else 1,
        name=name,
    )


def _load_array(array: np.ndarray, max_pixels: int) -> LoadedImage:
    label = "<array>"
    if array.ndim == 3 and array.shape[2] in (2, 4):
        raise ImageInputError(f"{label}: array has an alpha channel; flatten it onto an opaque background first")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ImageInputError(f"{label}: expected an HxW or HxWx3 array, got shape {array.shape}")
    _check_size(array.shape[1], array.shape[0], label, max_pixels)
    if array.dtype == np.uint8:
        pixels = array.copy()
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ImageInputError(f"{label}: float pixel values must lie in [0, 1]")
        pixels = np.round(array * 255).astype(np.uint8)
    else:
        raise ImageInputError(f"{label}: unsupported dtype {array.dtype}; use uint8 or float in [0, 1]")
    return LoadedImage(pixels=pixels, is_grayscale=pixels.ndim == 2, jpeg=None, source_format="array")


_ORIENTATIONS: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels upright for display according to the EXIF orientation (1..8)."""
    if orientation not in _ORIENTATIONS:
        raise ValueError(f"EXIF orientation must be 1..8, got {orientation!r}")
    return np.ascontiguousarray(_ORIENTATIONS[orientation](pixels))


def reset_exif_orientation(exif: bytes) -> bytes:
    """EXIF bytes with the orientation tag set to 1, for pixels already turned upright."""
    tags = Image.Exif()
    tags.load(exif)
    if tags.get(EXIF_ORIENTATION, 1) == 1:
        return exif
    tags[EXIF_ORIENTATION] = 1
    return tags.tobytes()


def save_image(
    pixels: np.ndarray,
    path: str | os.PathLike,
    *,
    fmt: str | None = None,
    quality: int = 95,
    exif: bytes | None = None,
    icc_profile: bytes | None = None,
    source_paths: Iterable[str | os.PathLike] = (),
) -> Path:
    """Write uint8 HxW or HxWx3 pixels atomically; never over one of ``source_paths``.

    The format comes from ``fmt`` or the file suffix (PNG when there is none);
    ``quality`` applies to lossy formats.
    """
    path = Path(path)
    for source in source_paths:
        if _same_file(path, Path(source)):
            raise ImageInputError(f"{path}: refusing to overwrite the input image {source}")
    write = _image_writer(pixels, fmt or _format_for(path), quality, exif, icc_profile)
    _write_atomically(path, write)
    return path


def encode_image(
    pixels: np.ndarray,
    fmt: str,
    *,
    quality: int = 95,
    exif: bytes | None = None,
    icc_profile: bytes | None = None,
) -> bytes:
    """The bytes ``save_image`` writes for the same arguments, in memory (for other filesystems).
    ``fmt``: a Pillow format name ("PNG", "JPEG", "WEBP", "TIFF")."""
    buffer = io.BytesIO()
    _image_writer(pixels, fmt, quality, exif, icc_profile)(buffer)
    return buffer.getvalue()


def _image_writer(pixels, fmt: str, quality: int, exif: bytes | None, icc_profile: bytes | None):
    image = _to_pillow(pixels)
    fmt = fmt.upper()
    params: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        params["quality"] = quality
    if exif:
        params["exif"] = exif
    if icc_profile:
        params["icc_profile"] = icc_profile
    return lambda f: image.save(f, format=fmt, **params)


def output_metadata(source: LoadedImage) -> dict[str, bytes | None]:
    """What an enhanced output keeps of its input, as ``save_image``/``encode_image`` keywords: the
    EXIF (orientation reset to 1, as the pixels come upright) and the ICC profile."""
    return {"exif": reset_exif_orientation(source.exif) if source.exif else None, "icc_profile": source.icc_profile}


def write_file_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` as ``save_image`` writes images: a temporary sibling, then a rename."""
    path = Path(path)
    _write_atomically(path, lambda f: f.write(data))
    return path


def _to_pillow(pixels: np.ndarray) -> Image.Image:
    if pixels.dtype != np.uint8 or not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError(f"pixels must be uint8 HxW or HxWx3, got {pixels.dtype} {pixels.shape}")
    return Image.fromarray(np.ascontiguousarray(pixels))


def _format_for(path: Path) -> str:
    suffix = path.suffix.lower()
    if not suffix:
        return "PNG"
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None:
        raise ValueError(f"{path}: unknown image file extension {suffix!r}; pass fmt explicitly")
    return fmt


def _same_file(a: Path, b: Path) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _write_atomically(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write to a temporary sibling, fsync it, then rename it over ``path``.

    The sibling ``.<name>.<pid>.<12 hex>.tmp`` names its writer's process, so a later run can
    tell a file a killed run left behind from a write in progress (``daqe_tf.cli``)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if os.name == "posix":
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
