package org.daqe.demo.core

/**
 * The 16x16-pixel cells of the defocus map, and which window of a [TilePlan] owns each cell.
 *
 * Overlapping windows both cover the cells in their overlap; for per-cell values computed per
 * window (the defocus map, the exit overlay) each cell is taken from exactly one window: the one
 * whose share of the axis, split at the middle of every overlap, contains the cell's centre.
 * The owning window always covers the cell, so its local output holds it.
 */
object CellGrid {
    /** Pixels per defocus cell: the defocus output is H/16 x W/16. */
    const val CELL = 16

    /** Cells along an axis of [length] pixels; a partial last cell counts. */
    fun cells(length: Int): Int = (length + CELL - 1) / CELL

    /** owner[k] = index of the window (along this axis) that owns cell k. */
    fun owners(starts: IntArray, ends: IntArray, length: Int): IntArray {
        require(starts.isNotEmpty() && starts.size == ends.size) { "need one end per start" }
        val n = cells(length)
        val owner = IntArray(n)
        var r = 0
        for (k in 0 until n) {
            val centre = k * CELL + CELL / 2
            // Window r + 1 takes over from the middle of its overlap with window r.
            while (r + 1 < starts.size && (ends[r] + starts[r + 1]) / 2 <= centre) r++
            owner[k] = r
        }
        return owner
    }

    fun rowOwners(plan: TilePlan): IntArray =
        owners(plan.rowStarts, IntArray(plan.rows) { plan.rowEnd(it) }, plan.height)

    fun colOwners(plan: TilePlan): IntArray =
        owners(plan.colStarts, IntArray(plan.cols) { plan.colEnd(it) }, plan.width)

    /** Per-cell value of the owning tile: e.g. the exit that enhanced each cell, for an overlay. */
    fun perCell(plan: TilePlan, perTile: IntArray): IntArray {
        require(perTile.size == plan.size) { "need one value per tile (${plan.size}), got ${perTile.size}" }
        val rowOwner = rowOwners(plan)
        val colOwner = colOwners(plan)
        val out = IntArray(rowOwner.size * colOwner.size)
        for (cy in rowOwner.indices) {
            for (cx in colOwner.indices) out[cy * colOwner.size + cx] = perTile[rowOwner[cy] * plan.cols + colOwner[cx]]
        }
        return out
    }
}
