package org.daqe.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test

/** Plain-function stand-ins for the LiteRT signatures; exit e scales the image by [scales][e]. */
private class PointwiseModel(
    override val channels: Int,
    override val patchSize: Int,
    override val batchSize: Int,
    override val exitCount: Int,
    private val scales: FloatArray, private val lumaQ: Float, private val lastQ: Float, private val bias: Float
) : PatchModel {
    constructor(channels: Int, patchSize: Int, batchSize: Int, exitCount: Int, scale: Float, lumaQ: Float, lastQ: Float, bias: Float) :
        this(channels, patchSize, batchSize, exitCount, FloatArray(exitCount) { scale }, lumaQ, lastQ, bias)

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
        val scale = scales[exit]
        for (p in 0 until batchSize * patchSize * patchSize) {
            for (c in 0 until channels) {
                // Same float32 operations, same order, as the Python fake: x*s + q0*a + qL*b - bias.
                out[p * channels + c] = image[p * channels + c] * scale + qmap[p * q] * lumaQ + qmap[p * q + q - 1] * lastQ - bias
            }
        }
    }
}

/**
 * Maps from position, so the mosaic can be checked exactly: defocus (absolute cell row + column) / 16,
 * routing (row - column) / 16, a different map.
 */
private class PositionDefocus(override val windowSize: Int) : DefocusModel {
    var origin = Pair(0, 0)
    var windows = 0

    override fun runDefocus(image: FloatArray, qmap: FloatArray, defocus: FloatArray, routing: FloatArray) {
        windows++
        val n = windowSize / 16
        for (r in 0 until n) for (c in 0 until n) {
            defocus[r * n + c] = ((origin.first / 16 + r) + (origin.second / 16 + c)) / 16f
            routing[r * n + c] = ((origin.first / 16 + r) - (origin.second / 16 + c)) / 16f
        }
    }
}

/** Defocus from content: mean of the first channel over each cell, so exits vary with the image; routes by it. */
private class ContentDefocus(override val windowSize: Int, private val channels: Int) : DefocusModel {
    override fun runDefocus(image: FloatArray, qmap: FloatArray, defocus: FloatArray, routing: FloatArray) {
        val n = windowSize / 16
        for (r in 0 until n) for (c in 0 until n) {
            var sum = 0f
            for (y in 0 until 16) for (x in 0 until 16) sum += image[((r * 16 + y) * windowSize + c * 16 + x) * channels]
            defocus[r * n + c] = sum / 256f
        }
        System.arraycopy(defocus, 0, routing, 0, n * n)
    }
}

/** The Python routed vectors' fake head: each cell's top-left pixel (first channel) d as defocus, 1 - d as routing value. */
private class CornerPixelCells(override val windowSize: Int, private val channels: Int) : DefocusModel {
    override fun runDefocus(image: FloatArray, qmap: FloatArray, defocus: FloatArray, routing: FloatArray) {
        val n = windowSize / 16
        for (r in 0 until n) for (c in 0 until n) {
            val d = image[(r * 16 * windowSize + c * 16) * channels]
            defocus[r * n + c] = d
            routing[r * n + c] = 1f - d
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

    /** Python's routed pipeline with a routing map other than the defocus map: same exits, maps and pixels. */
    @Test
    fun routesByTheRoutingMapLikeThePythonPipeline() {
        val section = Vectors.section("routed_pipeline").obj()
        val fake = section["fake_model"].obj()
        val scales = fake["exit_scales"].doubles().map { it.toFloat() }.toFloatArray()
        val cases = section["cases"].arr()
        for (case in cases) {
            val v = case.obj()
            val name = v["name"] as String
            val header = JpegHeaderParser.parse(Vectors.bytes(v["jpeg"] as String))
            val height = v["height"].int()
            val width = v["width"].int()
            val image = Image8(width, height, v["channels"].int(), Vectors.bytes(v["pixels"] as String))
            val modelChannels = v["model_channels"].int()
            val thresholds = v["thresholds"].doubles().map { it.toFloat() }.toFloatArray()
            val model = PointwiseModel(
                modelChannels, fake["patch"].int(), 3, scales.size, scales,
                fake["luma_q"].num().toFloat(), fake["last_q"].num().toFloat(), fake["bias"].num().toFloat()
            )
            val cells = CornerPixelCells(fake["defocus_window"].int(), modelChannels)
            val result = TiledEnhancer(model, cells, thresholds, v["overlap"].int(), 64).enhance(image, header)
            val patches = v["patches"].arr().map { it.ints().let { t -> Tile(t[0], t[1], t[2], t[3]) } }
            assertEquals("$name patches", patches, result.plan.tiles)
            assertArrayEquals("$name defocus map", Vectors.floats(v["defocus"] as String), result.defocusMap!!, 0f)
            assertArrayEquals("$name routing map", Vectors.floats(v["routing"] as String), result.routingMap!!, 0f)
            val exits = v["exits"].ints()
            assertArrayEquals("$name exits", exits, result.exits)
            val byDefocus = Clusters.assign(result.plan, result.defocusMap!!, CellGrid.cells(height), CellGrid.cells(width), thresholds)
            assertFalse("$name: routing by defocus would pick the same exits", byDefocus.contentEquals(exits))
            assertArrayEquals("$name pixels", Vectors.bytes(v["expected"] as String), result.image.data)
            for (e in scales.indices) assertEquals("$name exit $e patches", exits.count { it == e }, model.patches[e])
        }
        Vectors.report("routed_pipeline", cases.size)
    }

    @Test
    fun defocusMosaicTakesEachCellFromItsOwnWindow() {
        val image = Image8(530, 301, 3, ByteArray(530 * 301 * 3))
        val defocus = object : DefocusModel {
            val inner = PositionDefocus(128)
            override val windowSize = 128
            var next = 0
            val plan = TilePlan.plan(301, 530, 128, 32)
            override fun runDefocus(image: FloatArray, qmap: FloatArray, defocus: FloatArray, routing: FloatArray) {
                val t = plan.tile(next++)
                inner.origin = Pair(t.y0, t.x0)
                inner.runDefocus(image, qmap, defocus, routing)
            }
        }
        val model = PointwiseModel(3, 64, 4, 2, 1f, 0f, 0f, 0f)
        val result = TiledEnhancer(model, defocus, floatArrayOf(1.0f), 16, 32).enhance(image, JpegHeaderParser.parse(SyntheticJpeg.header()))
        val map = result.defocusMap!!
        val routing = result.routingMap!!
        val mh = CellGrid.cells(301)
        val mw = CellGrid.cells(530)
        assertEquals(mh * mw, map.size)
        assertEquals(mh * mw, routing.size)
        for (cy in 0 until mh) for (cx in 0 until mw) {
            assertEquals((cy + cx) / 16f, map[cy * mw + cx], 0f)
            assertEquals((cy - cx) / 16f, routing[cy * mw + cx], 0f)
        }
        assertEquals(defocus.plan.size, defocus.next)
        // The exits come from the routing map, not from the defocus map shown beside it.
        assertArrayEquals(Clusters.assign(result.plan, routing, mh, mw, floatArrayOf(1.0f)), result.exits)
        assertFalse(Clusters.assign(result.plan, map, mh, mw, floatArrayOf(1.0f)).contentEquals(result.exits))
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
        assertEquals(null, result.routingMap)
        for (i in image.data.indices) assertEquals(image[i], result.image[i])
    }
}
