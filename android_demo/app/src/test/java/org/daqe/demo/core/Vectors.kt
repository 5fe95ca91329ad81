package org.daqe.demo.core

import org.junit.Assert.fail
import org.junit.Assume.assumeTrue
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * The test vectors written by `tests/test_kotlin_core.py` from the Python pipeline.
 *
 * The folder comes from the system property `daqe.vectors` (or the env var DAQE_VECTORS). Without
 * it, vector tests are skipped (assumption), unless `daqe.vectors.required=true`, which the pytest
 * runner sets so a missing folder fails. Each test prints "VECTORS <set> <cases>" so the runner can
 * check that every set was read case by case.
 */
object Vectors {
    private val folder: File? by lazy {
        val path = System.getProperty("daqe.vectors") ?: System.getenv("DAQE_VECTORS")
        if (path == null) null else File(path)
    }

    val manifest: Map<String, Any?> by lazy { MiniJson.parse(File(dir(), "manifest.json").readText()).obj() }

    /** The vector folder; skips the calling test when there is none and vectors are optional. */
    fun dir(): File {
        val f = folder
        val present = f != null && File(f, "manifest.json").isFile
        if (!present) {
            if (System.getProperty("daqe.vectors.required") == "true") fail("test vectors not found in $f")
            assumeTrue("no test vectors (set -Ddaqe.vectors=DIR; run tests/test_kotlin_core.py)", false)
        }
        return f!!
    }

    fun section(name: String): Any? = manifest[name] ?: throw AssertionError("vector set '$name' missing")

    fun bytes(name: String): ByteArray = File(dir(), name).readBytes()

    /** Little-endian float32 file. */
    fun floats(name: String): FloatArray {
        val buffer = ByteBuffer.wrap(bytes(name)).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
        val out = FloatArray(buffer.remaining())
        buffer.get(out)
        return out
    }

    fun report(set: String, cases: Int) {
        println("VECTORS $set $cases")
    }
}
