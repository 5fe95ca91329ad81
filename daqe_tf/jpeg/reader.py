"""JPEG header reader: quantization tables, frame geometry and chroma subsampling.

Enhancement is guided by the quantization tables and the 8x8 block grid of
the stored image, so we need them exactly as written in the file. Pixels are
decoded by Pillow; only the header is parsed here, in plain Python with every
read bounds-checked, so that the same small, fuzz-proof parser can be mirrored
on device (Android/Kotlin) and any malformed input fails with
:class:`JpegFormatError` instead of an arbitrary exception.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ZIGZAG",
    "Component",
    "JpegFormatError",
    "JpegHeader",
    "parse_jpeg_header",
    "read_jpeg_header",
]

# ZIGZAG[k] is the natural (row-major) index of the k-th coefficient in zigzag order.
ZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10,
    17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34,
    27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36,
    29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46,
    53, 60, 61, 54, 47, 55, 62, 63,
)  # fmt: skip
_ZIGZAG_INDEX = np.array(ZIGZAG)

_SOI, _EOI, _SOS, _DQT = 0xD8, 0xD9, 0xDA, 0xDB
_TEM = 0x01
_RST = range(0xD0, 0xD8)
# SOF0..SOF15 share C0..CF with DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_LOSSLESS_SOF = frozenset({0xC3, 0xC7, 0xCB, 0xCF})
_DCT_PRECISIONS = (8, 12)

# (luma h/chroma h, luma v/chroma v) -> conventional J:a:b name.
_SUBSAMPLING_NAMES = {
    (1, 1): "4:4:4",
    (2, 1): "4:2:2",
    (2, 2): "4:2:0",
    (1, 2): "4:4:0",
    (4, 1): "4:1:1",
}


class JpegFormatError(ValueError):
    """The bytes are not a well-formed (or supported) JPEG header."""


@dataclass(frozen=True)
class Component:
    """One colour component of the frame (Y, Cb, Cr, ...)."""

    id: int
    h_sampling: int
    v_sampling: int
    table_id: int


@dataclass(frozen=True, eq=False)
class JpegHeader:
    """What the enhancer needs from a JPEG header.

    ``tables`` maps table id to a read-only 8x8 uint16 array in natural
    (row-major) order; ``table_precision`` maps table id to 8 or 16 bits.
    """

    width: int
    height: int
    precision: int
    progressive: bool
    components: tuple[Component, ...]
    tables: dict[int, np.ndarray]
    table_precision: dict[int, int]

    @property
    def is_grayscale(self) -> bool:
        return len(self.components) == 1

    @property
    def luma_table(self) -> np.ndarray:
        return self.tables[self.components[0].table_id]

    @property
    def chroma_table(self) -> np.ndarray | None:
        """Table of the second component (Cb); None for grayscale."""
        if self.is_grayscale:
            return None
        return self.tables[self.components[1].table_id]

    @property
    def subsampling(self) -> str:
        """Chroma subsampling: "gray", "4:4:4", "4:2:2", "4:2:0", "4:4:0", "4:1:1" or e.g. "h3v1/h1v1/h1v1"."""
        if self.is_grayscale:
            return "gray"
        factors = [(c.h_sampling, c.v_sampling) for c in self.components]
        if len(set(factors)) == 1:
            return "4:4:4"
        if len(factors) == 3 and factors[1] == factors[2]:
            (lh, lv), (ch, cv) = factors[0], factors[1]
            if lh % ch == 0 and lv % cv == 0:
                name = _SUBSAMPLING_NAMES.get((lh // ch, lv // cv))
                if name is not None:
                    return name
        return "/".join(f"h{h}v{v}" for h, v in factors)


class _Reader:
    """Bounds-checked big-endian cursor over the header bytes."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def u8(self, what: str) -> int:
        if self.pos >= len(self.data):
            raise JpegFormatError(f"truncated JPEG: end of data while reading {what} at offset {self.pos}")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def u16(self, what: str) -> int:
        if self.pos + 2 > len(self.data):
            raise JpegFormatError(f"truncated JPEG: end of data while reading {what} at offset {self.pos}")
        value = (self.data[self.pos] << 8) | self.data[self.pos + 1]
        self.pos += 2
        return value

    def segment(self, marker: int) -> bytes:
        """Payload of a length-prefixed segment (the length counts its own 2 bytes)."""
        start = self.pos
        length = self.u16(f"length of marker 0xFF{marker:02X}")
        if length < 2:
            raise JpegFormatError(f"invalid length {length} for marker 0xFF{marker:02X} at offset {start}")
        end = start + length
        if end > len(self.data):
            raise JpegFormatError(
                f"truncated JPEG: marker 0xFF{marker:02X} at offset {start} needs {length} bytes, "
                f"{len(self.data) - start} left"
            )
        self.pos = end
        return self.data[start + 2 : end]

    def marker(self) -> int:
        """Next marker code.

        Like libjpeg (and Pillow), skips fill bytes (0xFF 0xFF ...) and any
        extraneous bytes, including stuffed 0xFF00, before the marker.
        """
        while True:
            if self.u8("marker") != 0xFF:
                continue
            code = self.u8("marker")
            while code == 0xFF:
                code = self.u8("marker")
            if code != 0x00:
                return code


