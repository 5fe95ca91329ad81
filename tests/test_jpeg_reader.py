"""Header reader against Pillow's own JPEG parsing, hand-made edge cases and fuzzing."""
import io
import random
import sys

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from daqe_tf.jpeg import reader
from daqe_tf.jpeg.reader import (
    ZIGZAG,
    Component,
    JpegFormatError,
    JpegHeader,
    parse_jpeg_header,
    read_jpeg_header,
)
from tests.helpers import encode_jpeg, join_segments, split_segments

PILLOW_SAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}


def make_jpeg(shape=(24, 40, 3), seed=0, **save_kwargs) -> bytes:
    return encode_jpeg(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8), **save_kwargs)


def replace_segment(data: bytes, marker: int, payload: bytes) -> bytes:
    segments, rest = split_segments(data)
    return join_segments([(m, payload if m == marker else p) for m, p in segments], rest)


def sof_index(segments):
    return next(i for i, (m, _) in enumerate(segments) if 0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC))


def with_sampling(data: bytes, factors) -> bytes:
    """Rewrite the SOF sampling bytes, e.g. factors=[(2, 1), (1, 1), (1, 1)]."""
    segments, rest = split_segments(data)
    i = sof_index(segments)
    marker, payload = segments[i]
    payload = bytearray(payload)
    for c, (h, v) in enumerate(factors):
        payload[7 + 3 * c] = (h << 4) | v
    segments[i] = (marker, bytes(payload))
    return join_segments(segments, rest)


def pillow_open(data: bytes) -> JpegImagePlugin.JpegImageFile:
    im = Image.open(io.BytesIO(data))
    assert isinstance(im, JpegImagePlugin.JpegImageFile)
    return im


def assert_matches_pillow(header: JpegHeader, data: bytes) -> None:
    im = pillow_open(data)
    assert (header.width, header.height) == im.size
    assert header.precision == im.bits == 8
    assert header.progressive == bool(im.info.get("progressive"))
    # Pillow's layer tuples are (id, h, v, table) even though its source comment says (id, v, h, table).
    assert [(c.id, c.h_sampling, c.v_sampling, c.table_id) for c in header.components] == im.layer
    assert sorted(header.tables) == sorted(im.quantization)
    for table_id, values in im.quantization.items():
        # Pillow de-zigzags: .quantization is in natural row-major order.
        np.testing.assert_array_equal(header.tables[table_id], np.array(values).reshape(8, 8))
        assert header.tables[table_id].dtype == np.uint16


