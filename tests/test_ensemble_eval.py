"""benchmarks.ensemble_eval on a generated image with the shipped models: one row per set and QF."""
from benchmarks import ensemble_eval
from tests.helpers import markdown_table, write_image_folder


def test_ensemble_eval_prints_gain_and_time_ratio(tmp_path, capsys):
    (tmp_path / "Classic5").mkdir()
    write_image_folder(tmp_path / "Classic5", 1, 64, 80)
    assert ensemble_eval.main(["--data", str(tmp_path), "--sets", "Classic5", "--qualities", "10,50"]) == 0
    rows = markdown_table(capsys.readouterr().out.splitlines(), "| set | QF")
    assert [(r[0], r[1], r[2]) for r in rows] == [("Classic5", "10", "1"), ("Classic5", "50", "1")]
    for r in rows:
        default, ensemble, difference = float(r[3]), float(r[4]), float(r[5])
        assert abs(ensemble - default - difference) <= 0.0015 and r[6].endswith("x")
