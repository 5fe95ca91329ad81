package org.daqe.demo

import android.content.res.AssetManager
import org.json.JSONObject

/**
 * Everything the app assumes about the exported model, in one place: the model is being built
 * alongside the app, so when the exporter changes, this file is the one to update.
 *
 * Signatures of the `.tflite` (inputs float32 NHWC, image in [0, 1]):
 * - `defocus`: `image` [1,H,W,C], `qmap` [1,H,W,Q] -> `defocus` [1,H/16,W/16,1], log1p(blur sigma).
 * - `exit_0` ... `exit_{N-1}`: `image` [B,P,P,C], `qmap` [B,P,P,Q] -> `enhanced` [B,P,P,C].
 *   Exit 0 is the cheapest (for the most defocused patches), exit N-1 the deepest.
 * - `tile_<S>`: `image` [1,S,S,C], `qmap` [1,S,S,Q] -> `enhanced` [1,S,S,C], a fixed-shape entry for
 *   delegates that need static shapes. Not used by this demo (it runs the per-patch exits).
 * C = 3 (Q = 2: luma and chroma step maps) for colour models, C = 1 (Q = 1) for grayscale ones.
 *
 * `model_meta.json` next to the model: {"num_exits":3,"patch":64,"overlap":16,"thresholds":[...],"channels":3}.
 */
object ModelContract {
    const val MODEL_ASSET = "daqe_float16.tflite"
    const val META_ASSET = "model_meta.json"

    const val DEFOCUS_SIGNATURE = "defocus"
    fun exitSignature(exit: Int) = "exit_$exit"
    fun tileSignature(size: Int) = "tile_$size"

    const val INPUT_IMAGE = "image"
    const val INPUT_QMAP = "qmap"
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

    /** The model's metadata. [thresholds]: N-1 non-decreasing patch-defocus thresholds, log1p(sigma). */
    class Meta(val numExits: Int, val patch: Int, val overlap: Int, val thresholds: FloatArray, val channels: Int) {
        val qmapChannels: Int get() = if (channels == 1) 1 else 2

        init {
            require(numExits >= 1) { "num_exits must be at least 1, got $numExits" }
            require(channels == 1 || channels == 3) { "channels must be 1 or 3, got $channels" }
            require(patch > 0 && patch % DEFOCUS_CELL == 0) { "patch must be a positive multiple of 16, got $patch" }
            require(overlap >= 0 && overlap % DEFOCUS_CELL == 0 && overlap < patch) {
                "overlap must be a multiple of 16 below the patch size, got $overlap"
            }
            require(thresholds.size == numExits - 1) { "$numExits exits need ${numExits - 1} thresholds, got ${thresholds.size}" }
        }
    }

    fun parseMeta(json: String): Meta {
        val o = JSONObject(json)
        val t = o.getJSONArray("thresholds")
        return Meta(
            numExits = o.getInt("num_exits"),
            patch = o.getInt("patch"),
            overlap = o.getInt("overlap"),
            thresholds = FloatArray(t.length()) { t.getDouble(it).toFloat() },
            channels = o.getInt("channels")
        )
    }

    fun loadMeta(assets: AssetManager): Meta =
        parseMeta(assets.open(META_ASSET).bufferedReader().use { it.readText() })

    /** Signatures the app calls; a missing one means model and app disagree, so fail early and say which. */
    fun requiredSignatures(meta: Meta): List<String> =
        (if (meta.numExits > 1) listOf(DEFOCUS_SIGNATURE) else emptyList()) + (0 until meta.numExits).map { exitSignature(it) }

    fun checkSignatures(available: Array<String>, meta: Meta) {
        val missing = requiredSignatures(meta).filter { it !in available }
        require(missing.isEmpty()) {
            "the model lacks signatures ${missing.joinToString()} (it has ${available.joinToString()}); re-export it"
        }
    }
}