def _parse_dqt(payload: bytes, tables: dict[int, np.ndarray], precision: dict[int, int]) -> None:
    pos = 0
    while pos < len(payload):
        pq, tq = payload[pos] >> 4, payload[pos] & 0x0F
        if pq > 1:
            raise JpegFormatError(f"invalid quantization table precision {pq} (expected 0 or 1)")
        if tq > 3:
            raise JpegFormatError(f"invalid quantization table id {tq} (expected 0..3)")
        size = 64 * (pq + 1)
        body = payload[pos + 1 : pos + 1 + size]
        if len(body) != size:
            raise JpegFormatError(f"truncated quantization table {tq}: {len(body)} of {size} bytes")
        zigzag = np.frombuffer(body, dtype=">u2" if pq else np.uint8)
        if not zigzag.all():
            raise JpegFormatError(f"quantization table {tq} contains a zero step")
        natural = np.empty(64, dtype=np.uint16)
        natural[_ZIGZAG_INDEX] = zigzag
        natural.flags.writeable = False
        tables[tq] = natural.reshape(8, 8)
        precision[tq] = 16 if pq else 8
        pos += 1 + size


def _parse_sof(marker: int, payload: bytes) -> tuple[int, int, int, tuple[Component, ...]]:
    if marker in _LOSSLESS_SOF:
        raise JpegFormatError(f"lossless JPEG (SOF{marker - 0xC0}) is not supported: it has no quantization tables")
    if len(payload) < 6:
        raise JpegFormatError(f"truncated frame header: {len(payload)} bytes")
    precision = payload[0]
    height = (payload[1] << 8) | payload[2]
    width = (payload[3] << 8) | payload[4]
    count = payload[5]
    if precision not in _DCT_PRECISIONS:
        raise JpegFormatError(f"invalid sample precision {precision} bits (expected 8 or 12)")
    if width == 0 or height == 0:
        raise JpegFormatError(f"invalid image size {width}x{height}")
    if count == 0:
        raise JpegFormatError("frame header declares no components")
    if len(payload) != 6 + 3 * count:
        raise JpegFormatError(f"frame header length {len(payload)} does not match {count} components")
    components = []
    for i in range(count):
        cid, hv, tq = payload[6 + 3 * i : 9 + 3 * i]
        h, v = hv >> 4, hv & 0x0F
        if not (1 <= h <= 4 and 1 <= v <= 4):
            raise JpegFormatError(f"invalid sampling factors {h}x{v} for component {cid} (expected 1..4)")
        if tq > 3:
            raise JpegFormatError(f"invalid quantization table id {tq} for component {cid} (expected 0..3)")
        components.append(Component(cid, h, v, tq))
    return precision, width, height, tuple(components)


def parse_jpeg_header(data: bytes) -> JpegHeader:
    """Parse the header of a JPEG byte stream up to its first scan (SOS)."""
    reader = _Reader(bytes(data))
    if reader.u16("SOI marker") != 0xFF00 | _SOI:
        raise JpegFormatError("not a JPEG: missing start-of-image marker 0xFFD8")
    tables: dict[int, np.ndarray] = {}
    table_precision: dict[int, int] = {}
    frame = None
    progressive = False
    while True:
        offset = reader.pos
        code = reader.marker()
        if code in _RST or code == _TEM:
            continue
        if code in (_SOI, _EOI):
            raise JpegFormatError(f"unexpected marker 0xFF{code:02X} at offset {offset} before the first scan")
        payload = reader.segment(code)
        if code == _DQT:
            _parse_dqt(payload, tables, table_precision)
        elif code in _SOF:
            if frame is not None:
                raise JpegFormatError(f"second frame header at offset {offset}")
            frame = _parse_sof(code, payload)
            progressive = code in _PROGRESSIVE_SOF
        elif code == _SOS:
            break
    if frame is None:
        raise JpegFormatError("scan starts before any frame header (SOF)")
    precision, width, height, components = frame
    for component in components:
        if component.table_id not in tables:
            raise JpegFormatError(
                f"component {component.id} uses quantization table {component.table_id}, which is not defined"
            )
    return JpegHeader(
        width=width,
        height=height,
        precision=precision,
        progressive=progressive,
        components=components,
        tables=tables,
        table_precision=table_precision,
    )


def read_jpeg_header(source: str | os.PathLike | bytes | bytearray | memoryview) -> JpegHeader:
    """Parse the JPEG header of a file path or of in-memory bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return parse_jpeg_header(bytes(source))
    with open(source, "rb") as f:
        return parse_jpeg_header(f.read())
