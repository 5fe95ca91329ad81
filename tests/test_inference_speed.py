"""benchmarks.inference_speed: one row per model and exit, with MACs, Keras and LiteRT (1 and 2 threads) times."""
import json

import pytest

from benchmarks import inference_speed
from tests.helpers import markdown_table

TINY = {"patch_size": 32, "stem_stride": 1, "widths": [4, 4, 8, 8], "encoder_blocks": [1, 1, 1],
        "bottleneck_blocks": [1, 1, 1], "decoder_blocks": [1, 0, 0], "defocus_widths": [4, 4, 4, 4],
        "defocus_blocks": [1, 1, 1, 1], "texture": "cnn"}


@pytest.mark.slow  # exports two LiteRT models
def test_rows_per_model_and_exit(capsys):
    spec = json.dumps({"family": "daqe", **TINY, "block": "inverted"})
    status = inference_speed.main([spec, "--recipes", "base", "--model_config", json.dumps(TINY),
                                   "--megapixels", "0.004", "--repeats", "1"])
    assert status == 0
    rows = markdown_table(capsys.readouterr().out.splitlines(), "| model |")
    assert [(row[0], row[2]) for row in rows] == [("daqe colour", "0"), ("daqe colour", "1"), ("daqe colour", "2"),
                                                  ("base", "0"), ("base", "1"), ("base", "2")]
    for row in rows:
        macs, seconds = float(row[3]), [float(v) for v in row[4:]]
        assert macs > 0 and all(s > 0 for s in seconds)
    deepest = {row[0]: float(row[3]) for row in rows if row[2] == "2"}
    shallowest = {row[0]: float(row[3]) for row in rows if row[2] == "0"}
    assert all(deepest[name] > shallowest[name] for name in deepest)


def test_nothing_to_time_is_refused():
    with pytest.raises(SystemExit, match="at least one"):
        inference_speed.main([])
