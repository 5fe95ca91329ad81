"""Shared contract checks for daqe_tf layers and models, after keras-hub's TestCase.

Training, `.keras` saving and TFLite export each rebuild or re-trace a layer in
a different way (from its config, from symbolic inputs with unknown H/W, under a
float16 policy). Writing those checks once keeps every layer test short and
makes a missing `get_config` entry or a shape-dependent `build` fail here
rather than in a long training run.
"""
from __future__ import annotations

import json

import keras
import numpy as np
import tensorflow as tf
from keras import tree

ATOL = 1e-6


def _outputs(value) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(x) for x in tree.flatten(value)]


def _assert_same_outputs(actual, expected, atol: float = ATOL):
    actual, expected = _outputs(actual), _outputs(expected)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=0, atol=atol)


def _copy_weights(source, target):
    assert len(source.weights) == len(target.weights)
    target.set_weights(source.get_weights())


def _symbolic_inputs(input_data):
    """keras.Input(s) with unknown batch, height and width but the data's channel count."""
    return tree.map_structure(lambda x: keras.Input(shape=(None, None, x.shape[-1])), input_data)


def run_layer_test(cls, init_kwargs: dict, input_data, expected_output_shape: tuple):
    """Eager call, config round trip, symbolic call, serialization, gradient step, mixed precision."""
    layer = cls(**init_kwargs)
    output = layer(input_data)
    (out,) = _outputs(output)
    assert out.shape == tuple(expected_output_shape)
    assert np.isfinite(out).all()
    shapes = tree.map_structure(lambda x: tuple(x.shape), input_data)
    assert tuple(layer.compute_output_shape(shapes)) == tuple(expected_output_shape)

    # get_config is complete (every constructor argument comes back) and from_config rebuilds it.
    config = layer.get_config()
    for key, value in init_kwargs.items():
        assert key in config and config[key] == value, f"get_config() lost {key!r}"
    revived = cls.from_config(config)
    assert revived.get_config() == config
    revived(input_data)
    _copy_weights(layer, revived)
    _assert_same_outputs(revived(input_data), output)

    # Symbolic call with unknown H/W, then the same layer run eagerly inside a functional model.
    symbolic_layer = cls(**init_kwargs)
    inputs = _symbolic_inputs(input_data)
    symbolic_output = symbolic_layer(inputs)
    assert isinstance(symbolic_output, keras.KerasTensor)
    assert tuple(symbolic_output.shape) == (None, None, None, expected_output_shape[-1])
    functional = keras.Model(inputs, symbolic_output)
    _copy_weights(layer, symbolic_layer)
    _assert_same_outputs(functional(input_data), output)

    # Registered serialization through JSON text, as `.keras` saving does (build config shapes become lists).
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"daqe_tf>{cls.__name__}"
    deserialized = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(deserialized) is cls
    assert deserialized.get_config() == config
    assert deserialized.built
    _copy_weights(layer, deserialized)
    _assert_same_outputs(deserialized(input_data), output)

    run_gradient_step_test(cls(**init_kwargs), input_data)
    run_mixed_precision_test(lambda: cls(**init_kwargs), input_data, expected_output_shape)


def run_gradient_step_test(layer, input_data, learning_rate: float = 0.1):
    """SGD on a random-target MSE: finite gradients; every trainable weight gets a nonzero gradient at the first
    step or, behind a zero-initialised scale (NAFBlock), the second, and then moves where the SGD update is
    above the weight's float32 resolution."""
    layer(input_data)
    variables = layer.trainable_variables
    assert variables, "layer has no trainable weights"
    rng = np.random.default_rng(0)
    waiting = list(range(len(variables)))  # weights that have not had a nonzero gradient yet
    for _ in range(2):
        before = [keras.ops.convert_to_numpy(v) for v in variables]
        with tf.GradientTape() as tape:
            output = layer(input_data)
            target = rng.uniform(-1, 1, output.shape).astype("float32")
            loss = keras.ops.mean(keras.ops.square(output - target))
        gradients = tape.gradient(loss, variables)
        assert np.isfinite(keras.ops.convert_to_numpy(loss))
        moving = []
        for i, (variable, gradient) in enumerate(zip(variables, gradients)):
            assert gradient is not None, f"no gradient for {variable.path}"
            gradient = keras.ops.convert_to_numpy(gradient)
            assert np.isfinite(gradient).all(), variable.path
            if np.abs(gradient).max() > 0 and i in waiting:
                waiting.remove(i)
                if np.any(np.abs(learning_rate * gradient) > np.spacing(np.abs(before[i]))):
                    moving.append(i)
        keras.optimizers.SGD(learning_rate).apply(gradients, variables)
        for i in moving:
            new = keras.ops.convert_to_numpy(variables[i])
            assert np.isfinite(new).all(), variables[i].path
            assert not np.array_equal(new, before[i]), f"{variables[i].path} did not change"
    assert not waiting, f"zero gradient for {[variables[i].path for i in waiting]}"


def run_mixed_precision_test(factory, inputs, expected_output_shape, call_kwargs=None, output_dtype="float16"):
    """Under mixed_float16, ``factory()`` builds and calls fine: float32 weights, finite outputs.

    ``output_dtype``: the dtype every output must have (None to skip that check).
    """
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        obj = factory()
        outputs = _outputs(obj(inputs, **(call_kwargs or {})))
        assert obj.dtype_policy.name == "mixed_float16"
        assert obj.weights and all(w.dtype == "float32" for w in obj.weights)
        for out in outputs:
            assert out.shape == tuple(expected_output_shape)
            assert np.isfinite(out).all()
            if output_dtype is not None:
                assert out.dtype == output_dtype
    finally:
        keras.mixed_precision.set_global_policy("float32")


def run_model_saving_test(model, inputs, tmp_path, call_kwargs=None):
    """`.keras` save + `load_model(safe_mode=True)`: same class, config, weights and outputs. Returns the loaded model."""
    path = tmp_path / "model.keras"
    call_kwargs = call_kwargs or {}
    expected = model(inputs, **call_kwargs)
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    _assert_same_outputs(loaded(inputs, **call_kwargs), expected)
    return loaded
