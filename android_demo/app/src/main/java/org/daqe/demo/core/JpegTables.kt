package org.daqe.demo.core

/**
 * The standard (IJG / libjpeg, JPEG Annex K) quantization tables in natural (row-major) order,
 * their quality scaling and quality estimation. Port of `daqe_tf/jpeg/tables.py`: [scaleTable] is
 * libjpeg's integer arithmetic, bit for bit.
 */
object JpegTables {
    val STD_LUMA: IntArray = intArrayOf(
        16, 11, 10, 16, 24, 40, 51, 61,
        12, 12, 14, 19, 26, 58, 60, 55,
        14, 13, 16, 24, 40, 57, 69, 56,
        14, 17, 22, 29, 51, 87, 80, 62,
        18, 22, 37, 56, 68, 109, 103, 77,
        24, 35, 55, 64, 81, 104, 113, 92,
        49, 64, 78, 87, 103, 121, 120, 101,
        72, 92, 95, 98, 112, 100, 103, 99
    )

    val STD_CHROMA: IntArray = intArrayOf(
        17, 18, 24, 47, 99, 99, 99, 99,
        18, 21, 26, 66, 99, 99, 99, 99,
        24, 26, 56, 99, 99, 99, 99, 99,
        47, 66, 99, 99, 99, 99, 99, 99,
        99, 99, 99, 99, 99, 99, 99, 99,
        99, 99, 99, 99, 99, 99, 99, 99,
        99, 99, 99, 99, 99, 99, 99, 99,
        99, 99, 99, 99, 99, 99, 99, 99
    )

    fun checkQuality(quality: Int) {
        require(quality in 1..100) { "JPEG quality must be in 1..100, got $quality" }
    }

    /** libjpeg's `jpeg_quality_scaling`: the percentage applied to the base tables. */
    fun qualityScaling(quality: Int): Int {
        checkQuality(quality)
        return if (quality < 50) 5000 / quality else 200 - 2 * quality
    }

    /** [base] scaled to [quality] as libjpeg does it; steps clipped to 1..255 ([forceBaseline]) or 1..32767. */
    fun scaleTable(base: IntArray, quality: Int, forceBaseline: Boolean = true): IntArray {
        val scale = qualityScaling(quality).toLong()
        val top = if (forceBaseline) 255L else 32767L
        return IntArray(base.size) { Math.min(Math.max((base[it] * scale + 50) / 100, 1L), top).toInt() }
    }

    private val ALL_LUMA: Array<IntArray> = Array(100) { scaleTable(STD_LUMA, it + 1) }
    private val ALL_CHROMA: Array<IntArray> = Array(100) { scaleTable(STD_CHROMA, it + 1) }

    /** The standard luma (chroma) table at [quality] 1..100, shared: do not modify. */
    internal fun standardLuma(quality: Int): IntArray = ALL_LUMA[quality - 1]
    internal fun standardChroma(quality: Int): IntArray = ALL_CHROMA[quality - 1]

    /**
     * `estimate_quality`: the IJG quality of a file's tables and whether they are exactly the standard
     * ones (the highest such quality where several share them), else the nearest standard quality
     * in mean |log step| distance.
     */
    fun estimateQuality(luma: IntArray, chroma: IntArray?): Pair<Int, Boolean> {
        require(luma.size == 64 && (chroma == null || chroma.size == 64)) { "a quantization table has 64 steps" }
        var exactQuality = 0
        var best = 0
        var bestErr = Double.POSITIVE_INFINITY
        val terms = DoubleArray(64)
        for (q in 1..100) {
            var err = logDistance(ALL_LUMA[q - 1], luma, terms)
            var exact = ALL_LUMA[q - 1].contentEquals(luma)
            if (chroma != null) {
                err += logDistance(ALL_CHROMA[q - 1], chroma, terms)
                exact = exact && ALL_CHROMA[q - 1].contentEquals(chroma)
            }
            if (exact) exactQuality = q
            if (err < bestErr) {
                bestErr = err
                best = q
            }
        }
        return if (exactQuality > 0) Pair(exactQuality, true) else Pair(best, false)
    }

    private fun logDistance(standard: IntArray, table: IntArray, terms: DoubleArray): Double {
        for (i in 0 until 64) terms[i] = Math.abs(Math.log(standard[i].toDouble()) - Math.log(Math.max(table[i], 1).toDouble()))
        return NumpySum.pairwise(terms, 0, 64) / 64.0
    }
}

/**
 * numpy's summation order (`pairwise_sum` in its add reduction: 8 accumulators for up to 128 values,
 * halves above), so sums come out bit for bit as in Python where that matters.
 */
internal object NumpySum {
    fun pairwise(a: DoubleArray, offset: Int, n: Int): Double {
        if (n < 8) {
            var res = 0.0
            for (i in 0 until n) res += a[offset + i]
            return res
        }
        if (n <= 128) {
            val r = DoubleArray(8) { a[offset + it] }
            var i = 8
            while (i < n - n % 8) {
                for (j in 0 until 8) r[j] += a[offset + i + j]
                i += 8
            }
            var res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            while (i < n) res += a[offset + i++]
            return res
        }
        var half = n / 2
        half -= half % 8
        return pairwise(a, offset, half) + pairwise(a, offset + half, n - half)
    }

    fun pairwise(a: FloatArray, offset: Int, n: Int): Float {
        if (n < 8) {
            var res = 0f
            for (i in 0 until n) res += a[offset + i]
            return res
        }
        if (n <= 128) {
            val r = FloatArray(8) { a[offset + it] }
            var i = 8
            while (i < n - n % 8) {
                for (j in 0 until 8) r[j] += a[offset + i + j]
                i += 8
            }
            var res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            while (i < n) res += a[offset + i++]
            return res
        }
        var half = n / 2
        half -= half % 8
        return pairwise(a, offset, half) + pairwise(a, offset + half, n - half)
    }
}
