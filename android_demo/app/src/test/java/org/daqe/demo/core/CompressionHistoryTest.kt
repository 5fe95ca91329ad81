package org.daqe.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/**
 * The compression-history estimate, the evidence the enhancer assumes, the strength blend and the
 * grid padding against the Python pipeline (vectors from tests/test_kotlin_core.py).
 */
class CompressionHistoryTest {
    private fun image(v: Map<String, Any?>) = Image8(v["width"].int(), v["height"].int(), v["channels"].int(), Vectors.bytes(v["pixels"] as String))

    private fun close(a: Double, b: Double, relative: Double) =
        a == b || Math.abs(a - b) <= relative * Math.max(Math.abs(a), Math.abs(b))

    private fun assertEvidence(what: String, expected: Map<String, Any?>, ours: JpegEvidence) {
        assertEquals("$what source", expected["source"], ours.source)
        assertEquals("$what quality", expected["quality"].int(), ours.quality)
        assertArrayEquals("$what grid", expected["grid"].ints(), intArrayOf(ours.gridY, ours.gridX))
        assertEquals("$what subsampling", expected["subsampling"], ours.subsampling)
        assertArrayEquals("$what luma table", expected["luma"].ints(), ours.lumaTable)
        val chroma = expected["chroma"]
        if (chroma == null) assertEquals("$what chroma", null, ours.chromaTable) else assertArrayEquals("$what chroma", chroma.ints(), ours.chromaTable)
    }

    @Test
    fun estimatesTheSameHistoryAsPython() {
        val section = Vectors.section("history").obj()
        val cases = section["cases"].arr()
        var identicalMisfits = 0
        var misfits = 0
        for (case in cases) {
            val v = case.obj()
            val name = v["name"] as String
            val img = image(v)
            val luma = CompressionHistory.luma(img)
            // Stage by stage: profiles (double sums in another order: within 1e-9), grids, misfits.
            for (axis in 0..1) {
                val ours = CompressionHistory.boundaryProfile(luma, img.height, img.width, axis)
                val python = v["profiles"].arr()[axis].doubles()
                for (g in 0 until 8) assertTrue("$name profile $axis[$g]: ${ours[g]} vs ${python[g]}", close(ours[g], python[g], 1e-9))
            }
            val grids = CompressionHistory.candidateGrids(luma, img.height, img.width)
            val expectedGrids = v["grids"].arr().map { it.ints().toList() }
            assertEquals("$name grids", expectedGrids, grids.map { listOf(it.y, it.x) })
            val prominent = v["prominent"]
            if (prominent != null) assertEquals("$name prominent grids", prominent.arr(), grids.map { it.prominent })
            for ((i, grid) in grids.withIndex()) {
                val ours = CompressionHistory.misfitPerQuality(
                    CompressionHistory.blockCoefficients(luma, img.height, img.width, grid.y, grid.x, CompressionHistory.MAX_BLOCKS)
                )
                val python = v["misfits"].arr()[i].doubles()
                for (q in 0 until 100) {
                    assertTrue("$name grid $grid QF ${q + 1}: ${ours[q]} vs ${python[q]}", close(ours[q], python[q], 1e-6))
                    if (python[q].isInfinite()) continue
                    misfits++
                    if (ours[q] == python[q]) identicalMisfits++
                }
                assertEquals("$name grid $grid fitted qualities", CompressionHistory.fittedQualities(python), CompressionHistory.fittedQualities(ours))
            }
            // The decisions: exactly Python's.
            val header = (v["jpeg"] as String?)?.let { JpegHeaderParser.parse(Vectors.bytes(it)) }
            val last = header?.let { Compression.ofFile(it.lumaTable, it.chromaTable, it.subsampling) }
            val lastExpected = v["last"]
            if (lastExpected == null) {
                assertEquals("$name last", null, last)
            } else {
                assertEquals("$name file quality", lastExpected.obj()["quality"].int(), last!!.quality)
                assertEquals("$name file tables standard", lastExpected.obj()["standard"], last.standard)
            }
            val history = CompressionHistory.estimate(img, last)
            assertEquals("$name grid found", v["grid_found"], history.gridFound)
            val earlier = v["earlier"]
            if (earlier == null) {
                assertEquals("$name: no earlier compression", null, history.earlier)
            } else {
                val e = earlier.obj()
                val ours = history.earlier ?: throw AssertionError("$name: earlier compression not found (${history.describe()})")
                assertEquals("$name earlier quality", e["quality"].int(), ours.quality)
                assertArrayEquals("$name earlier grid", e["grid"].ints(), intArrayOf(ours.gridY, ours.gridX))
                assertEquals("$name earlier standard", e["standard"], ours.standard)
                assertEquals("$name earlier subsampling", e["subsampling"], ours.subsampling)
                assertEquals("$name earlier chroma", e["chroma"], ours.chromaTable != null)
                assertTrue("$name earlier misfit ${ours.misfit} vs ${e["misfit"]}", close(ours.misfit, e["misfit"].num(), 1e-6))
            }
            assertEquals("$name description", v["describe"], history.describe())
            assertEvidence("$name evidence", v["evidence"].obj(), JpegEvidence.of(header, img))
            assertEvidence("$name override", v["override_40"].obj(), JpegEvidence.of(header, img, 40))
        }
        println("HISTORY misfits identical to Python's: $identicalMisfits of $misfits")
        val pairs = section["coarser"].arr()
        for (pair in pairs) {
            val p = pair.arr()
            val a = p[0].int()
            val b = p[1].int()
            assertEquals("QF $a coarser than QF $b", p[2], CompressionHistory.coarser(JpegTables.scaleTable(JpegTables.STD_LUMA, a), JpegTables.scaleTable(JpegTables.STD_LUMA, b)))
        }
        Vectors.report("history", cases.size + pairs.size)
    }

