"""The LiteRT file's contract (``daqe_tf.litert_contract``): the exporter's metadata follows it, and
it imports without TensorFlow (the LiteRT-only install reads files through it)."""
import subprocess
import sys

import pytest

from daqe_tf import litert_contract as contract
from export.converter import metadata, signature_keys
from tests.export_cases import TILE, build_case


@pytest.mark.parametrize("case", ["qga_color", "daqe_cnn", "daqe_cascade"])
def test_exported_metadata_has_the_contract_keys(case):
    model = build_case(case)
    keys = signature_keys(model, TILE)
    meta = metadata(model, keys, "float32", TILE, ["CONV_2D"])
    daqe = case.startswith("daqe")
    assert set(meta) == set(contract.METADATA_KEYS) | (set(contract.DAQE_METADATA_KEYS) if daqe else set())
    assert meta["format"] == contract.METADATA_FORMAT and meta["inputs"] == list(contract.INPUTS)
    signatures, outputs = meta[contract.SIGNATURES], meta[contract.OUTPUTS]
    n = model.num_exits
    assert signatures[contract.EXITS] == [contract.exit_signature(k) for k in range(n)]
    assert signatures[contract.TILE] == contract.tile_signature(TILE)
    assert signatures[contract.DEFOCUS] == (contract.DEFOCUS_SIGNATURE if daqe else None)
    assert outputs[contract.EXITS] == contract.OUTPUT_ENHANCED and outputs[contract.ROUTING] == contract.OUTPUT_ROUTING
    if case == "daqe_cascade":
        assert signatures[contract.STAGES] == [contract.stage_signature(m) for m in range(n)]
        assert signatures[contract.HEADS] == [contract.head_signature(m) for m in range(n)]
        assert outputs[contract.SCORE] == contract.OUTPUT_SCORE
    else:
        assert contract.STAGES not in signatures and contract.SCORE not in outputs
    assert keys == [*signatures[contract.EXITS], *filter(None, [signatures[contract.DEFOCUS]]),
                    *signatures.get(contract.STAGES, []), *signatures.get(contract.HEADS, []), signatures[contract.TILE]]


def test_the_contract_and_the_runner_import_without_tensorflow():
    code = ("import sys, daqe_tf.litert_contract, daqe_tf.inference.litert_runner; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
