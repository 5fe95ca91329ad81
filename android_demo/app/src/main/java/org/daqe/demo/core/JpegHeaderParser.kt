package org.daqe.demo.core

import java.io.IOException

/** The bytes are not a well-formed (or supported) JPEG header. The message names what and where. */
class JpegFormatException(message: String) : IOException(message)

/**
 * Reads quantization tables and frame geometry from JPEG bytes, up to the first scan (SOS).
 *
 * Android has no API that returns a JPEG's quantization tables, and the enhancer needs them exactly
 * as written, so we walk the markers ourselves. This is a line-by-line port of
 * `daqe_tf/jpeg/reader.py` (same checks, same error messages) so both sides accept and refuse the
 * same files. Every read is bounds-checked and every loop iteration consumes at least one byte, so
 * any input either parses or throws [JpegFormatException] after a bounded number of steps.
 */
object JpegHeaderParser {
    /** ZIGZAG[k] is the natural (row-major) index of the k-th coefficient in zigzag order. */
    val ZIGZAG = intArrayOf(
        0, 1, 8, 16, 9, 2, 3, 10,
        17, 24, 32, 25, 18, 11, 4, 5,
        12, 19, 26, 33, 40, 48, 41, 34,
        27, 20, 13, 6, 7, 14, 21, 28,
        35, 42, 49, 56, 57, 50, 43, 36,
        29, 22, 15, 23, 30, 37, 44, 51,
        58, 59, 52, 45, 38, 31, 39, 46,
        53, 60, 61, 54, 47, 55, 62, 63
    )

    private const val SOI = 0xD8
    private const val EOI = 0xD9
    private const val SOS = 0xDA
    private const val DQT = 0xDB
    private const val TEM = 0x01

    /** SOF0..SOF15 share C0..CF with DHT (C4), JPG (C8) and DAC (CC). */
    private fun isSof(code: Int) = code in 0xC0..0xCF && code != 0xC4 && code != 0xC8 && code != 0xCC
    private fun isProgressive(code: Int) = code == 0xC2 || code == 0xC6 || code == 0xCA || code == 0xCE
    private fun isLossless(code: Int) = code == 0xC3 || code == 0xC7 || code == 0xCB || code == 0xCF
    private fun isRestart(code: Int) = code in 0xD0..0xD7

    private fun hex(marker: Int) = String.format("0xFF%02X", marker)

    /** Parses the header of a JPEG byte stream; throws [JpegFormatException] for anything malformed. */
    @Throws(JpegFormatException::class)
    fun parse(data: ByteArray): JpegHeader {
        val reader = Reader(data)
        if (reader.u16("SOI marker") != 0xFF00 or SOI) {
            throw JpegFormatException("not a JPEG: missing start-of-image marker 0xFFD8")
        }
        val tables = HashMap<Int, IntArray>()
        val tablePrecision = HashMap<Int, Int>()
        var frame: Frame? = null
        var progressive = false
        while (true) {
            val offset = reader.pos
            val code = reader.marker()
            if (isRestart(code) || code == TEM) continue
            if (code == SOI || code == EOI) {
                throw JpegFormatException("unexpected marker ${hex(code)} at offset $offset before the first scan")
            }
            val segment = reader.segment(code)
            if (code == DQT) {
                parseDqt(data, segment, tables, tablePrecision)
            } else if (isSof(code)) {
                if (frame != null) throw JpegFormatException("second frame header at offset $offset")
                frame = parseSof(code, data, segment)
                progressive = isProgressive(code)
            } else if (code == SOS) {
                break
            }
        }
        val f = frame ?: throw JpegFormatException("scan starts before any frame header (SOF)")
        for (component in f.components) {
            if (!tables.containsKey(component.tableId)) {
                throw JpegFormatException(
                    "component ${component.id} uses quantization table ${component.tableId}, which is not defined"
                )
            }
        }
        return JpegHeader(f.width, f.height, f.precision, progressive, f.components, tables, tablePrecision)
    }

    private class Frame(val precision: Int, val width: Int, val height: Int, val components: List<Component>)

    /** A segment's payload: data[start, end), after the 2-byte length. */
    private class Segment(val start: Int, val end: Int) {
        val size: Int get() = end - start
    }

    /** Bounds-checked big-endian cursor over the header bytes. */
    private class Reader(private val data: ByteArray) {
        var pos = 0

        fun u8(what: String): Int {
            if (pos >= data.size) {
                throw JpegFormatException("truncated JPEG: end of data while reading $what at offset $pos")
            }
            val value = data[pos].toInt() and 0xFF
            pos += 1
            return value
        }

