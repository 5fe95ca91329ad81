"""DAQE whole-image inference: tiled defocus map, per-patch exits, batched exits, seam-free blending."""
import io

import keras
import numpy as np
import pytest
from PIL import Image

from daqe_tf.inference.pipeline import enhance, enhance_pixels, jpeg_evidence, window_qmaps
from daqe_tf.inference.tiling import cell_owners, plan_tiles
from daqe_tf.io import load_image
from daqe_tf.models import build_model
from daqe_tf.models.daqe import assign_clusters, patch_defocus_from_map
from daqe_tf.routing.pictures import defocus_image, exit_colours, exit_overlay
from daqe_tf.routing.runtime import (
    Routing,
    patch_mean,
    predict_cells,
    predict_defocus,
    route_patches,
    run_patches,
)
from tests.helpers import TINY_DAQE_CONFIG, natural_image

EXIT_OFFSETS = (-0.06, 0.0, 0.06)  # exits 0 and 2 differ by 0.12 (31 grey levels)


@pytest.fixture(scope="module")
def gray_daqe():
    """Tiny grayscale DAQENet whose exits differ by a constant offset plus a little texture."""
    keras.utils.set_random_seed(3)
    model = build_model("daqe", 1, **TINY_DAQE_CONFIG)
    rng = np.random.default_rng(3)
    for head, offset in zip(model.heads, EXIT_OFFSETS):
        head.kernel.assign(rng.normal(0, 0.02, head.kernel.shape).astype("float32"))
        head.bias.assign(np.full(head.bias.shape, offset, "float32"))
    return model


def _jpeg(image, quality=30):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _qmaps(image_bytes, channels=1):
    return window_qmaps(jpeg_evidence(load_image(image_bytes)), channels)


def test_neighbouring_patches_on_different_exits_blend_without_a_seam(gray_daqe):
    """Seam measure: the residual R = output - JPEG, and its column-to-column step
    s(x) = mean over rows of |R[:, x + 1] - R[:, x]|.

    Five 32-px patches (starts 0, 16, ..., 64) of a 32 x 96 image; patches 0-2 take exit 0 and
    patches 3-4 exit 2, whose outputs differ by 31 grey levels. The transition columns are those
    touching the overlap [48, 64) of patches 2 and 3. Within-patch variation is the largest s(x)
    that either exit produces by itself (every patch on exit 0, or on exit 2) outside the
    transition. The blended seam must be no larger; a hard cut at the overlap's middle (the
    control) is, so the measure can fail.
    """
    image = natural_image(32, 96, 1, seed=4)
    qmap_for = _qmaps(_jpeg(image))
    patches = plan_tiles(32, 96, 32, 0)
    assert [(t.x0, t.x1) for t in patches] == [(0, 32), (16, 48), (32, 64), (48, 80), (64, 96)]

    def residual(exits):
        return run_patches(image, gray_daqe, qmap_for, patches, np.array(exits, np.int32)).astype(np.int16) - image

    exit0, exit2, mixed = residual([0] * 5), residual([2] * 5), residual([0, 0, 0, 2, 2])
    step = lambda r: np.abs(np.diff(r, axis=1)).mean(axis=0)  # noqa: E731
    transition = np.arange(47, 64)
    outside = np.setdiff1d(np.arange(95), transition)
    within = np.maximum(step(exit0), step(exit2))[outside].max()
    hard_cut = np.where(np.arange(96) < 56, exit0, exit2)
    assert step(mixed)[transition].max() <= within
    assert step(hard_cut)[transition].max() > 2 * within
    # Outside the overlap each side is exactly its exit; inside, a blend of the two.
    np.testing.assert_array_equal(mixed[:, :48], exit0[:, :48])
    np.testing.assert_array_equal(mixed[:, 64:], exit2[:, 64:])
    low, high = np.minimum(exit0, exit2)[:, 48:64], np.maximum(exit0, exit2)[:, 48:64]
    assert ((mixed[:, 48:64] >= low - 1) & (mixed[:, 48:64] <= high + 1)).all()


@pytest.mark.parametrize("thresholds,exit_index", [([50.0, 60.0], 2), ([-60.0, -50.0], 0)])
def test_routing_follows_thresholds_and_matches_the_forced_exit(gray_daqe, thresholds, exit_index):
    """Thresholds above (below) every predicted defocus send every patch to the sharp exit 2 (exit 0), giving
    exactly the output of forcing that exit through the same plan."""
    data = _jpeg(natural_image(40, 72, 1, seed=6))
    kept = gray_daqe.thresholds
    gray_daqe.thresholds = thresholds
    try:
        routed = enhance(data, gray_daqe)
    finally:
        gray_daqe.thresholds = kept
    forced = enhance(data, gray_daqe, exit_index=exit_index)
    assert routed.exit_index is None and forced.exit_index == exit_index
    assert (routed.routing.exits == exit_index).all() and routed.routing.defocus is not None
    assert forced.routing.defocus is None and "by defocus" in routed.describe_exits()
    np.testing.assert_array_equal(routed.pixels, forced.pixels)


