"""RoutingReadout and readout routing: inputs per cell, the fit, the model surgery, the .keras round
trip, the fit tool and training from a readout-routed file."""
import keras
import numpy as np
import pytest

from daqe_tf.models import build_model
from daqe_tf.models.daqe import (
    RoutingReadout,
    patch_defocus_from_map,
    routing_readout_fit,
    shared_weights,
    with_routing,
)
from daqe_tf.models.daqe.routing_readout import readout_inputs
from daqe_tf.routing.policy import assign_clusters
from tests.helpers import TINY_DAQE_CONFIG, daqe_train_config

RNG = np.random.default_rng(11)


def _inputs(batch=2, height=48, width=64):
    return {"image": RNG.uniform(0, 1, (batch, height, width, 3)).astype("float32"),
            "qmap": RNG.uniform(0, 1, (batch, height, width, 2)).astype("float32")}


def _readout_model(seed=0):
    """A tiny DAQENet with a random (non-zero) readout, and the defocus-routed model it came from."""
    keras.utils.set_random_seed(seed)
    model = build_model("daqe", 3, **TINY_DAQE_CONFIG)
    features = model.defocus_widths[-1] + 1
    readout = (RNG.normal(0, 1, features), 0.3)
    return with_routing(model, "readout", [-0.5, 0.5], readout), model, readout


def test_readout_inputs_are_cell_features_and_the_cell_mean_luma_qmap():
    features = RNG.normal(size=(1, 2, 3, 4)).astype("float32")
    qmap = RNG.uniform(0, 1, (1, 20, 40, 2)).astype("float32")  # 20 rows: the second cell row is padded
    out = np.asarray(readout_inputs(features, qmap, 16))
    assert out.shape == (1, 2, 3, 5)
    np.testing.assert_array_equal(out[..., :4], features)
    padded = np.pad(qmap[0, ..., 0], [(0, 12), (0, 8)], mode="symmetric")
    expected = padded.reshape(2, 16, 3, 16).mean(axis=(1, 3))
    np.testing.assert_allclose(out[0, ..., 4], expected, rtol=1e-5)


def test_layer_is_zero_until_set_then_the_linear_map_and_serialises():
    layer = RoutingReadout(16)
    features = RNG.normal(size=(2, 3, 4, 6)).astype("float32")
    qmap = RNG.uniform(0, 1, (2, 48, 64, 1)).astype("float32")
    assert np.all(np.asarray(layer([features, qmap])) == 0)
    weights = RNG.normal(size=7)
    layer.set_linear(weights, -1.5)
    expected = np.asarray(readout_inputs(features, qmap, 16)) @ weights - 1.5
    np.testing.assert_allclose(np.asarray(layer([features, qmap]))[..., 0], expected, rtol=1e-4, atol=1e-5)
    assert RoutingReadout.from_config(layer.get_config()).cell_size == 16
    with pytest.raises(ValueError, match="7 readout weights"):
        layer.set_linear(weights[:3], 0.0)


def test_fit_recovers_a_linear_gain_and_leaves_the_intercept_unshrunk():
    inputs = RNG.normal(size=(500, 5)) * [1, 10, 0.1, 1, 3] + 4.0
    value = 2.0 + inputs[:, 1] * 0.1 - 3.0 * inputs[:, 2]  # log(error deepest / error exit 0)
    errors = np.column_stack([np.exp(-value), np.ones(500), np.ones(500)])
    weights, bias = routing_readout_fit(inputs, errors, ridge=1e-4)
    np.testing.assert_allclose(inputs @ weights + bias, value, atol=1e-3)
    heavy_weights, heavy_bias = routing_readout_fit(inputs, errors, ridge=1e6)  # weights shrink to 0, the mean stays
    assert np.abs(heavy_weights).max() < 1e-3 and heavy_bias == pytest.approx(value.mean(), abs=1e-2)
    with pytest.raises(ValueError, match="same n"):
        routing_readout_fit(inputs[:10], errors[:9])


