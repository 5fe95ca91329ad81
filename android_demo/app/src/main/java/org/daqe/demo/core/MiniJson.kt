package org.daqe.demo.core

/**
 * A small JSON reader, so the model metadata is parsed by the same plain-Kotlin code on the phone
 * and in the JVM tests (which run without Android's org.json and without extra jars). It also
 * reads the test vectors. Objects become Map<String, Any?>, arrays List<Any?>, numbers Double;
 * Python's NaN and Infinity literals are accepted. Malformed text throws IllegalArgumentException.
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

    /** The character at [pos]; the end of the text is an error, not an index exception. */
    private fun peek(): Char {
        if (pos >= text.length) fail("unexpected end")
        return text[pos]
    }

    private fun next(): Char = peek().also { pos++ }

    private fun value(): Any? {
        skipSpace()
        return when (peek()) {
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
        if (peek() == '}') { pos++; return out }
        while (true) {
            skipSpace()
            val key = str()
            skipSpace()
            if (next() != ':') { pos--; fail("expected ':'") }
            out[key] = value()
            skipSpace()
            when (next()) {
                ',' -> {}
                '}' -> return out
                else -> { pos--; fail("expected ',' or '}'") }
            }
        }
    }

    private fun arr(): List<Any?> {
        val out = ArrayList<Any?>()
        pos++
        skipSpace()
        if (peek() == ']') { pos++; return out }
        while (true) {
            out.add(value())
            skipSpace()
            when (next()) {
                ',' -> {}
                ']' -> return out
                else -> { pos--; fail("expected ',' or ']'") }
            }
        }
    }

    private fun str(): String {
        if (peek() != '"') fail("expected a string")
        pos++
        val sb = StringBuilder()
        while (true) {
            if (pos >= text.length) fail("unterminated string")
            val ch = text[pos++]
            when (ch) {
                '"' -> return sb.toString()
                '\\' -> {
                    val esc = next()
                    when (esc) {
                        'n' -> sb.append('\n')
                        't' -> sb.append('\t')
                        'r' -> sb.append('\r')
                        'b' -> sb.append('\b')
                        'f' -> sb.append('\u000C')
                        'u' -> {
                            val hex = if (pos + 4 <= text.length) text.substring(pos, pos + 4) else ""
                            if (hex.length != 4 || !hex.all { it in '0'..'9' || it in 'a'..'f' || it in 'A'..'F' }) fail("bad \\u escape")
                            sb.append(Integer.parseInt(hex, 16).toChar())
                            pos += 4
                        }
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
        return text.substring(start, pos).toDoubleOrNull() ?: run { pos = start; fail("bad number") }
    }
}
