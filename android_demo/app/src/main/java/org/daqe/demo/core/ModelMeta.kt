package org.daqe.demo.core

/**
 * What the app takes from the exporter's metadata, the `<out>.tflite.json` that
 * `python -m export.main` writes (`export.converter.metadata`), read as written: the exporter's
 * key names, its other keys ignored. A missing or invalid key fails with a message naming it,
 * so a model that does not fit the app is refused before any buffer is sized from it.
 *
 * [thresholds]: [numExits] - 1 non-decreasing thresholds on a patch's mean [routing] value; a
 * cascade's are placeholders (its stage scores decide), read but not checked beyond being numbers.
 * [routing]: which per-cell signal that is (the exporter's `routing`; defocus when absent), or
 * [RoutingSignal.CASCADE].
 * [patchOverlap]: the overlap the Python routing asks `plan_tiles` for (`PATCH_OVERLAP`), so the
 * phone plans the same patches.
 * [routingOutput]: the `defocus` signature's output holding the routing value per cell
 * (`outputs.routing`); null for files exported before it, which route by the defocus output.
 * [cascade]: a cascade's stage and head signatures and their output names; null unless
 * [routing] is [RoutingSignal.CASCADE], which requires it.
 * [cap]: a cascade's compute cap, from the exporter's `model_config` (`max_cost` with one
 * `exit_costs` value per exit); null when `max_cost` is null or absent (files exported before it).
 */
