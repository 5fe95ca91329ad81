package org.daqe.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Matrix
import android.graphics.Paint
import android.graphics.RectF
import android.util.AttributeSet
import android.util.TypedValue
import android.view.GestureDetector
import android.view.MotionEvent
import android.view.View

/**
 * Original and enhanced photo in one frame, split at a movable vertical line: original on the
 * left, enhanced on the right. JPEG artefacts are small, so a double tap toggles between fitting
 * the view and a close-up (at least 1 image pixel per screen pixel, drawn without filtering so
 * the 8x8 blocks stay visible). Dragging moves the split when fitted and pans when zoomed.
 * The optional exit map is drawn semi-transparent over the whole photo.
 */
class BeforeAfterView @JvmOverloads constructor(context: Context, attrs: AttributeSet? = null) : View(context, attrs) {
    private var before: Bitmap? = null
    private var after: Bitmap? = null
    private var overlay: Bitmap? = null

    /** Split position as a fraction of the image width. */
    var split = 0.5f
        set(value) {
            field = value.coerceIn(0f, 1f)
            invalidate()
        }

    var showOverlay = false
        set(value) {
            field = value
            invalidate()
        }

    /** Called when a drag moves the split, e.g. to keep a SeekBar in step. */
    var onSplitChanged: ((Float) -> Unit)? = null

    private var zoomed = false
    private var scale = 1f
    private var offsetX = 0f
    private var offsetY = 0f
    private val imageMatrix = Matrix()
    private val overlayMatrix = Matrix()
    private val imageRect = RectF()
    private val imagePaint = Paint(Paint.FILTER_BITMAP_FLAG)
    private val overlayPaint = Paint()
    private val linePaint = Paint(Paint.ANTI_ALIAS_FLAG).apply {
        color = Color.WHITE
        strokeWidth = 3f * resources.displayMetrics.density
    }
    private val labelPaint = Paint(Paint.ANTI_ALIAS_FLAG).apply {
        color = Color.WHITE
        textSize = TypedValue.applyDimension(TypedValue.COMPLEX_UNIT_SP, 14f, resources.displayMetrics)
        setShadowLayer(4f, 0f, 0f, Color.BLACK)
    }

    private val gestures = GestureDetector(context, object : GestureDetector.SimpleOnGestureListener() {
        override fun onDown(e: MotionEvent) = true

        override fun onDoubleTap(e: MotionEvent): Boolean {
            val image = before ?: return false
            val fit = fitScale(image)
            if (zoomed) {
                zoomed = false
            } else {
                // Keep the tapped image point under the finger.
                val ix = (e.x - offsetX) / scale
                val iy = (e.y - offsetY) / scale
                zoomed = true
                scale = maxOf(1f, 2f * fit)
                offsetX = e.x - ix * scale
                offsetY = e.y - iy * scale
            }
            invalidate()
            return true
        }

        override fun onScroll(e1: MotionEvent?, e2: MotionEvent, dx: Float, dy: Float): Boolean {
            if (zoomed) {
                offsetX -= dx
                offsetY -= dy
            } else if (imageRect.width() > 0f) {
                split = (e2.x - imageRect.left) / imageRect.width()
                onSplitChanged?.invoke(split)
            }
            parent?.requestDisallowInterceptTouchEvent(true)
            invalidate()
            return true
        }
    })

    /** Shows a new pair (both upright, same size); [overlay] may be smaller, it is stretched over the photo. */
    fun setImages(before: Bitmap?, after: Bitmap?, overlay: Bitmap?) {
        this.before = before
        this.after = after
        this.overlay = overlay
        zoomed = false
        invalidate()
    }

    private fun fitScale(image: Bitmap): Float =
        minOf(width.toFloat() / image.width, height.toFloat() / image.height)

    /** Fitted: centred. Zoomed: clamped so the photo does not leave more empty view than needed. */
    private fun layoutImage(image: Bitmap) {
        if (!zoomed) {
            scale = fitScale(image)
            offsetX = (width - image.width * scale) / 2f
            offsetY = (height - image.height * scale) / 2f
        } else {
            offsetX = clampOffset(offsetX, image.width * scale, width.toFloat())
            offsetY = clampOffset(offsetY, image.height * scale, height.toFloat())
        }
        imageMatrix.setScale(scale, scale)
        imageMatrix.postTranslate(offsetX, offsetY)
        imageRect.set(offsetX, offsetY, offsetX + image.width * scale, offsetY + image.height * scale)
        imagePaint.isFilterBitmap = scale < 1f
    }

    private fun clampOffset(offset: Float, content: Float, view: Float): Float =
        if (content <= view) (view - content) / 2f else offset.coerceIn(view - content, 0f)

    override fun onDraw(canvas: Canvas) {
        super.onDraw(canvas)
        val original = before ?: return
        layoutImage(original)
        canvas.drawBitmap(original, imageMatrix, imagePaint)
        val enhanced = after
        val splitX = imageRect.left + split * imageRect.width()
        if (enhanced != null) {
            canvas.save()
            canvas.clipRect(splitX, 0f, width.toFloat(), height.toFloat())
            canvas.drawBitmap(enhanced, imageMatrix, imagePaint)
            canvas.restore()
        }
        val map = overlay
        if (showOverlay && map != null) {
            overlayMatrix.setScale(original.width.toFloat() / map.width, original.height.toFloat() / map.height)
            overlayMatrix.postConcat(imageMatrix)
            canvas.drawBitmap(map, overlayMatrix, overlayPaint)
        }
        if (enhanced != null) {
            canvas.drawLine(splitX, imageRect.top.coerceAtLeast(0f), splitX, imageRect.bottom.coerceAtMost(height.toFloat()), linePaint)
            val pad = 8f * resources.displayMetrics.density
            val top = imageRect.top.coerceAtLeast(0f) + pad + labelPaint.textSize
            canvas.drawText(context.getString(R.string.label_before), imageRect.left.coerceAtLeast(0f) + pad, top, labelPaint)
            val afterLabel = context.getString(R.string.label_after)
            val right = imageRect.right.coerceAtMost(width.toFloat()) - pad - labelPaint.measureText(afterLabel)
            canvas.drawText(afterLabel, right, top, labelPaint)
        }
    }

    override fun onTouchEvent(event: MotionEvent): Boolean = gestures.onTouchEvent(event) || super.onTouchEvent(event)
}
