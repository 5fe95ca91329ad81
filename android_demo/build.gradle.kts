// Versions chosen for compileSdk 35; not resolved on the machine this was written on (see README).
plugins {
    id("com.android.application") version "8.7.3" apply false
    id("org.jetbrains.kotlin.android") version "2.0.21" apply false
}
