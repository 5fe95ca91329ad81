package org.daqe.demo.core

import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import kotlin.random.Random

/**
 * Whatever the bytes, the parser returns a header or throws [JpegFormatException]: never another
 * exception (IndexOutOfBounds, NumberFormat, ...), never a hang. Seeded, so failures reproduce.
 */
class JpegParserFuzzTest {
    private var parsed = 0
    private var refused = 0

    private fun check(label: String, data: ByteArray) {
        try {
            val header = JpegHeaderParser.parse(data)
            // A header that parses is usable: its tables exist and its name is well-formed.
            header.lumaTable
            header.chromaTable
            assertTrue(header.subsampling.isNotEmpty())
            parsed++
        } catch (e: JpegFormatException) {
            assertTrue("$label: empty message", !e.message.isNullOrBlank())
            refused++
        } catch (e: Throwable) {
            fail("$label: ${e.javaClass.name} instead of JpegFormatException: ${e.message}")
        }
    }

    @Test(timeout = 20000)
    fun randomBytesParseOrFailCleanly() {
        val random = Random(1234)
        for (i in 0 until 1500) {
            val data = random.nextBytes(random.nextInt(0, 300))
            // Half of them start like a JPEG, so the marker walk gets exercised past the SOI check.
            if (i % 2 == 0 && data.size >= 2) {
                data[0] = 0xFF.toByte()
                data[1] = 0xD8.toByte()
            }
            check("random #$i", data)
        }
        assertTrue(refused > 0)
    }

    @Test(timeout = 20000)
    fun everyTruncationOfAValidHeaderFailsCleanly() {
        val valid = SyntheticJpeg.header()
        for (length in 0..valid.size) check("prefix $length", valid.copyOf(length))
        // Only prefixes that reach the SOS segment parse.
        assertTrue(parsed in 1..12)
    }

    @Test(timeout = 20000)
    fun singleByteMutationsParseOrFailCleanly() {
        val random = Random(99)
        val valid = SyntheticJpeg.header()
        for (i in 0 until 3000) {
            val data = valid.copyOf()
            val pos = random.nextInt(data.size)
            data[pos] = when (i % 4) {
                0 -> 0xFF.toByte()
                1 -> 0
                else -> random.nextInt(256).toByte()
            }
            check("byte $pos = ${data[pos].toInt() and 0xFF}", data)
        }
        assertTrue(parsed > 0 && refused > 0)
    }

    @Test(timeout = 20000)
    fun segmentLengthsAtTheLimitsAreBoundsChecked() {
        val valid = SyntheticJpeg.header()
        // Every 2-byte value in the first segment's length field.
        for (length in 0 until 65536 step 7) {
            val data = valid.copyOf()
            data[4] = (length shr 8).toByte()
            data[5] = length.toByte()
            check("length $length", data)
        }
        assertTrue(refused > 0)
    }
}
