package org.daqe.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class JpegHeaderParserTest {
    /** The Python parser's verdict for [data] must be ours: the same header, or the same message. */
    private fun assertSameVerdict(label: String, data: ByteArray, expected: Map<String, Any?>) {
        val error = expected["error"] as String?
        val header = try {
            JpegHeaderParser.parse(data)
        } catch (e: JpegFormatException) {
            assertEquals("$label: message", error ?: "(parsed: ${e.message})", e.message)
            return
        }
        if (error != null) fail("$label: Python refused it ($error), Kotlin parsed it")
        assertEquals("$label: width", expected["width"].int(), header.width)
        assertEquals("$label: height", expected["height"].int(), header.height)
        assertEquals("$label: precision", expected["precision"].int(), header.precision)
        assertEquals("$label: progressive", expected["progressive"], header.progressive)
        val components = expected["components"].arr().map { it.ints().toList() }
        assertEquals("$label: components", components, header.components.map { listOf(it.id, it.hSampling, it.vSampling, it.tableId) })
        val tables = expected["tables"].obj()
        assertEquals("$label: table ids", tables.keys.map { it.toInt() }.toSet(), header.tables.keys)
        for ((id, values) in tables) assertArrayEquals("$label: table $id", values.ints(), header.tables.getValue(id.toInt()))
        val precision = expected["table_precision"].obj().mapKeys { it.key.toInt() }.mapValues { it.value.int() }
        assertEquals("$label: table precision", precision, header.tablePrecision)
        assertEquals("$label: subsampling", expected["subsampling"], header.subsampling)
    }

    @Test
    fun matchesPythonOnPillowFilesAndMalformedOnes() {
        val cases = Vectors.section("jpeg").arr()
        for (case in cases) {
            val c = case.obj()
            assertSameVerdict(c["name"] as String, Vectors.bytes(c["file"] as String), c["expected"].obj())
        }
        Vectors.report("jpeg", cases.size)
    }

    @Test
    fun matchesPythonOnEveryTruncationAndOnMutations() {
        val v = Vectors.section("jpeg_variants").obj()
        val base = Vectors.bytes(v["base"] as String)
        val expected = v["expected"].arr()
        val truncations = v["truncations"].int()
        for (length in 0 until truncations) {
            assertSameVerdict("prefix $length", base.copyOf(length), expected[length].obj())
        }
        val mutations = v["mutations"].arr()
        for ((i, m) in mutations.withIndex()) {
            val (pos, value) = m.ints().toList()
            val data = base.copyOf()
            data[pos] = value.toByte()
            assertSameVerdict("byte $pos = $value", data, expected[truncations + i].obj())
        }
        Vectors.report("jpeg_variants", truncations + mutations.size)
    }

    @Test
    fun zigzagIsAPermutationWalkingTheDiagonals() {
        val z = JpegHeaderParser.ZIGZAG
        assertEquals((0 until 64).toList(), z.sorted())
        for (k in 1 until 64) {
            val a = z[k - 1]
            val b = z[k]
            val da = a / 8 + a % 8
            val db = b / 8 + b % 8
            assertTrue("step $k leaves the diagonal order", db == da || db == da + 1)
        }
    }

    @Test
    fun parsesAHandBuiltHeaderWithA16BitTable() {
        val header = JpegHeaderParser.parse(SyntheticJpeg.header())
        assertEquals(SyntheticJpeg.WIDTH, header.width)
        assertEquals(SyntheticJpeg.HEIGHT, header.height)
        assertEquals("4:2:0", header.subsampling)
        assertEquals(mapOf(0 to 8, 1 to 16), header.tablePrecision)
        // Zigzag position k holds step k + 1 (table 0) or 300 + k (table 1).
        for (k in 0 until 64) {
            assertEquals(k + 1, header.lumaTable[JpegHeaderParser.ZIGZAG[k]])
            assertEquals(300 + k, header.chromaTable!![JpegHeaderParser.ZIGZAG[k]])
        }
        assertFalse(header.progressive)
        assertFalse(header.isGrayscale)
    }

    @Test
    fun namesSubsamplingLikePython() {
        fun named(vararg hv: Int): String {
            val comps = (0 until hv.size / 2).map { Component(it + 1, hv[2 * it], hv[2 * it + 1], 0) }
            return JpegHeader(8, 8, 8, false, comps, mapOf(0 to IntArray(64) { 1 }), mapOf(0 to 8)).subsampling
        }
        assertEquals("gray", named(2, 2))
        assertEquals("4:4:4", named(2, 2, 2, 2, 2, 2))
        assertEquals("4:2:2", named(2, 1, 1, 1, 1, 1))
        assertEquals("4:2:0", named(2, 2, 1, 1, 1, 1))
        assertEquals("4:4:0", named(1, 2, 1, 1, 1, 1))
        assertEquals("4:1:1", named(4, 1, 1, 1, 1, 1))
        assertEquals("4:2:0", named(4, 4, 2, 2, 2, 2))
        assertEquals("h3v1/h1v1/h1v1", named(3, 1, 1, 1, 1, 1))
        assertEquals("h2v2/h1v1/h2v1", named(2, 2, 1, 1, 2, 1))
        assertEquals("h1v1/h2v2/h2v2", named(1, 1, 2, 2, 2, 2))
        assertNull(JpegHeader(8, 8, 8, false, listOf(Component(1, 1, 1, 0)), mapOf(0 to IntArray(64) { 1 }), mapOf(0 to 8)).chromaTable)
    }
}

/** A minimal valid JPEG header built by hand, for tests that must not depend on the vectors. */
object SyntheticJpeg {
    const val WIDTH = 40
    const val HEIGHT = 24

    private fun segment(marker: Int, payload: ByteArray): ByteArray {
        val length = payload.size + 2
        return byteArrayOf(0xFF.toByte(), marker.toByte(), (length shr 8).toByte(), length.toByte()) + payload
    }

    fun header(): ByteArray {
        val app0 = segment(0xE0, "JFIF".toByteArray() + byteArrayOf(0, 1, 1, 0, 0, 1, 0, 1, 0, 0))
        val dqt8 = ByteArray(65) { if (it == 0) 0x00 else it.toByte() }
        val dqt16 = ByteArray(129)
        dqt16[0] = 0x11
        for (k in 0 until 64) {
            dqt16[1 + 2 * k] = ((300 + k) shr 8).toByte()
            dqt16[2 + 2 * k] = (300 + k).toByte()
        }
        val dqt = segment(0xDB, dqt8 + dqt16)
        val sof = segment(0xC1, byteArrayOf(8, 0, HEIGHT.toByte(), 0, WIDTH.toByte(), 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1))
        val dht = segment(0xC4, ByteArray(17 + 1) { if (it == 1) 1 else 0 })
        val sos = segment(0xDA, byteArrayOf(3, 1, 0, 2, 0x11, 3, 0x11, 0, 63, 0))
        return byteArrayOf(0xFF.toByte(), 0xD8.toByte()) + app0 + dqt + sof + dht + sos +
            byteArrayOf(0x12, 0x34, 0xFF.toByte(), 0x00, 0xFF.toByte(), 0xD9.toByte())
    }
}
