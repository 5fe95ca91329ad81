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

/**
 * A "cascade" model's branches, as the enhancer calls them (metadata `routing` "cascade"): no map
 * decides up front. Stage m runs branch m on a batch of patches; for m > 0 it also takes, per patch,
 * the `features` and `summary` stage m - 1 gave for that same patch, so only the patches still
 * running are fed (packed to the front of the batch). Its score says whether a patch is done: it
 * leaves through exit m at the first stage whose score is > 0, and the deepest stage has no score.
 * Head m turns stage m's features and the patch into the exit's output. Batches are batchSize
 * patchSize x patchSize patches (fixed shapes, as for [PatchModel]); slots past `count` repeat the
 * last real one (inputs of every kind) and their outputs are ignored.
 */
interface CascadeModel {
    /** As [PatchModel.channels]. */
    val channels: Int
    val patchSize: Int
    val batchSize: Int
    /** Stages, heads and exits alike; exit m is head m. */
    val exitCount: Int

    /** Values per patch of stage [stage]'s `features` (h x w x F) and of its `summary` (D). */
    fun featureSize(stage: Int): Int
    fun summarySize(stage: Int): Int

    /**
     * Stage [stage] on [image] (B x P x P x C) and [qmap] (B x P x P x Q); [context] and [summary] are
     * null for stage 0, else B x featureSize(stage - 1) and B x summarySize(stage - 1). Writes
     * B x featureSize(stage) to [featuresOut], B x summarySize(stage) to [summaryOut] and, except for
     * the deepest stage ([scoreOut] null there), B scores to [scoreOut].
     */
    fun runStage(
        stage: Int, count: Int, image: FloatArray, qmap: FloatArray, context: FloatArray?, summary: FloatArray?,
        featuresOut: FloatArray, summaryOut: FloatArray, scoreOut: FloatArray?
    )

    /** Head [stage] on [features] (B x featureSize(stage)) and [image] (B x P x P x C); writes B x P x P x C values in [0, 1] to [out]. */
    fun runHead(stage: Int, count: Int, features: FloatArray, image: FloatArray, out: FloatArray)
}

/** An enhanced image and how it was made. */
class EnhanceResult(
    val image: Image8,
    /** The patch plan; [exits] holds the exit used for each of its tiles, row-major (empty when the model did not run: strength 0). */
    val plan: TilePlan,
    val exits: IntArray,
    /**
     * ceil(H / 16) x ceil(W / 16) predicted defocus per cell, for display; null when the defocus head
     * did not run (one exit, or a cascade not given a [DefocusModel]).
     */
    val defocusMap: FloatArray?,
    /** The routing value per cell, same layout, that [exits] were chosen by; null when not computed (always for a cascade). */
    val routingMap: FloatArray?,
    val defocusNanos: Long,
    val exitNanos: Long,
    /**
     * Rows and columns of edge padding above and left of the image (the assumed compression's grid
     * put at the origin): [plan] and the cell maps are those of the padded image. 0 when not shifted.
     */
    val offsetY: Int = 0,
    val offsetX: Int = 0,
    /** The compression the Q-map was built from; null where the caller gave tables alone. */
    val evidence: JpegEvidence? = null
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
 * A [CascadeModel] replaces the first two steps: its stages choose the exits as the patches run
 * (`run_cascade`), band by band of plan rows within the model's compute cap ([CascadeCap]), and the
 * defocus head, if given at all, runs only for [EnhanceResult.defocusMap].
 *
 * Windows that run past the image edge are padded to the fixed model size by repeating the edge
 * pixels; the Q-map continues the block grid there. Only the in-image part of each output is blended.
 * Patches are processed one row of the plan at a time (a cascade: one band of rows, which decide
 * together), so memory is one row's (band's) outputs plus one blending band.
 */
