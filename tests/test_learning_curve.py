"""benchmarks.learning_curve: segments chain their hours, snapshots are scored, the figure is drawn."""
import json

from PIL import Image

from benchmarks import learning_curve
from daqe_tf.models import build_model
from tests.helpers import TINY_MODEL_CONFIG, markdown_table, tiny_model, write_image_folder


def _write_log(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_segments_chain_hours_and_every_point_is_scored(tmp_path, capsys):
    data = tmp_path / "eval" / "LIVE1_color"
    data.mkdir(parents=True)
    write_image_folder(data, 2, 64, 80)
    shipped = tmp_path / "shipped.keras"
    build_model("qga_unet", 3, **TINY_MODEL_CONFIG).save(shipped)  # zero-initialised heads: the identity
    _write_log(tmp_path / "shipped.log.jsonl", [{"kind": "train", "step": 100, "train_seconds": 1800.0},
                                               {"kind": "final", "step": 100}])
    run = tmp_path / "run"
    (run / "snapshots").mkdir(parents=True)
    model = tiny_model(3)  # heads with weights: not the identity
    model.save(run / "snapshots" / "step_000050.keras")
    model.save(run / "final.keras")
    _write_log(run / "log.jsonl", [
        {"kind": "init", "path": str(shipped)},
        {"kind": "snapshot", "step": 50, "path": "snapshots/step_000050.keras", "train_seconds": 3600.0},
        {"kind": "snapshot", "step": 75, "path": "snapshots/step_000075.keras", "train_seconds": 5000.0},  # deleted
        {"kind": "train", "step": 90, "train_seconds": 5400.0},
        {"kind": "final", "step": 90}])

    points = learning_curve.curve_points([str(shipped), str(run)])
    assert [(round(h, 3), step) for h, step, _, _ in points] == [(0.5, 100), (1.5, 50), (2.0, 90)]

    plot = tmp_path / "figure" / "curve.png"
    assert learning_curve.main([str(shipped), str(run), "--data", str(tmp_path / "eval"), "--plot", str(plot)]) == 0
    rows = markdown_table(capsys.readouterr().out.splitlines(), "| hours | model")
    assert [row[0] for row in rows] == ["0.00", "0.50", "1.50", "2.00"]
    psnr = [float(row[2]) for row in rows]
    assert psnr[1] == psnr[0]  # the untrained model is the identity: JPEG's PSNR
    assert psnr[2] == psnr[3] != psnr[0]  # the same weights at both run points, not the identity
    assert abs(float(rows[2][3]) - (psnr[2] - psnr[0])) <= 0.011  # the printed PSNRs are rounded
    with Image.open(plot) as image:
        assert image.size == (720, 420) and len(image.getcolors(1 << 16)) > 3  # lines and text were drawn


def test_a_segment_without_a_log_is_refused(tmp_path):
    import pytest

    tiny_model(3).save(tmp_path / "alone.keras")
    with pytest.raises(FileNotFoundError, match="log.jsonl"):
        learning_curve.curve_points([str(tmp_path / "alone.keras")])
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(FileNotFoundError, match="run folder"):
        learning_curve.curve_points([str(tmp_path / "empty_run")])
