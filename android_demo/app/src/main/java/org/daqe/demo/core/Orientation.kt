package org.daqe.demo.core

/**
 * EXIF orientation (1..8): enhancement runs on the stored pixels, where the 8x8 block grid is,
 * and only the result is turned upright for display and saving. Same mapping as
 * `daqe_tf.io.apply_orientation`.
 */
object Orientation {
    fun check(orientation: Int) {
        require(orientation in 1..8) { "EXIF orientation must be 1..8, got $orientation" }
    }

    /** Upright width and height of a stored width x height image. */
    fun uprightSize(width: Int, height: Int, orientation: Int): Pair<Int, Int> {
        check(orientation)
        return if (orientation >= 5) Pair(height, width) else Pair(width, height)
    }

    /** Stored-image pixel index shown at upright position (x, y). */
    fun sourceIndex(x: Int, y: Int, width: Int, height: Int, orientation: Int): Int = when (orientation) {
        1 -> y * width + x
        2 -> y * width + (width - 1 - x)
        3 -> (height - 1 - y) * width + (width - 1 - x)
        4 -> (height - 1 - y) * width + x
        5 -> x * width + y
        6 -> (height - 1 - x) * width + y
        7 -> (height - 1 - x) * width + (width - 1 - y)
        8 -> x * width + (width - 1 - y)
        else -> throw IllegalArgumentException("EXIF orientation must be 1..8, got $orientation")
    }

    /** The image turned upright. */
    fun apply(image: Image8, orientation: Int): Image8 {
        if (orientation == 1) return image
        val (w, h) = uprightSize(image.width, image.height, orientation)
        val c = image.channels
        val out = ByteArray(image.data.size)
        var i = 0
        for (y in 0 until h) for (x in 0 until w) {
            val src = sourceIndex(x, y, image.width, image.height, orientation) * c
            for (ch in 0 until c) out[i++] = image.data[src + ch]
        }
        return Image8(w, h, c, out)
    }

    /** Packed pixels (e.g. Android ARGB ints) turned upright. */
    fun apply(pixels: IntArray, width: Int, height: Int, orientation: Int): IntArray {
        require(pixels.size == width * height) { "expected ${width * height} pixels, got ${pixels.size}" }
        if (orientation == 1) return pixels
        val (w, h) = uprightSize(width, height, orientation)
        val out = IntArray(pixels.size)
        var i = 0
        for (y in 0 until h) for (x in 0 until w) out[i++] = pixels[sourceIndex(x, y, width, height, orientation)]
        return out
    }
}