class TiledEnhancer private constructor(
    private val model: PatchModel?,
    private val cascade: CascadeModel?,
    private val defocus: DefocusModel?,
    private val thresholds: FloatArray,
    private val overlap: Int,
    private val defocusOverlap: Int,
    private val cap: CascadeCap?,
    private val band: Int
) {
    /**
     * Routes each patch by [defocus]'s routing map split at [thresholds]; [overlap]: between patches,
     * a multiple of 16 below the patch size; [defocusOverlap]: between defocus windows.
     */
    constructor(model: PatchModel, defocus: DefocusModel?, thresholds: FloatArray, overlap: Int, defocusOverlap: Int = 64) :
        this(model, null, defocus, thresholds, overlap, defocusOverlap, null, CASCADE_BAND)

    /**
     * Routes each patch through [cascade]'s stages (no thresholds: the scores decide). [defocus]: null,
     * or a head to run only for the defocus map shown to people (it costs a pass; nothing depends on it).
     * [cap]: the model's compute cap ([ModelMeta.cap]), null for none; [band]: at most this many
     * patches decide together (whole plan rows, at least one), Python's `CASCADE_BAND`.
     */
    constructor(
        cascade: CascadeModel, defocus: DefocusModel?, overlap: Int, defocusOverlap: Int = 64,
        cap: CascadeCap? = null, band: Int = CASCADE_BAND
    ) : this(null, cascade, defocus, FloatArray(0), overlap, defocusOverlap, cap, band)

    private val channels = model?.channels ?: cascade!!.channels
    private val patchSize = model?.patchSize ?: cascade!!.patchSize
    private val batchSize = model?.batchSize ?: cascade!!.batchSize
    private val exitCount = model?.exitCount ?: cascade!!.exitCount

    init {
        require(channels == 1 || channels == 3) { "model channels must be 1 or 3, got $channels" }
        require(batchSize >= 1 && exitCount >= 1) { "model needs a batch size and at least one exit" }
        if (model != null) {
            require(thresholds.size == exitCount - 1) { "$exitCount exits need ${exitCount - 1} thresholds, got ${thresholds.size}" }
            Clusters.checkThresholds(thresholds)
        }
        if (cap != null) require(cap.exitCosts.size == exitCount) { "$exitCount exits need ${exitCount} costs, got ${cap.exitCosts.size}" }
        require(band >= 1) { "a cascade band needs at least one patch, got $band" }
        if (defocus != null) require(defocus.windowSize % CellGrid.CELL == 0) { "defocus window must be a multiple of 16" }
    }

    /**
     * Enhances [image] (stored orientation) as the Python pipeline's `enhance` does by default: the
     * compression history of [header] (null: not a JPEG file) and the pixels gives the Q-map
     * ([JpegEvidence.of]). [progress] gets (done, total) windows.
     */
    @Throws(JpegFormatException::class)
    fun enhance(image: Image8, header: JpegHeader?, progress: ((Int, Int) -> Unit)? = null): EnhanceResult =
        enhance(image, JpegEvidence.of(header, image), 1f, progress)

    /**
     * Enhances [image] (stored orientation) assuming [evidence]'s compression (`enhance_evidence`,
     * then `blend_strength`): a grid shifted from the origin is put there by padding edge pixels
     * above and left, and the padding is cut off again; the output is blended with the input by
     * [strength] (0: the input, the model not run; 1: the model's output; up to 2 exaggerates).
     */
    fun enhance(image: Image8, evidence: JpegEvidence, strength: Float = 1f, progress: ((Int, Int) -> Unit)? = null): EnhanceResult {
        Strength.check(strength)
        val top = evidence.padTop
        val left = evidence.padLeft
        if (strength == 0f) {
            val plan = TilePlan.plan(image.height + top, image.width + left, patchSize, overlap, CellGrid.CELL)
            return EnhanceResult(image, plan, IntArray(0), null, null, 0L, 0L, top, left, evidence)
        }
        val spec = QMapSpec.forEvidence(evidence, channels)
        val r = enhanceSpec(GridAlign.pad(image, top, left), spec, progress)
        val out = Strength.blend(image, GridAlign.crop(r.image, top, left), strength)
        return EnhanceResult(out, r.plan, r.exits, r.defocusMap, r.routingMap, r.defocusNanos, r.exitNanos, top, left, evidence)
    }

    /** Enhances [image] with the Q-map [spec] on the image's own grid: gray/colour adaptation, then the model. */
    private fun enhanceSpec(image: Image8, spec: QMapSpec, progress: ((Int, Int) -> Unit)?): EnhanceResult {
        if (image.channels == 3 && channels == 1) {
            val y = enhanceMatched(LumaChroma.luma(image), spec, progress)
            return EnhanceResult(LumaChroma.withLuma(image, y.image), y.plan, y.exits, y.defocusMap, y.routingMap, y.defocusNanos, y.exitNanos)
        }
        if (image.channels == 1 && channels == 3) {
            val rgb = enhanceMatched(LumaChroma.replicate(image), spec, progress)
            return EnhanceResult(
                LumaChroma.channelMean(rgb.image), rgb.plan, rgb.exits, rgb.defocusMap, rgb.routingMap, rgb.defocusNanos, rgb.exitNanos
            )
        }
        return enhanceMatched(image, spec, progress)
    }

    private fun enhanceMatched(image: Image8, spec: QMapSpec, progress: ((Int, Int) -> Unit)?): EnhanceResult {
        val plan = TilePlan.plan(image.height, image.width, patchSize, overlap, CellGrid.CELL)
        // Routing by map needs the head when there is a choice; a cascade only when asked for the map.
        val defocusPlan = if (defocus != null && (cascade != null || exitCount > 1)) {
            TilePlan.plan(image.height, image.width, defocus.windowSize, defocusOverlap, CellGrid.CELL)
        } else {
            null
        }
        val total = plan.size + (defocusPlan?.size ?: 0)
        val started = System.nanoTime()
        val maps = if (defocusPlan != null && defocus != null) cellMaps(image, spec, defocus, defocusPlan, progress, total) else null
        val exits = when {
            cascade != null -> IntArray(plan.size) // filled by the stages as the patches leave
            maps != null -> Clusters.assign(plan, maps.routing, CellGrid.cells(image.height), CellGrid.cells(image.width), thresholds)
            else -> IntArray(plan.size) { exitCount - 1 }
        }
        val defocusDone = System.nanoTime()
        val tileDone: (Int) -> Unit = { done -> progress?.invoke(total - plan.size + done, total) }
        val out = if (cascade != null) {
            runCascade(cascade, image, spec, plan, exits, tileDone)
        } else {
            runExits(model!!, image, spec, plan, exits, tileDone)
        }
        val routing = if (cascade != null) null else maps?.routing
        return EnhanceResult(out, plan, exits, maps?.defocus, routing, defocusDone - started, System.nanoTime() - defocusDone)
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
    private fun runExits(model: PatchModel, image: Image8, spec: QMapSpec, plan: TilePlan, exits: IntArray, tileDone: (Int) -> Unit): Image8 {
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

    /**
     * Band by band (whole plan rows, up to [band] patches; Python's `run_cascade`): stage 0 on all of
     * the band's patches, then each later stage on those still running, in batches of up to batchSize
     * in plan order (a batch may span rows) with the features and summary their previous stage gave.
     * After each stage the patches leaving there run its head, again in plan-order batches; at stage
     * N - 2 the [cap], if any, sends the candidates it holds back out through exit N - 2. Exits go to
     * [exits]; then the band's rows are blended in plan order.
     */
    private fun runCascade(
        model: CascadeModel, image: Image8, spec: QMapSpec, plan: TilePlan, exits: IntArray, tileDone: (Int) -> Unit
    ): Image8 {
        val p = model.patchSize
        val c = image.channels
        val patchValues = p * p * c
        val patchQ = p * p * spec.channels
        val batch = model.batchSize
        val last = model.exitCount - 1
        val featureSizes = IntArray(model.exitCount) { model.featureSize(it) }
        val summarySizes = IntArray(model.exitCount) { model.summarySize(it) }
        val bandRows = maxOf(1, band / plan.cols)
        val capacity = minOf(bandRows, plan.rows) * plan.cols
        // Per band, by patch (its index in the band, plan order): the stage's outputs until its
        // decision, those of the stage before for the patches still running, and the outputs to blend.
        // The deepest stage's features are not stored: all of its patches leave, in the batches they ran in.
        var stored = 0
        var storedSummary = 0
        for (m in 0 until last) {
            stored = maxOf(stored, featureSizes[m])
            storedSummary = maxOf(storedSummary, summarySizes[m])
        }
        var features = FloatArray(capacity * stored)
        var summaries = FloatArray(capacity * storedSummary)
        var previousFeatures = FloatArray(capacity * stored)
        var previousSummaries = FloatArray(capacity * storedSummary)
        val scores = FloatArray(capacity)
        val bandOutputs = FloatArray(capacity * patchValues)
        var running = IntArray(capacity)
        var staying = IntArray(capacity)
        val leaving = IntArray(capacity)
        val candidateScores = FloatArray(capacity)
        val goesDeep = BooleanArray(capacity)
        // One batch: the stage's and head's inputs and outputs by slot.
        val members = IntArray(batch)
        val pixels = FloatArray(batch * patchValues)
        val qmap = FloatArray(batch * patchQ)
        val contexts = Array(model.exitCount) { if (it == 0) null else FloatArray(batch * featureSizes[it - 1]) }
        val carried = Array(model.exitCount) { if (it == 0) null else FloatArray(batch * summarySizes[it - 1]) }
        val featuresOut = Array(model.exitCount) { FloatArray(batch * featureSizes[it]) }
        val summaryOut = Array(model.exitCount) { FloatArray(batch * summarySizes[it]) }
        val headFeatures = Array(last) { FloatArray(batch * featureSizes[it]) }
        val scoreOut = FloatArray(batch)
        val outputs = FloatArray(batch * patchValues)
        val result = Image8.blank(image.width, image.height, c)
        val rowBytes = image.width * c
        val stitcher = Stitcher(plan, c) { y0, y1, bytes -> System.arraycopy(bytes, 0, result.data, y0 * rowBytes, (y1 - y0) * rowBytes) }

        for (firstRow in 0 until plan.rows step bandRows) {
            val base = firstRow * plan.cols
            val size = minOf(bandRows, plan.rows - firstRow) * plan.cols
            val tile = { i: Int -> plan.tile(base + i) }
            // Packs the batch's patches (band indices members[0 until count]), the last repeated.
            fun pack(count: Int) {
                for (slot in 0 until count) {
                    val t = tile(members[slot])
                    Patches.pack(image, t.y0, t.x0, p, pixels, slot * patchValues)
                    spec.fill(t.y0, t.x0, p, p, qmap, slot * patchQ)
                }
                for (slot in count until batch) {
                    System.arraycopy(pixels, (count - 1) * patchValues, pixels, slot * patchValues, patchValues)
                    System.arraycopy(qmap, (count - 1) * patchQ, qmap, slot * patchQ, patchQ)
                }
            }
            // Head [stage] on the batch's slots, its outputs kept per patch.
            fun head(stage: Int, count: Int, stageFeatures: FloatArray) {
                model.runHead(stage, count, stageFeatures, pixels, outputs)
                for (slot in 0 until count) {
                    System.arraycopy(outputs, slot * patchValues, bandOutputs, members[slot] * patchValues, patchValues)
                    exits[base + members[slot]] = stage
                }
            }
            for (i in 0 until size) {
                running[i] = i
                exits[base + i] = -1 // not gone yet; the cap counts the cost of those gone
            }
            var count = size
            for (stage in 0..last) {
                val f = featureSizes[stage]
                val s = summarySizes[stage]
                for (first in 0 until count step batch) {
                    val n = minOf(batch, count - first)
                    for (slot in 0 until n) members[slot] = running[first + slot]
                    pack(n)
                    if (stage > 0) {
                        gather(previousFeatures, featureSizes[stage - 1], members, n, batch, contexts[stage]!!)
                        gather(previousSummaries, summarySizes[stage - 1], members, n, batch, carried[stage]!!)
                    }
                    val score = if (stage < last) scoreOut else null
                    model.runStage(stage, n, pixels, qmap, contexts[stage], carried[stage], featuresOut[stage], summaryOut[stage], score)
                    if (stage == last) {
                        head(stage, n, featuresOut[stage])
                        continue
                    }
                    for (slot in 0 until n) {
                        val i = members[slot]
                        System.arraycopy(featuresOut[stage], slot * f, features, i * f, f)
                        System.arraycopy(summaryOut[stage], slot * s, summaries, i * s, s)
                        scores[i] = scoreOut[slot]
                    }
                }
                if (stage == last) break
                // A patch goes on while its score is not positive (NaN is not <= 0: it leaves, as in Python).
                var kept = 0
                for (j in 0 until count) if (scores[running[j]] <= 0f) staying[kept++] = running[j]
                if (stage == last - 1 && cap != null && kept > 0) {
                    // The band's cost if every candidate left here: those gone (summed in plan order, as
                    // Python does) and all still running at exit N - 2's cost.
                    var cost = 0.0
                    for (i in 0 until size) if (exits[base + i] >= 0) cost += cap.exitCosts[exits[base + i]]
                    cost += cap.exitCosts[last - 1] * count
                    for (j in 0 until kept) candidateScores[j] = scores[staying[j]]
                    val go = cap.deepest(candidateScores, kept, cap.room(cost, size, kept))
                    var granted = 0
                    for (j in 0 until kept) if (go[j]) staying[granted++] = staying[j]
                    kept = granted
                }
                java.util.Arrays.fill(goesDeep, 0, size, false)
                for (j in 0 until kept) goesDeep[staying[j]] = true
                var gone = 0
                for (j in 0 until count) if (!goesDeep[running[j]]) leaving[gone++] = running[j]
                for (first in 0 until gone step batch) {
                    val n = minOf(batch, gone - first)
                    for (slot in 0 until n) members[slot] = leaving[first + slot]
                    pack(n)
                    gather(features, f, members, n, batch, headFeatures[stage])
                    head(stage, n, headFeatures[stage])
                }
                if (kept == 0) break
                val swap = running
                running = staying
                staying = swap
                count = kept
                val fs = features
                features = previousFeatures
                previousFeatures = fs
                val ss = summaries
                summaries = previousSummaries
                previousSummaries = ss
            }
            for (i in 0 until size) {
                stitcher.add(bandOutputs, i * patchValues, p * c)
                tileDone(stitcher.added)
            }
        }
        check(stitcher.done) { "stitcher received ${stitcher.added} of ${plan.size} tiles" }
        return result
    }

    /**
     * Items [items][0 until count] of [size] values each from [src] into the first [count] slots of
     * [dest], then the last of them repeated into the remaining ones up to [slots] (Python's `_fill`).
     */
    private fun gather(src: FloatArray, size: Int, items: IntArray, count: Int, slots: Int, dest: FloatArray) {
        for (slot in 0 until count) System.arraycopy(src, items[slot] * size, dest, slot * size, size)
        for (slot in count until slots) System.arraycopy(dest, (count - 1) * size, dest, slot * size, size)
    }

    companion object {
        /**
         * Patches a cascade decides together (Python's `CASCADE_BAND`), the unit of its compute cap:
         * the whole image up to ~3 MP, so the cap spends a photo's budget where the photo needs it.
         */
        const val CASCADE_BAND = 256
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
