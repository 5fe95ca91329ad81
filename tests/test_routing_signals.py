"""benchmarks.routing_signals on a tiny DAQE model: the assembled routed error and the table."""
import keras
import numpy as np
import pytest

from benchmarks import routing_signals
from daqe_tf.inference.pipeline import enhance
from daqe_tf.jpeg.simulate import compress
from daqe_tf.metrics import psnr
from daqe_tf.models import build_model
from tests.helpers import TINY_DAQE_CONFIG, markdown_table, natural_image, write_image_folder


def _tiny_daqe():
    keras.utils.set_random_seed(0)
    model = build_model("daqe", 3, **TINY_DAQE_CONFIG)
    for head, offset in zip(model.heads, (0.0, 0.02, 0.04)):  # exits that differ visibly (up to 10 grey levels)
        head.bias.assign(np.full(head.bias.shape, offset, "float32"))
    return model


def test_one_exit_everywhere_scores_as_the_real_blended_image():
    """With every patch on exit 0, the assembled delta is the PSNR difference of the actual outputs."""
    model = _tiny_daqe()
    images = [natural_image(80, 96, seed=s) for s in (1, 2)]
    data = routing_signals.collect(model, images, [10, 40])
    assert data["readout_inputs"].shape[1] == 1 + model.defocus_widths[-1] and data["errors"].shape[1] == model.num_exits
    result = routing_signals.route_quality(data, np.zeros(len(data["errors"]), np.int32), [1.0, 2.0, 4.0])
    for quality in (10, 40):
        expected = []
        for image in images:
            data_bytes = compress(image, quality).data
            outputs = [enhance(data_bytes, model, exit_index=k).pixels for k in (0, model.num_exits - 1)]
            expected.append(psnr(image, outputs[0]) - psnr(image, outputs[1]))
        delta, saved, counts = result[quality]
        assert abs(delta - np.mean(expected)) < 1e-6
        head = data["head_macs"][data["quality"] == quality].sum()
        assert abs(saved - (1 - (counts.sum() * 1.0 + head) / (counts.sum() * 4.0))) < 1e-9
    assert result[10][0] > 0.5  # the exits differ, so the check above is not 0 == 0


@pytest.mark.slow
def test_main_prints_every_signal_per_budget_and_qf(tmp_path, capsys):
    model = _tiny_daqe()
    model.save(tmp_path / "daqe.keras")
    train = tmp_path / "train"
    train.mkdir()
    write_image_folder(train, 3, 96, 96, first_seed=5)
    (tmp_path / "eval" / "LIVE1_color").mkdir(parents=True)
    write_image_folder(tmp_path / "eval" / "LIVE1_color", 2, 80, 96)
    argv = ["--model", str(tmp_path / "daqe.keras"), "--train_data", str(train), "--data", str(tmp_path / "eval"),
            "--qualities", "10,40", "--budgets", "0.7"]
    assert routing_signals.main(argv) == 0
    out = capsys.readouterr().out
    assert "Spearman" in out
    rows = markdown_table(out.splitlines(), "| signal | budget | QF")
    assert [(r[0], r[1], r[2]) for r in rows] == [("exit 1 alone", "-", "10"), ("exit 1 alone", "-", "40")] + [
        (s, "0.70", q) for s in ("defocus", "readout", "oracle (knows the errors)") for q in ("10", "40")]
    for r in rows:
        counts = [int(c) for c in r[5].split(" / ")]
        assert len(counts) == 3 and sum(counts) > 0