    @Test
    fun blendsByStrengthAndPadsTheGridLikePython() {
        val s = Vectors.section("strength").obj()
        val shape = s["shape"].ints()
        val original = Image8(shape[1], shape[0], shape[2], Vectors.bytes(s["original"] as String))
        val enhanced = Image8(shape[1], shape[0], shape[2], Vectors.bytes(s["enhanced"] as String))
        val blends = s["blends"].arr()
        for (b in blends) {
            val v = b.obj()
            val strength = v["strength"].num().toFloat()
            assertArrayEquals("strength $strength", Vectors.bytes(v["expected"] as String), Strength.blend(original, enhanced, Strength.check(strength)).data)
        }
        assertEquals(s["max"].num().toFloat(), Strength.MAX, 0f)
        val refused = s["refused"].doubles()
        for (strength in refused) {
            try {
                Strength.check(strength.toFloat())
                fail("strength $strength accepted")
            } catch (e: IllegalArgumentException) {
                assertTrue(e.message!!.contains("strength"))
            }
        }
        val pads = s["pads"].arr()
        for (p in pads) {
            val v = p.obj()
            val grid = v["grid"].ints()
            val evidence = JpegEvidence(IntArray(64) { 1 }, null, "gray", 100, "override", grid[0], grid[1])
            assertArrayEquals("grid ${grid.toList()} padding", v["pad"].ints(), intArrayOf(evidence.padTop, evidence.padLeft))
            val img = Image8(v["width"].int(), v["height"].int(), v["channels"].int(), Vectors.bytes(v["pixels"] as String))
            val padded = GridAlign.pad(img, evidence.padTop, evidence.padLeft)
            assertArrayEquals("grid ${grid.toList()} padded", Vectors.bytes(v["expected"] as String), padded.data)
            assertArrayEquals("grid ${grid.toList()} cropped back", img.data, GridAlign.crop(padded, evidence.padTop, evidence.padLeft).data)
        }
        Vectors.report("strength", blends.size + refused.size + pads.size)
    }

    @Test
    fun standardTablesAndQualityEstimateMatchLibjpeg() {
        // libjpeg at QF 50 is the base table; QF 100 all ones; QF 1 clipped at 255.
        assertArrayEquals(JpegTables.STD_LUMA, JpegTables.scaleTable(JpegTables.STD_LUMA, 50))
        assertArrayEquals(IntArray(64) { 1 }, JpegTables.scaleTable(JpegTables.STD_CHROMA, 100))
        assertEquals(255, JpegTables.scaleTable(JpegTables.STD_LUMA, 1).min())
        for (q in intArrayOf(1, 10, 37, 75, 90, 100)) {
            val (quality, exact) = JpegTables.estimateQuality(JpegTables.scaleTable(JpegTables.STD_LUMA, q), JpegTables.scaleTable(JpegTables.STD_CHROMA, q))
            assertTrue("QF $q is standard", exact)
            // Tables shared by several qualities (near QF 1, all steps clipped) report the highest.
            if (q > 5) assertEquals(q, quality)
        }
        try {
            JpegEvidence.of(null, Image8(8, 8, 1, ByteArray(64)), 0)
            fail("QF 0 accepted")
        } catch (e: IllegalArgumentException) {
            assertTrue(e.message!!.contains("quality"))
        }
    }
}
