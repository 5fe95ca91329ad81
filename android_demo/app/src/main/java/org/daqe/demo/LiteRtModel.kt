package org.daqe.demo

import android.content.Context
import android.util.Log
import org.daqe.demo.core.CascadeModel
import org.daqe.demo.core.CascadeNames
import org.daqe.demo.core.DefocusModel
import org.daqe.demo.core.ModelMeta
import org.daqe.demo.core.PatchModel
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import java.io.Closeable
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.FloatBuffer
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/**
 * The exported model behind the core's [PatchModel], [DefocusModel] and, for a cascade export,
 * [CascadeModel], on one LiteRT Interpreter.
 *
 * Not thread-safe: create, warm up, run and close it on the same single worker thread.
 * Every signature runs at one fixed shape (exits and cascade stages [B,P,P,C], defocus [1,D,D,C]),
 * so the direct buffers are allocated once and reused. The Java API never resizes for ByteBuffer
 * inputs, only for multi-dimensional arrays, so [warmUp] feeds each signature one such array to set
 * its shape. A cascade's feature and summary shapes are the model's own, read from the stage
 * outputs after that first run ([branches]).
 */
class LiteRtModel private constructor(
    private val interpreter: Interpreter,
    private val gpu: GpuDelegate?,
    val meta: ModelMeta,
    /** What runs the model, for the UI: "GPU" or "CPU (XNNPACK, n threads)". */
    val backend: String
) : PatchModel, DefocusModel, CascadeModel, Closeable {
    override val channels = meta.imageChannels
    override val patchSize = meta.patchSize
    override val batchSize = ModelContract.EXIT_BATCH
    override val exitCount = meta.numExits
    override val windowSize = ModelContract.DEFOCUS_WINDOW

    private val exitImage = Floats(batchSize * patchSize * patchSize * channels)
    private val exitQmap = Floats(batchSize * patchSize * patchSize * meta.qmapChannels)
    private val exitOut = Floats(batchSize * patchSize * patchSize * channels)
    private val defocusImage = Floats(windowSize * windowSize * channels)
    private val defocusQmap = Floats(windowSize * windowSize * meta.qmapChannels)
    private val defocusOut = Floats((windowSize / ModelContract.DEFOCUS_CELL) * (windowSize / ModelContract.DEFOCUS_CELL))
    /** Files exported before the routing output route by defocus: there the defocus buffer is both maps. */
    private val routingOut = if (meta.routingOutput != null) Floats(defocusOut.count) else defocusOut
    private val defocusOutputs: Map<String, Any> = listOfNotNull(
        ModelContract.OUTPUT_DEFOCUS to defocusOut.bytes,
        meta.routingOutput?.let { it to routingOut.bytes }
    ).toMap()

    /** A direct native-order buffer and a float view of it, reused for every call. */
    private class Floats(val count: Int) {
        val bytes: ByteBuffer = ByteBuffer.allocateDirect(count * 4).order(ByteOrder.nativeOrder())
        val floats: FloatBuffer = bytes.asFloatBuffer()

        fun write(values: FloatArray) {
            floats.rewind()
            floats.put(values, 0, count)
            bytes.rewind()
        }

        fun read(values: FloatArray) {
            floats.rewind()
            floats.get(values, 0, count)
        }
    }

    override fun runExit(exit: Int, count: Int, image: FloatArray, qmap: FloatArray, out: FloatArray) {
        exitImage.write(image)
        exitQmap.write(qmap)
        exitOut.bytes.rewind()
        interpreter.runSignature(
            mapOf(ModelContract.INPUT_IMAGE to exitImage.bytes, ModelContract.INPUT_QMAP to exitQmap.bytes),
            mapOf(ModelContract.OUTPUT_ENHANCED to exitOut.bytes),
            ModelContract.exitSignature(exit)
        )
        exitOut.read(out)
    }

    /**
     * A cascade branch's signatures and buffers: its stage's outputs, its inputs from the stage
     * before ([previous]) and its head's features input, sized from the shapes the stage gave.
     * Stage and head share the exits' image, Q-map and output buffers (same shapes, one call at a time).
     */
    private inner class Branch(m: Int, names: CascadeNames, val featureShape: IntArray, val summaryShape: IntArray, previous: Branch?) {
        val stage = names.stages[m]
        val head = names.heads[m]
        val features = Floats(featureShape.fold(1) { a, b -> a * b })
        val summary = Floats(summaryShape.fold(1) { a, b -> a * b })
        val score = if (m < exitCount - 1) Floats(batchSize) else null
        val context = previous?.let { Floats(it.features.count) }
        val carried = previous?.let { Floats(it.summary.count) }
        val headFeatures = Floats(features.count)
        val stageInputs: Map<String, Any> = listOfNotNull(
            ModelContract.INPUT_IMAGE to exitImage.bytes,
            ModelContract.INPUT_QMAP to exitQmap.bytes,
            context?.let { ModelContract.INPUT_CONTEXT to it.bytes },
            carried?.let { ModelContract.INPUT_SUMMARY to it.bytes }
        ).toMap()
        val stageOutputs: Map<String, Any> = listOfNotNull(
            names.features to features.bytes,
            names.summary to summary.bytes,
            score?.let { names.score to it.bytes }
        ).toMap()
        val headInputs: Map<String, Any> = mapOf(ModelContract.INPUT_FEATURES to headFeatures.bytes, ModelContract.INPUT_IMAGE to exitImage.bytes)
    }

    /** A cascade's branches, set to their shapes by running each stage and head once ([probeBranches]); empty otherwise. */
    private val branches: List<Branch> by lazy(LazyThreadSafetyMode.NONE) { probeBranches() }

    override fun featureSize(stage: Int): Int = branches[stage].features.count / batchSize

    override fun summarySize(stage: Int): Int = branches[stage].summary.count / batchSize

    override fun runStage(
        stage: Int, count: Int, image: FloatArray, qmap: FloatArray, context: FloatArray?, summary: FloatArray?,
        featuresOut: FloatArray, summaryOut: FloatArray, scoreOut: FloatArray?
    ) {
        val b = branches[stage]
        exitImage.write(image)
        exitQmap.write(qmap)
        b.context?.write(requireNotNull(context) { "stage $stage needs the context of stage ${stage - 1}" })
        b.carried?.write(requireNotNull(summary) { "stage $stage needs the summary of stage ${stage - 1}" })
        b.features.bytes.rewind()
        b.summary.bytes.rewind()
        b.score?.bytes?.rewind()
        interpreter.runSignature(b.stageInputs, b.stageOutputs, b.stage)
        b.features.read(featuresOut)
        b.summary.read(summaryOut)
        if (scoreOut != null) requireNotNull(b.score) { "the deepest stage has no score" }.read(scoreOut)
    }

    override fun runHead(stage: Int, count: Int, features: FloatArray, image: FloatArray, out: FloatArray) {
        val b = branches[stage]
        b.headFeatures.write(features)
        exitImage.write(image)
        exitOut.bytes.rewind()
        interpreter.runSignature(b.headInputs, mapOf(ModelContract.OUTPUT_ENHANCED to exitOut.bytes), b.head)
        exitOut.read(out)
    }

    /**
     * Runs every stage and head once on zero arrays at the fixed batch shape (setting their shapes),
     * reading each stage's feature and summary shapes, which the next stage's inputs take.
     */
    private fun probeBranches(): List<Branch> {
        val names = meta.cascade ?: return emptyList()
        val found = ArrayList<Branch>()
        for (m in 0 until exitCount) {
            val previous = found.lastOrNull()
            val inputs = HashMap<String, Any>()
            inputs[ModelContract.INPUT_IMAGE] = zeros(batchSize, patchSize, patchSize, channels)
            inputs[ModelContract.INPUT_QMAP] = zeros(batchSize, patchSize, patchSize, meta.qmapChannels)
            if (previous != null) {
                inputs[ModelContract.INPUT_CONTEXT] = zeros(*previous.featureShape)
                inputs[ModelContract.INPUT_SUMMARY] = zeros(*previous.summaryShape)
            }
            interpreter.runSignature(inputs, emptyMap(), names.stages[m])
            val features = outputShape(names.features, names.stages[m], 4)
            val summary = outputShape(names.summary, names.stages[m], 2)
            if (m < exitCount - 1) check(outputShape(names.score, names.stages[m], 2)[1] == 1) { "'${names.stages[m]}' score must be [B, 1]" }
            interpreter.runSignature(
                mapOf(ModelContract.INPUT_FEATURES to zeros(*features), ModelContract.INPUT_IMAGE to zeros(batchSize, patchSize, patchSize, channels)),
                emptyMap(), names.heads[m]
            )
            val enhanced = outputShape(ModelContract.OUTPUT_ENHANCED, names.heads[m], 4)
            check(enhanced.contentEquals(intArrayOf(batchSize, patchSize, patchSize, channels))) {
                "'${names.heads[m]}' gives ${enhanced.toList()}, expected [$batchSize, $patchSize, $patchSize, $channels]"
            }
            found.add(Branch(m, names, features, summary, previous))
        }
        return found
    }

    /** The shape output [name] of signature [key] had in its last run: rank [rank], the fixed batch first. */
    private fun outputShape(name: String, key: String, rank: Int): IntArray {
        val shape = interpreter.getOutputTensorFromSignature(name, key).shape()
        check(shape.size == rank && shape[0] == batchSize && shape.all { it > 0 }) {
            "'$key' output '$name' has shape ${shape.toList()}, expected rank $rank with batch $batchSize"
        }
        return shape
    }

    override fun runDefocus(image: FloatArray, qmap: FloatArray, defocus: FloatArray, routing: FloatArray) {
        defocusImage.write(image)
        defocusQmap.write(qmap)
        defocusOut.bytes.rewind()
        routingOut.bytes.rewind()
        interpreter.runSignature(
            mapOf(ModelContract.INPUT_IMAGE to defocusImage.bytes, ModelContract.INPUT_QMAP to defocusQmap.bytes),
            defocusOutputs,
            ModelContract.DEFOCUS_SIGNATURE
        )
        defocusOut.read(defocus)
        routingOut.read(routing)
    }

    /**
     * Sets every signature to its fixed shape and runs it once, so the first photo does not pay for
     * tensor allocation, delegate preparation and XNNPACK packing. Returns the time it took.
     */
    fun warmUp(): Long {
        val start = System.nanoTime()
        if (meta.cascade != null) {
            // The cascade path calls only the stages and heads; the probe runs each once.
            check(branches.size == exitCount) { "cascade has ${branches.size} branches for $exitCount exits" }
            return System.nanoTime() - start
        }
        val q = meta.qmapChannels
        if (exitCount > 1) {
            withShapeArrays(1, windowSize, channels, q) { image, qmap ->
                defocusOut.bytes.rewind()
                routingOut.bytes.rewind()
                interpreter.runSignature(
                    mapOf(ModelContract.INPUT_IMAGE to image, ModelContract.INPUT_QMAP to qmap),
                    defocusOutputs,
                    ModelContract.DEFOCUS_SIGNATURE
                )
            }
        }
        for (exit in 0 until exitCount) {
            withShapeArrays(batchSize, patchSize, channels, q) { image, qmap ->
                exitOut.bytes.rewind()
                interpreter.runSignature(
                    mapOf(ModelContract.INPUT_IMAGE to image, ModelContract.INPUT_QMAP to qmap),
                    mapOf(ModelContract.OUTPUT_ENHANCED to exitOut.bytes),
                    ModelContract.exitSignature(exit)
                )
            }
        }
        return System.nanoTime() - start
    }

    /** A zero-filled float array of [shape] ([a][b]...): a shape-setting input. */
    private fun zeros(vararg shape: Int): Any = java.lang.reflect.Array.newInstance(java.lang.Float.TYPE, *shape)

    /** Zero-filled [batch][size][size][channels] arrays: the shape-setting inputs of [warmUp]. */
    private inline fun withShapeArrays(batch: Int, size: Int, c: Int, q: Int, run: (Any, Any) -> Unit) {
        val image = Array(batch) { Array(size) { Array(size) { FloatArray(c) } } }
        val qmap = Array(batch) { Array(size) { Array(size) { FloatArray(q) } } }
        run(image, qmap)
    }

    override fun close() {
        interpreter.close()
        gpu?.close()
    }

    companion object {
        private const val TAG = "LiteRtModel"

        /** 2 to 4 threads: enough for XNNPACK, leaving cores for the UI. */
        fun cpuThreads(): Int = Runtime.getRuntime().availableProcessors().div(2).coerceIn(2, 4)

        /**
         * Loads the model from assets: on the GPU delegate when the device supports it and the model
         * warms up on it, otherwise on the CPU with XNNPACK. The reason for a fallback is logged and
         * returned in [Opened.note]. Call on the worker thread.
         */
        fun open(context: Context, preferGpu: Boolean = true): Opened {
            val meta = ModelContract.loadMeta(context.assets)
            val model = mapAsset(context, ModelContract.MODEL_ASSET)
            var note: String? = null
            if (preferGpu) {
                try {
                    val compatibility = CompatibilityList()
                    val delegate = try {
                        if (compatibility.isDelegateSupportedOnThisDevice) GpuDelegate(compatibility.bestOptionsForThisDevice) else null
                    } finally {
                        compatibility.close()
                    }
                    if (delegate != null) {
                        val opened = create(model, meta, delegate, Interpreter.Options().addDelegate(delegate), "GPU")
                        try {
                            return Opened(opened, opened.warmUp(), null)
                        } catch (e: Exception) {
                            opened.close()
                            throw e
                        }
                    }
                    note = "GPU delegate not supported on this device"
                } catch (e: Exception) {
                    // Dynamic-shape signatures or unsupported ops can make the delegate refuse the model.
                    note = "GPU delegate failed (${e.message}); using the CPU"
                    Log.w(TAG, note, e)
                }
            }
            val threads = cpuThreads()
            val options = Interpreter.Options().setNumThreads(threads).setUseXNNPACK(true)
            val opened = create(model, meta, null, options, "CPU (XNNPACK, $threads threads)")
            return Opened(opened, opened.warmUp(), note)
        }

        private fun create(
            model: MappedByteBuffer, meta: ModelMeta, gpu: GpuDelegate?, options: Interpreter.Options, backend: String
        ): LiteRtModel {
            val interpreter = try {
                Interpreter(model, options)
            } catch (e: Exception) {
                gpu?.close()
                throw e
            }
            try {
                ModelContract.checkSignatures(interpreter.signatureKeys, meta)
                if (meta.cascade != null) {
                    ModelContract.checkCascadeOutputs({ interpreter.getSignatureOutputs(it) }, meta)
                } else if (meta.numExits > 1) {
                    ModelContract.checkDefocusOutputs(interpreter.getSignatureOutputs(ModelContract.DEFOCUS_SIGNATURE), meta)
                }
                return LiteRtModel(interpreter, gpu, meta, backend)
            } catch (e: Exception) {
                interpreter.close()
                gpu?.close()
                throw e
            }
        }

        private fun mapAsset(context: Context, name: String): MappedByteBuffer =
            context.assets.openFd(name).use { fd ->
                FileInputStream(fd.fileDescriptor).use { stream ->
                    stream.channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
                }
            }
    }

    /** A warmed-up model, the warm-up time, and why the GPU was not used (null if it was or not asked). */
    class Opened(val model: LiteRtModel, val warmUpNanos: Long, val note: String?)
}
