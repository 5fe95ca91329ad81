package org.daqe.demo

import android.Manifest
import android.content.pm.PackageManager
import android.graphics.Bitmap
import android.graphics.Color
import android.net.Uri
import android.os.Build
import android.os.Bundle
import android.os.Handler
import android.os.Looper
import android.view.Menu
import android.view.MenuItem
import android.widget.Button
import android.widget.CheckBox
import android.widget.SeekBar
import android.widget.TextView
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.core.content.ContextCompat
import org.daqe.demo.core.CellGrid
import org.daqe.demo.core.EnhanceResult
import org.daqe.demo.core.JpegFormatException
import org.daqe.demo.core.JpegHeaderParser
import org.daqe.demo.core.JpegEvidence
import org.daqe.demo.core.Orientation
import org.daqe.demo.core.TiledEnhancer
import java.io.FileNotFoundException
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Pick a JPEG, enhance it on the device, compare before/after, show which exit enhanced each
 * patch, save the result. All model work happens on one worker thread; the model is loaded and
 * warmed up once, on first use, and its buffers are reused for every photo.
 */
class MainActivity : AppCompatActivity() {
    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private val main = Handler(Looper.getMainLooper())

    // Worker-thread state.
    private var model: LiteRtModel? = null
    private var enhancer: TiledEnhancer? = null

    // Main-thread state: the current pair, upright.
    private var enhanced: Bitmap? = null
    private var sourceName = "photo"
    private var busy = false
    /** Options menu: null estimates the compression history (default), else the standard tables at this quality. */
    private var qualityOverride: Int? = null
    /** Options menu: 0 = input, 1 = the model's output, up to 2 exaggerates (`Strength`). */
    private var strength = 1f

    private lateinit var status: TextView
    private lateinit var compare: BeforeAfterView
    private lateinit var pick: Button
    private lateinit var save: Button
    private lateinit var png: CheckBox
    private lateinit var exitMap: CheckBox
    private lateinit var splitBar: SeekBar

