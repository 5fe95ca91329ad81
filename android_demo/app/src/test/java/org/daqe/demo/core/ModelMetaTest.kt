package org.daqe.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class ModelMetaTest {
    private fun text(name: String) = String(Vectors.bytes(name), Charsets.UTF_8)

    private fun refusal(json: String): String? =
        try {
            ModelMeta.parse(json)
            null
        } catch (e: IllegalArgumentException) {
            e.message ?: "(no message)"
        }

    /** The metadata export.converter writes, read as written, gives the model's own attributes. */
    @Test
    fun readsTheExportersMetadata() {
        val set = Vectors.section("model_meta").obj()
        val valid = set["valid"].arr()
        for (case in valid) {
            val v = case.obj()
            val name = v["name"] as String
            val e = v["expected"].obj()
            val meta = ModelMeta.parse(text(v["file"] as String))
            assertEquals("$name image_channels", e["image_channels"].int(), meta.imageChannels)
            assertEquals("$name qmap_channels", e["qmap_channels"].int(), meta.qmapChannels)
            assertEquals("$name num_exits", e["num_exits"].int(), meta.numExits)
            assertEquals("$name patch_size", e["patch_size"].int(), meta.patchSize)
            assertEquals("$name patch_overlap", e["patch_overlap"].int(), meta.patchOverlap)
            val thresholds = e["thresholds"].doubles().map { it.toFloat() }.toFloatArray()
            assertArrayEquals("$name thresholds", thresholds, meta.thresholds, 0f)
            assertEquals("$name routing", e["routing"] as String, meta.routing.key)
            assertEquals("$name routing output", e["routing_output"] as String?, meta.routingOutput)
            val cascade = e["cascade"]
            if (cascade == null) {
                assertNull("$name cascade", meta.cascade)
            } else {
                val c = cascade.obj()
                val names = meta.cascade!!
                assertEquals("$name stages", c["stages"], names.stages)
                assertEquals("$name heads", c["heads"], names.heads)
                assertEquals("$name features", c["features"], names.features)
                assertEquals("$name summary", c["summary"], names.summary)
                assertEquals("$name score", c["score"], names.score)
            }
            val maxCost = e["max_cost"]
            if (maxCost == null) {
                assertNull("$name cap", meta.cap)
            } else {
                assertEquals("$name max_cost", maxCost.num(), meta.cap!!.maxCost, 0.0)
                assertArrayEquals("$name exit_costs", e["exit_costs"].doubles(), meta.cap!!.exitCosts, 0.0)
            }
        }
        val broken = set["broken"].arr()
        for (case in broken) {
            val v = case.obj()
            val file = v["file"] as String
            val message = refusal(text(file))
            assertNotNull("$file was accepted", message)
            assertTrue("$file: $message", message!!.startsWith("model metadata: "))
            for (part in v["expect"].arr()) assertTrue("$file: '$message' lacks \"$part\"", message.contains(part as String))
        }
        Vectors.report("model_meta", valid.size + broken.size)
    }

    @Test
    fun namesTheMissingKey() {
        val json = """{"format": 1, "family": "daqe", "io_dtype": "float32", "defocus_cell": 16, "image_channels": 3,
            "qmap_channels": 2, "num_exits": 2, "patch_size": 64, "thresholds": [0.7]}"""
        assertEquals("model metadata: missing key 'patch_overlap' (re-export with python -m export.main)", refusal(json))
        val meta = ModelMeta.parse(json.replace("\"thresholds\"", "\"patch_overlap\": 16, \"thresholds\""))
        assertEquals(16, meta.patchOverlap)
        assertEquals(64, meta.patchSize)
    }

    /** Files without the routing keys route by the defocus output; a readout needs its own output. */
    @Test
    fun routingKeysAreOptionalButMustFit() {
        val base = """{"format": 1, "family": "daqe", "io_dtype": "float32", "defocus_cell": 16, "image_channels": 3,
            "qmap_channels": 2, "num_exits": 2, "patch_size": 64, "patch_overlap": 0, "thresholds": [0.7]"""
        val old = ModelMeta.parse("$base}")
        assertEquals(RoutingSignal.DEFOCUS, old.routing)
        assertEquals(null, old.routingOutput)
        val outputs = """"outputs": {"exits": "enhanced", "defocus": "defocus", "routing": "routing"}"""
        val readout = ModelMeta.parse("""$base, "routing": "readout", $outputs}""")
        assertEquals(RoutingSignal.READOUT, readout.routing)
        assertEquals("routing", readout.routingOutput)
        assertEquals(RoutingSignal.DEFOCUS, ModelMeta.parse("""$base, "routing": "defocus", $outputs}""").routing)
        assertEquals(
            "model metadata: 'outputs' names no 'routing' output, which routing 'readout' needs (re-export with python -m export.main)",
            refusal("""$base, "routing": "readout"}""")
        )
        assertEquals(
            "model metadata: 'routing' must be 'defocus' or 'readout' or 'cascade', got blur",
            refusal("""$base, "routing": "blur", $outputs}""")
        )
    }

    /** A cascade needs its stage and head signatures and their output names, one of each per exit; its thresholds are not used. */
    @Test
    fun cascadeNeedsItsSignatures() {
        val base = """{"format": 1, "family": "daqe", "io_dtype": "float32", "defocus_cell": 16, "image_channels": 1,
            "qmap_channels": 1, "num_exits": 3, "patch_size": 64, "patch_overlap": 0, "thresholds": [0.0], "routing": "cascade""""
        val signatures = """"signatures": {"exits": ["exit_0", "exit_1", "exit_2"], "stages": ["s0", "s1", "s2"], "heads": ["h0", "h1", "h2"]}"""
        val outputs = """"outputs": {"exits": "enhanced", "features": "f", "summary": "s", "score": "p"}"""
        val meta = ModelMeta.parse("$base, $signatures, $outputs}")
        assertEquals(RoutingSignal.CASCADE, meta.routing)
        assertEquals(listOf("s0", "s1", "s2"), meta.cascade!!.stages)
        assertEquals(listOf("h0", "h1", "h2"), meta.cascade!!.heads)
        assertEquals(listOf("f", "s", "p"), listOf(meta.cascade!!.features, meta.cascade!!.summary, meta.cascade!!.score))
        assertNull(meta.routingOutput)
        assertArrayEquals(floatArrayOf(0f), meta.thresholds, 0f)
        val needs = "which routing 'cascade' needs (re-export with python -m export.main)"
        assertEquals("model metadata: 'signatures' must be an object naming the cascade stages and heads, $needs; got null", refusal("$base, $outputs}"))
        assertEquals(
            "model metadata: 'signatures' names no 'heads' list, $needs; got null",
            refusal("""$base, "signatures": {"stages": ["s0", "s1", "s2"]}, $outputs}""")
        )
        assertEquals(
            "model metadata: 'signatures' must name one stage and one head per exit (3), got 2 stages and 3 heads",
            refusal("""$base, "signatures": {"stages": ["s0", "s1"], "heads": ["h0", "h1", "h2"]}, $outputs}""")
        )
        assertEquals(
            "model metadata: 'outputs' names no 'score' output by a string, $needs; got null",
            refusal("""$base, $signatures, "outputs": {"features": "f", "summary": "s"}}""")
        )
        // The same keys mean nothing to a model routed by defocus.
        val byDefocus = ModelMeta.parse("${base.replace("\"cascade\"", "\"defocus\"").replace("[0.0]", "[0.0, 0.5]")}}")
        assertNull(byDefocus.cascade)
    }

    /** A cascade's cap comes from the model config: `max_cost` with one `exit_costs` value per exit, or none at all. */
    @Test
    fun capComesFromTheModelConfig() {
        val base = """{"format": 1, "family": "daqe", "io_dtype": "float32", "defocus_cell": 16, "image_channels": 1,
            "qmap_channels": 1, "num_exits": 3, "patch_size": 64, "patch_overlap": 0, "thresholds": [0.0], "routing": "cascade",
            "signatures": {"stages": ["s0", "s1", "s2"], "heads": ["h0", "h1", "h2"]},
            "outputs": {"features": "f", "summary": "s", "score": "p"}"""
        val cap = ModelMeta.parse("""$base, "model_config": {"max_cost": 0.6, "exit_costs": [0.2, 0.5, 1], "widths": [4, 8]}}""").cap!!
        assertEquals(0.6, cap.maxCost, 0.0)
        assertArrayEquals(doubleArrayOf(0.2, 0.5, 1.0), cap.exitCosts, 0.0)
        assertNull(ModelMeta.parse("$base}").cap)
        assertNull(ModelMeta.parse("""$base, "model_config": {"max_cost": null, "exit_costs": null}}""").cap)
        // Costs without a cap mean nothing to the app.
        assertNull(ModelMeta.parse("""$base, "model_config": {"exit_costs": [1]}}""").cap)
        assertEquals(
            "model metadata: 'model_config.exit_costs' must list each exit's cost for 'max_cost', got null",
            refusal("""$base, "model_config": {"max_cost": 0.6}}""")
        )
        assertEquals(
            "model metadata: 'model_config.exit_costs' must hold one cost per exit (3) for 'max_cost', got 2",
            refusal("""$base, "model_config": {"max_cost": 0.6, "exit_costs": [0.5, 1]}}""")
        )
        val byDefocus = base.replace("\"cascade\"", "\"defocus\"").replace("[0.0]", "[0.0, 0.5]")
        assertEquals(
            "model metadata: 'model_config.max_cost' caps a cascade's compute; this model routes by 'defocus'",
            refusal("""$byDefocus, "model_config": {"max_cost": 0.6, "exit_costs": [0.2, 0.5, 1]}}""")
        )
    }

    @Test
    fun malformedJsonIsAnArgumentError() {
        val bad = listOf("", "{", "{\"a\"", "{\"a\":", "{\"a\": 1", "{\"a\": 1,", "[", "[1", "[1,", "\"ab", "\"\\u12", "\"\\u12zz\"",
            "-", "1e", "{} x", "tru", "{1: 2}")
        for (text in bad) {
            try {
                MiniJson.parse(text)
                fail("accepted '$text'")
            } catch (e: IllegalArgumentException) {
                assertTrue("'$text': ${e.message}", e.message!!.startsWith("JSON: "))
            }
        }
        assertEquals(listOf(1.0, null, "\u00e9"), MiniJson.parse("[1, null, \"\\u00e9\"]"))
    }
}
