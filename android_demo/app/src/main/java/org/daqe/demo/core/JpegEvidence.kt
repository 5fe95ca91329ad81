package org.daqe.demo.core

/**
 * The compression the enhancer assumes, and where that knowledge came from (`JpegEvidence` of
 * `daqe_tf/inference/pipeline.py`). [source]: "jpeg-standard" or "jpeg-custom" (the file's own
 * tables), "history" (an earlier, coarser compression its pixels show), "blind" (a JPEG trace in
 * pixels without a JPEG file), "blind-fallback" (neither: QF 75 assumed) or "override" (the
 * quality the user set). ([gridY], [gridX]): a block corner of the assumed compression, (0, 0) for
 * the file's own grid. [history]: what the pixels told (null for an override).
 */
class JpegEvidence(
    val lumaTable: IntArray,
    val chromaTable: IntArray?,
    val subsampling: String,
    val quality: Int,
    val source: String,
    val gridY: Int = 0,
    val gridX: Int = 0,
    val history: CompressionHistory? = null
) {
    /** Edge rows above the image that put the assumed grid at the origin of the padded image. */
    val padTop: Int get() = Math.floorMod(-gridY, 8)

    /** Edge columns left of the image, likewise. */
    val padLeft: Int get() = Math.floorMod(-gridX, 8)

    fun describe(): String = when {
        source == "override" -> "QF $quality as set by the caller"
        source == "blind-fallback" -> "not a JPEG file and no JPEG trace found: assumed QF $quality"
        history != null -> history.describe()
        else -> "QF $quality"
    }

    companion object {
        const val BLIND_FALLBACK_QUALITY = 75

        /**
         * `jpeg_evidence`: the compression that dominates [image] (stored orientation) with the file's
         * [header] (null: not a JPEG file): the file's tables, unless its pixels show an earlier, coarser
         * compression on any grid ([CompressionHistory.estimate]); without a file, the compression found
         * in the pixels, else QF 75. [quality] overrides all of it: the standard tables at that quality
         * on the file's grid, nothing estimated.
         */
        @Throws(JpegFormatException::class)
        fun of(header: JpegHeader?, image: Image8, quality: Int? = null): JpegEvidence {
            val grayscale = image.channels == 1
            var subsampling = if (grayscale) "gray" else "4:2:0"
            if (header != null) {
                subsampling = header.subsampling
                if (!QMapSpec.SUBSAMPLING_FACTORS.containsKey(subsampling)) {
                    throw JpegFormatException("unsupported chroma subsampling $subsampling")
                }
            }
            if (quality != null) {
                val assumed = Compression.forQuality(quality, grayscale, if (grayscale) "4:2:0" else subsampling)
                return JpegEvidence(assumed.lumaTable, assumed.chromaTable, assumed.subsampling, assumed.quality, "override")
            }
            val last = if (header == null) null else Compression.ofFile(header.lumaTable, header.chromaTable, subsampling)
            val history = CompressionHistory.estimate(image, last)
            val earlier = history.earlier
            val used: Compression
            val source: String
            when {
                earlier != null -> {
                    used = earlier
                    source = if (last != null) "history" else "blind"
                }
                last != null -> {
                    used = last
                    source = if (last.standard) "jpeg-standard" else "jpeg-custom"
                }
                else -> {
                    used = Compression.forQuality(BLIND_FALLBACK_QUALITY, grayscale)
                    source = "blind-fallback"
                }
            }
            // A gray JPEG trace in colour pixels: the luma table stands in for chroma.
            val chroma = if (grayscale) null else used.chromaTable ?: used.lumaTable
            return JpegEvidence(used.lumaTable, chroma, if (grayscale) "gray" else used.subsampling, used.quality, source,
                used.gridY, used.gridX, history)
        }
    }
}

/** The user's strength: `blend_strength` and `check_strength` of the Python pipeline. */
object Strength {
    const val MAX = 2.0f

    fun check(strength: Float): Float {
        require(strength >= 0f && strength <= MAX) { "strength must be in 0..2, got $strength" }
        return strength
    }

    /**
     * clip(round([original] + [strength] x ([enhanced] - [original]))) in float32, halves to even: 0
     * keeps the input, 1 is the model's output, above 1 exaggerates the correction.
     */
    fun blend(original: Image8, enhanced: Image8, strength: Float): Image8 {
        require(original.width == enhanced.width && original.height == enhanced.height && original.channels == enhanced.channels) {
            "blend needs images of the same shape"
        }
        if (strength == 1f) return enhanced
        val out = ByteArray(original.data.size)
        for (i in out.indices) {
            val o = original[i].toFloat()
            val mixed = o + strength * (enhanced[i].toFloat() - o)
            val r = Math.rint(mixed.toDouble())
            out[i] = (if (r <= 0.0) 0 else if (r >= 255.0) 255 else r.toInt()).toByte()
        }
        return Image8(original.width, original.height, original.channels, out)
    }
}

/** Edge padding above and left, and the crop back: how a shifted grid is put at the origin (`enhance_evidence`). */
object GridAlign {
    /** [image] with [top] rows and [left] columns repeating its first row and column above and left (numpy's "edge" pad). */
    fun pad(image: Image8, top: Int, left: Int): Image8 {
        require(top >= 0 && left >= 0) { "padding must not be negative" }
        if (top == 0 && left == 0) return image
        val c = image.channels
        val w = image.width + left
        val h = image.height + top
        val out = ByteArray(w * h * c)
        for (y in 0 until h) {
            val sy = Math.max(y - top, 0)
            for (x in 0 until w) {
                val src = (sy * image.width + Math.max(x - left, 0)) * c
                val dst = (y * w + x) * c
                for (ch in 0 until c) out[dst + ch] = image.data[src + ch]
            }
        }
        return Image8(w, h, c, out)
    }

    /** [image] without its first [top] rows and [left] columns. */
    fun crop(image: Image8, top: Int, left: Int): Image8 {
        require(top in 0 until image.height && left in 0 until image.width) { "crop ($top, $left) outside ${image.width}x${image.height}" }
        if (top == 0 && left == 0) return image
        val c = image.channels
        val w = image.width - left
        val h = image.height - top
        val out = ByteArray(w * h * c)
        for (y in 0 until h) System.arraycopy(image.data, ((y + top) * image.width + left) * c, out, y * w * c, w * c)
        return Image8(w, h, c, out)
    }
}
