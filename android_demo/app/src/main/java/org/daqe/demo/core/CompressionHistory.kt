package org.daqe.demo.core

/**
 * One JPEG compression: tables, chroma layout and where its block grid lies (`Compression` of
 * `daqe_tf/jpeg/history.py`). Pixel (y, x) starts a block when y % 8 == [gridY] and x % 8 == [gridX];
 * (0, 0) is the file's own grid. [quality] is the IJG quality (for custom tables the nearest
 * standard one), [standard] whether the tables are exactly its IJG scaling, [misfit] how well the
 * pixels fit the tables (0 for a file's own tables).
 */
class Compression(
    val lumaTable: IntArray,
    val chromaTable: IntArray?,
    val subsampling: String,
    val quality: Int,
    val standard: Boolean,
    val gridY: Int = 0,
    val gridX: Int = 0,
    val misfit: Double = 0.0
) {
    val shifted: Boolean get() = gridY != 0 || gridX != 0

    fun describe(): String {
        val name = if (standard) "QF $quality" else "custom tables ≈ QF $quality"
        return if (shifted) "$name on a grid shifted by ($gridY, $gridX)" else "$name on the aligned grid"
    }

    internal fun withChroma(chroma: IntArray?, subsampling: String) =
        Compression(lumaTable, chroma, subsampling, quality, standard, gridY, gridX, misfit)

    companion object {
        /** `compression_for_quality`: the standard compression at [quality] (what a quality override assumes). */
        fun forQuality(quality: Int, grayscale: Boolean, subsampling: String = "4:2:0", gridY: Int = 0, gridX: Int = 0): Compression {
            JpegTables.checkQuality(quality)
            return Compression(
                JpegTables.scaleTable(JpegTables.STD_LUMA, quality),
                if (grayscale) null else JpegTables.scaleTable(JpegTables.STD_CHROMA, quality),
                if (grayscale) "gray" else subsampling, quality, true, gridY, gridX
            )
        }

        /** `file_compression`: what a JPEG file's header describes, on its own grid. */
        fun ofFile(luma: IntArray, chroma: IntArray?, subsampling: String): Compression {
            val (quality, exact) = JpegTables.estimateQuality(luma, chroma)
            return Compression(luma, chroma, subsampling, quality, exact)
        }
    }
}

/**
 * What the pixels went through, as far as they tell: [last] is the file's own compression (null
 * when the input is not a JPEG file), [earlier] a coarser compression found in the pixels on any
 * grid (or null), [gridFound] whether any JPEG grid fits the pixels. The enhancer assumes [dominant].
 *
 * [estimate] is `estimate_history` of `daqe_tf/jpeg/history.py`, step for step:
 * 1. grid: the mean |difference| across each of the 8 row (column) phases, over at most
 *    [MAX_PROFILE_LINES] evenly strided lines, peaks at block boundaries; the file's grid and those
 *    of the two strongest phases per axis are the candidates;
 * 2. tables: on each candidate grid, the DCT of at most [MAX_BLOCKS] evenly thinned 8x8 luma blocks
 *    (BT.601 Y in double precision) is scored against every standard luma table: the mean distance
 *    of the low AC coefficients from the nearest multiple of the step, coefficients within
 *    [ZERO_BAND] steps of zero left out, at least [MIN_COEFFICIENTS] of them (float32, summed in
 *    numpy's order); local minima under [FIT_THRESHOLD] are compressions the pixels went through,
 *    the coarsest per grid counts; where none fits on a grid whose boundaries stand out on both
 *    axes ([PEAK] over the median; not the file's own grid of a JPEG file), each frequency's step is
 *    searched on its own among [CUSTOM_STEPS] (custom tables from cameras and editors), and the
 *    nearest standard quality stands for them;
 * 3. the coarsest of those coarser than the file's tables by [COARSER_LOG_RATIO] (mean log step
 *    ratio) is the earlier compression; its chroma table follows from its quality (IJG scaling), its
 *    chroma layout is the file's (else 4:2:0).
 */
class CompressionHistory(val last: Compression?, val earlier: Compression?, val gridFound: Boolean) {
    val dominant: Compression? get() = earlier ?: last

    /** 0..1: how far the earlier compression's fit is from chance (1 = exact multiples). */
    val confidence: Double get() = if (earlier == null) 0.0 else Math.min(Math.max(1.0 - earlier.misfit / 0.25, 0.0), 1.0)

