package org.daqe.demo.core

/**
 * Blends overlapping float tiles into uint8 pixels without seams, bit for bit like
 * `enhance_tiled` in `daqe_tf/inference/tiling.py`.
 *
 * Tiles must be added in the plan's row-major order: float addition is not associative, and that
 * is the order Python accumulates in. Like Python, a band of at most [TilePlan.tile] rows is kept,
 * and rows are handed to [sink] as soon as no later tile can touch them, so memory stays at one band
 * whatever the image height. Pixels are clip(round(x * 255)) with round-half-to-even, as numpy.
 *
 * [sink] receives (y0, y1, pixels): rows [y0, y1) as (y1 - y0) * width * channels bytes
 * (valid prefix of the array; the array is reused between calls).
 */
class Stitcher(
    private val plan: TilePlan,
    private val channels: Int,
    private val sink: (Int, Int, ByteArray) -> Unit
) {
    private val width = plan.width
    private val band = FloatArray(plan.tile * width * channels)
    private val weight = FloatArray(plan.tile * width)
    private val rowBytes = ByteArray(plan.tile * width * channels)
    private var bandTop = 0
    private var next = 0
    private var rowWeights = FloatArray(0)

    init {
        require(channels >= 1) { "channels must be positive, got $channels" }
    }

    /** Number of tiles added so far; the next [add] must be tile [added]. */
    val added: Int get() = next

    val done: Boolean get() = next == plan.size

    /**
     * Adds the result of the next tile: values[offset + y * rowStride + x * channels + ch] for the
     * tile's height x width pixels. [rowStride] lets a padded model output be read in place;
     * by default rows are packed (tile width x channels).
     */
    fun add(values: FloatArray, offset: Int = 0, rowStride: Int = -1) {
        check(next < plan.size) { "all ${plan.size} tiles were already added" }
        val r = next / plan.cols
        val c = next % plan.cols
        val t = plan.tile(r, c)
        val stride = if (rowStride < 0) t.width * channels else rowStride
        require(stride >= t.width * channels) { "row stride $stride is shorter than a tile row" }
        require(offset >= 0 && offset + (t.height - 1) * stride + t.width * channels <= values.size) {
            "tile $next needs ${t.height}x${t.width}x$channels values from offset $offset"
        }
        if (c == 0) rowWeights = plan.rowWeights(r)
        val wx = plan.colWeights(c)
        for (y in 0 until t.height) {
            val bandRow = (t.y0 - bandTop + y) * width
            val wy = rowWeights[y]
            for (x in 0 until t.width) {
                val w = wy * wx[x]
                val p = bandRow + t.x0 + x
                weight[p] += w
                val src = offset + y * stride + x * channels
                val dst = p * channels
                for (ch in 0 until channels) band[dst + ch] += values[src + ch] * w
            }
        }
        next++
        if (c == plan.cols - 1) flushRow(r)
    }

    /** Rows above the next tile row's start receive no more contributions: emit them. */
    private fun flushRow(r: Int) {
        val nextTop = if (r + 1 < plan.rows) plan.rowStarts[r + 1] else plan.height
        val final = nextTop - bandTop
        val pixels = final * width
        for (p in 0 until pixels) {
            val w = maxOf(weight[p], 1e-8f)
            for (ch in 0 until channels) {
                val i = p * channels + ch
                rowBytes[i] = toUint8(band[i] / w).toByte()
            }
        }
        sink(bandTop, nextTop, rowBytes)
        // Keep the rows still open, zero the rest.
        val keep = (plan.tile - final) * width
        System.arraycopy(weight, pixels, weight, 0, keep)
        java.util.Arrays.fill(weight, keep, weight.size, 0f)
        System.arraycopy(band, pixels * channels, band, 0, keep * channels)
        java.util.Arrays.fill(band, keep * channels, band.size, 0f)
        bandTop = nextTop
    }

    companion object {
        /** clip(round(x * 255), 0, 255) with float32 product and round-half-to-even; NaN gives 0. */
        fun toUint8(x: Float): Int {
            val scaled = x * 255f
            if (scaled.isNaN()) return 0
            val rounded = Math.rint(scaled.toDouble())
            return if (rounded <= 0.0) 0 else if (rounded >= 255.0) 255 else rounded.toInt()
        }
    }
}
