package org.daqe.demo.core

/** A window [y0, y1) x [x0, x1) of the image. */
data class Tile(val y0: Int, val x0: Int, val y1: Int, val x1: Int) {
    val height: Int get() = y1 - y0
    val width: Int get() = x1 - x0
}

/**
 * Row-major grid of overlapping windows, aligned to the JPEG grid. Port of `plan_tiles` and `_ramp`
 * in `daqe_tf/inference/tiling.py`, kept identical so that the phone and the Python pipeline cut an
 * image into the same windows and blend them with the same weights.
 *
 * Windows start on multiples of [align] (16 = one 4:2:0 MCU) so every window sees the block grid as
 * the whole image does. Every window of a row spans the same rows, every window of a column the
 * same columns, hence the plan is stored as two axes.
 */
class TilePlan private constructor(
    val height: Int,
    val width: Int,
    val tile: Int,
    val overlap: Int,
    val align: Int,
    /** Window starts along y; window r spans [rowStarts[r], min(rowStarts[r] + tile, height)). */
    val rowStarts: IntArray,
    val colStarts: IntArray
) {
    val rows: Int get() = rowStarts.size
    val cols: Int get() = colStarts.size
    val size: Int get() = rows * cols

    fun rowEnd(r: Int): Int = minOf(rowStarts[r] + tile, height)
    fun colEnd(c: Int): Int = minOf(colStarts[c] + tile, width)

    fun tile(r: Int, c: Int): Tile = Tile(rowStarts[r], colStarts[c], rowEnd(r), colEnd(c))

    /** Tile [index] in row-major order, as listed by Python's `plan_tiles`. */
    fun tile(index: Int): Tile = tile(index / cols, index % cols)

    val tiles: List<Tile> get() = (0 until size).map { tile(it) }

    /**
     * Blend weights along y for the windows of row [r]: linear ramps over the overlaps with the
     * rows above and below, 1 inside (the `top`/`bottom` of `enhance_tiled`).
     */
    fun rowWeights(r: Int): FloatArray {
        val top = if (r > 0) rowEnd(r - 1) - rowStarts[r] else 0
        val bottom = if (r + 1 < rows) rowEnd(r) - rowStarts[r + 1] else 0
        return ramp(rowEnd(r) - rowStarts[r], top, bottom)
    }

    /** Blend weights along x for the windows of column [c] (the `left`/`right` of `enhance_tiled`). */
    fun colWeights(c: Int): FloatArray {
        val left = if (c > 0) colEnd(c - 1) - colStarts[c] else 0
        val right = if (c + 1 < cols) colEnd(c) - colStarts[c + 1] else 0
        return ramp(colEnd(c) - colStarts[c], left, right)
    }

    companion object {
        /** Checks and plans like `plan_tiles(height, width, tile, overlap, align)`. */
        fun plan(height: Int, width: Int, tile: Int = 512, overlap: Int = 32, align: Int = 16): TilePlan {
            require(height > 0 && width > 0) { "image size must be positive, got ${width}x$height" }
            require(align > 0) { "align must be positive, got $align" }
            require(tile % align == 0 && overlap % align == 0 && overlap >= 0 && overlap < tile) {
                "tile ($tile) and overlap ($overlap) must be multiples of $align, overlap < tile"
            }
            return TilePlan(
                height, width, tile, overlap, align,
                starts(height, tile, overlap, align), starts(width, tile, overlap, align)
            )
        }

        /**
         * Evenly spread window starts along one axis, on multiples of [align] (`_starts`).
         * Consecutive windows overlap by at least [overlap]: the spacing before rounding is at most
         * tile - overlap - align, and rounding down to the grid removes less than align.
         */
        fun starts(length: Int, tile: Int, overlap: Int, align: Int): IntArray {
            if (length <= tile) return intArrayOf(0)
            val step = maxOf(tile - overlap - align, align)
            val count = ceilDiv(length - tile, step) + 1
            val last = ceilDiv(length - tile, align) * align // aligned start whose window reaches the end
            val starts = java.util.TreeSet<Int>()
            for (i in 0 until count - 1) {
                // Python: int(i * last / (count - 1)) // align * align, true division in double.
                val spread = (i.toLong() * last).toDouble() / (count - 1)
                starts.add((spread.toLong() / align * align).toInt())
            }
            starts.add(last)
            return starts.toIntArray()
        }

        /** 1-D blend weights: linear ramps over the overlaps, 1 inside, in float32 like `_ramp`. */
        fun ramp(length: Int, startOverlap: Int, endOverlap: Int): FloatArray {
            require(startOverlap in 0..length && endOverlap in 0..length) {
                "overlaps ($startOverlap, $endOverlap) must fit in length $length"
            }
            val w = FloatArray(length) { 1f }
            for (i in 0 until startOverlap) w[i] = (i.toFloat() + 0.5f) / startOverlap.toFloat()
            for (j in 0 until endOverlap) {
                val v = ((endOverlap - 1 - j).toFloat() + 0.5f) / endOverlap.toFloat()
                val at = length - endOverlap + j
                w[at] = minOf(w[at], v)
            }
            return w
        }

        private fun ceilDiv(a: Int, b: Int): Int = -Math.floorDiv(-a, b)
    }
}