    fun describe(): String {
        if (last != null) {
            val head = "${last.describe().split(" on ")[0]} file"
            return if (earlier == null) "$head; no earlier compression found" else "$head; earlier compression ≈ ${earlier.describe()}"
        }
        return if (earlier == null) "not a JPEG file; no JPEG trace found" else "not a JPEG file; JPEG trace ≈ ${earlier.describe()}"
    }

    companion object {
        const val FIT_THRESHOLD = 0.15
        const val COARSER_LOG_RATIO = 0.2
        const val MIN_COEFFICIENTS = 200
        const val ZERO_BAND = 0.25f
        const val MAX_BLOCKS = 1024
        const val MAX_PROFILE_LINES = 1024
        /** `STEP_CLIP`: pixel steps are clipped in the profiles, so a few strong edges of the content do not outvote the grid. */
        const val STEP_CLIP = 16.0
        /** A grid whose boundary steps stand this much over the median phase on both axes is searched for custom tables. */
        const val PEAK = 1.1
        /** Custom tables: steps searched per frequency (2..160), coefficients off zero a frequency needs, frequencies that must fit. */
        val CUSTOM_STEPS: FloatArray = FloatArray(159) { (it + 2).toFloat() }
        const val MIN_PER_FREQUENCY = 40
        const val MIN_FITTED_FREQUENCIES = 6
        /** Steps this fine are indistinguishable from 8-bit rounding noise: such tables are not scored. */
        private const val MIN_SCORED_STEP = 3

        /** The scored frequencies, row-major: rows and columns 0..3 without DC. */
        private val SCORED: IntArray = (0 until 64).filter { it / 8 < 4 && it % 8 < 4 && it != 0 }.toIntArray()
        private val F = SCORED.size

        /** Orthonormal 8-point DCT-II matrix, row u = frequency. */
        private val DCT8: DoubleArray = DoubleArray(64) {
            val u = it / 8
            val x = it % 8
            val v = Math.sqrt(2.0 / 8) * Math.cos(Math.PI * (2 * x + 1) * u / 16)
            if (u == 0) v / Math.sqrt(2.0) else v
        }

        /** Qualities whose luma table is scored (every scored step >= [MIN_SCORED_STEP]). */
        private val SCORABLE: IntArray = (1..100).filter { q ->
            SCORED.all { JpegTables.standardLuma(q)[it] >= MIN_SCORED_STEP }
        }.toIntArray()

        /** Where the pixels' history is estimated: the file's compression [last] (null: not a JPEG file). */
        fun estimate(image: Image8, last: Compression?): CompressionHistory {
            val grayscale = image.channels == 1
            val h = image.height
            val w = image.width
            val luma = luma(image)
            val found = ArrayList<Compression>()
            for (grid in candidateGrids(luma, h, w)) {
                val coefficients = blockCoefficients(luma, h, w, grid.y, grid.x, MAX_BLOCKS)
                val misfits = misfitPerQuality(coefficients)
                val qualities = fittedQualities(misfits)
                if (qualities.isNotEmpty()) {
                    val quality = qualities.min()!! // the coarsest compression seen on this grid
                    found.add(Compression(JpegTables.scaleTable(JpegTables.STD_LUMA, quality), null, "gray", quality, true,
                        grid.y, grid.x, misfits[quality - 1]))
                } else if (grid.prominent && (grid.y != 0 || grid.x != 0 || last == null)) { // the file's own grid holds its own tables
                    val custom = customCompression(coefficients, grid.y, grid.x)
                    if (custom != null) found.add(custom)
                }
            }
            val gridFound = found.isNotEmpty()
            val candidates = found.filter { last == null || coarser(it.lumaTable, last.lumaTable) }
            if (candidates.isEmpty()) return CompressionHistory(last, null, gridFound)
            // The coarsest; between equally coarse ones, the better fit (the first of equals, as min() does).
            var earlier = candidates[0]
            for (c in candidates) {
                if (c.quality < earlier.quality || (c.quality == earlier.quality && c.misfit < earlier.misfit)) earlier = c
            }
            if (!grayscale) {
                val layout = if (last != null && last.subsampling != "gray") last.subsampling else "4:2:0"
                earlier = earlier.withChroma(JpegTables.scaleTable(JpegTables.STD_CHROMA, earlier.quality), layout)
            }
            return CompressionHistory(last, earlier, gridFound)
        }

        /** JPEG's Y (BT.601 full range) in double, row-major; gray pixels as they are. */
        fun luma(image: Image8): DoubleArray {
            val n = image.width * image.height
            if (image.channels == 1) return DoubleArray(n) { image[it].toDouble() }
            return DoubleArray(n) { image[3 * it] * 0.299 + image[3 * it + 1] * 0.587 + image[3 * it + 2] * 0.114 }
        }

        /**
         * `boundary_profile`: mean |difference| across each of the 8 phases along [axis] (0: between
         * rows, 1: between columns), entry g the step between pixel g - 1 and g (mod 8), over the median.
         */
        fun boundaryProfile(luma: DoubleArray, height: Int, width: Int, axis: Int): DoubleArray {
            require(axis == 0 || axis == 1) { "axis must be 0 or 1" }
            val along = if (axis == 1) width else height
            val across = if (axis == 1) height else width
            val stride = Math.max(1, across / MAX_PROFILE_LINES)
            val n = (along - 1) / 8 * 8
            if (n <= 0) return DoubleArray(8) { 1.0 }
            val sums = DoubleArray(8)
            var lines = 0
            var line = 0
            while (line < across) {
                for (k in 0 until n) {
                    val a = if (axis == 1) line * width + k else k * width + line
                    val b = if (axis == 1) a + 1 else a + width
                    sums[k % 8] += Math.min(Math.abs(luma[b] - luma[a]), STEP_CLIP)
                }
                lines++
                line += stride
            }
            val count = (lines.toLong() * (n / 8)).toDouble()
            // diff[k] is the step before pixel k + 1: rolled by one.
            val profile = DoubleArray(8) { sums[(it + 7) % 8] / count }
            val sorted = profile.sortedArray()
            val median = (sorted[3] + sorted[4]) / 2.0
            val scale = Math.max(median, 1e-9)
            for (g in 0 until 8) profile[g] = profile[g] / scale
            return profile
        }

        /** A candidate grid (a block corner at ([y], [x]) mod 8); [prominent]: its boundaries stand out on both axes. */
        data class Grid(val y: Int, val x: Int, val prominent: Boolean)

        /** `candidate_grids`: (0, 0), then the grids at the strongest boundary phases (2 per axis). */
        fun candidateGrids(luma: DoubleArray, height: Int, width: Int, perAxis: Int = 2): List<Grid> {
            val rows = boundaryProfile(luma, height, width, 0)
            val cols = boundaryProfile(luma, height, width, 1)
            val grids = ArrayList<Grid>()
            grids.add(Grid(0, 0, rows[0] >= PEAK && cols[0] >= PEAK))
            for (gy in strongest(rows, perAxis)) for (gx in strongest(cols, perAxis)) {
                if (gy != 0 || gx != 0) grids.add(Grid(gy, gx, rows[gy] >= PEAK && cols[gx] >= PEAK))
            }
            return grids
        }

        /** Indices of the [count] largest values, ties by index (a stable argsort of the negated profile). */
        private fun strongest(profile: DoubleArray, count: Int): List<Int> =
            (0 until 8).sortedWith(Comparator { a, b -> java.lang.Double.compare(-profile[a], -profile[b]) }).take(count)

        /**
         * `_block_origins`: top-left corners (y, x) of the whole 8x8 blocks on the grid through
         * ([gy], [gx]), row-major, evenly thinned to [maxBlocks] as numpy's linspace picks them.
         */
        fun blockOrigins(height: Int, width: Int, gy: Int, gx: Int, maxBlocks: Int): IntArray {
            val y0 = Math.floorMod(gy, 8)
            val x0 = Math.floorMod(gx, 8)
            val ny = if (height - 8 < y0) 0 else (height - 8 - y0) / 8 + 1
            val nx = if (width - 8 < x0) 0 else (width - 8 - x0) / 8 + 1
            val total = ny * nx
            if (total == 0) return IntArray(0)
            val picked = if (total > maxBlocks) {
                val step = (total - 1).toDouble() / (maxBlocks - 1)
                IntArray(maxBlocks) { if (it == maxBlocks - 1) total - 1 else (it * step).toInt() }
            } else {
                IntArray(total) { it }
            }
            val out = IntArray(picked.size * 2)
            for (i in picked.indices) {
                out[2 * i] = y0 + picked[i] / nx * 8
                out[2 * i + 1] = x0 + picked[i] % nx * 8
            }
            return out
        }

        /**
         * `block_coefficients` restricted to the scored frequencies: per block, the DCT of the
         * level-shifted 8x8 luma block at those frequencies (N x 15, block-major).
         */
        fun blockCoefficients(luma: DoubleArray, height: Int, width: Int, gy: Int, gx: Int, maxBlocks: Int): DoubleArray {
            val origins = blockOrigins(height, width, gy, gx, maxBlocks)
            val blocks = origins.size / 2
            val out = DoubleArray(blocks * F)
            val block = DoubleArray(64)
            val rowsDct = DoubleArray(4 * 8) // (DCT8 @ X)[u][b] for u < 4
            for (i in 0 until blocks) {
                val y = origins[2 * i]
                val x = origins[2 * i + 1]
                for (a in 0 until 8) for (b in 0 until 8) block[a * 8 + b] = luma[(y + a) * width + x + b] - 128.0
                for (u in 0 until 4) for (b in 0 until 8) {
                    var s = 0.0
                    for (a in 0 until 8) s += DCT8[u * 8 + a] * block[a * 8 + b]
                    rowsDct[u * 8 + b] = s
                }
                for (f in 0 until F) {
                    val u = SCORED[f] / 8
                    val v = SCORED[f] % 8
                    var s = 0.0
                    for (b in 0 until 8) s += rowsDct[u * 8 + b] * DCT8[v * 8 + b]
                    out[i * F + f] = s
                }
            }
            return out
        }

        /**
         * `misfit_per_quality`: for each quality 1..100 (index quality - 1), the mean distance in steps
         * of the [coefficients] (from [blockCoefficients]) from the nearest multiple of that standard
         * luma table; infinite where the table is not scored or fewer than [MIN_COEFFICIENTS] count.
         */
        fun misfitPerQuality(coefficients64: DoubleArray): DoubleArray {
            val out = DoubleArray(100) { Double.POSITIVE_INFINITY }
            val blocks = coefficients64.size / F
            if (blocks == 0) return out
            val coefficients = FloatArray(coefficients64.size) { coefficients64[it].toFloat() }
            val distance = FloatArray(coefficients.size)
            val steps = FloatArray(F)
            for (q in SCORABLE) {
                val table = JpegTables.standardLuma(q)
                for (f in 0 until F) steps[f] = table[SCORED[f]].toFloat()
                var counted = 0
                for (i in coefficients.indices) {
                    val ratio = coefficients[i] / steps[i % F]
                    if (Math.abs(ratio) >= ZERO_BAND) {
                        counted++
                        distance[i] = Math.abs(ratio - Math.rint(ratio.toDouble()).toFloat())
                    } else {
                        distance[i] = 0f
                    }
                }
                if (counted >= MIN_COEFFICIENTS) out[q - 1] = NumpySum.pairwise(distance, 0, distance.size).toDouble() / counted
            }
            return out
        }

        /** `fitted_qualities`: qualities at local minima (within 2 on each side) of [misfit] under [FIT_THRESHOLD]. */
        fun fittedQualities(misfit: DoubleArray): List<Int> {
            val found = ArrayList<Int>()
            for (i in misfit.indices) {
                if (!(misfit[i] < FIT_THRESHOLD)) continue
                var lowest = Double.POSITIVE_INFINITY
                for (j in Math.max(0, i - 2)..Math.min(misfit.size - 1, i + 2)) lowest = Math.min(lowest, misfit[j])
                if (misfit[i] <= lowest) found.add(i + 1)
            }
            return found
        }

        /**
         * `misfit` (double precision) of [coefficients] to a whole [table]: mean distance in steps from
         * the nearest multiple over those at least [ZERO_BAND] steps off zero; infinite when fewer than
         * [MIN_COEFFICIENTS] are.
         */
        fun misfit(coefficients: DoubleArray, table: DoubleArray): Double {
            val distances = DoubleArray(coefficients.size)
            var used = 0
            for (i in coefficients.indices) {
                val ratio = coefficients[i] / table[SCORED[i % F]]
                if (Math.abs(ratio) >= ZERO_BAND) distances[used++] = Math.abs(ratio - Math.rint(ratio))
            }
            if (used < MIN_COEFFICIENTS) return Double.POSITIVE_INFINITY
            return NumpySum.pairwise(distances, 0, used) / used
        }

        /**
         * `fitted_steps`: per scored frequency, the coarsest of [CUSTOM_STEPS] at a local minimum (2
         * steps each side) of the misfit under [FIT_THRESHOLD], with at least [MIN_PER_FREQUENCY]
         * coefficients off zero; NaN where none fits.
         */
        fun fittedSteps(coefficients64: DoubleArray): DoubleArray {
            val blocks = coefficients64.size / F
            val values = FloatArray(coefficients64.size) { coefficients64[it].toFloat() }
            val s = CUSTOM_STEPS.size
            val misfits = DoubleArray(s * F)
            val sums = FloatArray(F)
            val counts = IntArray(F)
            for (k in 0 until s) {
                val step = CUSTOM_STEPS[k]
                java.util.Arrays.fill(sums, 0f)
                java.util.Arrays.fill(counts, 0)
                for (n in 0 until blocks) for (f in 0 until F) { // summed block by block, as numpy reduces that axis
                    val ratio = values[n * F + f] / step
                    val used = Math.abs(ratio) >= ZERO_BAND
                    sums[f] += if (used) Math.abs(ratio - Math.rint(ratio.toDouble()).toFloat()) else 0f
                    if (used) counts[f]++
                }
                for (f in 0 until F) {
                    misfits[k * F + f] = if (counts[f] >= MIN_PER_FREQUENCY) sums[f].toDouble() / Math.max(counts[f], 1) else Double.POSITIVE_INFINITY
                }
            }
            val steps = DoubleArray(F) { Double.NaN }
            for (f in 0 until F) {
                for (k in s - 1 downTo 0) {
                    val m = misfits[k * F + f]
                    if (!(m < FIT_THRESHOLD)) continue
                    var lowest = Double.POSITIVE_INFINITY
                    for (j in Math.max(0, k - 2)..Math.min(s - 1, k + 2)) lowest = Math.min(lowest, misfits[j * F + f])
                    if (m <= lowest) {
                        steps[f] = CUSTOM_STEPS[k].toDouble()
                        break
                    }
                }
            }
            return steps
        }

        /** `nearest_standard_quality`: the quality whose scored luma steps are nearest [steps] (NaN ignored) in mean log distance. */
        fun nearestStandardQuality(steps: DoubleArray): Int {
            val known = (0 until F).filter { !steps[it].isNaN() }
            val terms = DoubleArray(known.size)
            var best = 0
            var bestErr = Double.NaN
            for (q in 1..100) {
                val table = JpegTables.standardLuma(q)
                for ((i, f) in known.withIndex()) terms[i] = Math.abs(Math.log(table[SCORED[f]].toDouble()) - Math.log(steps[f]))
                val err = NumpySum.pairwise(terms, 0, terms.size) / known.size
                if (best == 0 || err < bestErr) {
                    best = q
                    bestErr = err
                }
            }
            return best
        }

        /** `_custom_compression`: custom tables fitted frequency by frequency on grid ([gy], [gx]), null when too few fit. */
        private fun customCompression(coefficients: DoubleArray, gy: Int, gx: Int): Compression? {
            val steps = fittedSteps(coefficients)
            if (steps.count { !it.isNaN() } < MIN_FITTED_FREQUENCIES) return null
            val quality = nearestStandardQuality(steps)
            // The standard table at that quality with the fitted steps in their frequencies.
            val table = DoubleArray(64) { JpegTables.standardLuma(quality)[it].toDouble() }
            for (f in 0 until F) if (!steps[f].isNaN()) table[SCORED[f]] = steps[f]
            return Compression(JpegTables.scaleTable(JpegTables.STD_LUMA, quality), null, "gray", quality, false, gy, gx,
                misfit(coefficients, table))
        }

        /** `_coarser`: [table]'s scored steps on average more than [COARSER_LOG_RATIO] (log) coarser than [than]'s. */
        fun coarser(table: IntArray, than: IntArray): Boolean {
            val terms = DoubleArray(F) { Math.log(table[SCORED[it]].toDouble()) - Math.log(Math.max(than[SCORED[it]], 1).toDouble()) }
            return NumpySum.pairwise(terms, 0, F) / F > COARSER_LOG_RATIO
        }
    }
}
