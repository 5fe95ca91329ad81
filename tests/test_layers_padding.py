"""pad_to_multiple / crop_to: exact round trip, bottom/right-only padding, static channel count."""
import numpy as np
import pytest
import tensorflow as tf

from daqe_tf.layers.padding import crop_to, pad_to_multiple

SIZES = [(37, 50, 8), (9, 13, 16), (5, 6, 4), (16, 24, 8)]


def _image(h, w, c=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (2, h, w, c)).astype("float32")


@pytest.mark.parametrize("h,w,multiple", SIZES)
def test_pad_then_crop_round_trip(h, w, multiple):
    x = _image(h, w)
    padded = np.asarray(pad_to_multiple(x, multiple))
    assert padded.shape == (2, -(-h // multiple) * multiple, -(-w // multiple) * multiple, 3)
    np.testing.assert_array_equal(np.asarray(crop_to(padded, h, w)), x)


@pytest.mark.parametrize("h,w,multiple", SIZES)
def test_padding_only_at_bottom_right_and_symmetric(h, w, multiple):
    x = _image(h, w)
    padded = np.asarray(pad_to_multiple(x, multiple))
    np.testing.assert_array_equal(padded[:, :h, :w], x)  # top-left block grid untouched
    for i in range(padded.shape[1] - h):
        np.testing.assert_array_equal(padded[:, h + i, :w], x[:, h - 1 - i])
    for j in range(padded.shape[2] - w):
        np.testing.assert_array_equal(padded[:, :h, w + j], x[:, :, w - 1 - j])


def test_multiple_one_is_identity():
    x = _image(7, 5)
    assert pad_to_multiple(x, 1) is x


def test_static_channel_count_survives_unknown_height_and_width():
    static_shapes = []

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def pad_and_crop(x):
        padded = pad_to_multiple(x, 8)
        cropped = crop_to(padded, tf.shape(x)[1], tf.shape(x)[2])
        static_shapes.extend([padded.shape.as_list(), cropped.shape.as_list()])
        return cropped

    x = _image(11, 14)
    np.testing.assert_array_equal(pad_and_crop(x).numpy(), x)
    assert static_shapes == [[None, None, None, 3]] * 2


def test_smallest_supported_side_is_half_the_multiple():
    # Symmetric padding mirrors at most the whole side: sides >= multiple / 2 work
    # (the image loader refuses sides < 8, the shipped models' stride / 2).
    assert np.asarray(pad_to_multiple(_image(4, 5), 8)).shape == (2, 8, 8, 3)
    with pytest.raises(tf.errors.InvalidArgumentError):
        pad_to_multiple(_image(3, 3), 8)
