"""Run an exported ``.tflite`` model with LiteRT: the on-device reference pipeline in Python.

Why: a phone has no TensorFlow, and the Python pipeline should run the very file the app
ships, so its output is the reference the app is checked against. This module needs only
``ai_edge_litert`` and numpy (Pillow for the rest of the pipeline): nothing on its import or
call path imports TensorFlow or Keras. ``LiteRTModel`` satisfies the contracts ``enhance`` relies
on in a Keras model (``daqe_tf.contracts``: ``PatchModel``, and for DAQE files ``DefocusModel`` or
``CascadeModel``),
reading what the file alone cannot say from the ``<file>.json`` that ``export.main`` writes.

Speed: signatures take any batch size, so batch slots that only repeat the batch's last item
(the routing pads every batch to one size, which a traced Keras function needs) are not run
when the model's batch items are independent (every family but DAQE's "transformer" texture,
whose batch is its reference set). Calls are serialised by a lock, so one model may serve
several threads.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

from daqe_tf import litert_contract as contract
from daqe_tf.inference.models import ModelFileError, native_stderr_silenced


class LiteRTModel:
    """A ``.tflite`` file from ``export.main`` and its metadata.

    ``model({"image", "qmap"}, exit_index)``: float32 arrays (B, H, W, C) in [0, 1] and
    (B, H, W, Q); returns the exit's (B, H, W, C) numpy output. For DAQE models the batch is
    one cluster's patches, ``cell_maps(inputs)`` gives log1p(sigma) and the routing value per
    16 px cell, and ``patch_size`` / ``thresholds`` route patches to exits (None for QGAUNet).
    """

    def __init__(self, path: str | os.PathLike, num_threads: int = 2, *, quiet: bool = True):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as error:
            raise ModelFileError(f"{path}: a .tflite model needs LiteRT: install daqe-tf[litert] ({error})") from error
        self.path = Path(path)
        meta_path = contract.metadata_path(path)
        if not self.path.is_file():
            raise ModelFileError(f"{self.path}: model file not found")
        try:
            self.metadata = json.loads(meta_path.read_text())
        except (OSError, ValueError) as error:
            raise ModelFileError(f"{self.path}: needs its metadata {meta_path.name} from export.main ({error})") from error
        try:
            self._interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        except (ValueError, RuntimeError) as error:
            raise ModelFileError(f"{self.path}: not a loadable .tflite model ({error})") from error
        self.family = self.metadata["family"]
        self.image_channels = int(self.metadata["image_channels"])
        self.qmap_channels = int(self.metadata["qmap_channels"])
        self.num_exits = int(self.metadata["num_exits"])
        self.stride = int(self.metadata["stride"])
        self.patch_size = self.metadata.get("patch_size")
        self.thresholds = self.metadata.get("thresholds")
        self.routing = self.metadata.get("routing")
        # A cascade's compute cap, applied by the routing per band (``routing.run_cascade``).
        config = self.metadata.get("model_config", {})
        self.max_cost, self.exit_costs = config.get("max_cost"), config.get("exit_costs")
        self.signatures = self.metadata[contract.SIGNATURES]
        self.outputs = self.metadata[contract.OUTPUTS]
        if self.routing == "cascade" and not {contract.STAGES, contract.HEADS} <= set(self.signatures):
            raise ModelFileError(f"{self.path}: routes by cascade but its metadata names no stage/head signatures")
        missing = set(self.signature_keys()) - set(self._interpreter.get_signature_list())
        if missing:
            raise ModelFileError(f"{self.path}: lacks signatures {sorted(missing)} named in its metadata")
        if self.metadata.get("routing", "defocus") != "defocus" and contract.ROUTING not in self.outputs:
            # Its thresholds are not in defocus units, so defocus cannot stand in for the routing value.
            raise ModelFileError(f"{self.path}: routes by {self.metadata['routing']!r} but its metadata names no routing output")
        # Batch items that do not see each other: trailing repeats of the last one can be skipped.
        self.batch_independent = self.family != "daqe" or config.get("texture", "cnn") == "cnn"
        self._runners: dict = {}  # key -> (signature runner, whether its batch size may vary)
        self._lock = threading.Lock()
        self._quiet_first_call = quiet  # the delegate prints an INFO line when it is created

    def signature_keys(self) -> list[str]:
        """Exits, then ``defocus`` (DAQE), then a cascade's stages and heads, then the fixed tile."""
        cascade = [*self.signatures.get(contract.STAGES, []), *self.signatures.get(contract.HEADS, [])]
        return [*self.signatures[contract.EXITS], *filter(None, [self.signatures.get(contract.DEFOCUS)]), *cascade,
                *filter(None, [self.signatures.get(contract.TILE)])]

    def run(self, key: str, inputs: dict) -> dict:
        """One signature on named float32 inputs (``{"image", "qmap"}`` for most); returns its outputs by name."""
        arrays = {name: np.asarray(value, dtype=np.float32) for name, value in inputs.items()}
        with self._lock:
            if key not in self._runners:
                runner = self._interpreter.get_signature_runner(key)
                details = runner.get_input_details().values()
                self._runners[key] = (runner, all(d["shape_signature"][0] == -1 for d in details))
            runner, dynamic_batch = self._runners[key]
            batch = len(next(iter(arrays.values())))
            used = _distinct_prefix(arrays) if dynamic_batch and self.batch_independent else batch
            feeds = {name: np.ascontiguousarray(value[:used]) for name, value in arrays.items()}
            if self._quiet_first_call:
                with native_stderr_silenced():
                    outputs = runner(**feeds)
                self._quiet_first_call = False
            else:
                outputs = runner(**feeds)
        if used < batch:  # the skipped slots repeat the last item, and so does their output
            outputs = {name: _repeat_last(value, batch) for name, value in outputs.items()}
        return outputs

    def cascade_stage(self, inputs: dict, stage: int, context=None, summary=None):
        """``DAQENet.cascade_stage`` on the file's ``stage_<m>`` signature: (features, summary, score or None)."""
        names = self.outputs
        feeds = {contract.INPUT_IMAGE: inputs["image"], contract.INPUT_QMAP: inputs["qmap"]}
        if stage > 0:
            feeds.update({contract.INPUT_CONTEXT: context, contract.INPUT_SUMMARY: summary})
        outputs = self.run(self.signatures[contract.STAGES][stage], feeds)
        score = outputs.get(names[contract.SCORE]) if stage < self.num_exits - 1 else None
        return outputs[names[contract.FEATURES]], outputs[names[contract.SUMMARY]], score

    def exit_from_features(self, stage: int, features, image) -> np.ndarray:
        """``DAQENet.exit_from_features`` on the file's ``head_<m>`` signature."""
        outputs = self.run(self.signatures[contract.HEADS][stage], {contract.INPUT_FEATURES: features, contract.INPUT_IMAGE: image})
        return outputs[self.outputs[contract.EXITS]]

    def __call__(self, inputs: dict, exit_index: int = -1) -> np.ndarray:
        if not -self.num_exits <= exit_index < self.num_exits:
            raise ValueError(f"exit_index {exit_index} out of range for {self.num_exits} exits")
        key = self.signatures[contract.EXITS][exit_index % self.num_exits]
        return self.run(key, inputs)[self.outputs[contract.EXITS]]

    def cell_maps(self, inputs: dict) -> np.ndarray:
        """Predicted log1p(blur sigma) and routing value per defocus cell, (B, ceil(H/16), ceil(W/16), 2) (DAQE only).

        Files exported before the ``routing`` output route by defocus, so it stands in for both.
        """
        key = self.signatures.get(contract.DEFOCUS)
        if key is None:
            raise ValueError(f"{self.path.name}: a {self.family} model has no defocus signature")
        names = self.outputs
        outputs = self.run(key, inputs)
        defocus = outputs[names[contract.DEFOCUS]]
        routing = outputs[names[contract.ROUTING]] if contract.ROUTING in names else defocus
        return np.concatenate([defocus, routing], axis=-1)

    def defocus(self, inputs: dict) -> np.ndarray:
        """Predicted log1p(blur sigma) per defocus cell, (B, ceil(H/16), ceil(W/16), 1) (DAQE only)."""
        return self.cell_maps(inputs)[..., :1]

    def __repr__(self) -> str:
        return f"LiteRTModel({str(self.path)!r}, {self.family}, {self.metadata['variant']}, {self.num_exits} exits)"


def _distinct_prefix(arrays: dict) -> int:
    """Length of the batch without its trailing slots that repeat the item before them in every input."""
    values = list(arrays.values())
    used = len(values[0])
    while used > 1 and all(np.array_equal(v[used - 1], v[used - 2]) for v in values):
        used -= 1
    return used


def _repeat_last(value: np.ndarray, batch: int) -> np.ndarray:
    value = np.asarray(value)
    if value.ndim == 0 or len(value) >= batch:
        return value
    return np.concatenate([value, np.repeat(value[-1:], batch - len(value), axis=0)])
