import io

import numpy as np
import pytest
from PIL import Image

from daqe_tf.jpeg.qmap import normalize_steps, qmap_from_tables, step_map
from daqe_tf.jpeg.simulate import compress
from daqe_tf.jpeg.tables import STD_LUMA_TABLE, estimate_quality, scale_table, tables_for_quality
from tests.helpers import natural_image


def test_tables_bit_exact_with_pillow_for_every_quality():
    image = natural_image(16, 16)
    for quality in range(1, 101):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        written = Image.open(buffer).quantization
        ours = tables_for_quality(quality)
        for table_id in (0, 1):
            np.testing.assert_array_equal(np.array(written[table_id]).reshape(8, 8), ours[table_id], err_msg=f"QF {quality}")


def test_quality_estimate_exact_for_standard_tables():
    for quality in range(1, 101):
        luma, chroma = tables_for_quality(quality)
        assert estimate_quality(luma, chroma) == (quality, True)
        assert estimate_quality(luma) == (quality, True) or np.array_equal(scale_table(STD_LUMA_TABLE, estimate_quality(luma)[0]), luma)


def test_quality_estimate_nearest_for_custom_tables():
    luma, chroma = tables_for_quality(37)
    custom_luma = luma.copy()
    custom_luma[7, 7] += 3
    quality, exact = estimate_quality(custom_luma, chroma)
    assert not exact and abs(quality - 37) <= 1


def test_scale_table_rejects_bad_quality():
    with pytest.raises(ValueError):
        scale_table(STD_LUMA_TABLE, 0)


def test_compress_returns_pillow_tables_and_decoded_pixels():
    image = natural_image(40, 56)
    result = compress(image, 25, subsampling="4:4:4")
    decoded = Image.open(io.BytesIO(result.data))
    assert decoded.size == (56, 40)
    np.testing.assert_array_equal(np.array(decoded.quantization[0]).reshape(8, 8), result.luma_table)
    np.testing.assert_array_equal(np.asarray(decoded.convert("RGB")), result.decoded)
    error = np.mean(np.abs(result.decoded.astype(int) - image))
    assert 0 < error < 10  # lossy, but close at QF 25
    gray = compress(image[..., 0].copy(), 25)
    assert gray.decoded.ndim == 2 and gray.chroma_table is None and gray.subsampling == "gray"


def test_compress_custom_tables():
    tables = [np.full((8, 8), 7, np.uint16), np.full((8, 8), 30, np.uint16)]
    result = compress(natural_image(32, 32), tables=tables)
    written = Image.open(io.BytesIO(result.data)).quantization
    assert set(written[0]) == {7} and set(written[1]) == {30}


def test_compress_argument_errors():
    with pytest.raises(ValueError):
        compress(natural_image(16, 16), 10, tables=tables_for_quality(10))
    with pytest.raises(TypeError):
        compress(natural_image(16, 16).astype(np.float32), 10)


def test_qmap_follows_block_grid_and_subsampling():
    luma, chroma = tables_for_quality(10)
    q = qmap_from_tables(luma, chroma, 32, 40, "4:2:0")
    assert q.shape == (32, 40, 2) and q.dtype == np.float32
    steps = step_map(chroma, 32, 40, (2, 2))
    # pixel (y, x) -> chroma sample (y//2, x//2) -> frequency ((y//2)%8, (x//2)%8)
    assert steps[17, 3] == chroma[(17 // 2) % 8, (3 // 2) % 8]
    np.testing.assert_array_equal(q[..., 0][:8, :8], normalize_steps(luma))
    np.testing.assert_array_equal(q[..., 0][8:16, 16:24], q[..., 0][:8, :8])  # periodic in the grid
    assert qmap_from_tables(luma, None, 9, 9).shape == (9, 9, 1)


def test_qmap_normalisation_range():
    assert normalize_steps(np.array([1]))[0] == 0.0
    assert abs(normalize_steps(np.array([255]))[0] - 1.0) < 0.01
    q10 = qmap_from_tables(*tables_for_quality(10), 8, 8, "4:4:4").mean()
    q90 = qmap_from_tables(*tables_for_quality(90), 8, 8, "4:4:4").mean()
    assert 0 < q90 < 0.5 < q10 <= 1.0


def test_window_qmap_equals_crop_of_whole_qmap():
    luma, chroma = tables_for_quality(20)
    for subsampling in ("4:2:0", "4:1:1", "4:2:2"):
        whole = qmap_from_tables(luma, chroma, 64, 96, subsampling)
        window = qmap_from_tables(luma, chroma, 32, 48, subsampling, origin=(16, 48))
        np.testing.assert_array_equal(window, whole[16:48, 48:96])
