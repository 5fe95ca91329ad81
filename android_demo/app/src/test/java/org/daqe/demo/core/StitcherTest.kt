package org.daqe.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

class StitcherTest {
    private fun stitch(plan: TilePlan, channels: Int, values: FloatArray): ByteArray {
        val out = ByteArray(plan.height * plan.width * channels)
        var emitted = 0
        val stitcher = Stitcher(plan, channels) { y0, y1, bytes ->
            assertEquals("rows arrive in order", emitted, y0)
            System.arraycopy(bytes, 0, out, y0 * plan.width * channels, (y1 - y0) * plan.width * channels)
            emitted = y1
        }
        var offset = 0
        for (t in plan.tiles) {
            stitcher.add(values, offset)
            offset += t.height * t.width * channels
        }
        assertEquals(values.size, offset)
        assertEquals(plan.height, emitted)
        assertTrue(stitcher.done)
        return out
    }

    @Test
    fun blendsExactlyLikeEnhanceTiled() {
        val cases = Vectors.section("stitch").arr()
        for (case in cases) {
            val v = case.obj()
            val plan = TilePlan.plan(v["height"].int(), v["width"].int(), v["tile"].int(), v["overlap"].int())
            val ours = stitch(plan, v["channels"].int(), Vectors.floats(v["results"] as String))
            val python = Vectors.bytes(v["expected"] as String)
            var differ = 0
            for (i in ours.indices) if (ours[i] != python[i]) differ++
            assertEquals("pixels differing from Python for $v", 0, differ)
        }
        Vectors.report("stitch", cases.size)
    }

    @Test
    fun roundsHalfToEvenAndClips() {
        assertEquals(0, Stitcher.toUint8(0.5f / 255f * 0f))
        assertEquals(0, Stitcher.toUint8(-0.2f))
        assertEquals(255, Stitcher.toUint8(1.3f))
        assertEquals(0, Stitcher.toUint8(Float.NaN))
        assertEquals(255, Stitcher.toUint8(Float.POSITIVE_INFINITY))
        assertEquals(0, Stitcher.toUint8(Float.NEGATIVE_INFINITY))
        // Values whose float32 product with 255 is exactly n + 0.5.
        var halves = 0
        for (n in 0 until 255) {
            val v = (n + 0.5f) / 255f
            if (v * 255f == n + 0.5f) {
                assertEquals("$n.5", if (n % 2 == 0) n else n + 1, Stitcher.toUint8(v))
                halves++
            }
        }
        assertTrue(halves > 10)
    }

    @Test
    fun identityTilesReproduceTheImage() {
        val plan = TilePlan.plan(300, 410, 128, 32)
        val image = ByteArray(300 * 410 * 3) { (it * 7919 % 256).toByte() }
        val values = ArrayList<Float>()
        for (t in plan.tiles) for (y in t.y0 until t.y1) for (x in t.x0 until t.x1) for (c in 0 until 3) {
            values.add((image[(y * 410 + x) * 3 + c].toInt() and 0xFF).toFloat() / 255f)
        }
        assertArrayEquals(image, stitch(plan, 3, values.toFloatArray()))
    }

    @Test(expected = IllegalStateException::class)
    fun refusesMoreTilesThanPlanned() {
        val plan = TilePlan.plan(16, 16, 64, 16)
        val stitcher = Stitcher(plan, 1) { _, _, _ -> }
        stitcher.add(FloatArray(256))
        stitcher.add(FloatArray(256))
    }
}
