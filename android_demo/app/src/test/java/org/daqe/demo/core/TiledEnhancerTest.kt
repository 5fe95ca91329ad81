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

/** Slots [count] until the end of [values] (items of [size]) must repeat the last real one. */
private fun assertRepeated(what: String, values: FloatArray, count: Int, batch: Int, size: Int) {
    assertEquals("$what holds $batch items of $size", batch * size, values.size)
    for (slot in count until batch) for (i in 0 until size) {
        assertEquals("$what slot $slot", values[(count - 1) * size + i], values[slot * size + i], 0f)
    }
}

/**
 * The Python cascade vectors' fake (`_fake_cascade_stage`, `_fake_cascade_head` in
 * tests/test_kotlin_core.py), the same float32 operations in the same order. Stage m works at 1/d of
 * the patch side, d = 2^(N-1-m): features = (first image channel + context_gain x the previous
 * stage's channel 0, last Q-map channel x its gain + the previous channel 1); the summary appends
 * the features at one position; score from the summary minus offsets[m]. Head m: image x its scale
 * + upsampled features x gains - bias. [flip] negates the scores: every decision the other way.
 */
private class FakeCascade(
    override val channels: Int,
    override val patchSize: Int,
    override val batchSize: Int,
    override val exitCount: Int,
    fake: Map<String, Any?>,
    private val offsets: FloatArray,
    private val flip: Boolean = false
) : CascadeModel {
    private val contextGain = fake["context_gain"].num().toFloat()
    private val qmapGains = fake["qmap_gains"].doubles().map { it.toFloat() }
    private val summaryGain = fake["summary_gain"].num().toFloat()
    private val firstWeight = fake["first_weight"].num().toFloat()
    private val qmapWeight = fake["qmap_weight"].num().toFloat()
    private val scales = fake["exit_scales"].doubles().map { it.toFloat() }
    private val gains = fake["feature_gains"].doubles().map { it.toFloat() }
    private val bias = fake["bias"].num().toFloat()

    /** Real patches each stage and head was given. */
    val stagePatches = IntArray(exitCount)
    val headPatches = IntArray(exitCount)

    private fun down(stage: Int) = 1 shl (exitCount - 1 - stage)
    private fun side(stage: Int) = patchSize / down(stage)

    override fun featureSize(stage: Int) = side(stage) * side(stage) * 2
    override fun summarySize(stage: Int) = 2 * (stage + 1)

    override fun runStage(
        stage: Int, count: Int, image: FloatArray, qmap: FloatArray, context: FloatArray?, summary: FloatArray?,
        featuresOut: FloatArray, summaryOut: FloatArray, scoreOut: FloatArray?
    ) {
        assertTrue(count in 1..batchSize)
        assertEquals("stage $stage context", stage > 0, context != null)
        assertEquals("stage $stage summary", stage > 0, summary != null)
        assertEquals("stage $stage score", stage < exitCount - 1, scoreOut != null)
        stagePatches[stage] += count
        val p = patchSize
        val q = qmap.size / (batchSize * p * p)
        assertRepeated("stage $stage image", image, count, batchSize, p * p * channels)
        assertRepeated("stage $stage qmap", qmap, count, batchSize, p * p * q)
        if (context != null) assertRepeated("stage $stage context", context, count, batchSize, featureSize(stage - 1))
        if (summary != null) assertRepeated("stage $stage summary", summary, count, batchSize, summarySize(stage - 1))
        val d = down(stage)
        val n = side(stage)
        val f = featureSize(stage)
        val s = summarySize(stage)
        for (b in 0 until batchSize) {
            for (i in 0 until n) for (j in 0 until n) {
                val pixel = (b * p + i * d) * p + j * d
                var x0 = image[pixel * channels]
                var x1 = qmap[pixel * q + q - 1] * qmapGains[stage]
                if (context != null) {
                    val pn = side(stage - 1)
                    val c = ((b * pn + i / 2) * pn + j / 2) * 2
                    x0 = x0 + context[c] * contextGain
                    x1 = x1 + context[c + 1]
                }
                featuresOut[b * f + (i * n + j) * 2] = x0
                featuresOut[b * f + (i * n + j) * 2 + 1] = x1
            }
            if (summary != null) System.arraycopy(summary, b * (s - 2), summaryOut, b * s, s - 2)
            val k = n * (stage + 1) / (exitCount + 1)
            summaryOut[b * s + s - 2] = featuresOut[b * f + (k * n + k) * 2]
            summaryOut[b * s + s - 1] = featuresOut[b * f + (k * n + k) * 2 + 1]
            if (scoreOut != null) {
                val o = b * s
                val score = summaryOut[o + 2 * stage] * summaryGain - summaryOut[o] * firstWeight + summaryOut[o + 2 * stage + 1] * qmapWeight - offsets[stage]
                scoreOut[b] = if (flip) -score else score
            }
        }
    }

    override fun runHead(stage: Int, count: Int, features: FloatArray, image: FloatArray, out: FloatArray) {
        assertTrue(count in 1..batchSize)
        headPatches[stage] += count
        val p = patchSize
        assertRepeated("head $stage features", features, count, batchSize, featureSize(stage))
        assertRepeated("head $stage image", image, count, batchSize, p * p * channels)
        val d = down(stage)
        val n = side(stage)
        val f = featureSize(stage)
        for (b in 0 until batchSize) for (y in 0 until p) for (x in 0 until p) {
            val cell = b * f + ((y / d) * n + x / d) * 2
            for (c in 0 until channels) {
                val i = ((b * p + y) * p + x) * channels + c
                out[i] = image[i] * scales[stage] + features[cell] * gains[0] + features[cell + 1] * gains[1] - bias
            }
        }
    }
}

