package org.daqe.demo.core

/**
 * The exits of the early-exit model, as the enhancer calls them: fixed-size batches of
 * patchSize x patchSize patches (fixed shapes suit GPU delegates and let buffers be reused).
 * Implemented with LiteRT on the device and with plain functions in the JVM tests.
 */
interface PatchModel {
    /** Image channels C: 3 for colour models, 1 for grayscale ones (Q-map channels follow). */
    val channels: Int
    val patchSize: Int
    val batchSize: Int
    val exitCount: Int

    /**
     * Runs exit [exit] on the first [count] of batchSize patches in [image] (B x P x P x C) and
     * [qmap] (B x P x P x Q); writes B x P x P x C values in [0, 1] to [out]. Slots past [count]
     * repeat the last real patch (a model whose texture module attends across the batch then sees
     * only this exit's patches) and their outputs are ignored.
     */
    fun runExit(exit: Int, count: Int, image: FloatArray, qmap: FloatArray, out: FloatArray)
}

/**
 * The model's defocus head on a fixed windowSize x windowSize window, giving two maps per 16x16 cell:
 * the predicted defocus, log1p(blur sigma), shown to people, and the routing value the thresholds
 * split (the defocus itself, or the model's learned readout; see [RoutingSignal]). One call gives
 * both, so every model takes the same path; one that routes by defocus writes it to both.
 */
interface DefocusModel {
    val windowSize: Int

    /** [image] D x D x C and [qmap] D x D x Q in; (D / 16) x (D / 16) values out to [defocus] and to [routing]. */
    fun runDefocus(image: FloatArray, qmap: FloatArray, defocus: FloatArray, routing: FloatArray)
}

/** An enhanced image and how it was made. */
class EnhanceResult(
    val image: Image8,
    /** The patch plan; [exits] holds the exit used for each of its tiles, row-major. */
    val plan: TilePlan,
    val exits: IntArray,
    /** ceil(H / 16) x ceil(W / 16) predicted defocus per cell, for display; null when not needed (one exit). */
    val defocusMap: FloatArray?,
    /** The routing value per cell, same layout, that [exits] were chosen by; null with [defocusMap]. */
    val routingMap: FloatArray?,
    val defocusNanos: Long,
    val exitNanos: Long
) {
    /** How many patches each exit enhanced. */
    fun exitCounts(exitCount: Int): IntArray {
        val counts = IntArray(exitCount)
        for (e in exits) counts[e]++
        return counts
    }
}

/**
 * Whole-image enhancement with per-patch exits: defocus and routing maps -> exit per patch (by the
 * routing map) -> batched exits -> blended output. The same steps as the Python pipeline's
 * `enhance_pixels` (tiles, Q-map, gray/colour adaptation, routing, blending, rounding).
 *
 * Windows that run past the image edge are padded to the fixed model size by repeating the edge
 * pixels; the Q-map continues the block grid there. Only the in-image part of each output is blended.
 * Patches are processed one row of the plan at a time, so memory is one row of outputs plus one
 * blending band.
 */
