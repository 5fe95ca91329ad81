package org.daqe.demo.core

/**
 * A small JSON reader for the test vectors (the JVM tests run without Android's org.json and
 * without extra jars). Objects become Map<String, Any?>, arrays List<Any?>, numbers Double.
 */
class MiniJson private constructor(private val text: String) {
    private var pos = 0

    companion object {
        fun parse(text: String): Any? {
            val reader = MiniJson(text)
            val value = reader.value()
            reader.skipSpace()
            if (reader.pos != text.length) reader.fail("trailing data")
            return value
        }
    }

    private fun fail(what: String): Nothing = throw IllegalArgumentException("JSON: $what at offset $pos")

    private fun skipSpace() {
        while (pos < text.length && text[pos].isWhitespace()) pos++
    }

    private fun value(): Any? {
        skipSpace()
        if (pos >= text.length) fail("unexpected end")
        return when (text[pos]) {
            '{' -> obj()
            '[' -> arr()
            '"' -> str()
            't' -> literal("true", true)
            'f' -> literal("false", false)
            'n' -> literal("null", null)
            'N' -> literal("NaN", Double.NaN)
            else -> num()
        }
    }

    private fun literal(word: String, value: Any?): Any? {
        if (!text.startsWith(word, pos)) fail("expected $word")
        pos += word.length
        return value
    }

    private fun obj(): Map<String, Any?> {
        val out = LinkedHashMap<String, Any?>()
        pos++
        skipSpace()
        if (text[pos] == '}') { pos++; return out }
        while (true) {
            skipSpace()
            val key = str()
            skipSpace()
            if (text[pos] != ':') fail("expected ':'")
            pos++
            out[key] = value()
            skipSpace()
            when (text[pos++]) {
                ',' -> {}
                '}' -> return out
                else -> fail("expected ',' or '}'")
            }
        }
    }

    private fun arr(): List<Any?> {
        val out = ArrayList<Any?>()
        pos++
        skipSpace()
        if (text[pos] == ']') { pos++; return out }
        while (true) {
            out.add(value())
            skipSpace()
            when (text[pos++]) {
                ',' -> {}
                ']' -> return out
                else -> fail("expected ',' or ']'")
            }
        }
    }

    private fun str(): String {
        if (text[pos] != '"') fail("expected a string")
        pos++
        val sb = StringBuilder()
        while (true) {
            if (pos >= text.length) fail("unterminated string")
            val ch = text[pos++]
            when (ch) {
                '"' -> return sb.toString()
                '\\' -> {
                    val esc = text[pos++]
                    when (esc) {
                        'n' -> sb.append('\n')
                        't' -> sb.append('\t')
                        'r' -> sb.append('\r')
                        'b' -> sb.append('\b')
                        'f' -> sb.append('\u000C')
                        'u' -> { sb.append(Integer.parseInt(text.substring(pos, pos + 4), 16).toChar()); pos += 4 }
                        else -> sb.append(esc)
                    }
                }
                else -> sb.append(ch)
            }
        }
    }

    private fun num(): Double {
        val start = pos
        if (text.startsWith("-Infinity", pos)) { pos += 9; return Double.NEGATIVE_INFINITY }
        if (text.startsWith("Infinity", pos)) { pos += 8; return Double.POSITIVE_INFINITY }
        while (pos < text.length && (text[pos].isDigit() || text[pos] in "+-.eE")) pos++
        if (start == pos) fail("unexpected character '${text[pos]}'")
        return text.substring(start, pos).toDouble()
    }
}

@Suppress("UNCHECKED_CAST")
fun Any?.obj(): Map<String, Any?> = this as Map<String, Any?>

@Suppress("UNCHECKED_CAST")
fun Any?.arr(): List<Any?> = this as List<Any?>

fun Any?.num(): Double = this as Double

fun Any?.int(): Int {
    val d = this as Double
    require(d == Math.rint(d)) { "not an integer: $d" }
    return d.toInt()
}

fun Any?.ints(): IntArray = arr().map { it.int() }.toIntArray()

fun Any?.doubles(): DoubleArray = arr().map { it.num() }.toDoubleArray()
