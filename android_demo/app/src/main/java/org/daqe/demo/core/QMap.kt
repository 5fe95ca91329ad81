package org.daqe.demo.core

/**
 * The Q-map: for every pixel, the quantization step that acted on its DCT frequency, on the
 * network's scale log2(step) / 8. It tells the model how hard the file was compressed and where
 * the 8x8 block grid is. Port of `daqe_tf/jpeg/qmap.py`.
 *
 * Luma pixel (y, x) sits at frequency (y % 8, x % 8); its chroma sample at
 * ((y / sv) % 8, (x / sh) % 8), (sv, sh) being the chroma subsampling factors.
 * Coordinates are always absolute image coordinates, so a window gets the Q-map the whole image
 * has there, whatever the subsampling period.
 */
class QMapSpec(luma: IntArray, chroma: IntArray?, val chromaV: Int, val chromaH: Int) {
    private val lumaSteps: FloatArray = normalizeTable(luma)
    private val chromaSteps: FloatArray? = if (chroma == null) null else normalizeTable(chroma)

    /** 1 (luma) for grayscale models, 2 (luma, chroma) for colour models. */
    val channels: Int get() = if (chromaSteps == null) 1 else 2

    init {
        require(chromaV >= 1 && chromaH >= 1) { "invalid chroma factors ($chromaV, $chromaH)" }
    }

    /**
     * Writes the Q-map of the window [y0, y0 + height) x [x0, x0 + width) into [dest] from [offset],
     * HxWxQ interleaved like the model input. The window may extend past the image: the grid continues.
     */
    fun fill(y0: Int, x0: Int, height: Int, width: Int, dest: FloatArray, offset: Int = 0) {
        val q = channels
        val chroma = chromaSteps
        var i = offset
        for (y in y0 until y0 + height) {
            val lumaRow = (y and 7) * 8
            val chromaRow = (Math.floorDiv(y, chromaV) and 7) * 8
            for (x in x0 until x0 + width) {
                dest[i] = lumaSteps[lumaRow + (x and 7)]
                if (chroma != null) dest[i + 1] = chroma[chromaRow + (Math.floorDiv(x, chromaH) and 7)]
                i += q
            }
        }
    }

    /** The whole-image Q-map, HxWxQ. */
    fun whole(height: Int, width: Int): FloatArray {
        val out = FloatArray(height * width * channels)
        fill(0, 0, height, width, out, 0)
        return out
    }

    companion object {
        /** Chroma subsampling factors (vertical, horizontal) in luma pixels, as `SUBSAMPLING_FACTORS`. */
        val SUBSAMPLING_FACTORS: Map<String, Pair<Int, Int>> = mapOf(
            "gray" to Pair(1, 1),
            "4:4:4" to Pair(1, 1),
            "4:2:2" to Pair(1, 2),
            "4:2:0" to Pair(2, 2),
            "4:4:0" to Pair(2, 1),
            "4:1:1" to Pair(1, 4)
        )

        private const val LN2 = 0.6931471805599453

        /**
         * log2(max(step, 1)) / 8 as float32. Computed in double and rounded once, i.e. correctly
         * rounded; numpy's float32 log2 is 1 ulp off for a few steps above 255 (16-bit tables only).
         */
        fun normalizeStep(step: Int): Float = (Math.log(maxOf(step, 1).toDouble()) / LN2).toFloat() / 8f

        private fun normalizeTable(table: IntArray): FloatArray {
            require(table.size == 64) { "a quantization table has 64 steps, got ${table.size}" }
            return FloatArray(64) { normalizeStep(table[it]) }
        }

        /** Same as `qmap_from_tables(luma, chroma, h, w, subsampling)`: chroma null means grayscale. */
        fun of(luma: IntArray, chroma: IntArray?, subsampling: String): QMapSpec {
            if (chroma == null) return QMapSpec(luma, null, 1, 1)
            val factors = SUBSAMPLING_FACTORS[subsampling]
                ?: throw IllegalArgumentException("unsupported subsampling '$subsampling'")
            return QMapSpec(luma, chroma, factors.first, factors.second)
        }

        /**
         * The Q-map a model with [modelChannels] image channels gets for this file, as the Python
         * pipeline picks it: a grayscale file through a colour model uses the luma table for chroma
         * (4:4:4); a grayscale model sees the luma table only.
         */
        /**
         * The Q-map of the compression [evidence] assumes, for a model with [modelChannels] image
         * channels (`window_qmaps`): gray content through a colour model takes the luma table for
         * chroma (4:4:4); a grayscale model sees the luma table only. Block grid at the origin: the
         * enhancer pads a shifted grid there first.
         */
        fun forEvidence(evidence: JpegEvidence, modelChannels: Int): QMapSpec {
            require(modelChannels == 1 || modelChannels == 3) { "model channels must be 1 or 3, got $modelChannels" }
            if (modelChannels == 1) return of(evidence.lumaTable, null, "gray")
            val chroma = evidence.chromaTable ?: return of(evidence.lumaTable, evidence.lumaTable, "4:4:4")
            return of(evidence.lumaTable, chroma, evidence.subsampling)
        }

        @Throws(JpegFormatException::class)
        fun forModel(header: JpegHeader, modelChannels: Int): QMapSpec {
            require(modelChannels == 1 || modelChannels == 3) { "model channels must be 1 or 3, got $modelChannels" }
            val subsampling = header.subsampling
            if (!SUBSAMPLING_FACTORS.containsKey(subsampling)) {
                throw JpegFormatException("unsupported chroma subsampling $subsampling")
            }
            if (modelChannels == 1) return of(header.lumaTable, null, "gray")
            val chroma = header.chromaTable ?: return of(header.lumaTable, header.lumaTable, "4:4:4")
            return of(header.lumaTable, chroma, subsampling)
        }
    }
}
