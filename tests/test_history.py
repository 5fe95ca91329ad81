"""Compression-history estimation: single JPEGs stay single, re-saved ones show their first compression."""
import numpy as np
import pytest

from daqe_tf.jpeg import history
from daqe_tf.jpeg.history import compression_for_quality, estimate_history, file_compression
from daqe_tf.jpeg.simulate import compress, earlier_jpeg_crop
from daqe_tf.jpeg.tables import STD_LUMA_TABLE, scale_table
from tests.helpers import natural_image


def _textured(h=256, w=256, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    base = natural_image(h, w, channels, seed).astype(np.float64)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _history_of(result):
    return estimate_history(result.decoded, file_compression(result.luma_table, result.chroma_table, result.subsampling))


@pytest.mark.parametrize("channels,subsampling", [(3, "4:2:0"), (3, "4:4:4"), (1, "gray")])
def test_single_jpegs_have_no_earlier_compression(channels, subsampling):
    image = _textured(channels=channels, seed=1)
    for quality in (10, 30, 50, 75, 90, 95):
        found = _history_of(compress(image, quality, subsampling=subsampling))
        assert found.earlier is None, (quality, found.describe())
        assert found.dominant.quality == quality and found.dominant.grid == (0, 0)
        assert "no earlier compression found" in found.describe()


@pytest.mark.parametrize("first,last,offset", [(10, 90, (0, 0)), (10, 90, (4, 4)), (20, 90, (3, 5)), (30, 95, (2, 1)), (10, 75, (7, 1))])
def test_heavy_then_mild_finds_the_first_compression_and_its_grid(first, last, offset):
    image = _textured(seed=2)
    resaved = compress(earlier_jpeg_crop(image, first, offset), last)
    found = _history_of(resaved)
    assert found.earlier is not None, found.describe()
    assert abs(found.earlier.quality - first) <= 2
    assert found.earlier.grid == ((-offset[0]) % 8, (-offset[1]) % 8)  # where the first blocks start
    assert found.dominant is found.earlier and found.last.quality == last
    assert found.earlier.chroma_table is not None and found.earlier.subsampling == "4:2:0"
    assert 0.3 < found.confidence <= 1.0
    text = found.describe()
    assert text.startswith(f"QF {last} file; earlier compression ≈ QF {found.earlier.quality}")
    assert ("aligned grid" in text) == (offset == (0, 0))


def test_gray_resave_and_triple_compression():
    image = _textured(channels=1, seed=3)
    gray = _history_of(compress(earlier_jpeg_crop(image, 15, (2, 6)), 85))
    assert gray.earlier is not None and abs(gray.earlier.quality - 15) <= 2 and gray.earlier.chroma_table is None
    assert gray.earlier.grid == (6, 2)
    # 10 -> 50 -> 90: the coarsest (first) compression dominates, not the middle one.
    triple = compress(earlier_jpeg_crop(earlier_jpeg_crop(_textured(seed=3), 10, (4, 4)), 50, (1, 2)), 90)
    found = _history_of(triple)
    assert found.earlier is not None and abs(found.earlier.quality - 10) <= 2 and found.earlier.grid == (4, 4)


def test_pixels_without_a_file_show_their_jpeg_trace_or_none():
    image = _textured(seed=4)
    trace = estimate_history(compress(earlier_jpeg_crop(image, 20, (5, 3)), 90).decoded)
    assert trace.last is None and trace.earlier is not None and trace.earlier.grid == (3, 5)
    assert trace.describe().startswith("not a JPEG file; JPEG trace ≈ QF")
    never = estimate_history(image)
    assert never.earlier is None and not never.grid_found and never.dominant is None
    assert never.describe() == "not a JPEG file; no JPEG trace found"


def test_a_resize_between_saves_leaves_the_file_tables():
    """Upscaling after the first save moves every block boundary: no grid survives, nothing is invented."""
    from PIL import Image

    first = compress(_textured(192, 192, seed=5), 10).decoded
    resized = np.asarray(Image.fromarray(first).resize((256, 256), Image.BICUBIC))
    found = _history_of(compress(resized, 90))
    assert found.earlier is None or found.earlier.quality > 40  # never the destroyed QF 10 grid
    assert found.dominant is not None


def test_quality_override_is_the_standard_compression():
    assumed = compression_for_quality(30, grayscale=False)
    np.testing.assert_array_equal(assumed.luma_table, scale_table(STD_LUMA_TABLE, 30))
    assert assumed.standard and assumed.grid == (0, 0) and assumed.subsampling == "4:2:0"
    assert compression_for_quality(30, grayscale=True).chroma_table is None
    for bad in (0, 101, -5):
        with pytest.raises(ValueError, match="quality"):
            compression_for_quality(bad, grayscale=False)


def test_work_is_bounded_whatever_the_image_size(monkeypatch):
    """A huge image reads at most MAX_BLOCKS blocks per grid and MAX_PROFILE_LINES lines per profile."""
    seen = {"blocks": [], "lines": []}
    gather, diff = history._gather, np.diff

    def counting_gather(plane, ys, xs, size):
        seen["blocks"].append(len(ys))
        return gather(plane, ys, xs, size)

    def counting_diff(a, axis=-1, **kwargs):
        seen["lines"].append(a.shape[0] if axis == 1 else a.shape[1])
        return diff(a, axis=axis, **kwargs)

    monkeypatch.setattr(history, "_gather", counting_gather)
    monkeypatch.setattr(history.np, "diff", counting_diff)
    big = np.tile(_textured(256, 256, seed=6), (16, 16, 1))  # 4096 x 4096
    estimate_history(compress(big, 20).decoded)
    assert seen["blocks"] and max(seen["blocks"]) <= history.MAX_BLOCKS
    assert seen["lines"] and max(seen["lines"]) <= history.MAX_PROFILE_LINES


def test_fuzz_any_pixels_give_a_history_never_an_error():
    """Noise, flat and tiny images, extreme values and odd shapes: a result (maybe empty), no exception."""
    rng = np.random.default_rng(7)
    cases = [np.zeros((8, 8), np.uint8), np.full((9, 13, 3), 255, np.uint8), np.zeros((1, 400, 3), np.uint8),
             np.zeros((400, 1), np.uint8), rng.integers(0, 256, (17, 31, 3), dtype=np.uint8)]
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 160, size=2))
        shape = (h, w) if rng.random() < 0.3 else (h, w, 3)
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        if rng.random() < 0.5:  # blocky: constant 8x8 blocks at a random phase, as a hostile trace
            pixels = np.repeat(np.repeat(pixels[::8, ::8], 8, axis=0), 8, axis=1)[:h, :w]
            pixels = np.roll(pixels, tuple(int(v) for v in rng.integers(0, 8, size=2)), axis=(0, 1))
        cases.append(np.ascontiguousarray(pixels))
    last = file_compression(scale_table(STD_LUMA_TABLE, 90), None, "gray")
    for pixels in cases:
        for given in (None, last):
            found = estimate_history(pixels, given)
            assert found.earlier is None or 1 <= found.earlier.quality <= 100
            assert isinstance(found.describe(), str)