class TiledEnhancer(
    private val model: PatchModel,
    private val defocus: DefocusModel?,
    private val thresholds: FloatArray,
    /** Overlap between patches, a multiple of 16 below the patch size. */
    private val overlap: Int,
    /** Overlap between defocus windows. */
    private val defocusOverlap: Int = 64
) {
    init {
        require(model.channels == 1 || model.channels == 3) { "model channels must be 1 or 3, got ${model.channels}" }
        require(model.batchSize >= 1 && model.exitCount >= 1) { "model needs a batch size and at least one exit" }
        require(thresholds.size == model.exitCount - 1) {
            "${model.exitCount} exits need ${model.exitCount - 1} thresholds, got ${thresholds.size}"
        }
        Clusters.checkThresholds(thresholds)
        if (defocus != null) require(defocus.windowSize % CellGrid.CELL == 0) { "defocus window must be a multiple of 16" }
    }

    /** Enhances [image] (stored orientation) using the tables of [header]; [progress] gets (done, total) windows. */
    @Throws(JpegFormatException::class)
    fun enhance(image: Image8, header: JpegHeader, progress: ((Int, Int) -> Unit)? = null): EnhanceResult {
        val spec = QMapSpec.forModel(header, model.channels)
        if (image.channels == 3 && model.channels == 1) {
            val y = enhanceMatched(LumaChroma.luma(image), spec, progress)
            return EnhanceResult(LumaChroma.withLuma(image, y.image), y.plan, y.exits, y.defocusMap, y.routingMap, y.defocusNanos, y.exitNanos)
        }
        if (image.channels == 1 && model.channels == 3) {
            val rgb = enhanceMatched(LumaChroma.replicate(image), spec, progress)
            return EnhanceResult(
                LumaChroma.channelMean(rgb.image), rgb.plan, rgb.exits, rgb.defocusMap, rgb.routingMap, rgb.defocusNanos, rgb.exitNanos
            )
        }
        return enhanceMatched(image, spec, progress)
    }

    private fun enhanceMatched(image: Image8, spec: QMapSpec, progress: ((Int, Int) -> Unit)?): EnhanceResult {
        val plan = TilePlan.plan(image.height, image.width, model.patchSize, overlap, CellGrid.CELL)
        val defocusPlan = if (defocus != null && model.exitCount > 1) {
            TilePlan.plan(image.height, image.width, defocus.windowSize, defocusOverlap, CellGrid.CELL)
        } else {
            null
        }
        val total = plan.size + (defocusPlan?.size ?: 0)
        val started = System.nanoTime()
        var maps: CellMaps? = null
        val exits: IntArray
        if (defocusPlan != null && defocus != null) {
            maps = cellMaps(image, spec, defocus, defocusPlan, progress, total)
            exits = Clusters.assign(plan, maps.routing, CellGrid.cells(image.height), CellGrid.cells(image.width), thresholds)
        } else {
            exits = IntArray(plan.size) { model.exitCount - 1 }
        }
        val defocusDone = System.nanoTime()
        val out = runExits(image, spec, plan, exits) { done -> progress?.invoke(total - plan.size + done, total) }
        return EnhanceResult(out, plan, exits, maps?.defocus, maps?.routing, defocusDone - started, System.nanoTime() - defocusDone)
    }

    /** The two whole-image maps of [DefocusModel], ceil(H / 16) x ceil(W / 16) each. */
    private class CellMaps(val defocus: FloatArray, val routing: FloatArray)

    /** Runs the defocus head window by window; each 16x16 cell of both maps comes from the window that owns it. */
    private fun cellMaps(
        image: Image8, spec: QMapSpec, model: DefocusModel, plan: TilePlan,
        progress: ((Int, Int) -> Unit)?, total: Int
    ): CellMaps {
        val size = model.windowSize
        val local = size / CellGrid.CELL
        val mapWidth = CellGrid.cells(image.width)
        val maps = CellMaps(FloatArray(CellGrid.cells(image.height) * mapWidth), FloatArray(CellGrid.cells(image.height) * mapWidth))
        val rowOwner = CellGrid.rowOwners(plan)
        val colOwner = CellGrid.colOwners(plan)
        val pixels = FloatArray(size * size * image.channels)
        val qmap = FloatArray(size * size * spec.channels)
        val defocusOut = FloatArray(local * local)
        val routingOut = FloatArray(local * local)
        for (r in 0 until plan.rows) {
            for (c in 0 until plan.cols) {
                val t = plan.tile(r, c)
                Patches.pack(image, t.y0, t.x0, size, pixels, 0)
                spec.fill(t.y0, t.x0, size, size, qmap, 0)
                model.runDefocus(pixels, qmap, defocusOut, routingOut)
                for (cy in rowOwner.indices) {
                    if (rowOwner[cy] != r) continue
                    for (cx in colOwner.indices) {
                        if (colOwner[cx] != c) continue
                        val cell = (cy - t.y0 / CellGrid.CELL) * local + (cx - t.x0 / CellGrid.CELL)
                        maps.defocus[cy * mapWidth + cx] = defocusOut[cell]
                        maps.routing[cy * mapWidth + cx] = routingOut[cell]
                    }
                }
                progress?.invoke(r * plan.cols + c + 1, total)
            }
        }
        return maps
    }

    /** Per plan row: batch the row's patches by exit, run them, then blend the row in plan order. */
    private fun runExits(image: Image8, spec: QMapSpec, plan: TilePlan, exits: IntArray, tileDone: (Int) -> Unit): Image8 {
        val p = model.patchSize
        val c = image.channels
        val patchValues = p * p * c
        val patchQ = p * p * spec.channels
        val batch = model.batchSize
        val pixels = FloatArray(batch * patchValues)
        val qmap = FloatArray(batch * patchQ)
        val outputs = FloatArray(batch * patchValues)
        val rowOutputs = FloatArray(plan.cols * patchValues)
        val members = IntArray(plan.cols)
        val result = Image8.blank(image.width, image.height, c)
        val rowBytes = image.width * c
        val stitcher = Stitcher(plan, c) { y0, y1, bytes -> System.arraycopy(bytes, 0, result.data, y0 * rowBytes, (y1 - y0) * rowBytes) }
        for (r in 0 until plan.rows) {
            for (exit in 0 until model.exitCount) {
                var n = 0
                for (col in 0 until plan.cols) if (exits[r * plan.cols + col] == exit) members[n++] = col
                var first = 0
                while (first < n) {
                    val count = minOf(batch, n - first)
                    for (slot in 0 until count) {
                        val t = plan.tile(r, members[first + slot])
                        Patches.pack(image, t.y0, t.x0, p, pixels, slot * patchValues)
                        spec.fill(t.y0, t.x0, p, p, qmap, slot * patchQ)
                    }
                    for (slot in count until batch) {
                        System.arraycopy(pixels, (count - 1) * patchValues, pixels, slot * patchValues, patchValues)
                        System.arraycopy(qmap, (count - 1) * patchQ, qmap, slot * patchQ, patchQ)
                    }
                    model.runExit(exit, count, pixels, qmap, outputs)
                    for (slot in 0 until count) {
                        System.arraycopy(outputs, slot * patchValues, rowOutputs, members[first + slot] * patchValues, patchValues)
                    }
                    first += count
                }
            }
            for (col in 0 until plan.cols) {
                stitcher.add(rowOutputs, col * patchValues, p * c)
                tileDone(stitcher.added)
            }
        }
        check(stitcher.done) { "stitcher received ${stitcher.added} of ${plan.size} tiles" }
        return result
    }
}

/** Cuts fixed-size model inputs out of the image. */
object Patches {
    /**
     * Writes the size x size window at (y0, x0) of [image] to [dest] from [offset] as floats x / 255
     * (float32 division, as Python's `astype(np.float32) / 255.0`), HxWxC. Positions past the image
     * edge repeat the last row/column.
     */
    fun pack(image: Image8, y0: Int, x0: Int, size: Int, dest: FloatArray, offset: Int) {
        val c = image.channels
        var i = offset
        for (y in 0 until size) {
            val sy = minOf(y0 + y, image.height - 1)
            for (x in 0 until size) {
                val src = (sy * image.width + minOf(x0 + x, image.width - 1)) * c
                for (ch in 0 until c) dest[i++] = image[src + ch].toFloat() / 255f
            }
        }
    }
}
