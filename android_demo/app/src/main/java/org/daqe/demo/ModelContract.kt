package org.daqe.demo

import android.content.res.AssetManager
import org.daqe.demo.core.ModelMeta

/**
 * Everything the app assumes about the exported model, in one place: when the exporter changes,
 * this file (and, for the metadata keys, [ModelMeta]) is the one to update.
 *
 * Signatures of the `.tflite` (inputs float32 NHWC, image in [0, 1]):
 * - `defocus`: `image` [1,H,W,C], `qmap` [1,H,W,Q] -> `defocus` [1,H/16,W/16,1], log1p(blur sigma),
 *   and `routing` [1,H/16,W/16,1], the value per cell whose patch mean the thresholds split: the
 *   defocus itself when the metadata's `routing` is "defocus", a learned readout when "readout".
 *   The metadata names it (`outputs.routing`); files exported before it have only `defocus` and
 *   route by it. The app reads both: the routing map picks the exits, the defocus map is kept for
 *   display (`EnhanceResult.defocusMap`).
 * - `exit_0` ... `exit_{N-1}`: `image` [B,P,P,C], `qmap` [B,P,P,Q] -> `enhanced` [B,P,P,C].
 *   Exit 0 is the cheapest (for the patches of highest routing value, e.g. the most defocused),
 *   exit N-1 the deepest.
 * - `tile_<S>`: `image` [1,S,S,C], `qmap` [1,S,S,Q] -> `enhanced` [1,S,S,C], a fixed-shape entry for
 *   delegates that need static shapes. Not used by this demo (it runs the per-patch exits).
 * - Cascade models only (metadata `routing` "cascade"), per branch m, named by the metadata's
 *   `signatures.stages` / `signatures.heads` and `outputs.features` / `summary` / `score`:
 *   `stage_m`: `image` [B,P,P,C], `qmap` [B,P,P,Q], for m > 0 also `context` [B,h,w,F] (stage m-1's
 *   `features`) and `summary` [B,D] (stage m-1's `summary`) -> `features` [B,h',w',F'], `summary`
 *   [B,D'] and, except for the deepest stage, `score` [B,1]: the patch leaves through exit m when
 *   it is > 0. `head_m`: `features` (stage m's), `image` [B,P,P,C] -> `enhanced` [B,P,P,C].
 *   The app runs these instead of `defocus` and `exit_k` (`TiledEnhancer`'s cascade path).
 * C = 3 (Q = 2: luma and chroma step maps) for colour models, C = 1 (Q = 1) for grayscale ones.
 *
 * Next to the model, its metadata exactly as the exporter wrote it (`<out>.tflite.json`, the name
 * export.main gives it): [ModelMeta] reads the exporter's keys, so nothing is renamed by hand.
 */
object ModelContract {
    const val MODEL_ASSET = "daqe_float16.tflite"
    /** export.main's `metadata_path`: exporting straight into the assets writes both files. */
    const val META_ASSET = "$MODEL_ASSET.json"

    const val DEFOCUS_SIGNATURE = "defocus"
    fun exitSignature(exit: Int) = "exit_$exit"
    fun tileSignature(size: Int) = "tile_$size"

    const val INPUT_IMAGE = "image"
    const val INPUT_QMAP = "qmap"
    /** A cascade stage's inputs from the stage before, and a head's input (export.converter's names). */
    const val INPUT_CONTEXT = "context"
    const val INPUT_SUMMARY = "summary"
    const val INPUT_FEATURES = "features"
    const val OUTPUT_DEFOCUS = "defocus"
    const val OUTPUT_ENHANCED = "enhanced"

    /** Pixels per defocus cell (the defocus output is H/16 x W/16). */
    const val DEFOCUS_CELL = 16

    // App choices, not model facts: fixed shapes so buffers are allocated once (and GPU-friendly).
    /** Side of the windows the defocus signature runs on (a multiple of 16). */
    const val DEFOCUS_WINDOW = 512
    const val DEFOCUS_OVERLAP = 64
    /** Patches per exit call. */
    const val EXIT_BATCH = 8

    /** Parses [META_ASSET]; the message names the asset and the key that does not fit. */
    fun loadMeta(assets: AssetManager): ModelMeta {
        val text = assets.open(META_ASSET).bufferedReader().use { it.readText() }
        try {
            return ModelMeta.parse(text)
        } catch (e: IllegalArgumentException) {
            throw IllegalArgumentException("assets/$META_ASSET: ${e.message}", e)
        }
    }

    /** Signatures the app calls; a missing one means model and app disagree, so fail early and say which. */
    fun requiredSignatures(meta: ModelMeta): List<String> {
        meta.cascade?.let { return it.stages + it.heads }
        return (if (meta.numExits > 1) listOf(DEFOCUS_SIGNATURE) else emptyList()) + (0 until meta.numExits).map { exitSignature(it) }
    }

    fun checkSignatures(available: Array<String>, meta: ModelMeta) {
        val missing = requiredSignatures(meta).filter { it !in available }
        require(missing.isEmpty()) {
            "the model lacks signatures ${missing.joinToString()} (it has ${available.joinToString()}); re-export it"
        }
    }

    /** Outputs the app reads from [DEFOCUS_SIGNATURE]: the defocus map, and the routing map when the metadata names one. */
    fun requiredDefocusOutputs(meta: ModelMeta): List<String> = listOfNotNull(OUTPUT_DEFOCUS, meta.routingOutput)

    /** Outputs the app reads from cascade signature [key]: features and summary of a stage (and its score, but the deepest's), a head's image. */
    fun requiredCascadeOutputs(meta: ModelMeta, key: String): List<String> {
        val names = meta.cascade ?: return emptyList()
        val stage = names.stages.indexOf(key)
        return when {
            stage >= 0 -> listOfNotNull(names.features, names.summary, if (stage < meta.numExits - 1) names.score else null)
            key in names.heads -> listOf(OUTPUT_ENHANCED)
            else -> emptyList()
        }
    }

    /** [available] (signature -> its outputs) must have what [requiredCascadeOutputs] reads: fail early, say which. */
    fun checkCascadeOutputs(available: (String) -> Array<String>, meta: ModelMeta) {
        val names = meta.cascade ?: return
        for (key in names.stages + names.heads) {
            val outputs = available(key)
            val missing = requiredCascadeOutputs(meta, key).filter { it !in outputs }
            require(missing.isEmpty()) {
                "the model's '$key' signature lacks outputs ${missing.joinToString()} " +
                    "(it has ${outputs.joinToString()}); model and $META_ASSET must come from the same export"
            }
        }
    }

    /** A metadata file from another export than the model would route by a map the model lacks: fail early, say which. */
    fun checkDefocusOutputs(available: Array<String>, meta: ModelMeta) {
        val missing = requiredDefocusOutputs(meta).filter { it !in available }
        require(missing.isEmpty()) {
            "the model's '$DEFOCUS_SIGNATURE' signature lacks outputs ${missing.joinToString()} " +
                "(it has ${available.joinToString()}); model and $META_ASSET must come from the same export"
        }
    }
}