/** A cascade of [exitCount] stages whose stage [leaveAt] sends every patch out; features carry the stage index. */
private class LeaveAtStage(override val channels: Int, override val patchSize: Int, override val batchSize: Int,
                           override val exitCount: Int, private val leaveAt: Int) : CascadeModel {
    val stageCalls = IntArray(exitCount)

    override fun featureSize(stage: Int) = 1
    override fun summarySize(stage: Int) = 1

    override fun runStage(
        stage: Int, count: Int, image: FloatArray, qmap: FloatArray, context: FloatArray?, summary: FloatArray?,
        featuresOut: FloatArray, summaryOut: FloatArray, scoreOut: FloatArray?
    ) {
        stageCalls[stage]++
        java.util.Arrays.fill(featuresOut, stage.toFloat())
        java.util.Arrays.fill(summaryOut, 0f)
        if (scoreOut != null) java.util.Arrays.fill(scoreOut, if (stage == leaveAt) 1f else 0f)
    }

    override fun runHead(stage: Int, count: Int, features: FloatArray, image: FloatArray, out: FloatArray) {
        assertEquals(stage.toFloat(), features[0], 0f)
        System.arraycopy(image, 0, out, 0, out.size)
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

    /**
     * Python's `enhance` on re-saved JPEGs whose earlier grid is shifted: the estimated history (or a
     * quality override) gives the Q-map, the image is padded to put that grid at the origin and cut
     * back, and the output is blended by the strength.
     */
    @Test
    fun enhancesResavedPhotosLikeThePythonPipeline() {
        val section = Vectors.section("resaved_pipeline").obj()
        val fake = section["fake_model"].obj()
        val cases = section["cases"].arr()
        for (case in cases) {
            val v = case.obj()
            val name = v["name"] as String
            val header = JpegHeaderParser.parse(Vectors.bytes(v["jpeg"] as String))
            val image = Image8(v["width"].int(), v["height"].int(), v["channels"].int(), Vectors.bytes(v["pixels"] as String))
            val modelChannels = v["model_channels"].int()
            val model = PointwiseModel(
                modelChannels, v["tile"].int(), 2, 1,
                fake["scale"].num().toFloat(), fake["luma_q"].num().toFloat(), fake["last_q"].num().toFloat(), fake["bias"].num().toFloat()
            )
            val quality = (v["quality"] as Double?)?.let { it.int() }
            val strength = v["strength"].num().toFloat()
            val evidence = JpegEvidence.of(header, image, quality)
            val e = v["evidence"].obj()
            assertEquals("$name source", e["source"], evidence.source)
            assertEquals("$name quality", e["quality"].int(), evidence.quality)
            assertArrayEquals("$name grid", e["grid"].ints(), intArrayOf(evidence.gridY, evidence.gridX))
            val result = TiledEnhancer(model, null, FloatArray(0), v["overlap"].int()).enhance(image, evidence, strength)
            assertEquals("$name padding", Pair(evidence.padTop, evidence.padLeft), Pair(result.offsetY, result.offsetX))
            assertEquals("$name plan of the padded image", TilePlan.plan(image.height + result.offsetY, image.width + result.offsetX,
                v["tile"].int(), v["overlap"].int(), CellGrid.CELL).tiles, result.plan.tiles)
            assertEquals("$name: the model runs unless the strength is 0", if (strength == 0f) 0 else result.plan.size, model.patches.sum())
            val expected = Vectors.bytes(v["expected"] as String)
            assertEquals(expected.size, result.image.data.size)
            var differ = 0
            var maxDiff = 0
            for (i in expected.indices) {
                val d = Math.abs((expected[i].toInt() and 0xFF) - result.image[i])
                if (d != 0) differ++
                if (d > maxDiff) maxDiff = d
            }
            println("RESAVED $name differing=$differ of ${expected.size} max=$maxDiff grid=(${evidence.gridY}, ${evidence.gridX})")
            if (v["exact"] == true) {
                assertEquals("$name: values differing from Python", 0, differ)
            } else {
                // A model output 1 level off moves the blend by up to the strength.
                assertTrue("$name: max difference $maxDiff", maxDiff <= Math.max(1, Math.ceil(strength.toDouble()).toInt()))
                assertTrue("$name: $differ values differ", differ * 1000 <= expected.size)
            }
        }
        Vectors.report("resaved_pipeline", cases.size)
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

    /**
     * Python's cascade-routed pipeline: the same patches, exits and pixels, whatever the batch size;
     * the defocus map only where it was asked for, no routing map. Capped cases run with the model's
     * cap and Python's band size: without the cap, or (banded case) with the default band, the exits
     * must differ. The same fake with every score negated must disagree on both exits and pixels.
     */
    @Test
    fun cascadeRoutesLikeThePythonPipeline() {
        val section = Vectors.section("cascade_pipeline").obj()
        val fake = section["fake_model"].obj()
        assertEquals("Python's band size", section["default_band"].int(), TiledEnhancer.CASCADE_BAND)
        val exitCount = fake["exits"].int()
        val cases = section["cases"].arr()
        var capped = 0
        var banded = 0
        for (case in cases) {
            val v = case.obj()
            val name = v["name"] as String
            val header = JpegHeaderParser.parse(Vectors.bytes(v["jpeg"] as String))
            val height = v["height"].int()
            val width = v["width"].int()
            val image = Image8(width, height, v["channels"].int(), Vectors.bytes(v["pixels"] as String))
            val modelChannels = v["model_channels"].int()
            val offsets = v["offsets"].doubles().map { it.toFloat() }.toFloatArray()
            val patches = v["patches"].arr().map { it.ints().let { t -> Tile(t[0], t[1], t[2], t[3]) } }
            val exits = v["exits"].ints()
            val expected = Vectors.bytes(v["expected"] as String)
            val defocusFile = v["defocus"] as String?
            val cap = v["max_cost"]?.let { CascadeCap(it.num(), v["exit_costs"].doubles()) }
            val band = v["band"]?.int() ?: TiledEnhancer.CASCADE_BAND
            assertTrue("$name: the vector uses ${exits.toSet()}", exits.toSet().size == exitCount)
            for (batch in intArrayOf(8, 3)) {
                val model = FakeCascade(modelChannels, fake["patch"].int(), batch, exitCount, fake, offsets)
                val cells = if (defocusFile != null) CornerPixelCells(fake["defocus_window"].int(), modelChannels) else null
                var last = Pair(0, 0)
                val enhancer = TiledEnhancer(model, cells, v["overlap"].int(), 64, cap, band)
                val result = enhancer.enhance(image, header) { done, total -> last = Pair(done, total) }
                val label = "$name (batch $batch)"
                assertEquals("$label patches", patches, result.plan.tiles)
                assertArrayEquals("$label exits", exits, result.exits)
                assertArrayEquals("$label pixels", expected, result.image.data)
                assertEquals("$label routing map", null, result.routingMap)
                if (defocusFile != null) {
                    assertArrayEquals("$label defocus map", Vectors.floats(defocusFile), result.defocusMap!!, 0f)
                } else {
                    assertEquals("$label defocus map", null, result.defocusMap)
                }
                assertEquals("$label progress", last.second, last.first)
                for (e in 0 until exitCount) {
                    assertEquals("$label stage $e patches", exits.count { it >= e }, model.stagePatches[e])
                    assertEquals("$label head $e patches", exits.count { it == e }, model.headPatches[e])
                }
            }
            val run = { c: CascadeCap?, b: Int -> TiledEnhancer(FakeCascade(modelChannels, fake["patch"].int(), 8, exitCount, fake, offsets), null, v["overlap"].int(), 64, c, b).enhance(image, header) }
            val uncapped = v["uncapped_exits"].ints()
            if (cap != null) {
                capped++
                assertFalse("$name: the cap sends no candidate out early", uncapped.contentEquals(exits))
                assertArrayEquals("$name without the cap", uncapped, run(null, band).exits)
            } else {
                assertArrayEquals("$name: uncapped exits", uncapped, exits)
            }
            if (band != TiledEnhancer.CASCADE_BAND) {
                banded++
                assertFalse("$name: one band gives the same exits", run(cap, TiledEnhancer.CASCADE_BAND).exits.contentEquals(exits))
            }
            val flipped = FakeCascade(modelChannels, fake["patch"].int(), 8, exitCount, fake, offsets, flip = true)
            val swapped = TiledEnhancer(flipped, null, v["overlap"].int(), 64, cap, band).enhance(image, header)
            assertFalse("$name: flipped decisions give the same exits", swapped.exits.contentEquals(exits))
            assertFalse("$name: flipped decisions give the same pixels", swapped.image.data.contentEquals(expected))
        }
        assertTrue("capped $capped, banded $banded", capped >= 2 && banded >= 1)
        Vectors.report("cascade_pipeline", cases.size)
    }

    /**
     * The cap on its own: the room it leaves (Python's float64 formula, the 1e-9 keeping an exact
     * quotient), and its choice of the lowest scores, equal ones (-0 and 0 alike) in plan order.
     */
    @Test
    fun capGrantsTheDeepestExitToTheLowestScores() {
        val cap = CascadeCap(0.5, doubleArrayOf(0.25, 0.5, 1.0))
        // 8 patches, 2 gone at exit 0 (0.5), 6 running at exit 1 (3.0): 4.0 allowed, room (4 - 3.5) / 0.5 = 1.
        assertEquals(1, cap.room(3.5, 8, 6))
        assertEquals(0, cap.room(4.5, 8, 6))
        assertEquals(6, cap.room(0.0, 8, 6))
        assertEquals(0, CascadeCap(0.0, doubleArrayOf(0.25, 0.5, 1.0)).room(3.5, 8, 6))
        // (0.7 x 10 x 0.7 - 4.2) / (0.7 - 0.6) is 7 on paper, 6.999999999999995 in float64: 7 it is.
        val close = CascadeCap(0.7, doubleArrayOf(0.6, 0.7))
        assertTrue((0.7 * 10 * 0.7 - 4.2) / (0.7 - 0.6) < 7.0)
        assertEquals(7, close.room(4.2, 10, 9))
        // Equal costs: going deep costs nothing more, all go.
        assertEquals(5, CascadeCap(0.0, doubleArrayOf(1.0, 1.0)).room(9.0, 5, 5))
        val scores = floatArrayOf(-0.5f, 0f, -2f, -0f, -0.5f, -3f, 99f)
        assertArrayEquals(booleanArrayOf(false, false, true, false, false, true), cap.deepest(scores, 6, 2))
        assertArrayEquals(booleanArrayOf(true, false, true, false, false, true), cap.deepest(scores, 6, 3))
        assertArrayEquals(booleanArrayOf(true, false, true, false, true, true), cap.deepest(scores, 6, 4))
        assertArrayEquals(booleanArrayOf(true, true, true, false, true, true), cap.deepest(scores, 6, 5))
        assertArrayEquals(BooleanArray(6), cap.deepest(scores, 6, 0))
    }

    /** A patch leaves at the first stage with a positive score; later stages never see it, the deepest has no score. */
    @Test
    fun cascadePatchesLeaveAtTheFirstPositiveStage() {
        val header = JpegHeaderParser.parse(SyntheticJpeg.header())
        val image = Image8(200, 90, 3, ByteArray(200 * 90 * 3) { (it * 7).toByte() })
        for (leaveAt in 0 until 3) {
            val model = LeaveAtStage(3, 32, 4, 3, leaveAt)
            val result = TiledEnhancer(model, null, 0).enhance(image, header)
            assertTrue(result.exits.all { it == leaveAt })
            // One band (under 256 patches): each stage runs on it in full batches across rows.
            assertTrue(result.plan.size <= TiledEnhancer.CASCADE_BAND)
            val batches = (result.plan.size + 3) / 4
            for (stage in 0 until 3) assertEquals("stage $stage calls", if (stage <= leaveAt) batches else 0, model.stageCalls[stage])
            // Identity heads: blending gives the image back.
            assertArrayEquals(image.data, result.image.data)
            assertEquals(null, result.defocusMap)
        }
        // Never positive: the deepest exit, which has no score to read.
        val never = LeaveAtStage(1, 32, 4, 2, -1)
        val gray = Image8(50, 40, 1, ByteArray(2000) { it.toByte() })
        assertTrue(TiledEnhancer(never, null, 0).enhance(gray, JpegHeaderParser.parse(SyntheticJpeg.header())).exits.all { it == 1 })
        // One exit: stage 0 is the deepest, every patch leaves there.
        val single = LeaveAtStage(1, 32, 2, 1, -1)
        val one = TiledEnhancer(single, PositionDefocus(64), 0, 32).enhance(gray, JpegHeaderParser.parse(SyntheticJpeg.header()))
        assertTrue(one.exits.all { it == 0 })
        assertArrayEquals(gray.data, one.image.data)
        // Given a defocus head, a cascade runs it for the map alone.
        assertEquals(CellGrid.cells(40) * CellGrid.cells(50), one.defocusMap!!.size)
        assertEquals(null, one.routingMap)
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
        // A set quality keeps the file's grid (the ramp's steps read as a shifted JPEG trace otherwise).
        val evidence = JpegEvidence.of(JpegHeaderParser.parse(SyntheticJpeg.header()), image, 75)
        val result = TiledEnhancer(model, ContentDefocus(128, 3), floatArrayOf(0.3f, 0.6f), 16).enhance(image, evidence)
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
