package org.daqe.demo.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/** Plain-function stand-ins for the LiteRT signatures. */
private class PointwiseModel(
    override val channels: Int,
    override val patchSize: Int,
    override val batchSize: Int,
    override val exitCount: Int,
    private val scale: Float, private val lumaQ: Float, private val lastQ: Float, private val bias: Float
) : PatchModel {
    val calls = IntArray(exitCount)
    val patches = IntArray(exitCount)

    override fun runExit(exit: Int, count: Int, image: FloatArray, qmap: FloatArray, out: FloatArray) {
        assertTrue(count in 1..batchSize)
        calls[exit]++
        patches[exit] += count
        // Unused slots repeat the last real patch, so batch-wide attention sees only this exit's patches.
        val size = patchSize * patchSize * channels
        for (slot in count until batchSize) for (i in 0 until size) {
            assertEquals(image[(count - 1) * size + i], image[slot * size + i], 0f)
        }
        val q = qmap.size / (batchSize * patchSize * patchSize)
        for (p in 0 until batchSize * patchSize * patchSize) {
            for (c in 0 until channels) {
                // Same float32 operations, same order, as the Python fake: x*s + q0*a + qL*b - bias.
                out[p * channels + c] = image[p * channels + c] * scale + qmap[p * q] * lumaQ + qmap[p * q + q - 1] * lastQ - bias
            }
        }
    }
}

/** Defocus from position: (absolute cell row + column) / 16, so the mosaic can be checked exactly. */
private class PositionDefocus(override val windowSize: Int) : DefocusModel {
    var origin = Pair(0, 0)
    var windows = 0

    override fun runDefocus(image: FloatArray, qmap: FloatArray, out: FloatArray) {
        windows++
        val n = windowSize / 16
        for (r in 0 until n) for (c in 0 until n) out[r * n + c] = ((origin.first / 16 + r) + (origin.second / 16 + c)) / 16f
    }
}

/** Defocus from content: mean of the first channel over each cell, so exits vary with the image. */
private class ContentDefocus(override val windowSize: Int, private val channels: Int) : DefocusModel {
    override fun runDefocus(image: FloatArray, qmap: FloatArray, out: FloatArray) {
        val n = windowSize / 16
        for (r in 0 until n) for (c in 0 until n) {
            var sum = 0f
            for (y in 0 until 16) for (x in 0 until 16) sum += image[((r * 16 + y) * windowSize + c * 16 + x) * channels]
            out[r * n + c] = sum / 256f
        }
    }
}

class TiledEnhancerTest {
    @Test
    fun matchesThePythonPipelineEndToEnd() {
        val section = Vectors.section("pipeline").obj()
        val fake = section["fake_model"].obj()
        val cases = section["cases"].arr()
        for (case in cases) {
            val v = case.obj()
            val name = v["name"] as String
            val header = JpegHeaderParser.parse(Vectors.bytes(v["jpeg"] as String))
            val image = Image8(v["width"].int(), v["height"].int(), v["channels"].int(), Vectors.bytes(v["pixels"] as String))
            val modelChannels = v["model_channels"].int()
            val model = PointwiseModel(
                modelChannels, v["tile"].int(), 3, 3,
                fake["scale"].num().toFloat(), fake["luma_q"].num().toFloat(), fake["last_q"].num().toFloat(), fake["bias"].num().toFloat()
            )
            val enhancer = TiledEnhancer(model, ContentDefocus(64, modelChannels), floatArrayOf(0.35f, 0.55f), v["overlap"].int(), 16)
            val result = enhancer.enhance(image, header)
            val expected = Vectors.bytes(v["expected"] as String)
            assertEquals(expected.size, result.image.data.size)
            var differ = 0
            var maxDiff = 0
            for (i in expected.indices) {
                val d = Math.abs((expected[i].toInt() and 0xFF) - result.image[i])
                if (d != 0) differ++
                if (d > maxDiff) maxDiff = d
            }
            println("PIPELINE $name differing=$differ of ${expected.size} max=$maxDiff exits=${result.exitCounts(3).toList()}")
            if (v["exact"] == true) {
                assertEquals("$name: values differing from Python", 0, differ)
            } else {
                assertTrue("$name: max difference $maxDiff", maxDiff <= 1)
                assertTrue("$name: $differ values differ", differ * 1000 <= expected.size)
            }
            assertEquals(result.plan.size, model.patches.sum())
        }
        Vectors.report("pipeline", cases.size)
    }

    @Test
    fun defocusMosaicTakesEachCellFromItsOwnWindow() {
        val image = Image8(530, 301, 3, ByteArray(530 * 301 * 3))
        val defocus = object : DefocusModel {
            val inner = PositionDefocus(128)
            override val windowSize = 128
            var next = 0
            val plan = TilePlan.plan(301, 530, 128, 32)
            override fun runDefocus(image: FloatArray, qmap: FloatArray, out: FloatArray) {
                val t = plan.tile(next++)
                inner.origin = Pair(t.y0, t.x0)
                inner.runDefocus(image, qmap, out)
            }
        }
        val model = PointwiseModel(3, 64, 4, 2, 1f, 0f, 0f, 0f)
        val result = TiledEnhancer(model, defocus, floatArrayOf(1.0f), 16, 32).enhance(image, JpegHeaderParser.parse(SyntheticJpeg.header()))
        val map = result.defocusMap!!
        val mw = CellGrid.cells(530)
        assertEquals(CellGrid.cells(301) * mw, map.size)
        for (cy in 0 until CellGrid.cells(301)) for (cx in 0 until mw) assertEquals((cy + cx) / 16f, map[cy * mw + cx], 0f)
        assertEquals(defocus.plan.size, defocus.next)
    }

    @Test
    fun patchesGoToTheirExitInFullBatches() {
        val plan = TilePlan.plan(200, 300, 64, 16)
        val image = Image8(300, 200, 3, ByteArray(300 * 200 * 3) { ((it / 3 % 300) * 255 / 300).toByte() })
        val model = PointwiseModel(3, 64, 4, 3, 1f, 0f, 0f, 0f)
        val result = TiledEnhancer(model, ContentDefocus(128, 3), floatArrayOf(0.3f, 0.6f), 16).enhance(image, JpegHeaderParser.parse(SyntheticJpeg.header()))
        assertEquals(plan.tiles, result.plan.tiles)
        val counts = result.exitCounts(3)
        assertTrue("all three exits used: ${counts.toList()}", counts.all { it > 0 })
        for (e in 0 until 3) assertEquals(counts[e], model.patches[e])
        // Identity model: the image comes back unchanged whatever the routing.
        for (i in image.data.indices) assertEquals(image[i], result.image[i])
    }

    @Test
    fun oneExitNeedsNoDefocus() {
        val defocus = PositionDefocus(64)
        val model = PointwiseModel(1, 32, 2, 1, 1f, 0f, 0f, 0f)
        val image = Image8(40, 40, 1, ByteArray(1600) { it.toByte() })
        val result = TiledEnhancer(model, defocus, FloatArray(0), 16).enhance(image, JpegHeaderParser.parse(SyntheticJpeg.header()))
        assertEquals(0, defocus.windows)
        assertEquals(null, result.defocusMap)
        for (i in image.data.indices) assertEquals(image[i], result.image[i])
    }
}
