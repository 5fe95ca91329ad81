package org.daqe.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Test

class ClustersTest {
    private fun floats(value: Any?): FloatArray = value.doubles().map { it.toFloat() }.toFloatArray()

    @Test
    fun clusterIdsMatchTheModelsAssignClusters() {
        var cases = 0
        for (c in Vectors.section("clusters").arr()) {
            val v = c.obj()
            val thresholds = floats(v["thresholds"])
            val values = floats(v["values"])
            val ids = v["ids"].ints()
            for (i in values.indices) {
                assertEquals("d=${values[i]} t=${thresholds.toList()}", ids[i], Clusters.clusterOf(values[i], thresholds))
                cases++
            }
        }
        Vectors.report("clusters", cases)
    }

    @Test
    fun patchesOnTheModelsGridMatchPatchDefocusFromMap() {
        val sets = Vectors.section("patch_defocus").arr()
        for (s in sets) {
            val v = s.obj()
            val map = Vectors.floats(v["map"] as String)
            val mh = v["map_height"].int()
            val mw = v["map_width"].int()
            val height = v["height"].int()
            val width = v["width"].int()
            val patch = v["patch"].int()
            val rows = v["rows"].int()
            val cols = v["cols"].int()
            val means = floats(v["means"])
            val thresholds = floats(v["thresholds"])
            val ids = v["ids"].ints()
            for (r in 0 until rows) for (c in 0 until cols) {
                val tile = Tile(r * patch, c * patch, minOf(r * patch + patch, height), minOf(c * patch + patch, width))
                val mean = Clusters.patchMean(map, mh, mw, tile)
                assertEquals("patch ($r, $c) of $v", means[r * cols + c], mean, 0f)
                assertEquals("patch ($r, $c) exit", ids[r * cols + c], Clusters.clusterOf(mean, thresholds))
            }
        }
        Vectors.report("patch_defocus", sets.size)
    }

    @Test
    fun overlappingTilesAverageTheCellsTheyCover() {
        val sets = Vectors.section("tile_defocus").arr()
        for (s in sets) {
            val v = s.obj()
            val plan = TilePlan.plan(v["height"].int(), v["width"].int(), v["tile"].int(), v["overlap"].int())
            val map = Vectors.floats(v["map"] as String)
            val mh = v["map_height"].int()
            val mw = v["map_width"].int()
            val means = floats(v["means"])
            for (i in 0 until plan.size) {
                val ours = Clusters.patchMean(map, mh, mw, plan.tile(i))
                assertEquals("tile $i of $v", means[i], ours, Math.ulp(means[i]))
            }
            assertArrayEquals(v["ids"].ints(), Clusters.assign(plan, map, mh, mw, floats(v["thresholds"])))
        }
        Vectors.report("tile_defocus", sets.size)
    }

    /** Python's `route_patches` on maps where routing and defocus disagree: the exits follow the routing map. */
    @Test
    fun exitsFollowTheRoutingMapNotTheDefocusMap() {
        val sets = Vectors.section("routing_clusters").arr()
        for (s in sets) {
            val v = s.obj()
            val plan = TilePlan.plan(v["height"].int(), v["width"].int(), v["patch"].int(), v["overlap"].int())
            val mh = v["map_height"].int()
            val mw = v["map_width"].int()
            val thresholds = floats(v["thresholds"])
            val ids = v["ids"].ints()
            assertArrayEquals("routing $v", ids, Clusters.assign(plan, Vectors.floats(v["routing"] as String), mh, mw, thresholds))
            val byDefocus = Clusters.assign(plan, Vectors.floats(v["defocus"] as String), mh, mw, thresholds)
            assertArrayEquals("defocus $v", v["ids_by_defocus"].ints(), byDefocus)
            assertFalse("the two maps must disagree for this check to mean anything", ids.contentEquals(byDefocus))
        }
        Vectors.report("routing_clusters", sets.size)
    }

    @Test
    fun mostDefocusedGetsTheCheapestExitAndTiesGoSharp() {
        val t = floatArrayOf(0.5f, 1.0f)
        assertEquals(2, Clusters.clusterOf(0.0f, t))
        assertEquals(2, Clusters.clusterOf(0.5f, t))
        assertEquals(1, Clusters.clusterOf(0.51f, t))
        assertEquals(1, Clusters.clusterOf(1.0f, t))
        assertEquals(0, Clusters.clusterOf(7.0f, t))
        assertEquals(2, Clusters.clusterOf(Float.NaN, t))
        assertEquals(0, Clusters.clusterOf(3.0f, FloatArray(0)))
        Clusters.checkThresholds(floatArrayOf(0.4f, 0.4f, 0.8f))
    }

    @Test(expected = IllegalArgumentException::class)
    fun decreasingThresholdsAreRefused() {
        Clusters.checkThresholds(floatArrayOf(1.0f, 0.5f))
    }

    @Test(expected = IllegalArgumentException::class)
    fun nanThresholdsAreRefused() {
        Clusters.checkThresholds(floatArrayOf(0.1f, Float.NaN))
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
