package org.daqe.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test

class ClustersTest {
    @Test
    fun clusterIdsMatchTheContract() {
        var cases = 0
        for (c in Vectors.section("clusters").arr()) {
            val v = c.obj()
            val thresholds = v["thresholds"].doubles()
            val values = v["values"].doubles()
            val ids = v["ids"].ints()
            for (i in values.indices) {
                assertEquals("d=${values[i]} t=${thresholds.toList()}", ids[i], Clusters.clusterOf(values[i], thresholds))
                cases++
            }
        }
        Vectors.report("clusters", cases)
    }

    @Test
    fun patchMeansAndExitsMatchTheReference() {
        val sets = Vectors.section("patch_defocus").arr()
        for (s in sets) {
            val v = s.obj()
            val plan = TilePlan.plan(v["height"].int(), v["width"].int(), v["tile"].int(), v["overlap"].int())
            val map = Vectors.floats(v["map"] as String)
            val mh = v["map_height"].int()
            val mw = v["map_width"].int()
            val means = v["means"].doubles()
            for (i in 0 until plan.size) {
                val ours = Clusters.patchDefocus(map, mh, mw, plan.tile(i))
                assertEquals("tile $i of $v", means[i], ours, 1e-12 * Math.max(1.0, Math.abs(means[i])))
            }
            assertArrayEquals(v["ids"].ints(), Clusters.assign(plan, map, mh, mw, v["thresholds"].doubles()))
        }
        Vectors.report("patch_defocus", sets.size)
    }

    @Test
    fun mostDefocusedGetsTheCheapestExit() {
        val t = doubleArrayOf(0.5, 1.0)
        assertEquals(2, Clusters.clusterOf(0.0, t))
        assertEquals(1, Clusters.clusterOf(0.5, t))
        assertEquals(1, Clusters.clusterOf(0.99, t))
        assertEquals(0, Clusters.clusterOf(1.0, t))
        assertEquals(0, Clusters.clusterOf(7.0, t))
        assertEquals(2, Clusters.clusterOf(Double.NaN, t))
        assertEquals(0, Clusters.clusterOf(3.0, DoubleArray(0)))
    }

    @Test(expected = IllegalArgumentException::class)
    fun unsortedThresholdsAreRefused() {
        Clusters.checkThresholds(doubleArrayOf(1.0, 0.5))
    }

    @Test(expected = IllegalArgumentException::class)
    fun nanThresholdsAreRefused() {
        Clusters.checkThresholds(doubleArrayOf(0.1, Double.NaN))
    }

    @Test
    fun exitOverlayTakesEachCellFromItsOwningPatch() {
        val plan = TilePlan.plan(100, 130, 64, 16)
        val perTile = IntArray(plan.size) { it }
        val cells = CellGrid.perCell(plan, perTile)
        val rows = CellGrid.rowOwners(plan)
        val cols = CellGrid.colOwners(plan)
        assertEquals(CellGrid.cells(100) * CellGrid.cells(130), cells.size)
        for (cy in rows.indices) for (cx in cols.indices) assertEquals(rows[cy] * plan.cols + cols[cx], cells[cy * cols.size + cx])
    }
}