        fun u16(what: String): Int {
            if (pos + 2 > data.size) {
                throw JpegFormatException("truncated JPEG: end of data while reading $what at offset $pos")
            }
            val value = ((data[pos].toInt() and 0xFF) shl 8) or (data[pos + 1].toInt() and 0xFF)
            pos += 2
            return value
        }

        /** Payload of a length-prefixed segment (the length counts its own 2 bytes). */
        fun segment(marker: Int): Segment {
            val start = pos
            val length = u16("length of marker ${hex(marker)}")
            if (length < 2) {
                throw JpegFormatException("invalid length $length for marker ${hex(marker)} at offset $start")
            }
            val end = start.toLong() + length
            if (end > data.size) {
                throw JpegFormatException(
                    "truncated JPEG: marker ${hex(marker)} at offset $start needs $length bytes, ${data.size - start} left"
                )
            }
            pos = end.toInt()
            return Segment(start + 2, pos)
        }

        /**
         * Next marker code. Like libjpeg (and Pillow), skips fill bytes (0xFF 0xFF ...) and any
         * extraneous bytes, including stuffed 0xFF00, before the marker.
         */
        fun marker(): Int {
            while (true) {
                if (u8("marker") != 0xFF) continue
                var code = u8("marker")
                while (code == 0xFF) code = u8("marker")
                if (code != 0x00) return code
            }
        }
    }

    private fun parseDqt(data: ByteArray, segment: Segment, tables: MutableMap<Int, IntArray>, precision: MutableMap<Int, Int>) {
        var pos = segment.start
        while (pos < segment.end) {
            val b = data[pos].toInt() and 0xFF
            val pq = b shr 4
            val tq = b and 0x0F
            if (pq > 1) throw JpegFormatException("invalid quantization table precision $pq (expected 0 or 1)")
            if (tq > 3) throw JpegFormatException("invalid quantization table id $tq (expected 0..3)")
            val size = 64 * (pq + 1)
            val available = minOf(size, segment.end - (pos + 1))
            if (available != size) {
                throw JpegFormatException("truncated quantization table $tq: $available of $size bytes")
            }
            val natural = IntArray(64)
            var zeroStep = false
            for (k in 0 until 64) {
                val step = if (pq == 1) {
                    val at = pos + 1 + 2 * k
                    ((data[at].toInt() and 0xFF) shl 8) or (data[at + 1].toInt() and 0xFF)
                } else {
                    data[pos + 1 + k].toInt() and 0xFF
                }
                if (step == 0) zeroStep = true
                natural[ZIGZAG[k]] = step
            }
            if (zeroStep) throw JpegFormatException("quantization table $tq contains a zero step")
            tables[tq] = natural
            precision[tq] = if (pq == 1) 16 else 8
            pos += 1 + size
        }
    }

    private fun parseSof(marker: Int, data: ByteArray, segment: Segment): Frame {
        if (isLossless(marker)) {
            throw JpegFormatException(
                "lossless JPEG (SOF${marker - 0xC0}) is not supported: it has no quantization tables"
            )
        }
        if (segment.size < 6) throw JpegFormatException("truncated frame header: ${segment.size} bytes")
        fun at(i: Int) = data[segment.start + i].toInt() and 0xFF
        val precision = at(0)
        val height = (at(1) shl 8) or at(2)
        val width = (at(3) shl 8) or at(4)
        val count = at(5)
        if (precision != 8 && precision != 12) {
            throw JpegFormatException("invalid sample precision $precision bits (expected 8 or 12)")
        }
        if (width == 0 || height == 0) throw JpegFormatException("invalid image size ${width}x$height")
        if (count == 0) throw JpegFormatException("frame header declares no components")
        if (segment.size != 6 + 3 * count) {
            throw JpegFormatException("frame header length ${segment.size} does not match $count components")
        }
        val components = ArrayList<Component>(count)
        for (i in 0 until count) {
            val id = at(6 + 3 * i)
            val hv = at(7 + 3 * i)
            val tq = at(8 + 3 * i)
            val h = hv shr 4
            val v = hv and 0x0F
            if (h < 1 || h > 4 || v < 1 || v > 4) {
                throw JpegFormatException("invalid sampling factors ${h}x$v for component $id (expected 1..4)")
            }
            if (tq > 3) {
                throw JpegFormatException("invalid quantization table id $tq for component $id (expected 0..3)")
            }
            components.add(Component(id, h, v, tq))
        }
        return Frame(precision, width, height, components)
    }
}