def test_custom_tables_of_an_earlier_save_read_as_their_nearest_standard_quality():
    """A camera's or editor's own tables fit no IJG scaling; each frequency's step is found on its own."""
    from train.degradations import random_custom_tables

    tables = random_custom_tables(np.random.default_rng(8), 15, grayscale=False)
    rng = np.random.default_rng(8)  # more texture than _textured: enough coefficients off zero at every frequency
    image = np.clip(_textured(seed=8).astype(np.float64) + rng.normal(0, 20, (256, 256, 3)), 0, 255).astype(np.uint8)
    padded = np.pad(image, ((3, 0), (5, 0), (0, 0)), mode="reflect")
    first = compress(padded, tables=tables).decoded[3:, 5:]
    found = _history_of(compress(np.ascontiguousarray(first), 90))
    # Either a standard table happens to fit within the tolerance, or the per-frequency steps do.
    assert found.earlier is not None and found.earlier.grid == (5, 3) and abs(found.earlier.quality - 15) <= 8
    assert ("custom tables ≈ QF" in found.describe()) == (not found.earlier.standard)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(history, "fitted_qualities", lambda misfit: [])  # no IJG table fits: the per-frequency search must
        custom = _history_of(compress(np.ascontiguousarray(first), 90)).earlier
    assert custom is not None and not custom.standard and custom.grid == (5, 3) and abs(custom.quality - 15) <= 5


def test_hostile_file_tables_do_not_break_the_estimate():
    """16-bit steps of 65535 or a table of ones in the header: a history, no exception."""
    image = compress(_textured(seed=9), 30).decoded
    for steps in (65535, 1):
        table = np.full((8, 8), steps, np.uint16)
        found = estimate_history(image, file_compression(table, table, "4:2:0"))
        assert found.last.quality >= 1 and (found.earlier is None or found.earlier.quality >= 1)


def test_block_dct_is_orthonormal_and_follows_the_grid():
    plane = np.random.default_rng(10).uniform(0, 255, (24, 24))
    coefficients = history.block_coefficients(plane, (3, 5))
    assert coefficients.shape == (4, 8, 8)  # whole blocks starting at rows 3, 11 and columns 5, 13
    block = plane[11:19, 13:21]
    np.testing.assert_allclose(np.sum(coefficients[-1] ** 2), np.sum((block - 128) ** 2), rtol=1e-9)
