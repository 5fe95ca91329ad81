package org.daqe.demo

import android.content.ContentValues
import android.content.Context
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.ColorSpace
import android.net.Uri
import android.os.Build
import android.os.Environment
import android.provider.MediaStore
import androidx.exifinterface.media.ExifInterface
import org.daqe.demo.core.Image8
import org.daqe.demo.core.JpegHeader
import org.daqe.demo.core.Orientation
import java.io.ByteArrayInputStream
import java.io.File
import java.io.FileOutputStream
import java.io.IOException
import java.io.OutputStream

/** Photo bytes in, pixels out and back: the Android side of image I/O. */
object PhotoIo {
    /** Larger photos are refused rather than downscaled: downscaling would destroy the JPEG grid. */
    const val MAX_PIXELS = 24_000_000L

    /** Rows converted per getPixels/setPixels call, to avoid a second full-size int array. */
    private const val STRIP = 256

    fun readBytes(context: Context, uri: Uri): ByteArray =
        context.contentResolver.openInputStream(uri)?.use { it.readBytes() } ?: throw IOException("cannot open $uri")

    /** EXIF orientation 1..8 (1 when absent or unreadable). */
    fun orientation(bytes: ByteArray): Int = try {
        val value = ExifInterface(ByteArrayInputStream(bytes)).getAttributeInt(
            ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL
        )
        if (value in 1..8) value else 1
    } catch (e: IOException) {
        1
    }

    /**
     * The pixels as stored in the file (BitmapFactory does not apply EXIF orientation), which is
     * where the 8x8 block grid is. The file's own colour space is kept: no colour conversion.
     */
    fun decodeStored(bytes: ByteArray, header: JpegHeader): Bitmap {
        if (header.width.toLong() * header.height > MAX_PIXELS) {
            throw IOException("${header.width}x${header.height} is above the demo's limit of ${MAX_PIXELS / 1_000_000} MP")
        }
        val options = BitmapFactory.Options().apply {
            inPreferredConfig = Bitmap.Config.ARGB_8888
            inScaled = false
        }
        val bitmap = BitmapFactory.decodeByteArray(bytes, 0, bytes.size, options)
            ?: throw IOException("Android could not decode this JPEG")
        if (bitmap.width != header.width || bitmap.height != header.height) {
            bitmap.recycle()
            throw IOException("decoded ${bitmap.width}x${bitmap.height}, header says ${header.width}x${header.height}")
        }
        return bitmap
    }

    /** Bitmap -> HxWxC bytes (C = 1 takes the red channel of a gray JPEG decoded as ARGB). */
    fun toImage8(bitmap: Bitmap, gray: Boolean): Image8 {
        val w = bitmap.width
        val h = bitmap.height
        val c = if (gray) 1 else 3
        val out = ByteArray(w * h * c)
        val strip = IntArray(w * minOf(STRIP, h))
        var i = 0
        for (y0 in 0 until h step STRIP) {
            val rows = minOf(STRIP, h - y0)
            bitmap.getPixels(strip, 0, w, 0, y0, w, rows)
            for (p in 0 until w * rows) {
                val argb = strip[p]
                out[i++] = (argb shr 16).toByte()
                if (!gray) {
                    out[i++] = (argb shr 8).toByte()
                    out[i++] = argb.toByte()
                }
            }
        }
        return Image8(w, h, c, out)
    }

    /** HxWxC bytes -> opaque ARGB bitmap in [colorSpace]. */
    fun toBitmap(image: Image8, colorSpace: ColorSpace?): Bitmap {
        val w = image.width
        val h = image.height
        val space = colorSpace ?: ColorSpace.get(ColorSpace.Named.SRGB)
        val bitmap = Bitmap.createBitmap(w, h, Bitmap.Config.ARGB_8888, false, space)
        val strip = IntArray(w * minOf(STRIP, h))
        var i = 0
        for (y0 in 0 until h step STRIP) {
            val rows = minOf(STRIP, h - y0)
            for (p in 0 until w * rows) {
                val argb = if (image.channels == 1) {
                    val v = image[i++]
                    (0xFF shl 24) or (v shl 16) or (v shl 8) or v
                } else {
                    val r = image[i]
                    val g = image[i + 1]
                    val b = image[i + 2]
                    i += 3
                    (0xFF shl 24) or (r shl 16) or (g shl 8) or b
                }
                strip[p] = argb
            }
            bitmap.setPixels(strip, 0, w, 0, y0, w, rows)
        }
        return bitmap
    }

    /** Stored pixels turned upright for display and saving. */
    fun upright(image: Image8, orientation: Int, colorSpace: ColorSpace?): Bitmap =
        toBitmap(Orientation.apply(image, orientation), colorSpace)

    /** Saves to Pictures/DAQE through MediaStore: JPEG quality 95 or PNG. Returns the new item. */
    fun save(context: Context, bitmap: Bitmap, png: Boolean, baseName: String): Uri {
        val extension = if (png) "png" else "jpg"
        val mime = if (png) "image/png" else "image/jpeg"
        val name = "$baseName.$extension"
        val resolver = context.contentResolver
        val values = ContentValues().apply {
            put(MediaStore.Images.Media.DISPLAY_NAME, name)
            put(MediaStore.Images.Media.MIME_TYPE, mime)
        }
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.Q) {
            values.put(MediaStore.Images.Media.RELATIVE_PATH, Environment.DIRECTORY_PICTURES + "/DAQE")
            values.put(MediaStore.Images.Media.IS_PENDING, 1)
            val uri = resolver.insert(MediaStore.Images.Media.getContentUri(MediaStore.VOLUME_EXTERNAL_PRIMARY), values)
                ?: throw IOException("MediaStore refused a new image")
            try {
                val stream = resolver.openOutputStream(uri) ?: throw IOException("cannot write $uri")
                stream.use { encode(bitmap, png, it) }
                values.clear()
                values.put(MediaStore.Images.Media.IS_PENDING, 0)
                resolver.update(uri, values, null, null)
            } catch (e: Exception) {
                resolver.delete(uri, null, null)
                throw e
            }
            return uri
        }
        // API 26-28: write the file ourselves (WRITE_EXTERNAL_STORAGE) and register it.
        @Suppress("DEPRECATION")
        val folder = File(Environment.getExternalStoragePublicDirectory(Environment.DIRECTORY_PICTURES), "DAQE")
        if (!folder.isDirectory && !folder.mkdirs()) throw IOException("cannot create $folder")
        val file = File(folder, name)
        FileOutputStream(file).use { encode(bitmap, png, it) }
        @Suppress("DEPRECATION")
        values.put(MediaStore.Images.Media.DATA, file.absolutePath)
        return resolver.insert(MediaStore.Images.Media.EXTERNAL_CONTENT_URI, values) ?: Uri.fromFile(file)
    }

    private fun encode(bitmap: Bitmap, png: Boolean, out: OutputStream) {
        val ok = if (png) bitmap.compress(Bitmap.CompressFormat.PNG, 100, out) else bitmap.compress(Bitmap.CompressFormat.JPEG, 95, out)
        if (!ok) throw IOException("encoding the image failed")
    }
}
