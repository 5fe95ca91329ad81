package org.daqe.demo.core

/** One colour component of the frame (Y, Cb, Cr, ...); [tableId] links it to its quantization table. */
data class Component(val id: Int, val hSampling: Int, val vSampling: Int, val tableId: Int)

/**
 * What the enhancer needs from a JPEG header, as written in the file.
 *
 * Mirrors `daqe_tf.jpeg.reader.JpegHeader`: [tables] maps a table id to its 64 steps in natural
 * (row-major) order, [tablePrecision] maps a table id to 8 or 16 bits.
 */
class JpegHeader(
    val width: Int,
    val height: Int,
    val precision: Int,
    val progressive: Boolean,
    val components: List<Component>,
    val tables: Map<Int, IntArray>,
    val tablePrecision: Map<Int, Int>
) {
    val isGrayscale: Boolean get() = components.size == 1

    /** Table of the first component (Y). The parser guarantees every component's table exists. */
    val lumaTable: IntArray get() = tables.getValue(components[0].tableId)

    /** Table of the second component (Cb); null for grayscale. */
    val chromaTable: IntArray? get() = if (isGrayscale) null else tables.getValue(components[1].tableId)

    /**
     * "gray", "4:4:4", "4:2:2", "4:2:0", "4:4:0", "4:1:1", or the raw factors such as "h3v1/h1v1/h1v1",
     * named exactly as the Python reader names them so both sides pick the same Q-map.
     */
    val subsampling: String
        get() {
            if (isGrayscale) return "gray"
            val factors = components.map { Pair(it.hSampling, it.vSampling) }
            if (factors.toSet().size == 1) return "4:4:4"
            if (factors.size == 3 && factors[1] == factors[2]) {
                val (lh, lv) = factors[0]
                val (ch, cv) = factors[1]
                if (lh % ch == 0 && lv % cv == 0) {
                    val name = RATIO_NAMES[Pair(lh / ch, lv / cv)]
                    if (name != null) return name
                }
            }
            return factors.joinToString("/") { "h${it.first}v${it.second}" }
        }

    private companion object {
        /** (luma h / chroma h, luma v / chroma v) -> conventional J:a:b name. */
        val RATIO_NAMES = mapOf(
            Pair(1, 1) to "4:4:4",
            Pair(2, 1) to "4:2:2",
            Pair(2, 2) to "4:2:0",
            Pair(1, 2) to "4:4:0",
            Pair(4, 1) to "4:1:1"
        )
    }
}
