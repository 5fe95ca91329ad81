package org.daqe.demo.core

// Casts for reading the test vectors parsed by MiniJson (a wrong type is a broken vector file).

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
