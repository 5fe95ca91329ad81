package org.daqe.demo.core

/**
 * Routes each patch to an exit of the early-exit model from its mean routing value, as
 * `daqe_tf/models/daqe/clusters.py` does inside the model and `route_patches` in the Python runtime.
 *
 * The routing map holds one value per 16x16 cell: the predicted defocus, log1p(blur sigma), or the
 * model's learned readout ([RoutingSignal]). Either way a higher value means less to gain from the
 * deep exits (blurred areas lost little detail to JPEG), so with N exits and N-1 non-decreasing
 * thresholds, cluster = (N-1) - #{i : v > t_i}, compared in float32. The highest values get
 * cluster 0 (cheapest exit), the lowest N-1 (deepest exit); a value equal to a threshold goes to
 * the deeper side.
 */
object Clusters {
    /** Rejects thresholds that are not finite or that decrease (equal neighbours are allowed, as in Python). */
    fun checkThresholds(thresholds: FloatArray) {
        for (i in thresholds.indices) {
            require(!thresholds[i].isNaN() && !thresholds[i].isInfinite()) { "threshold $i is not finite: ${thresholds[i]}" }
            require(i == 0 || thresholds[i - 1] <= thresholds[i]) {
                "thresholds must be non-decreasing, got ${thresholds.toList()}"
            }
        }
    }

    /** Exit index for a patch of mean routing value [value]; NaN exceeds nothing, so it takes the deepest exit. */
    fun clusterOf(value: Float, thresholds: FloatArray): Int {
        var exceeded = 0
        for (t in thresholds) if (value > t) exceeded++
        return thresholds.size - exceeded
    }

    /**
     * Mean of the cells of a per-cell [map] (routing or defocus) under [tile], as Python's
     * `patch_mean`: cell rows [y0 / 16, ceil(y1 / 16)), same for columns, summed in double and
     * rounded to float32. For tiles on the model's own patch grid this is
     * `patch_defocus_from_map` (partial patches average the cells they hold); overlapping tiles
     * average the cells they cover. Clamped to the map, so a map rounded down still gives every tile
     * at least one cell. [map] is mapHeight x mapWidth, row-major.
     */
    fun patchMean(map: FloatArray, mapHeight: Int, mapWidth: Int, tile: Tile): Float {
        require(mapHeight > 0 && mapWidth > 0 && map.size >= mapHeight * mapWidth) { "cell map is empty or too small" }
        val r0 = minOf(tile.y0 / CellGrid.CELL, mapHeight - 1)
        val r1 = maxOf(minOf(CellGrid.cells(tile.y1), mapHeight), r0 + 1)
        val c0 = minOf(tile.x0 / CellGrid.CELL, mapWidth - 1)
        val c1 = maxOf(minOf(CellGrid.cells(tile.x1), mapWidth), c0 + 1)
        var sum = 0.0
        for (r in r0 until r1) for (c in c0 until c1) sum += map[r * mapWidth + c]
        return (sum / ((r1 - r0) * (c1 - c0))).toFloat()
    }

    /** Exit index per tile of [plan], row-major, from the [routing] map (mapHeight x mapWidth cells). */
    fun assign(plan: TilePlan, routing: FloatArray, mapHeight: Int, mapWidth: Int, thresholds: FloatArray): IntArray {
        checkThresholds(thresholds)
        return IntArray(plan.size) { clusterOf(patchMean(routing, mapHeight, mapWidth, plan.tile(it)), thresholds) }
    }
}