def test_readout_model_keeps_every_other_weight_and_routes_by_the_readout(tmp_path):
    routed, model, (weights, bias) = _readout_model()
    inputs = _inputs()
    for a, b in zip(shared_weights(routed), model.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for k in range(3):
        np.testing.assert_array_equal(np.asarray(routed(inputs, exit_index=k)), np.asarray(model(inputs, exit_index=k)))
    cells = np.asarray(routed.cell_maps(inputs))
    np.testing.assert_allclose(cells[..., 0], np.asarray(model.defocus(inputs))[..., 0], rtol=1e-5, atol=1e-6)
    head = routed.defocus_head
    expected = np.asarray(readout_inputs(head.features([inputs["image"], inputs["qmap"]]), inputs["qmap"], 16)) @ weights + bias
    np.testing.assert_allclose(cells[..., 1], expected, rtol=1e-4, atol=1e-4)
    assert np.ptp(cells[..., 1]) > 0.01 and not np.allclose(cells[..., 1], cells[..., 0])
    plain = np.asarray(model.cell_maps(inputs))  # a defocus-routed model routes by its defocus
    np.testing.assert_array_equal(plain[..., 0], plain[..., 1])

    patch_cells = routed.patch_size // 16
    clusters = assign_clusters(patch_defocus_from_map(cells[..., 1:], patch_cells), routed.thresholds)
    np.testing.assert_array_equal(np.asarray(routed.cluster_map(inputs)), clusters)

    routed.save(tmp_path / "readout.keras")
    loaded = keras.models.load_model(tmp_path / "readout.keras", safe_mode=True)
    assert loaded.routing == "readout" and loaded.thresholds == pytest.approx([-0.5, 0.5])
    np.testing.assert_allclose(np.asarray(loaded.cell_maps(inputs)), cells, rtol=1e-6, atol=1e-6)


def test_routing_needs_a_readout_exactly_when_it_is_readout():
    model = build_model("daqe", 3, **TINY_DAQE_CONFIG)
    with pytest.raises(ValueError, match="fitted readout"):
        with_routing(model, "readout", [0.0, 1.0])
    with pytest.raises(ValueError, match="fitted readout"):
        with_routing(model, "defocus", [0.0, 1.0], (np.zeros(5), 0.0))
    with pytest.raises(ValueError, match="routing must be one of"):
        build_model("daqe", 3, **TINY_DAQE_CONFIG, routing="psnr")


def test_fit_tool_builds_a_readout_that_meets_the_budget(tmp_path, daqe_image_folder):
    from daqe_tf.complexity import count_macs
    from train.data import list_images, load_images
    from train.fit_thresholds import main, patch_routing_values

    keras.utils.set_random_seed(4)
    model = build_model("daqe", 3, **TINY_DAQE_CONFIG)
    rng = np.random.default_rng(4)
    for head, offset in zip(model.heads, (0.04, 0.02, 0.0)):  # exits that differ, so the errors do
        head.kernel.assign(rng.normal(0, 0.05, head.kernel.shape).astype("float32"))
        head.bias.assign(np.full(head.bias.shape, offset, "float32"))
    model.save(tmp_path / "trained.keras")
    argv = ["--model", str(tmp_path / "trained.keras"), "--train_data", str(daqe_image_folder),
            "--out", str(tmp_path / "readout.keras"), "--qualities", "10,40", "--budget", "0.6", "--signal", "readout"]
    assert main(argv) == 0
    routed = keras.models.load_model(tmp_path / "readout.keras", safe_mode=True)
    assert routed.routing == "readout" and np.abs(np.asarray(routed.routing_readout.linear.kernel)).sum() > 0
    images = load_images(list_images(str(daqe_image_folder)), grayscale=False, min_size=16)
    values = np.concatenate([patch_routing_values(routed, image, q) for image in images for q in (10, 40)])
    costs = np.array([count_macs(routed, routed.patch_size, routed.patch_size, k) for k in range(3)])
    assert costs[assign_clusters(values, routed.thresholds)].mean() <= 0.6 * costs[-1] + 1e-6
    for a, b in zip(shared_weights(routed), model.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_training_starts_from_a_readout_file_and_refuses_to_train_one(tmp_path, daqe_image_folder):
    import dataclasses

    from train.loop import Trainer, weights_digest

    routed, model, _ = _readout_model(seed=5)
    routed.save(tmp_path / "shipped.keras")
    cfg = dataclasses.replace(daqe_train_config(tmp_path / "more", daqe_image_folder, steps=1), init_weights=str(tmp_path / "shipped.keras"))
    assert weights_digest(Trainer(cfg).model) == weights_digest(model)
    refused = daqe_train_config(tmp_path / "bad", daqe_image_folder, steps=1, model_config={**TINY_DAQE_CONFIG, "routing": "readout"})
    with pytest.raises(ValueError, match="--signal readout"):
        Trainer(refused)
