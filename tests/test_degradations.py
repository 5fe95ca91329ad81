"""Training degradations: re-saved JPEGs with the history the enhancer reads, gray pairs for colour models."""
import numpy as np
import pytest

from daqe_tf.inference.pipeline import JpegEvidence, window_qmaps
from daqe_tf.jpeg.history import estimate_history
from daqe_tf.jpeg.qmap import qmap_from_tables
from daqe_tf.jpeg.simulate import compress
from daqe_tf.jpeg.tables import tables_for_quality
from daqe_tf.metrics import rgb_to_y_uint8
from tests.helpers import natural_image
from train.data import PairSampler
from train.degradations import DegradationConfig, degrade, degrade_pair

ONLY_420 = {"4:2:0": 1.0}


def _block_phase(image: np.ndarray) -> int:
    """Row phase (0..7) of the strongest 8-periodic horizontal edges: where a JPEG's block rows start."""
    rows = np.abs(np.diff(image.astype(np.float64), axis=0)).mean(axis=tuple(range(1, image.ndim)))
    energy = [rows[k::8].mean() for k in range(8)]  # diff k sits between rows k and k + 1
    return (int(np.argmax(energy)) + 1) % 8


def _textured(size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = natural_image(size, size, 3, seed).astype(np.float64)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def test_resaved_pairs_carry_the_history_a_whole_photo_reading_finds():
    """Heavy then milder on another grid: the Q-map is the first save's, the crop starts at its grid, and the
    estimator reading the pair's pixels finds just that."""
    image = _textured(256, seed=3)
    padded = np.pad(image, ((0, 8), (0, 8), (0, 0)), mode="reflect")
    cfg = DegradationConfig(quality_min=10, quality_max=10, double_jpeg_prob=1.0, custom_table_prob=0.0,
                            resave_aligned_prob=0.0, resave_triple_prob=0.0, resave_resize_prob=0.0, subsampling_probs=ONLY_420)
    rng = np.random.default_rng(0)
    windows = set()
    for _ in range(8):
        target, decoded, qmap, quality = degrade_pair(rng, image, cfg)
        assert target.shape == decoded.shape == image.shape and qmap.shape == (256, 256, 2)
        assert quality == 10
        luma, chroma = tables_for_quality(10)
        np.testing.assert_array_equal(qmap, qmap_from_tables(luma, chroma, 256, 256, "4:2:0"))
        window = next((gy, gx) for gy in range(8) for gx in range(8)
                      if np.array_equal(target, padded[gy : gy + 256, gx : gx + 256]))
        windows.add(window)
        assert _block_phase(decoded) == 0  # the heavy save's blocks start at the crop's origin
        found = estimate_history(decoded).dominant  # pixels alone: the coarsest trace
        assert (found.quality, found.grid) == (10, (0, 0))
    assert len(windows) > 3  # the first save's grid lands anywhere before the cut


def test_a_first_save_not_coarser_than_the_last_leaves_the_files_tables():
    """As the estimator reports no earlier compression unless it is coarser by its margin."""
    image = _textured(64, seed=5)
    cfg = DegradationConfig(quality_min=60, quality_max=60, double_jpeg_prob=1.0, custom_table_prob=0.0,
                            resave_quality_min=60, resave_quality_max=62, resave_triple_prob=0.0, resave_resize_prob=0.0,
                            subsampling_probs=ONLY_420)
    rng = np.random.default_rng(2)
    for _ in range(4):
        target, decoded, qmap, quality = degrade_pair(rng, image, cfg)
        np.testing.assert_array_equal(target, image)  # cut at the file's own grid
        assert 60 <= quality <= 62
        luma, chroma = tables_for_quality(quality)
        np.testing.assert_array_equal(qmap, qmap_from_tables(luma, chroma, 64, 64, "4:2:0"))


def test_a_resize_between_saves_leaves_the_files_tables():
    image = _textured(64, seed=6)
    cfg = DegradationConfig(quality_min=10, quality_max=10, double_jpeg_prob=1.0, custom_table_prob=0.0,
                            resave_triple_prob=0.0, resave_resize_prob=1.0, subsampling_probs=ONLY_420)
    target, decoded, qmap, quality = degrade_pair(np.random.default_rng(3), image, cfg)
    assert quality >= cfg.resave_quality_min
    luma, chroma = tables_for_quality(quality)
    np.testing.assert_array_equal(qmap, qmap_from_tables(luma, chroma, 64, 64, "4:2:0"))


def test_resave_variants_keep_shapes_and_a_milder_last_save():
    image = _textured(64, seed=4)
    cfg = DegradationConfig(double_jpeg_prob=1.0, resave_triple_prob=0.5, resave_resize_prob=0.5, custom_table_prob=0.5)
    rng = np.random.default_rng(1)
    for channels in (3, 1):
        patch = image if channels == 3 else image[..., 0].copy()
        for _ in range(12):
            target, decoded, qmap, quality = degrade_pair(rng, patch, cfg)
            assert target.shape == decoded.shape == patch.shape and target.dtype == decoded.dtype == np.uint8
            assert qmap.shape == (64, 64, 2 if channels == 3 else 1) and np.isfinite(qmap).all()
            assert 1 <= quality <= 100


@pytest.mark.parametrize("probability", [0.0, 1.0])
def test_gray_pairs_for_a_colour_model(probability):
    """Probability 1: every pair is gray as inference feeds a gray JPEG to a colour model; 0: none is."""
    rng = np.random.default_rng(1)
    image = natural_image(48, 48, seed=4)
    cfg = DegradationConfig(grayscale_prob=probability, double_jpeg_prob=0.0, custom_table_prob=0.0)
    for _ in range(8):
        target, decoded, qmap, quality = degrade_pair(rng, image, cfg)
        assert target.shape == decoded.shape == (48, 48, 3) and qmap.shape == (48, 48, 2)
        gray = [np.array_equal(a[..., 0], a[..., c]) for a in (target, decoded) for c in (1, 2)]
        if probability == 0:
            assert not any(gray)
            np.testing.assert_array_equal(target, image)
            continue
        assert all(gray)
        np.testing.assert_array_equal(target[..., 0], rgb_to_y_uint8(image))
        np.testing.assert_array_equal(decoded[..., 0], compress(rgb_to_y_uint8(image), quality).decoded)
        evidence = JpegEvidence(tables_for_quality(quality, grayscale=True)[0], None, "gray", quality, "jpeg-standard")
        np.testing.assert_array_equal(qmap, window_qmaps(evidence, 3)(48, 48, (0, 0)))


def test_gray_probability_leaves_gray_models_and_the_default_stream_alone():
    image = natural_image(32, 32, seed=5)
    cfg = DegradationConfig(grayscale_prob=1.0)
    target, decoded, qmap, _ = degrade_pair(np.random.default_rng(2), image[..., 0].copy(), cfg)
    assert target.ndim == decoded.ndim == 2 and qmap.shape == (32, 32, 1)
    # Probability 0 draws nothing: the pair equals what ``degrade`` alone draws from the same seed.
    _, decoded, qmap, quality = degrade_pair(np.random.default_rng(7), image, DegradationConfig())
    expected = degrade(np.random.default_rng(7), image, DegradationConfig())
    np.testing.assert_array_equal(decoded, expected[0])
    assert quality == expected[2]


def test_sampler_batches_carry_gray_pairs():
    images = [natural_image(48, 48, seed=s) for s in range(2)]
    inputs, target = PairSampler(images, 32, 3, DegradationConfig(grayscale_prob=1.0), seed=1).batch(0)
    for array in (inputs["image"], target, inputs["qmap"]):
        np.testing.assert_array_equal(array[..., 0], array[..., -1])


def test_subsampling_weights_from_the_flag():
    from train.degradations import parse_subsampling_probs

    assert parse_subsampling_probs("4:2:0=0.7,4:4:4=0.2,4:2:2=0.1") == DegradationConfig().subsampling_probs
    assert parse_subsampling_probs("4:4:4=1") == {"4:4:4": 1.0}
    for bad in ("4:1:1=1", "4:2:0", "4:2:0=-1", "4:2:0=0", "4:2:0=x"):
        with pytest.raises(ValueError):
            parse_subsampling_probs(bad)
    rng = np.random.default_rng(0)
    only_444 = DegradationConfig(subsampling_probs=parse_subsampling_probs("4:4:4=1"), double_jpeg_prob=0, custom_table_prob=0)
    for seed in range(3):
        _, qmap, _ = degrade(rng, natural_image(32, 32, 3, seed=seed), only_444)
        chroma = qmap[..., 1]
        assert np.array_equal(chroma[:, :8], chroma[:, 8:16])  # chroma steps repeat every 8 px: 4:4:4
        assert not np.array_equal(chroma[:, 0::2], chroma[:, 1::2])  # 4:2:0 / 4:2:2 would pair columns
