package org.daqe.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test

class OrientationTest {
    @Test
    fun matchesApplyOrientation() {
        val cases = Vectors.section("orientation").arr()
        for (case in cases) {
            val v = case.obj()
            val image = Image8(v["width"].int(), v["height"].int(), v["channels"].int(), Vectors.bytes(v["pixels"] as String))
            val o = v["orientation"].int()
            val upright = Orientation.apply(image, o)
            assertEquals("orientation $o width", v["upright_width"].int(), upright.width)
            assertEquals("orientation $o height", v["upright_height"].int(), upright.height)
            assertArrayEquals("orientation $o", Vectors.bytes(v["expected"] as String), upright.data)
        }
        Vectors.report("orientation", cases.size)
    }

    @Test
    fun packedPixelsTurnLikeBytes() {
        val gray = Image8(5, 3, 1, ByteArray(15) { it.toByte() })
        for (o in 1..8) {
            val ints = Orientation.apply(IntArray(15) { it }, 5, 3, o)
            assertArrayEquals(Orientation.apply(gray, o).data, ByteArray(15) { ints[it].toByte() })
        }
    }

    @Test(expected = IllegalArgumentException::class)
    fun refusesUnknownOrientation() {
        Orientation.uprightSize(4, 4, 9)
    }
}