def test_zigzag_is_the_standard_diagonal_scan():
    expected = sorted(range(64), key=lambda n: (n // 8 + n % 8, n // 8 if (n // 8 + n % 8) % 2 else n % 8))
    assert list(ZIGZAG) == expected
    # Pillow keeps the inverse permutation: natural index -> zigzag position.
    assert [JpegImagePlugin.zigzag_index[n] for n in ZIGZAG] == list(range(64))


@pytest.mark.parametrize("quality", [5, 50, 95])
@pytest.mark.parametrize("subsampling", [0, 1, 2])
def test_matches_pillow_for_colour_baseline(quality, subsampling):
    data = make_jpeg(quality=quality, subsampling=subsampling)
    header = parse_jpeg_header(data)
    assert_matches_pillow(header, data)
    assert header.subsampling == PILLOW_SAMPLING[subsampling]
    assert JpegImagePlugin.get_sampling(pillow_open(data)) == subsampling
    assert header.table_precision == {0: 8, 1: 8}
    assert not header.is_grayscale
    assert header.luma_table is header.tables[0] and header.chroma_table is header.tables[1]


def test_grayscale():
    data = make_jpeg(shape=(16, 16), quality=70)
    header = parse_jpeg_header(data)
    assert_matches_pillow(header, data)
    assert header.is_grayscale and header.subsampling == "gray"
    assert header.chroma_table is None
    assert header.luma_table is header.tables[0]
    assert JpegImagePlugin.get_sampling(pillow_open(data)) == -1


def test_progressive():
    data = make_jpeg(quality=80, progressive=True)
    header = parse_jpeg_header(data)
    assert header.progressive
    assert_matches_pillow(header, data)
    assert not parse_jpeg_header(make_jpeg(quality=80)).progressive


def test_tables_above_255_are_written_as_16_bit():
    luma = list(range(1, 65))
    chroma = [300 + i for i in range(64)]
    data = make_jpeg(qtables=[luma, chroma])
    segments, _ = split_segments(data)
    # Pillow/libjpeg switch to 16-bit DQT entries (Pq=1) and to an extended-sequential frame (SOF1).
    assert segments[sof_index(segments)][0] == 0xC1
    header = parse_jpeg_header(data)
    assert_matches_pillow(header, data)
    assert header.table_precision == {0: 8, 1: 16}
    assert header.chroma_table.max() == 363 and not header.progressive
    np.testing.assert_array_equal(header.luma_table.ravel(), luma)


def test_three_tables_chroma_is_the_cb_table():
    tables = [[1 + i // 8] * 64 for i in range(0, 24, 8)]
    data = make_jpeg(qtables=tables, subsampling=0)
    header = parse_jpeg_header(data)
    assert_matches_pillow(header, data)
    assert [c.table_id for c in header.components] == [0, 1, 2]
    assert header.chroma_table is header.tables[1]
    assert header.subsampling == "4:4:4"


@pytest.mark.parametrize(
    "factors, expected",
    [
        ([(1, 2), (1, 1), (1, 1)], "4:4:0"),
        ([(4, 1), (1, 1), (1, 1)], "4:1:1"),
        ([(2, 2), (2, 2), (2, 2)], "4:4:4"),
        ([(4, 2), (2, 1), (2, 1)], "4:2:0"),
        ([(3, 1), (1, 1), (1, 1)], "h3v1/h1v1/h1v1"),
        ([(2, 2), (1, 1), (1, 2)], "h2v2/h1v1/h1v2"),
        ([(3, 2), (2, 1), (2, 1)], "h3v2/h2v1/h2v1"),
    ],
)
def test_subsampling_names(factors, expected):
    header = parse_jpeg_header(with_sampling(make_jpeg(subsampling=0), factors))
    assert header.subsampling == expected
    assert [(c.h_sampling, c.v_sampling) for c in header.components] == factors


def test_path_and_bytes_sources(tmp_path):
    data = make_jpeg(quality=60)
    path = tmp_path / "a.jpg"
    path.write_bytes(data)
    for source in (path, str(path), data, bytearray(data), memoryview(data)):
        header = read_jpeg_header(source)
        assert (header.width, header.height, header.subsampling) == (40, 24, "4:2:0")
        np.testing.assert_array_equal(header.luma_table, parse_jpeg_header(data).luma_table)


def test_tables_are_read_only_and_header_is_frozen():
    header = parse_jpeg_header(make_jpeg())
    with pytest.raises(ValueError):
        header.luma_table[0, 0] = 1
    with pytest.raises(AttributeError):
        header.width = 1
    assert Component(1, 2, 2, 0) == header.components[0]


def test_marker_stream_variants_parse_like_libjpeg():
    data = make_jpeg(quality=40, subsampling=1)
    segments, rest = split_segments(data)
    dqt = b"".join(p for m, p in segments if m == 0xDB)
    others = [(m, p) for m, p in segments if m != 0xDB]
    # One DQT segment with both tables, placed after the frame header.
    i = sof_index(others)
    merged = join_segments(others[: i + 1] + [(0xDB, dqt)] + others[i + 1 :], rest)
    # Fill bytes before a marker, and a standalone RST marker between segments.
    sos = merged.index(b"\xff\xda")
    padded = merged[:sos] + b"\xff\xd3\xff\xff\xff" + merged[sos:]
    # Extraneous bytes, including a stuffed 0xFF00, are skipped as libjpeg and Pillow do.
    junk = merged[:sos] + b"\x00\x42\xff\x00\x17" + merged[sos:]
    # TEM is standalone too (libjpeg accepts it; Pillow's own header parser does not).
    tem = merged[:sos] + b"\xff\x01" + merged[sos:]
    expected = parse_jpeg_header(data)
    for variant in (merged, padded, junk, tem):
        header = parse_jpeg_header(variant)
        assert header.components == expected.components
        for table_id in (0, 1):
            np.testing.assert_array_equal(header.tables[table_id], expected.tables[table_id])
    for variant in (merged, padded, junk):
        assert pillow_open(variant).quantization == pillow_open(data).quantization


def test_12_bit_precision_is_accepted():
    segments, rest = split_segments(make_jpeg())
    i = sof_index(segments)
    marker, payload = segments[i]
    segments[i] = (0xC1, bytes([12]) + payload[1:])
    assert parse_jpeg_header(join_segments(segments, rest)).precision == 12


def _malformed_cases():
    good = make_jpeg(subsampling=0)
    segments, rest = split_segments(good)
    sof_i = sof_index(segments)
    sof_marker, sof = segments[sof_i]
    dqt_luma = next(p for m, p in segments if m == 0xDB and p[0] == 0x00)
    sos_at = good.index(b"\xff\xda")

    def rebuild(index, segment):
        """Replace the segment at ``index``, or drop it when ``segment`` is None."""
        kept = segments[:index] + ([segment] if segment else []) + segments[index + 1 :]
        return join_segments(kept, rest)

    def sof_with(offset, value):
        payload = bytearray(sof)
        payload[offset] = value
        return rebuild(sof_i, (sof_marker, bytes(payload)))

    def dqt_with(offset, value):
        payload = bytearray(dqt_luma)
        payload[offset] = value
        return rebuild(segments.index((0xDB, dqt_luma)), (0xDB, bytes(payload)))

    return {
        "empty": (b"", "truncated"),
        "not a jpeg": (b"\x89PNG\r\n\x1a\n" + bytes(50), "missing start-of-image"),
        "soi only": (b"\xff\xd8", "truncated"),
        "eoi before scan": (b"\xff\xd8\xff\xd9", "unexpected marker 0xFFD9"),
        "second soi": (b"\xff\xd8\xff\xd8", "unexpected marker 0xFFD8"),
        "only junk after soi": (b"\xff\xd8" + b"\x00\xff\x00" * 100, "truncated"),
        "scan without frame": (rebuild(sof_i, None), "before any frame"),
        "missing table": (rebuild(segments.index((0xDB, dqt_luma)), None), "table 0, which is not defined"),
        "dqt precision 2": (dqt_with(0, 0x20), "precision 2"),
        "dqt id 4": (dqt_with(0, 0x04), "table id 4"),
        "zero step": (dqt_with(5, 0), "zero step"),
        "short dqt": (replace_segment(good, 0xDB, dqt_luma[:40]), "truncated quantization table"),
        "component table id 5": (sof_with(8, 5), "table id 5"),
        "sampling 0": (sof_with(7, 0x01), "sampling factors 0x1"),
        "sampling 5": (sof_with(7, 0x15), "sampling factors 1x5"),
        "precision 16": (sof_with(0, 16), "sample precision 16"),
        "zero height": (rebuild(sof_i, (sof_marker, sof[:1] + b"\0\0" + sof[3:])), "image size 40x0"),
        "zero width": (rebuild(sof_i, (sof_marker, sof[:3] + b"\0\0" + sof[5:])), "image size 0x24"),
        "no components": (rebuild(sof_i, (sof_marker, sof[:5] + b"\x00")), "no components"),
        "component count mismatch": (sof_with(5, 4), "does not match 4 components"),
        "short frame header": (rebuild(sof_i, (sof_marker, sof[:4])), "truncated frame header"),
        "lossless": (rebuild(sof_i, (0xC3, sof)), "lossless"),
        "second frame": (join_segments(segments[: sof_i + 1] + segments[sof_i:], rest), "second frame"),
        "length below 2": (good[:sos_at] + b"\xff\xfe\x00\x01" + good[sos_at:], "invalid length 1"),
        "segment past end": (good[:sos_at] + b"\xff\xfe\x40\x00", "needs 16384 bytes"),
        "truncated before scan": (good[:sos_at], "truncated"),
    }


MALFORMED = _malformed_cases()


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_headers_raise_clear_errors(name):
    data, message = MALFORMED[name]
    with pytest.raises(JpegFormatError, match=message) as info:
        parse_jpeg_header(data)
    assert "\n" not in str(info.value)


# Every loop of the header parser consumes input, so its work is linear in the input's length (the
# measured worst case runs about 7 of its lines per byte); a parse past this budget is stopped.
PARSER_LINES_PER_BYTE = 20


class _ParserOverBudget(Exception):
    pass


def _parse_or_format_error(data: bytes) -> int:
    """Parse ``data`` (a header or a ``JpegFormatError``); returns how many parser lines ran.

    The lines of ``daqe_tf/jpeg/reader.py`` are counted with a trace function, which stops a parse
    that runs past ``PARSER_LINES_PER_BYTE`` per input byte: a hang or a quadratic loop fails here."""
    budget, lines = PARSER_LINES_PER_BYTE * (len(data) + 1), 0

    def count(frame, event, arg):
        nonlocal lines
        if event == "line":
            lines += 1
            if lines > budget:
                raise _ParserOverBudget(f"{lines} parser lines for {len(data)} bytes: {data[:40]!r}...")
        return count

    def calls(frame, event, arg):
        return count if frame.f_code.co_filename == reader.__file__ else None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        header = parse_jpeg_header(data)
    except JpegFormatError:
        pass
    else:
        assert isinstance(header, JpegHeader) and header.width > 0 and header.height > 0
        assert all(c.table_id in header.tables for c in header.components)
    finally:
        sys.settrace(previous)
    return lines


def test_fuzz_never_raises_anything_but_format_error():
    rng = random.Random(1234)
    good = make_jpeg(subsampling=1, progressive=True)
    header_end = good.index(b"\xff\xda") + 14
    cases = [rng.randbytes(rng.randrange(0, 300)) for _ in range(800)]
    cases += [b"\xff\xd8" + rng.randbytes(rng.randrange(0, 300)) for _ in range(800)]
    marker_soup = (0xFF, 0xDB, 0xC0, 0xDA, 0x00, 0x43)
    cases += [b"\xff\xd8" + bytes(rng.choice(marker_soup) for _ in range(60)) for _ in range(400)]
    cases += [good[:n] for n in range(header_end)]
    for _ in range(2500):
        mutated = bytearray(good[:header_end])
        mutated[rng.randrange(header_end)] = rng.randrange(256)
        cases.append(bytes(mutated))
    assert len(cases) > 4500
    assert max(_parse_or_format_error(case) for case in cases) > 0  # the trace saw the parser run
    # Every strict prefix of the header is an error; the whole header parses.
    for n in range(header_end):
        with pytest.raises(JpegFormatError):
            parse_jpeg_header(good[:n])
    assert parse_jpeg_header(good[:header_end]).progressive
