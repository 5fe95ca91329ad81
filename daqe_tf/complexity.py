"""Multiply-accumulate counts per exit: the compute side of the exit/quality trade-off.

Counted from the shapes that each Conv2D, Conv2DTranspose and Dense sublayer sees
during one eager forward pass on zeros, so the count follows exactly the path that
``call`` takes for the chosen exit (shared encoder levels once, only the gates and
decoder that exit uses, internal padding to the stride) and needs no TensorFlow.
Only those layers are counted: bias adds, activations, pooling, padding,
concatenation and the elementwise gate/residual products and sums are not (each is
a few operations per activation, small next to the convolutions).
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
from keras import layers, ops

_COUNTED = (layers.Conv2D, layers.Conv2DTranspose, layers.Dense, layers.DepthwiseConv2D)
# Weighted layers whose cost the formulas below do not cover: refuse rather than undercount.
_NOT_COUNTED = (
    layers.Conv1D, layers.Conv3D, layers.Conv1DTranspose, layers.Conv3DTranspose,
    layers.DepthwiseConv1D, layers.SeparableConv1D, layers.SeparableConv2D,
    layers.EinsumDense,
)
_MISSING = object()


def _layer_macs(layer, input_shape, output_shape) -> int:
    if isinstance(layer, layers.Dense):
        return math.prod(input_shape[:-1]) * input_shape[-1] * layer.units
    if layer.data_format == "channels_first":
        cin, spatial_in, cout, spatial_out = input_shape[1], input_shape[2:], output_shape[1], output_shape[2:]
    else:
        cin, spatial_in, cout, spatial_out = input_shape[-1], input_shape[1:-1], output_shape[-1], output_shape[1:-1]
    k_h, k_w = layer.kernel_size
    if isinstance(layer, layers.DepthwiseConv2D):
        return output_shape[0] * math.prod(spatial_out) * k_h * k_w * cout
    if isinstance(layer, layers.Conv2DTranspose):
        # Every input pixel scatters a k_h x k_w x cout patch.
        return input_shape[0] * math.prod(spatial_in) * k_h * k_w * cin * cout
    return output_shape[0] * math.prod(spatial_out) * k_h * k_w * cin * cout // layer.groups


@contextlib.contextmanager
def _recording_macs(model):
    """Wrap ``call`` of every counted sublayer instance; yields the list the MACs are appended to."""
    records, wrapped = [], []
    try:
        for layer in model._flatten_layers(include_self=False):
            if isinstance(layer, _NOT_COUNTED):
                raise NotImplementedError(f"no MAC formula for {type(layer).__name__} ({layer.name})")
            if not isinstance(layer, _COUNTED):
                continue
            previous = layer.__dict__.get("call", _MISSING)
            original = layer.call

            def call(*args, _layer=layer, _original=original, **kwargs):
                outputs = _original(*args, **kwargs)
                inputs = args[0] if args else kwargs["inputs"]
                records.append(_layer_macs(_layer, tuple(ops.shape(inputs)), tuple(ops.shape(outputs))))
                return outputs

            # object.__setattr__: a plain instance attribute, not tracked by Keras.
            object.__setattr__(layer, "call", call)
            wrapped.append((layer, previous))
        yield records
    finally:
        for layer, previous in wrapped:
            if previous is _MISSING:
                object.__delattr__(layer, "call")
            else:
                object.__setattr__(layer, "call", previous)


def count_macs(model, height: int, width: int, exit_index: int | None) -> int:
    """Multiply-accumulates of one forward pass of one ``height`` x ``width`` image through one exit.

    ``model`` is any daqe_tf model family (``QGAUNet``, ``DAQENet``): it takes ``{"image", "qmap"}``
    and ``exit_index`` (``exit_index=None`` counts the all-exit call). Counts Conv2D (out_h*out_w*k_h*k_w*cin*cout/groups), Conv2DTranspose
    (in_h*in_w*k_h*k_w*cin*cout) and Dense only; see the module docstring for what is left out.
    """
    inputs = {
        "image": np.zeros((1, height, width, model.image_channels), "float32"),
        "qmap": np.zeros((1, height, width, model.qmap_channels), "float32"),
    }
    if not model.built:
        # Keras may build by tracing ``call`` symbolically; keep that pass out of the count.
        model(inputs, exit_index=exit_index)
    with _recording_macs(model) as records:
        model(inputs, exit_index=exit_index)
    return sum(records)


def count_defocus_macs(model, height: int, width: int) -> int:
    """Multiply-accumulates of a DAQE model's defocus head (``model.defocus``) on one image: the
    routing's cost on top of the exits. Counted like ``count_macs``."""
    inputs = {
        "image": np.zeros((1, height, width, model.image_channels), "float32"),
        "qmap": np.zeros((1, height, width, model.qmap_channels), "float32"),
    }
    if not model.built:
        model.defocus(inputs)
    with _recording_macs(model) as records:
        model.defocus(inputs)
    return sum(records)


def macs_per_pixel(model, exit_index: int | None, size: int = 256) -> float:
    """``count_macs`` on a ``size`` x ``size`` image divided by its pixel count."""
    return count_macs(model, size, size, exit_index) / (size * size)