    private val picker = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        if (uri != null) enhance(uri)
    }

    private val storagePermission = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) saveResult() else status.text = getString(R.string.status_save_permission)
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        status = findViewById(R.id.status)
        compare = findViewById(R.id.compare)
        pick = findViewById(R.id.pick)
        save = findViewById(R.id.save)
        png = findViewById(R.id.png)
        exitMap = findViewById(R.id.exit_map)
        splitBar = findViewById(R.id.split)

        pick.setOnClickListener {
            picker.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.SingleMimeType("image/jpeg")))
        }
        save.setOnClickListener { onSave() }
        exitMap.setOnCheckedChangeListener { _, checked -> compare.showOverlay = checked }
        splitBar.setOnSeekBarChangeListener(object : SeekBar.OnSeekBarChangeListener {
            override fun onProgressChanged(bar: SeekBar, progress: Int, fromUser: Boolean) {
                if (fromUser) compare.split = progress / bar.max.toFloat()
            }

            override fun onStartTrackingTouch(bar: SeekBar) {}
            override fun onStopTrackingTouch(bar: SeekBar) {}
        })
        compare.onSplitChanged = { fraction -> splitBar.progress = (fraction * splitBar.max).toInt() }
        status.text = getString(R.string.status_idle)
    }

    override fun onDestroy() {
        super.onDestroy()
        worker.execute {
            model?.close()
            model = null
        }
        worker.shutdown()
    }

    override fun onCreateOptionsMenu(menu: Menu): Boolean {
        val quality = menu.addSubMenu(getString(R.string.menu_quality))
        quality.add(MENU_QUALITY, 0, 0, getString(R.string.menu_quality_auto))
        for (q in QUALITIES) quality.add(MENU_QUALITY, q, q, getString(R.string.menu_quality_value, q))
        val strengths = menu.addSubMenu(getString(R.string.menu_strength))
        for ((i, s) in STRENGTHS.withIndex()) strengths.add(MENU_STRENGTH, i, i, getString(R.string.menu_strength_value, s))
        return true
    }

    override fun onOptionsItemSelected(item: MenuItem): Boolean {
        when (item.groupId) {
            MENU_QUALITY -> qualityOverride = if (item.itemId == 0) null else item.itemId
            MENU_STRENGTH -> strength = STRENGTHS[item.itemId]
            else -> return super.onOptionsItemSelected(item)
        }
        status.text = getString(R.string.status_options, qualityOverride?.toString() ?: getString(R.string.menu_quality_auto), strength)
        return true
    }

    private fun setBusy(value: Boolean) {
        busy = value
        pick.isEnabled = !value
        save.isEnabled = !value && enhanced != null
    }

    private fun post(text: String) = main.post { status.text = text }

    /** Worker thread: the model, loaded and warmed up on first use. */
    private fun enhancerOnWorker(): TiledEnhancer {
        enhancer?.let { return it }
        post(getString(R.string.status_loading))
        val opened = LiteRtModel.open(this)
        val meta = opened.model.meta
        model = opened.model
        // A cascade's stages pick the exits, within its compute cap if it has one; no defocus pass is
        // made for it (the app shows only the exits).
        val created = if (meta.cascade != null) {
            TiledEnhancer(cascade = opened.model, defocus = null, overlap = meta.patchOverlap, cap = meta.cap)
        } else {
            TiledEnhancer(opened.model, opened.model, meta.thresholds, meta.patchOverlap, ModelContract.DEFOCUS_OVERLAP)
        }
        enhancer = created
        val note = opened.note?.let { "\n$it" } ?: ""
        post(getString(R.string.status_loaded, opened.model.backend, opened.warmUpNanos / 1e9) + note)
        return created
    }

    private fun enhance(uri: Uri) {
        if (busy) return
        setBusy(true)
        sourceName = uri.lastPathSegment?.substringAfterLast('/')?.substringBeforeLast('.') ?: "photo"
        status.text = getString(R.string.status_reading)
        worker.execute {
            try {
                val bytes = PhotoIo.readBytes(this, uri)
                val header = JpegHeaderParser.parse(bytes)
                val orientation = PhotoIo.orientation(bytes)
                val stored = PhotoIo.decodeStored(bytes, header)
                val colorSpace = stored.colorSpace
                val pixels = PhotoIo.toImage8(stored, header.isGrayscale)
                stored.recycle()
                val enhancer = enhancerOnWorker()
                val started = System.nanoTime()
                // The compression that damaged the pixels (an earlier, coarser save of a re-saved photo
                // included, on its own grid), or the quality set in the menu; blended by the strength.
                val evidence = JpegEvidence.of(header, pixels, qualityOverride)
                val result = enhancer.enhance(pixels, evidence, strength) { done, total ->
                    if (done % 16 == 0 || done == total) post(getString(R.string.status_progress, done, total))
                }
                val seconds = (System.nanoTime() - started) / 1e9
                val before = PhotoIo.upright(pixels, orientation, colorSpace)
                val after = PhotoIo.upright(result.image, orientation, colorSpace)
                val overlay = exitOverlay(result, pixels.width, pixels.height, orientation)
                val summary = summary(header.width, header.height, header.subsampling, seconds, result)
                main.post { show(before, after, overlay, summary) }
            } catch (e: JpegFormatException) {
                done(getString(R.string.status_not_jpeg, e.message))
            } catch (e: FileNotFoundException) {
                done(getString(R.string.status_no_model, e.message))
            } catch (e: OutOfMemoryError) {
                done(getString(R.string.status_oom))
            } catch (e: Exception) {
                done(getString(R.string.status_failed, e.message ?: e.javaClass.simpleName))
            }
        }
    }

    /** Shows [message] and gives the buttons back (after an error or a save). */
    private fun done(message: String) = main.post {
        status.text = message
        setBusy(false)
    }

    private fun show(before: Bitmap, after: Bitmap, overlay: Bitmap, summary: String) {
        enhanced = after
        compare.setImages(before, after, overlay)
        compare.split = splitBar.progress / splitBar.max.toFloat()
        exitMap.isEnabled = true
        status.text = summary
        setBusy(false)
    }

    private fun summary(width: Int, height: Int, subsampling: String, seconds: Double, result: EnhanceResult): String {
        val exits = model?.exitCount ?: 1
        val counts = result.exitCounts(exits).joinToString(" / ")
        return getString(
            R.string.status_done, width, height, subsampling, seconds, result.defocusNanos / 1e9, result.exitNanos / 1e9,
            model?.backend ?: "?", counts
        ) + "\n" + getString(R.string.status_evidence, result.evidence?.describe() ?: "", strength)
    }

    /**
     * The exit of each patch as a translucent colour, blue (exit 0, cheapest) to red (deepest),
     * at a quarter of the photo's resolution (each 16x16 cell is 4x4 overlay pixels), upright.
     */
    private fun exitOverlay(result: EnhanceResult, width: Int, height: Int, orientation: Int): Bitmap {
        val exits = maxOf(1, model?.exitCount ?: 1)
        val palette = IntArray(exits) { e ->
            val hue = if (exits == 1) 0f else 240f * (exits - 1 - e) / (exits - 1)
            Color.HSVToColor(0x70, floatArrayOf(hue, 0.9f, 1f))
        }
        val w = (width + 3) / 4
        val h = (height + 3) / 4
        // The plan covers the image padded by (offsetY, offsetX) where a shifted grid was moved to the
        // origin; no exits at all when the strength is 0 (the model did not run).
        val cells = if (result.exits.isEmpty()) null else CellGrid.perCell(result.plan, result.exits)
        val cellCols = CellGrid.cells(width + result.offsetX)
        val pixels = IntArray(w * h) { i ->
            val cy = ((i / w) * 4 + result.offsetY) / CellGrid.CELL
            val cx = ((i % w) * 4 + result.offsetX) / CellGrid.CELL
            if (cells == null) Color.TRANSPARENT else palette[cells[cy * cellCols + cx]]
        }
        val (uw, uh) = Orientation.uprightSize(w, h, orientation)
        return Bitmap.createBitmap(Orientation.apply(pixels, w, h, orientation), uw, uh, Bitmap.Config.ARGB_8888)
    }

    private fun onSave() {
        if (enhanced == null || busy) return
        val needsPermission = Build.VERSION.SDK_INT < Build.VERSION_CODES.Q &&
            ContextCompat.checkSelfPermission(this, Manifest.permission.WRITE_EXTERNAL_STORAGE) != PackageManager.PERMISSION_GRANTED
        if (needsPermission) storagePermission.launch(Manifest.permission.WRITE_EXTERNAL_STORAGE) else saveResult()
    }

    private fun saveResult() {
        val bitmap = enhanced ?: return
        val asPng = png.isChecked
        setBusy(true)
        status.text = getString(R.string.status_saving)
        worker.execute {
            try {
                val name = String.format(Locale.US, "%s_daqe_%d", sourceName, System.currentTimeMillis() / 1000)
                val uri = PhotoIo.save(this, bitmap, asPng, name)
                done(getString(R.string.status_saved, uri.toString()))
            } catch (e: Exception) {
                done(getString(R.string.status_failed, e.message ?: e.javaClass.simpleName))
            }
        }
    }

    private companion object {
        const val MENU_QUALITY = 1
        const val MENU_STRENGTH = 2
        /** Qualities the menu offers as overrides (standard tables at that QF on the file's grid). */
        val QUALITIES = intArrayOf(10, 20, 30, 50, 75, 90)
        val STRENGTHS = floatArrayOf(0f, 0.5f, 1f, 1.5f, 2f)
    }
}
