"""Checks that the defocus label cache hits, misses and recovers exactly when it should."""
import functools

import numpy as np
import pytest
from PIL import Image

from daqe_tf.defocus import DefocusLabelCache, estimate_defocus_map
from daqe_tf.defocus import cache as cache_module


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    pixels = np.full((48, 64, 3), 120, np.uint8)
    for _ in range(12):
        y, x = rng.integers(0, 40, 2)
        pixels[y:y + 12, x:x + 20] = rng.integers(0, 256, 3)
    return pixels


@pytest.fixture
def estimator_calls(monkeypatch):
    calls = []

    @functools.wraps(estimate_defocus_map)   # keeps the signature the cache checks settings against
    def counting(image, **params):
        calls.append(params)
        return estimate_defocus_map(image, **params)

    monkeypatch.setattr(cache_module, "estimate_defocus_map", counting)
    return calls


def test_miss_then_hit_returns_the_same_map(tmp_path, image, estimator_calls):
    cache = DefocusLabelCache(tmp_path)
    first = cache.get("a.png", image)
    second = cache.get("renamed.png", image.copy())
    assert (cache.misses, cache.hits, len(estimator_calls)) == (1, 1, 1)
    assert first.dtype == np.float32 and first.shape == (48, 64)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, estimate_defocus_map(image), atol=8.0 / 1024)   # float16 storage
    assert [p.suffix for p in tmp_path.rglob("*") if p.is_file()] == [".npz"]


def test_different_pixels_miss(tmp_path, image, estimator_calls):
    cache = DefocusLabelCache(tmp_path)
    cache.get("a.png", image)
    edited = image.copy()
    edited[0, 0] ^= 1
    cache.get("a.png", edited)
    assert (cache.misses, cache.hits) == (2, 0)


def test_settings_and_version_are_part_of_the_key(tmp_path, image, monkeypatch, estimator_calls):
    DefocusLabelCache(tmp_path).get("a", image)
    explicit_defaults = DefocusLabelCache(tmp_path, sigma0=1, sigma_s=20.0)
    explicit_defaults.get("a", image)
    assert explicit_defaults.hits == 1

    changed = DefocusLabelCache(tmp_path, sigma_s=10.0)
    changed.get("a", image)
    assert changed.misses == 1 and estimator_calls[-1] == {"sigma_s": 10.0}

    monkeypatch.setattr(cache_module, "ESTIMATOR_VERSION", "next")
    bumped = DefocusLabelCache(tmp_path)
    bumped.get("a", image)
    assert bumped.misses == 1 and len(estimator_calls) == 3


def test_unknown_setting_is_refused(tmp_path):
    with pytest.raises(TypeError):
        DefocusLabelCache(tmp_path, sigma_0=1.0)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "wrong_shape"])
def test_unreadable_entry_is_recomputed(tmp_path, image, estimator_calls, damage):
    cache = DefocusLabelCache(tmp_path)
    expected = cache.get("a", image)
    path = cache.path(cache.key(image))
    if damage == "garbage":
        path.write_bytes(b"not an npz at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:40])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        np.savez_compressed(path, defocus=np.zeros((3, 3), np.float16))
    np.testing.assert_array_equal(cache.get("a", image), expected)
    assert cache.misses == 2 and len(estimator_calls) == 2
    np.testing.assert_array_equal(cache.get("a", image), expected)    # rewritten entry is good
    assert cache.hits == 1


def test_failed_write_leaves_no_partial_file(tmp_path, image, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(cache_module.np, "savez_compressed", fail)
    cache = DefocusLabelCache(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        cache.get("a", image)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_path_source_is_loaded_and_shares_entries_with_arrays(tmp_path, image):
    path = tmp_path / "scene.png"
    Image.fromarray(image).save(path)
    cache = DefocusLabelCache(tmp_path / "cache")
    from_file = cache.get(path)
    from_array = cache.get("scene", image)
    assert (cache.misses, cache.hits) == (1, 1)
    np.testing.assert_array_equal(from_file, from_array)
