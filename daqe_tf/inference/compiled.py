"""Model calls compiled for the active Keras backend, cached per model: what the runners call.

Eager Keras calls pay Python overhead per layer; tiles and patches mostly share one shape, so
each compiled function is traced a handful of times per model. A LiteRT model is already
compiled and passes through (no Keras on a LiteRT-only install). Both the tile runner
(``daqe_tf.inference.pipeline``) and the routing runtime (``daqe_tf.routing.runtime``) use these.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled_forward(model, exit_index: int) -> Callable:
    """``model(inputs, exit_index)`` compiled for the active Keras backend (cached per model).

    Eager Keras calls pay Python overhead per layer; tiles mostly share one
    shape, so a compiled function is traced a handful of times per model.
    """
    return _compiled(model, exit_index, lambda image, qmap: model({"image": image, "qmap": qmap}, exit_index=exit_index))


def compiled_cell_maps(model) -> Callable:
    """``model.cell_maps(inputs)`` (DAQE: defocus and routing value per cell) compiled like ``compiled_forward``."""
    return _compiled(model, "cell_maps", lambda image, qmap: model.cell_maps({"image": image, "qmap": qmap}))


def compiled_cascade_stage(model, stage: int) -> Callable:
    """``model.cascade_stage`` for one stage, compiled: (image, qmap[, context, summary]) -> (features, summary, score)."""
    def forward(image, qmap, *carried):
        return model.cascade_stage({"image": image, "qmap": qmap}, stage, *carried)

    return _compiled(model, ("cascade", stage), forward)


def compiled_patch_summaries(model) -> Callable:
    """``model.patch_summaries`` (what a cascade's readouts are fitted on), compiled."""
    return _compiled(model, "patch_summaries", lambda image, qmap: model.patch_summaries({"image": image, "qmap": qmap}))


def compiled_exit_from_features(model, stage: int) -> Callable:
    """``model.exit_from_features`` for one stage, compiled: (features, image) -> exit output."""
    return _compiled(model, ("exit_from", stage), lambda features, image: model.exit_from_features(stage, features, image))


def compiled_readout_inputs(model) -> Callable:
    """What a DAQE model's routing readout reads per cell (head features, mean luma Q-map), compiled."""
    from daqe_tf.models.daqe.routing_readout import readout_inputs

    head = model.defocus_head
    return _compiled(model, "readout_inputs",
                     lambda image, qmap: readout_inputs(head.features([image, qmap]), qmap, head.cell_size))


def _compiled(model, key, forward: Callable) -> Callable:
    cache = _COMPILED.setdefault(model, {})
    if key not in cache:
        cache[key] = _compile(model, forward)
    return cache[key]


def _compile(model, forward: Callable) -> Callable:
    from daqe_tf.inference.litert_runner import LiteRTModel

    if isinstance(model, LiteRTModel):
        return forward  # already compiled; and no Keras on a LiteRT-only install
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(forward, reduce_retracing=True)
    if backend == "jax":
        import jax

        # The weights go in as arguments: jitting ``forward`` itself would bake the values they
        # had at tracing into the compiled code, and a model that trains on would run stale.
        variables = model.variables

        def stateless(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return forward(*args)

        jitted = jax.jit(stateless)
        return lambda *args: jitted([v.value for v in variables], *args)
    return forward
