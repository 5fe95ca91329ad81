package org.daqe.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class TilePlanTest {
    @Test
    fun startsMatchPython() {
        var cases = 0
        for (s in Vectors.section("starts").arr()) {
            val grid = s.obj()
            val tile = grid["tile"].int()
            val overlap = grid["overlap"].int()
            val lengths = grid["lengths"].ints()
            val expected = grid["starts"].arr()
            for ((i, length) in lengths.withIndex()) {
                assertArrayEquals("length $length tile $tile overlap $overlap", expected[i].ints(), TilePlan.starts(length, tile, overlap, 16))
                cases++
            }
        }
        Vectors.report("starts", cases)
    }

    @Test
    fun plansMatchPython() {
        val plans = Vectors.section("plans").arr()
        for (p in plans) {
            val v = p.obj()
            val plan = TilePlan.plan(v["height"].int(), v["width"].int(), v["tile"].int(), v["overlap"].int())
            val expected = v["tiles"].arr().map { val t = it.ints(); Tile(t[0], t[1], t[2], t[3]) }
            assertEquals("plan $v", expected, plan.tiles)
        }
        Vectors.report("plans", plans.size)
    }

    @Test
    fun invalidPlansAreRefusedLikePython() {
        val errors = Vectors.section("plan_errors").arr()
        for (e in errors) {
            val (h, w, tile, overlap) = e.ints().toList()
            try {
                TilePlan.plan(h, w, tile, overlap)
                fail("plan($h, $w, $tile, $overlap) should be refused")
            } catch (expected: IllegalArgumentException) {
            }
        }
        Vectors.report("plan_errors", errors.size)
    }

    @Test
    fun rampsMatchPythonBitForBit() {
        val ramps = Vectors.section("ramps").arr()
        for (r in ramps) {
            val v = r.obj()
            val ours = TilePlan.ramp(v["length"].int(), v["start"].int(), v["end"].int())
            val python = v["weights"].doubles()
            assertEquals(python.size, ours.size)
            for (i in ours.indices) assertEquals("ramp $v [$i]", python[i].toFloat(), ours[i], 0f)
        }
        Vectors.report("ramps", ramps.size)
    }

    @Test
    fun plansCoverTheImageOnTheGridWithTheRequestedOverlap() {
        for (h in listOf(1, 15, 16, 17, 100, 333, 1000)) for (w in listOf(1, 64, 65, 257, 999)) {
            for ((tile, overlap) in listOf(Pair(64, 16), Pair(128, 32), Pair(32, 0), Pair(512, 64))) {
                val plan = TilePlan.plan(h, w, tile, overlap)
                val coverage = IntArray(h * w)
                for (t in plan.tiles) {
                    assertTrue(t.y0 % 16 == 0 && t.x0 % 16 == 0 && t.height <= tile && t.width <= tile)
                    for (y in t.y0 until t.y1) for (x in t.x0 until t.x1) coverage[y * w + x]++
                }
                assertTrue("uncovered pixel in ${h}x$w", coverage.all { it >= 1 })
                for (r in 1 until plan.rows) assertTrue(plan.rowEnd(r - 1) - plan.rowStarts[r] >= overlap)
                for (c in 1 until plan.cols) assertTrue(plan.colEnd(c - 1) - plan.colStarts[c] >= overlap)
            }
        }
    }

    @Test
    fun eachCellHasOneOwnerThatCoversIt() {
        for (length in listOf(1, 16, 17, 100, 513, 1000, 4032)) {
            for ((tile, overlap) in listOf(Pair(64, 16), Pair(512, 64), Pair(32, 0))) {
                val plan = TilePlan.plan(length, 16, tile, overlap)
                val owners = CellGrid.rowOwners(plan)
                assertEquals(CellGrid.cells(length), owners.size)
                for ((k, r) in owners.withIndex()) {
                    assertTrue("cell $k of $length not inside window $r", plan.rowStarts[r] <= k * 16 && k * 16 < plan.rowEnd(r))
                    assertTrue("owners go backwards", k == 0 || owners[k - 1] <= r)
                }
                assertEquals(plan.rows - 1, owners.last())
            }
        }
    }
}