def test_patch_mean_is_the_mean_of_covered_cells_and_routes_by_cluster():
    rng = np.random.default_rng(0)
    defocus = rng.uniform(0, 2, (5, 7)).astype(np.float32)  # a 72 x 100 image
    grid = [t for t in plan_tiles(72, 100, 32, 0) if t.y0 % 32 == 0 and t.x0 % 32 == 0 and t.y1 - t.y0 == 32]
    own = patch_defocus_from_map(defocus[None, ..., None], 2)[0]  # the model's own non-overlapping patch grid
    for t in grid:
        assert patch_mean(defocus, t) == pytest.approx(own[t.y0 // 32, t.x0 // 32], rel=1e-6)
    edge = [t for t in plan_tiles(72, 100, 32, 0) if t.y1 == 72][0]  # rows 3..4, the last one partial
    assert patch_mean(defocus, edge) == pytest.approx(defocus[3:5, edge.x0 // 16 : edge.x1 // 16].mean(), rel=1e-6)
    patches = plan_tiles(72, 100, 32, 0)
    thresholds = [0.8, 1.2]
    expected = assign_clusters(np.array([patch_mean(defocus, t) for t in patches]), thresholds)
    np.testing.assert_array_equal(route_patches(defocus, patches, thresholds), expected)
    stacked = np.stack([defocus, 2 * defocus], axis=-1)  # several maps at once: one mean per channel
    np.testing.assert_allclose(patch_mean(stacked, edge), [patch_mean(defocus, edge), 2 * patch_mean(defocus, edge)], rtol=1e-6)


class _PoolingHead(keras.Model):
    """Stands in for a DAQE model: cell maps = (mean, 2 x mean) pixel of each 16-px cell, so tiling must not change them."""

    image_channels, num_exits, patch_size, thresholds = 1, 1, 32, []

    def cell_maps(self, inputs):
        from daqe_tf.layers.padding import pad_to_multiple

        mean = keras.ops.average_pool(pad_to_multiple(inputs["image"], 16), 16, 16, padding="valid")
        return keras.ops.concatenate([mean, 2 * mean], axis=-1)


def test_defocus_windows_stitch_each_cell_from_the_window_owning_it():
    image = natural_image(200, 150, 1, seed=2)
    head = _PoolingHead()
    qmap_for = _qmaps(_jpeg(image))
    whole = predict_defocus(image, head, qmap_for, tile=512)
    tiled = predict_defocus(image, head, qmap_for, tile=128)
    assert whole.shape == (13, 10) and len(plan_tiles(200, 150, 128, 64)) > 1
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-6)
    both = predict_cells(image, head, qmap_for, tile=128)
    assert both.shape == (13, 10, 2)
    np.testing.assert_allclose(both[..., 1], 2 * whole, rtol=1e-6)
    rows, cols = cell_owners(plan_tiles(200, 150, 128, 64), 200, 150)
    assert rows.tolist() == sorted(rows.tolist()) and rows.max() > 0 and cols.max() > 0


def test_maps_show_defocus_and_exit_per_cell():
    patches = plan_tiles(40, 72, 32, 0)
    exits = np.arange(len(patches), dtype=np.int32) % 3
    defocus = np.linspace(0, 3, 15, dtype=np.float32).reshape(3, 5)
    routing = Routing(40, 72, patches, exits, 3, defocus)
    picture = defocus_image(routing)
    assert picture.shape == (40, 72) and picture.dtype == np.uint8
    assert picture[0, 0] == 0 and picture[-1, -1] == 255  # sharp black, sigma >= 8 px white
    cells = routing.exit_cells()
    assert cells.shape == (3, 5) and set(np.unique(cells)) <= {0, 1, 2}
    overlay = exit_overlay(routing, np.full((40, 72), 100, np.uint8))
    colours = exit_colours(3)
    expected = np.round(0.5 * 100 + 0.5 * colours[cells[0, 0]].astype(float)).astype(np.uint8)
    np.testing.assert_array_equal(overlay[0, 0], expected)
    assert len({tuple(c) for c in colours}) == 3
    with pytest.raises(ValueError, match="forced"):
        defocus_image(Routing(40, 72, patches, exits, 3, None))


def test_colour_pixels_through_a_gray_daqe_model_keep_the_routing(gray_daqe):
    data = _jpeg(natural_image(40, 48, 3, seed=8))
    result = enhance(data, gray_daqe)
    assert result.pixels.shape == (40, 48, 3) and result.routing is not None
    assert result.routing.exit_counts().sum() == len(plan_tiles(40, 48, 32, 0))
    loaded = load_image(data)
    plain = enhance_pixels(loaded.pixels, gray_daqe, jpeg_evidence(loaded), exit_index=None)
    np.testing.assert_array_equal(plain, result.pixels)
