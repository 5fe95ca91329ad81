"""Training degradations: double JPEG on a shifted grid, gray pairs for colour models."""
import numpy as np
import pytest

from daqe_tf.inference.pipeline import JpegEvidence, window_qmaps
from daqe_tf.jpeg.qmap import qmap_from_tables
from daqe_tf.jpeg import simulate
from daqe_tf.jpeg.simulate import compress
from daqe_tf.jpeg.tables import tables_for_quality
from daqe_tf.metrics import rgb_to_y_uint8
from tests.helpers import natural_image
from train import degradations
from train.data import PairSampler
from train.degradations import DegradationConfig, degrade, degrade_pair


def _block_phase(image: np.ndarray) -> int:
    """Row phase (0..7) of the strongest 8-periodic horizontal edges: where a JPEG's block rows start."""
    rows = np.abs(np.diff(image.astype(np.float64), axis=0)).mean(axis=tuple(range(1, image.ndim)))
    energy = [rows[k::8].mean() for k in range(8)]  # diff k sits between rows k and k + 1
    return (int(np.argmax(energy)) + 1) % 8


def test_double_jpeg_recompresses_a_crop_of_an_earlier_jpeg(monkeypatch):
    """Every pixel is compressed twice; the first grid is offset by a random 0..7 px, the Q-map is the second's."""
    calls = []

    def spy(image, *args, **kwargs):
        result = compress(image, *args, **kwargs)
        calls.append((np.array(image), result))
        return result

    monkeypatch.setattr(degradations, "compress", spy)
    monkeypatch.setattr(simulate, "compress", spy)  # the earlier JPEG (daqe_tf.jpeg.simulate.earlier_jpeg_crop)
    image = natural_image(64, 64, channels=1, seed=3)
    cfg = DegradationConfig(quality_min=10, quality_max=10, double_jpeg_prob=1.0, custom_table_prob=0.0)
    rng = np.random.default_rng(0)
    offsets = set()
    for _ in range(24):
        calls.clear()
        decoded, qmap, _ = degrade(rng, image, cfg)
        (first_in, first), (second_in, second) = calls
        dy, dx = first_in.shape[0] - 64, first_in.shape[1] - 64
        assert 0 <= dy < 8 and 0 <= dx < 8
        np.testing.assert_array_equal(first_in[dy:, dx:], image)  # the earlier JPEG covers the whole crop
        np.testing.assert_array_equal(second_in, first.decoded[dy:, dx:])  # the crop of it is compressed again
        np.testing.assert_array_equal(decoded, second.decoded)
        assert _block_phase(second_in) == (-dy) % 8  # the earlier grid, seen from the crop
        np.testing.assert_array_equal(qmap, qmap_from_tables(second.luma_table, None, 64, 64, "gray"))
        offsets.add((dy, dx))
    assert len({dy for dy, _ in offsets}) > 4 and len({dx for _, dx in offsets}) > 4


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
