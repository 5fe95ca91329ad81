"""Loading, validating and writing images: every refusal, metadata, orientation, atomic output."""
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms, ImageFile, ImageOps

from daqe_tf.io import (
    ImageInputError,
    LoadedImage,
    apply_orientation,
    load_image,
    reset_exif_orientation,
    save_image,
)
from daqe_tf.jpeg.reader import parse_jpeg_header

ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def rgb(h=24, w=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write(tmp_path, name, image, **params) -> Path:
    path = tmp_path / name
    image.save(path, **params)
    return path


def exif_bytes(orientation=None, make="DAQE Cam"):
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = make
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = "2024:05:06 07:08:09"
    return exif.tobytes()


def expect_error(source, match, **kwargs) -> str:
    with pytest.raises(ImageInputError, match=match) as info:
        load_image(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    if isinstance(source, Path):
        assert str(source) in message
    return message


# --- loading -----------------------------------------------------------------


def test_jpeg_path_gives_stored_pixels_header_and_metadata(tmp_path):
    path = write(tmp_path, "photo.jpg", Image.fromarray(rgb()), quality=60, exif=exif_bytes(6), icc_profile=ICC)
    loaded = load_image(path)
    assert isinstance(loaded, LoadedImage)
    assert loaded.pixels.shape == (24, 40, 3) and loaded.pixels.dtype == np.uint8  # stored, not rotated
    np.testing.assert_array_equal(loaded.pixels, np.asarray(Image.open(path)))
    assert not loaded.is_grayscale and loaded.source_format == "JPEG" and loaded.name == "photo"
    assert loaded.orientation == 6
    assert loaded.icc_profile == ICC
    tags = Image.Exif()
    tags.load(loaded.exif)
    assert tags[ExifTags.Base.Make] == "DAQE Cam"
    np.testing.assert_array_equal(loaded.jpeg.luma_table, parse_jpeg_header(path.read_bytes()).luma_table)
    assert loaded.jpeg.subsampling == "4:2:0"


def test_bytes_and_str_sources_match_path(tmp_path):
    path = write(tmp_path, "a.jpg", Image.fromarray(rgb()), quality=80, subsampling=0)
    from_bytes, from_str = load_image(path.read_bytes()), load_image(str(path))
    np.testing.assert_array_equal(from_bytes.pixels, from_str.pixels)
    assert from_bytes.name is None and from_str.name == "a"
    assert from_bytes.jpeg.subsampling == from_str.jpeg.subsampling == "4:4:4"


def test_grayscale_jpeg_and_png(tmp_path):
    gray = rgb()[..., 0]
    jpeg = load_image(write(tmp_path, "g.jpg", Image.fromarray(gray)))
    png = load_image(write(tmp_path, "g.png", Image.fromarray(gray)))
    assert jpeg.is_grayscale and jpeg.pixels.shape == (24, 40) and jpeg.jpeg.is_grayscale
    assert png.is_grayscale and png.jpeg is None and png.source_format == "PNG"
    np.testing.assert_array_equal(png.pixels, gray)
    assert png.orientation == 1 and png.exif is None and png.icc_profile is None


def test_bilevel_becomes_gray_and_opaque_palette_becomes_rgb(tmp_path):
    bilevel = load_image(write(tmp_path, "b.png", Image.fromarray(rgb()[..., 0] > 127)))
    assert bilevel.is_grayscale and set(np.unique(bilevel.pixels)) <= {0, 255}
    palette = Image.fromarray(rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    loaded = load_image(write(tmp_path, "p.png", palette))
    assert not loaded.is_grayscale and loaded.pixels.shape == (24, 40, 3)
    np.testing.assert_array_equal(loaded.pixels, np.asarray(palette.convert("RGB")))


def test_pil_image_sources(tmp_path):
    path = write(tmp_path, "t.jpg", Image.fromarray(rgb()), qtables=[[2] * 64, [300] * 64])
    with Image.open(path) as im:
        loaded = load_image(im)
    expected = parse_jpeg_header(path.read_bytes())
    assert loaded.name == "t" and loaded.source_format == "JPEG"
    assert loaded.jpeg.components == expected.components
    assert loaded.jpeg.table_precision == expected.table_precision == {0: 8, 1: 16}
    for table_id in (0, 1):
        np.testing.assert_array_equal(loaded.jpeg.tables[table_id], expected.tables[table_id])
    # A DCT-downscaled (drafted) JPEG no longer sits on the stored block grid.
    with Image.open(path) as im:
        im.draft("RGB", (20, 12))
        drafted = load_image(im)
    assert drafted.jpeg is None and drafted.pixels.shape == (12, 20, 3)
    in_memory = load_image(Image.fromarray(rgb()))
    assert in_memory.source_format == "PIL" and in_memory.jpeg is None and in_memory.name is None


def test_arrays():
    pixels = rgb()
    loaded = load_image(pixels)
    assert loaded.source_format == "array" and loaded.jpeg is None and not loaded.is_grayscale
    np.testing.assert_array_equal(loaded.pixels, pixels)
    assert loaded.pixels is not pixels
    assert load_image(pixels[..., 0]).is_grayscale
    floats = load_image(np.array([[0.0, 1.0, 0.5, 0.2]] * 8 * 2).reshape(8, 8))
    np.testing.assert_array_equal(floats.pixels[0, :4], [0, 255, 128, 51])


@pytest.mark.parametrize(
    "array, match",
    [
        (np.full((8, 8), 1.5), r"\[0, 1\]"),
        (np.full((8, 8), np.nan), r"\[0, 1\]"),
        (np.zeros((8, 8), np.int16), "dtype int16"),
        (np.zeros((8, 8, 4), np.uint8), "alpha"),
        (np.zeros((8, 8, 5), np.uint8), "shape"),
        (np.zeros((4, 8), np.uint8), "4 pixels; at least 8x8"),
    ],
)
def test_bad_arrays(array, match):
    assert "<array>" in expect_error(array, match)


def test_unsupported_source_type():
    with pytest.raises(TypeError, match="list"):
        load_image([[0] * 8] * 8)


def test_invalid_orientation_tag_falls_back_to_1(tmp_path):
    loaded = load_image(write(tmp_path, "o.jpg", Image.fromarray(rgb()), exif=exif_bytes(9)))
    assert loaded.orientation == 1 and loaded.exif is not None


# --- refusals ----------------------------------------------------------------


def test_missing_file_and_directory(tmp_path):
    expect_error(tmp_path / "nope.jpg", "file not found")
    expect_error(tmp_path, "is a directory")


def test_unreadable_file(tmp_path):
    path = write(tmp_path, "secret.png", Image.fromarray(rgb()))
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running with privileges that read the file anyway")
        expect_error(path, "permission denied")
    finally:
        path.chmod(0o644)


def test_permission_error_is_reported(tmp_path, monkeypatch):
    path = write(tmp_path, "locked.png", Image.fromarray(rgb()))

    def deny(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", deny)
    expect_error(path, "permission denied")


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("hello, not a picture\n")
    expect_error(path, "not an image file")


def test_truncated_jpeg_is_refused_even_if_pillow_allows_it(tmp_path, monkeypatch):
    data = write(tmp_path, "full.jpg", Image.fromarray(rgb(64, 64)), quality=90).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) * 2 // 3])
    expect_error(path, "truncated")
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    expect_error(path, "truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_corrupt_jpeg_header(tmp_path):
    data = write(tmp_path, "full.jpg", Image.fromarray(rgb())).read_bytes()
    path = tmp_path / "bad.jpg"
    path.write_bytes(data[: data.index(b"\xff\xda")])
    expect_error(path, "invalid or unsupported JPEG: truncated")


def test_jpeg_pillow_cannot_decode(tmp_path):
    data = bytearray(write(tmp_path, "full.jpg", Image.fromarray(rgb())).read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 4] = 12  # 12-bit samples: a valid header, but Pillow only decodes 8-bit JPEG
    path = tmp_path / "twelve.jpg"
    path.write_bytes(bytes(data))
    expect_error(path, "Pillow cannot decode")


def test_cmyk_jpeg(tmp_path):
    path = write(tmp_path, "print.jpg", Image.new("CMYK", (16, 16), (0, 50, 100, 0)))
    expect_error(path, "CMYK")


@pytest.mark.parametrize("mode, suffix", [("I;16", "png"), ("I", "tif"), ("F", "tif")])
def test_high_bit_depth_images(tmp_path, mode, suffix):
    deep = Image.fromarray((np.arange(16 * 16, dtype=np.uint16) * 200).reshape(16, 16)).convert(mode)
    path = write(tmp_path, f"deep.{suffix}", deep)
    assert Image.open(path).mode == mode
    expect_error(path, rf"high bit depth images \({mode}\)")


def _transparent_images():
    base = Image.fromarray(rgb())
    palette = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    palette.info["transparency"] = 0
    return {
        "RGBA": base.convert("RGBA"),
        "LA": base.convert("LA"),
        "P+tRNS": palette,
        "RGB+tRNS": (base, {"transparency": (0, 0, 0)}),
    }


@pytest.mark.parametrize("kind", ["RGBA", "LA", "P+tRNS", "RGB+tRNS"])
def test_transparency_is_refused(tmp_path, kind):
    image = _transparent_images()[kind]
    image, params = image if isinstance(image, tuple) else (image, {})
    path = write(tmp_path, "alpha.png", image, **params)
    expect_error(path, "flatten")
    expect_error(Image.open(path), "flatten")


def test_other_colour_modes_are_refused():
    expect_error(Image.new("HSV", (8, 8)), "colour mode HSV")
    expect_error(Image.new("F", (8, 8)), "high bit depth")


@pytest.mark.parametrize("size", [(1, 1), (8, 7), (7, 8)])
def test_tiny_images_are_refused(tmp_path, size):
    path = write(tmp_path, "tiny.png", Image.new("RGB", size))
    expect_error(path, "at least 8x8")


def test_smallest_accepted_size(tmp_path):
    assert load_image(write(tmp_path, "eight.png", Image.new("L", (8, 8)))).pixels.shape == (8, 8)


def test_pixel_limit(tmp_path):
    path = write(tmp_path, "big.png", Image.new("RGB", (64, 64)))
    expect_error(path, "4096 pixels, above the limit of 4000", max_pixels=4000)
    assert load_image(path, max_pixels=4096).pixels.shape == (64, 64, 3)


def test_decompression_bomb_guard(tmp_path, monkeypatch):
    path = write(tmp_path, "bomb.png", Image.new("RGB", (64, 64)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    expect_error(path, "decompression-bomb")
    # Between Pillow's warning and error thresholds our own limit decides, without a warning.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(path).pixels.shape == (64, 64, 3)


# --- orientation -------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("channels", [1, 3])
def test_apply_orientation_matches_pillow_exif_transpose(orientation, channels):
    pixels = rgb(6, 10)[..., :channels].squeeze()
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[ExifTags.Base.Orientation] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    result = apply_orientation(pixels, orientation)
    np.testing.assert_array_equal(result, expected)
    assert result.flags.c_contiguous


def test_apply_orientation_rejects_unknown_values():
    with pytest.raises(ValueError, match="1..8"):
        apply_orientation(rgb(), 0)


def test_reset_exif_orientation_keeps_other_tags():
    reset = Image.Exif()
    reset.load(reset_exif_orientation(exif_bytes(6)))
    assert reset[ExifTags.Base.Orientation] == 1
    assert reset[ExifTags.Base.Make] == "DAQE Cam"
    assert reset.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == "2024:05:06 07:08:09"
    unrotated = exif_bytes()
    assert reset_exif_orientation(unrotated) is unrotated


def test_rotated_output_is_not_rotated_again(tmp_path):
    src = write(tmp_path, "in.jpg", Image.fromarray(rgb()), exif=exif_bytes(8))
    loaded = load_image(src)
    upright = apply_orientation(loaded.pixels, loaded.orientation)
    out = save_image(upright, tmp_path / "out.png", exif=reset_exif_orientation(loaded.exif), source_paths=[src])
    with Image.open(out) as im:
        assert im.getexif()[ExifTags.Base.Orientation] == 1
        np.testing.assert_array_equal(np.asarray(ImageOps.exif_transpose(im)), upright)
    assert upright.shape == (40, 24, 3)


# --- saving ------------------------------------------------------------------


def test_png_round_trip_and_default_format(tmp_path):
    pixels = rgb()
    for name in ("out.png", "no_suffix"):
        out = save_image(pixels, tmp_path / name)
        assert out == tmp_path / name
        with Image.open(out) as im:
            assert im.format == "PNG"
            np.testing.assert_array_equal(np.asarray(im), pixels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_suffix", "out.png"]


def test_jpeg_quality_format_override_and_gray(tmp_path):
    pixels = rgb(64, 64)
    high = save_image(pixels, tmp_path / "high.jpg", quality=95)
    low = save_image(pixels, tmp_path / "low.jpeg", quality=20)
    assert parse_jpeg_header(high.read_bytes()).luma_table.max() < parse_jpeg_header(low.read_bytes()).luma_table.max()
    forced = save_image(pixels[..., 0], tmp_path / "gray.img", fmt="jpeg")
    with Image.open(forced) as im:
        assert im.format == "JPEG" and im.mode == "L"


def test_icc_and_exif_are_carried(tmp_path):
    exif = exif_bytes(3)
    for name in ("meta.jpg", "meta.png"):
        out = save_image(rgb(), tmp_path / name, exif=exif, icc_profile=ICC)
        loaded = load_image(out)
        assert loaded.icc_profile == ICC
        assert loaded.orientation == 3
        tags = Image.Exif()
        tags.load(loaded.exif)
        assert tags[ExifTags.Base.Make] == "DAQE Cam"


def test_bad_pixels_and_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        save_image(rgb().astype(np.float32), tmp_path / "f.png")
    with pytest.raises(ValueError, match="uint8"):
        save_image(rgb()[..., :2], tmp_path / "f.png")
    with pytest.raises(ValueError, match="'.xyz'"):
        save_image(rgb(), tmp_path / "f.xyz")
    assert list(tmp_path.iterdir()) == []


def test_never_overwrites_an_input(tmp_path):
    src = write(tmp_path, "in.png", Image.fromarray(rgb()))
    original = src.read_bytes()
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.png").symlink_to(src)
    os.link(src, tmp_path / "hard.png")
    for target in (src, str(src), tmp_path / "sub" / ".." / "in.png", tmp_path / "link.png", tmp_path / "hard.png"):
        with pytest.raises(ImageInputError, match="refusing to overwrite"):
            save_image(rgb(seed=1), target, source_paths=[src])
    assert src.read_bytes() == original
    # Other inputs in the list are compared too; unrelated outputs are fine.
    with pytest.raises(ImageInputError):
        save_image(rgb(seed=1), src, source_paths=[tmp_path / "other.png", str(src)])
    assert save_image(rgb(seed=1), tmp_path / "out.png", source_paths=[src]).exists()


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"previous result")

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(rgb(), target)
    with pytest.raises(OSError, match="disk full"):
        save_image(rgb(), tmp_path / "fresh.png")
    assert target.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_output_permissions_follow_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        out = save_image(rgb(), tmp_path / "perm.png")
    finally:
        os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o644
