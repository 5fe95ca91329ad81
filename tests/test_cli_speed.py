"""benchmarks.cli_speed runs on tiny inputs and prints its tables (no timing is asserted)."""
import pytest

from benchmarks import cli_speed
from tests.helpers import markdown_table

TINY = ["--repeats", "1", "--one", "96x64", "--small", "64x48", "--small-count", "2", "--large", "128x96"]


def _tables(capsys):
    lines = capsys.readouterr().out.splitlines()
    return markdown_table(lines, "| path |"), markdown_table(lines, "| start-up |")


def _numbers(row):
    return [float(cell) for cell in row[1:] if cell and cell != "n/a"]


def test_default_path_alone(capsys):
    assert cli_speed.main([*TINY, "--peer", "none"]) == 0
    rows, starts = _tables(capsys)
    assert len(rows) == 1 and rows[0][0].startswith("LiteRT, default") and ".tflite" in rows[0][0]
    assert all(value > 0 for value in _numbers(rows[0]))
    assert [row[0] for row in starts] == ["`import daqe_tf`"]


@pytest.mark.slow
def test_keras_peer_side_by_side(capsys):
    assert cli_speed.main([*TINY, "--peer", "keras"]) == 0
    rows, starts = _tables(capsys)
    assert [row[0].split(",")[0] for row in rows] == ["LiteRT", "Keras", "Keras / LiteRT"]
    assert all(cell.endswith("x") for cell in rows[2][1:5])
    assert [row[0] for row in starts] == ["`import daqe_tf`", "`import daqe_tf, keras`"]
