package org.daqe.demo.core

/**
 * A cascade's compute cap, the model config's `max_cost` and `exit_costs` (Python `capped_deepest`).
 *
 * A band of patches decides together ([TiledEnhancer.CASCADE_BAND]). At the last decision (stage
 * N - 2) the candidates are the patches whose score there is not positive; uncapped, all of them
 * go on to the deepest exit. The cap lets through only as many as keep the band's cost within
 * [maxCost] x patches x the deepest exit's cost, lowest scores (the most to gain) first; the others
 * leave through exit N - 2. [exitCosts]: each exit's relative cost (the deepest's is 1 in exports).
 *
 * The arithmetic is Python's float64, in the same order, so the count matches at its boundaries.
 */
class CascadeCap(val maxCost: Double, exitCosts: DoubleArray) {
    val exitCosts: DoubleArray = exitCosts.copyOf()

    /**
     * How many of [candidates] may go deep in a band of [patches] whose cost is [bandCost] if every
     * candidate left at exit N - 2 (the band's patches gone earlier at their exits' costs, the rest at N - 2's).
     */
    fun room(bandCost: Double, patches: Int, candidates: Int): Int {
        val last = exitCosts.size - 1
        require(last >= 1) { "the cap decides between the last two exits: needs two or more" }
        val step = exitCosts[last] - exitCosts[last - 1]
        // Going deep costs nothing more (or the costs say nothing): no reason to hold anyone back.
        if (!(step > 0)) return candidates
        val allowed = maxCost * patches * exitCosts[last]
        // The 1e-9 keeps a quotient that is an integer on paper from rounding to the one below.
        val room = Math.floor((allowed - bandCost) / step + 1e-9)
        return if (room <= 0.0) 0 else if (room >= candidates) candidates else room.toInt()
    }

    /**
     * Which of the first [count] [scores] (the candidates' stage N - 2 scores, in plan order) go deep:
     * the [room] lowest; equal scores in plan order (a stable sort, -0 equal to 0 as in numpy).
     */
    fun deepest(scores: FloatArray, count: Int, room: Int): BooleanArray {
        val order = (0 until count).sortedWith(Comparator { a: Int, b: Int ->
            val x = scores[a]
            val y = scores[b]
            if (x < y) -1 else if (x > y) 1 else 0
        })
        val chosen = BooleanArray(count)
        for (i in 0 until minOf(room, count)) chosen[order[i]] = true
        return chosen
    }
}