class ModelMeta(
    val imageChannels: Int,
    val qmapChannels: Int,
    val numExits: Int,
    val patchSize: Int,
    val patchOverlap: Int,
    val thresholds: FloatArray,
    val routing: RoutingSignal = RoutingSignal.DEFOCUS,
    val routingOutput: String? = null,
    val cascade: CascadeNames? = null,
    val cap: CascadeCap? = null
) {
    init {
        check(imageChannels == 1 || imageChannels == 3, "image_channels", "must be 1 or 3, got $imageChannels")
        // QMap builds one step map for gray models, luma and chroma for colour ones.
        val q = if (imageChannels == 1) 1 else 2
        check(qmapChannels == q, "qmap_channels", "must be $q for image_channels $imageChannels, got $qmapChannels")
        check(numExits >= 1, "num_exits", "must be at least 1, got $numExits")
        check(patchSize > 0 && patchSize % CellGrid.CELL == 0, "patch_size", "must be a positive multiple of 16, got $patchSize")
        check(patchOverlap >= 0 && patchOverlap % CellGrid.CELL == 0 && patchOverlap < patchSize, "patch_overlap",
            "must be a multiple of 16 below patch_size ($patchSize), got $patchOverlap")
        if (routing != RoutingSignal.CASCADE) {
            check(thresholds.size == numExits - 1, "thresholds", "$numExits exits need ${numExits - 1} thresholds, got ${thresholds.size}")
            try {
                Clusters.checkThresholds(thresholds)
            } catch (e: IllegalArgumentException) {
                throw IllegalArgumentException("model metadata: 'thresholds': ${e.message}")
            }
        }
        // Without its own output, a readout model's thresholds would be compared with defocus values.
        check(routing != RoutingSignal.READOUT || routingOutput != null, "outputs",
            "names no 'routing' output, which routing '${routing.key}' needs (re-export with python -m export.main)")
        check(routing != RoutingSignal.CASCADE || cascade != null, "signatures",
            "names no cascade stages and heads, which routing 'cascade' needs (re-export with python -m export.main)")
        if (cascade != null) {
            check(cascade.stages.size == numExits && cascade.heads.size == numExits, "signatures",
                "must name one stage and one head per exit ($numExits), got ${cascade.stages.size} stages and ${cascade.heads.size} heads")
        }
        if (cap != null) {
            // As the Python model refuses it: only a cascade's stages can be held back.
            check(routing == RoutingSignal.CASCADE, "model_config.max_cost", "caps a cascade's compute; this model routes by '${routing.key}'")
            check(cap.exitCosts.size == numExits, "model_config.exit_costs",
                "must hold one cost per exit ($numExits) for 'max_cost', got ${cap.exitCosts.size}")
        }
    }

    companion object {
        /** The exporter's `METADATA_FORMAT` this parser reads. */
        const val FORMAT = 1
        /** Only DAQE exports have the defocus head and thresholds the per-patch routing needs. */
        const val FAMILY = "daqe"
        /** Inputs and outputs are fed and read as float32 buffers. */
        const val IO_DTYPE = "float32"

        private fun check(ok: Boolean, key: String, what: String) {
            if (!ok) throw IllegalArgumentException("model metadata: '$key' $what")
        }

        /** Parses the exporter's metadata JSON; IllegalArgumentException naming the key when it does not fit. */
        fun parse(json: String): ModelMeta {
            val root = try {
                MiniJson.parse(json)
            } catch (e: IllegalArgumentException) {
                throw IllegalArgumentException("model metadata: not valid JSON (${e.message})")
            }
            val o = root as? Map<*, *> ?: throw IllegalArgumentException("model metadata: expected a JSON object")
            fun get(key: String): Any = o[key]
                ?: throw IllegalArgumentException("model metadata: missing key '$key' (re-export with python -m export.main)")
            fun int(key: String): Int {
                val d = get(key) as? Double
                check(d != null && d == Math.rint(d) && Math.abs(d) <= Int.MAX_VALUE, key, "must be an integer, got ${o[key]}")
                return d!!.toInt()
            }
            fun string(key: String): String = get(key) as? String
                ?: throw IllegalArgumentException("model metadata: '$key' must be a string, got ${o[key]}")

            val format = int("format")
            check(format == FORMAT, "format", "is $format; this app reads format $FORMAT (update ModelMeta or re-export)")
            val family = string("family")
            check(family == FAMILY, "family", "is '$family'; the app routes patches with the defocus head and needs a '$FAMILY' export")
            val io = string("io_dtype")
            check(io == IO_DTYPE, "io_dtype", "must be '$IO_DTYPE', got '$io'")
            val cell = int("defocus_cell")
            check(cell == CellGrid.CELL, "defocus_cell", "must be ${CellGrid.CELL}, got $cell")
            val t = get("thresholds") as? List<*>
                ?: throw IllegalArgumentException("model metadata: 'thresholds' must be an array, got ${o["thresholds"]}")
            val thresholds = FloatArray(t.size) {
                (t[it] as? Double)?.toFloat()
                    ?: throw IllegalArgumentException("model metadata: 'thresholds' must hold numbers, got ${t[it]}")
            }
            // Both routing keys are optional: files exported before them route by defocus.
            val routing = o["routing"]?.let { key ->
                (key as? String)?.let { RoutingSignal.fromKey(it) } ?: throw IllegalArgumentException(
                    "model metadata: 'routing' must be ${RoutingSignal.values().joinToString(" or ") { "'${it.key}'" }}, got $key"
                )
            } ?: RoutingSignal.DEFOCUS
            val outputs = o["outputs"]?.let {
                it as? Map<*, *> ?: throw IllegalArgumentException("model metadata: 'outputs' must be an object, got $it")
            }
            val routingOutput = outputs?.get("routing")?.let {
                it as? String ?: throw IllegalArgumentException("model metadata: 'outputs' must name the routing output by a string, got $it")
            }
            // A cascade runs its own signatures; what it needs is required only for it.
            val cascade = if (routing == RoutingSignal.CASCADE) cascadeNames(o["signatures"], outputs) else null
            val config = o["model_config"]?.let {
                it as? Map<*, *> ?: throw IllegalArgumentException("model metadata: 'model_config' must be an object, got $it")
            }
            return ModelMeta(
                imageChannels = int("image_channels"),
                qmapChannels = int("qmap_channels"),
                numExits = int("num_exits"),
                patchSize = int("patch_size"),
                patchOverlap = int("patch_overlap"),
                thresholds = thresholds,
                routing = routing,
                routingOutput = routingOutput,
                cascade = cascade,
                cap = config?.let { cascadeCap(it) }
            )
        }

        /** `max_cost` and `exit_costs` of the model config; null without a cap (`max_cost` null or absent). */
        private fun cascadeCap(config: Map<*, *>): CascadeCap? {
            val max = config["max_cost"] ?: return null
            val maxCost = max as? Double
                ?: throw IllegalArgumentException("model metadata: 'model_config.max_cost' must be a number or null, got $max")
            val costs = config["exit_costs"] as? List<*> ?: throw IllegalArgumentException(
                "model metadata: 'model_config.exit_costs' must list each exit's cost for 'max_cost', got ${config["exit_costs"]}"
            )
            return CascadeCap(maxCost, DoubleArray(costs.size) {
                costs[it] as? Double
                    ?: throw IllegalArgumentException("model metadata: 'model_config.exit_costs' must hold numbers, got ${costs[it]}")
            })
        }

        /** `signatures.stages` / `heads` and `outputs.features` / `summary` / `score` of a cascade export. */
        private fun cascadeNames(signatures: Any?, outputs: Map<*, *>?): CascadeNames {
            val needs = "which routing 'cascade' needs (re-export with python -m export.main)"
            val s = signatures as? Map<*, *> ?: throw IllegalArgumentException(
                "model metadata: 'signatures' must be an object naming the cascade stages and heads, $needs; got $signatures"
            )
            fun names(key: String): List<String> {
                val list = s[key] as? List<*> ?: throw IllegalArgumentException(
                    "model metadata: 'signatures' names no '$key' list, $needs; got ${s[key]}"
                )
                return list.map {
                    it as? String ?: throw IllegalArgumentException("model metadata: 'signatures' '$key' must hold strings, got $it")
                }
            }
            fun output(key: String): String = outputs?.get(key) as? String ?: throw IllegalArgumentException(
                "model metadata: 'outputs' names no '$key' output by a string, $needs; got ${outputs?.get(key)}"
            )
            return CascadeNames(names("stages"), names("heads"), output("features"), output("summary"), output("score"))
        }
    }
}

/**
 * What a cascade export names (`export.converter`): per exit m the signatures [stages][m] and
 * [heads][m], and the stage outputs [features], [summary] and [score] (the deepest stage has no score).
 * The stages' extra inputs (`context`, `summary`) and the heads' (`features`, `image`) are fixed by
 * the exporter and listed in the app's ModelContract.
 */
class CascadeNames(val stages: List<String>, val heads: List<String>, val features: String, val summary: String, val score: String)

/** How a model picks each patch's exit: the exporter's `routing` key. */
enum class RoutingSignal(val key: String) {
    /** Thresholds on the predicted defocus per cell, log1p(blur sigma). */
    DEFOCUS("defocus"),
    /** Thresholds on a learned linear readout of the defocus head's features per cell (higher = cheaper exit). */
    READOUT("readout"),
    /** No per-cell signal: after each branch a score per patch says whether it leaves ([CascadeModel]). */
    CASCADE("cascade");

    companion object {
        fun fromKey(key: String): RoutingSignal? = values().firstOrNull { it.key == key }
    }
}
