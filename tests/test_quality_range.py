"""benchmarks.quality_range on a tiny DAQE model and generated images: single and double JPEG cases."""
import keras
import pytest

from benchmarks import quality_range
from daqe_tf.models import build_model
from tests.helpers import TINY_DAQE_CONFIG, markdown_table, tiny_model, write_image_folder


def test_parse_double():
    assert quality_range.parse_double("30>10@4,4") == (30, 10, (4, 4))
    assert quality_range.parse_double(" 90>50@0,7 ") == (90, 50, (0, 7))
    for bad in ("30>10", "30>10@8,0", "0>10@1,1", "30-10@1,1"):
        with pytest.raises(ValueError):
            quality_range.parse_double(bad)


def test_quality_range_prints_every_case_with_its_gain_and_compute(tmp_path, capsys):
    data = tmp_path / "eval"
    for name in ("LIVE1_color", "Classic5"):  # gray sets are scored on Y of whatever the files hold
        (data / name).mkdir(parents=True)
        write_image_folder(data / name, 2, 80, 96)
    keras.utils.set_random_seed(0)
    daqe = build_model("daqe", 3, **TINY_DAQE_CONFIG)
    paths = [tmp_path / "daqe.keras", tmp_path / "core_gray.keras"]
    daqe.save(paths[0])
    tiny_model(1).save(paths[1])

    argv = ["--color", str(paths[0]), "--gray", str(paths[1]), "--data", str(data), "--sets", "LIVE1_color,Classic5",
            "--qualities", "10,90", "--double", "30>10@4,4,50>90@0,0", "--modes", "default,deepest"]
    assert quality_range.main(argv) == 0
    rows = markdown_table(capsys.readouterr().out.splitlines(), "| set | model | mode | case")
    keys = [(r[0], r[2], r[3]) for r in rows]
    cases = ["QF10", "QF90", "QF30 then QF10, grid shift 4,4", "QF50 then QF90, grid shift 0,0"]
    assert keys == [(s, m, c) for s in ("LIVE1_color", "Classic5") for c in cases for m in ("default", "deepest")]
    for r in rows:
        jpeg, out, gain = float(r[4]), float(r[5]), float(r[6])
        assert abs(out - jpeg - gain) <= 0.011 and float(r[8]) > 0
    jpeg = {(r[0], r[3]): float(r[4]) for r in rows}
    # An earlier QF50 JPEG caps what the last, lighter QF90 one can keep.
    assert jpeg[("LIVE1_color", "QF50 then QF90, grid shift 0,0")] < jpeg[("LIVE1_color", "QF90")] - 1
    macs = {(r[0], r[2], r[3]): float(r[8]) for r in rows}
    assert macs[("Classic5", "default", "QF10")] == macs[("Classic5", "deepest", "QF10")]  # QGA U-Net: deepest by default


def test_quality_range_refuses_bad_cases(capsys):
    for argv in (["--double", "30>10"], ["--modes", "fastest"]):
        with pytest.raises(SystemExit):
            quality_range.main(argv)
        assert "error" in capsys.readouterr().err
