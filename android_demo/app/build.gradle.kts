import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.daqe.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "org.daqe.demo"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1"
        ndk {
            // LiteRT ships native code; phones worth running this on are arm64.
            abiFilters += "arm64-v8a"
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    // The interpreter memory-maps the model from the APK: it must be stored uncompressed.
    androidResources {
        noCompress += "tflite"
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    implementation("androidx.appcompat:appcompat:1.7.0")
    implementation("androidx.activity:activity-ktx:1.9.3")
    implementation("androidx.exifinterface:exifinterface:1.3.7")
    // LiteRT (formerly TensorFlow Lite): Interpreter API with signatures, XNNPACK on the CPU.
    implementation("com.google.ai.edge.litert:litert:1.4.1")
    // GPU delegate (org.tensorflow.lite.gpu.GpuDelegate, CompatibilityList).
    implementation("com.google.ai.edge.litert:litert-gpu:1.4.1")
    implementation("com.google.ai.edge.litert:litert-gpu-api:1.4.1")

    testImplementation("junit:junit:4.13.2")
}
