package org.daqe.demo.core

/** 8-bit pixels, height x width x channels interleaved (1 = gray, 3 = RGB): numpy's uint8 HxWxC. */
class Image8(val width: Int, val height: Int, val channels: Int, val data: ByteArray) {
    init {
        require(width > 0 && height > 0) { "image size must be positive, got ${width}x$height" }
        require(channels == 1 || channels == 3) { "channels must be 1 or 3, got $channels" }
        require(data.size == width * height * channels) {
            "expected ${width * height * channels} bytes for ${width}x${height}x$channels, got ${data.size}"
        }
    }

    operator fun get(index: Int): Int = data[index].toInt() and 0xFF

    companion object {
        fun blank(width: Int, height: Int, channels: Int) = Image8(width, height, channels, ByteArray(width * height * channels))
    }
}

/**
 * Gray/colour adaptation between an image and a model, as `enhance_pixels` does in Python:
 * a grayscale model enhances the BT.601 luma of a colour image and keeps its chroma; a colour
 * model runs on a grayscale image replicated to RGB and the result is averaged back to gray.
 * Arithmetic in double, rounded half-to-even like numpy.
 */
object LumaChroma {
    // BT.601 full-range YCbCr (the colour space inside JPEG files) and its inverse (numpy's inv()).
    private val TO_YCC = doubleArrayOf(
        0.299, 0.587, 0.114,
        -0.168736, -0.331264, 0.5,
        0.5, -0.418688, -0.081312
    )
    private val FROM_YCC = doubleArrayOf(
        0.9999999999999999, -1.2188941886925875e-06, 1.4019995886573404,
        0.9999999999999999, -0.34413567816533663, -0.7141361555818124,
        0.9999999999999998, 1.7720000660738162, 4.0629806304661396e-07
    )

    private fun clipRound(v: Double): Int {
        val r = Math.rint(v)
        return if (r <= 0.0) 0 else if (r >= 255.0) 255 else r.toInt()
    }

    private fun dot(m: DoubleArray, row: Int, a: Double, b: Double, c: Double) =
        a * m[3 * row] + b * m[3 * row + 1] + c * m[3 * row + 2]

    /** Luma plane of an RGB image: clip(round(0.299 R + 0.587 G + 0.114 B)). */
    fun luma(rgb: Image8): Image8 {
        require(rgb.channels == 3) { "luma needs an RGB image" }
        val out = ByteArray(rgb.width * rgb.height)
        for (p in out.indices) {
            val y = dot(TO_YCC, 0, rgb[3 * p].toDouble(), rgb[3 * p + 1].toDouble(), rgb[3 * p + 2].toDouble())
            out[p] = clipRound(y).toByte()
        }
        return Image8(rgb.width, rgb.height, 1, out)
    }

    /** [rgb] with its luma replaced by [luma], chroma kept. */
    fun withLuma(rgb: Image8, luma: Image8): Image8 {
        require(rgb.channels == 3 && luma.channels == 1 && rgb.width == luma.width && rgb.height == luma.height) {
            "withLuma needs an RGB image and a luma plane of the same size"
        }
        val out = ByteArray(rgb.data.size)
        for (p in 0 until rgb.width * rgb.height) {
            val r = rgb[3 * p].toDouble()
            val g = rgb[3 * p + 1].toDouble()
            val b = rgb[3 * p + 2].toDouble()
            val y = luma[p].toDouble()
            val cb = dot(TO_YCC, 1, r, g, b) + 128.0 - 128.0
            val cr = dot(TO_YCC, 2, r, g, b) + 128.0 - 128.0
            for (ch in 0 until 3) out[3 * p + ch] = clipRound(dot(FROM_YCC, ch, y, cb, cr)).toByte()
        }
        return Image8(rgb.width, rgb.height, 3, out)
    }

    /** A gray image as RGB with three equal channels. */
    fun replicate(gray: Image8): Image8 {
        require(gray.channels == 1) { "replicate needs a gray image" }
        val out = ByteArray(gray.data.size * 3)
        for (p in gray.data.indices) {
            out[3 * p] = gray.data[p]
            out[3 * p + 1] = gray.data[p]
            out[3 * p + 2] = gray.data[p]
        }
        return Image8(gray.width, gray.height, 3, out)
    }

    /** Mean of the three channels, rounded: how a colour model's output goes back to gray. */
    fun channelMean(rgb: Image8): Image8 {
        require(rgb.channels == 3) { "channelMean needs an RGB image" }
        val out = ByteArray(rgb.width * rgb.height)
        for (p in out.indices) out[p] = clipRound((rgb[3 * p] + rgb[3 * p + 1] + rgb[3 * p + 2]).toDouble() / 3.0).toByte()
        return Image8(rgb.width, rgb.height, 1, out)
    }
}
