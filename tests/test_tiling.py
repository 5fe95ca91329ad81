import numpy as np
import pytest

from daqe_tf.inference.tiling import enhance_tiled, plan_tiles


@pytest.mark.parametrize("height,width,tile,overlap", [(37, 50, 64, 16), (1000, 777, 256, 32), (513, 1025, 128, 48), (16, 16, 64, 16)])
def test_tiles_cover_image_on_grid_with_overlap(height, width, tile, overlap):
    tiles = plan_tiles(height, width, tile, overlap)
    coverage = np.zeros((height, width), int)
    for t in tiles:
        assert t.y0 % 16 == 0 and t.x0 % 16 == 0
        assert t.y1 - t.y0 <= tile and t.x1 - t.x0 <= tile
        coverage[t.y0 : t.y1, t.x0 : t.x1] += 1
    assert coverage.min() >= 1
    starts = sorted({(t.y0, t.y1) for t in tiles})
    for (_, a1), (b0, _) in zip(starts, starts[1:]):
        assert a1 - b0 >= overlap


def test_plan_rejects_misaligned_sizes():
    with pytest.raises(ValueError):
        plan_tiles(100, 100, tile=100, overlap=16)
    with pytest.raises(ValueError):
        plan_tiles(100, 100, tile=64, overlap=64)


def test_identity_is_reproduced_exactly():
    image = np.random.default_rng(0).integers(0, 256, (300, 410, 3), dtype=np.uint8)
    out = enhance_tiled(image, lambda window, tile: window / 255.0, tile=128, overlap=32)
    np.testing.assert_array_equal(out, image)


def test_blending_has_no_seams():
    # Each tile returns a constant offset by tile; blending must give a smooth ramp, not steps.
    image = np.full((256, 256), 100, np.uint8)
    out = enhance_tiled(image, lambda w, t: np.full(w.shape, (100 + (t.x0 // 16)) / 255.0), tile=128, overlap=64).astype(int)
    row = out[10]
    assert np.abs(np.diff(row)).max() <= 1


def test_every_pixel_gets_its_tile_output_and_grayscale_shape_kept():
    image = np.zeros((70, 90), np.uint8)
    seen = []
    out = enhance_tiled(image, lambda w, t: (seen.append(t), np.full(w.shape, 0.5))[1], tile=64, overlap=16, progress=lambda n: None)
    assert out.shape == image.shape and (out == 128).all()
    assert len(seen) == len(plan_tiles(70, 90, 64, 16))
