"""benchmarks.history_eval on generated images with the shipped LiteRT models: every case, both tables."""
import numpy as np

from benchmarks import history_eval
from tests.helpers import markdown_table, natural_image, write_image_folder


def test_cases_know_where_their_first_grid_lies():
    cases = {c.label: c for c in history_eval.default_cases()}
    assert cases["QF 10"].grid == (0, 0) and cases["QF 10"].heavy is None
    assert cases["10 > 90 @ 4,4"].grid == (4, 4) and cases["10 > 90 @ 3,5"].grid == (5, 3)
    assert cases["10 > 50 > 90 @ 4,4 / 1,2"].grid == (4, 4)  # later saves keep the image where it is
    assert cases["20 > resize x0.75 > 90"].grid is None
    reference = natural_image(64, 80, seed=1)
    target, data = cases["20 > resize x0.75 > 90"].make(reference)
    assert target.shape == (48, 60, 3) and data[:2] == b"\xff\xd8"
    target, data = cases["PNG of QF 10"].make(reference)
    assert np.array_equal(target, reference) and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_history_eval_prints_every_case(tmp_path, capsys, monkeypatch):
    data = tmp_path / "eval"
    (data / "Classic5").mkdir(parents=True)
    write_image_folder(data / "Classic5", 1, 96, 96)
    monkeypatch.setattr(history_eval, "SINGLE", (10, 90))
    monkeypatch.setattr(history_eval, "HEAVY_TO_MILD", ((10, 90),))
    color = "daqe_tf/weights/daqe_cnn_color_r2_cascade.tflite"
    gray = "daqe_tf/weights/daqe_cnn_gray_g3_cascade.tflite"
    argv = ["--data", str(data), "--sets", "Classic5", "--color", color, "--gray", gray, "--parts", "enhance"]
    assert history_eval.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    rows = markdown_table(out, "| history | file tables")
    assert [r[0] for r in rows] == ["10 > 90 @ 0,0", "10 > 90 @ 4,4", "10 > 90 @ 3,5", "10 > 50 > 90 @ 4,4 / 1,2",
                                    "20 > resize x0.75 > 90", "PNG of 10 > 90 @ 4,4", "PNG of QF 10"]
    singles = markdown_table(out, "| QF | false detections")
    assert [r[0] for r in singles] == ["QF 10", "QF 90"] and all(r[1].endswith("/1") for r in singles)
    estimator = markdown_table(out, "| history | found")
    assert len(estimator) == 6 and all("/1" in r[1] for r in estimator)
