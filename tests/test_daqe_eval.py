"""benchmarks.daqe_eval on tiny models and generated images: every mode, its compute and the target table."""
import keras
import numpy as np

from benchmarks import daqe_eval
from daqe_tf.models import build_model
from tests.helpers import TINY_DAQE_CONFIG, markdown_table, tiny_model, write_image_folder


def test_daqe_eval_scores_every_mode_and_checks_the_targets(tmp_path, capsys):
    data = tmp_path / "eval"
    (data / "LIVE1_color").mkdir(parents=True)
    write_image_folder(data / "LIVE1_color", 2, 80, 96)
    keras.utils.set_random_seed(0)
    daqe = build_model("daqe", 3, **TINY_DAQE_CONFIG)
    for head, offset in zip(daqe.heads, (-0.02, 0.0, 0.02)):
        head.bias.assign(np.full(head.bias.shape, offset, "float32"))
    paths = [tmp_path / "daqe.keras", tmp_path / "core.keras"]
    daqe.save(paths[0])
    tiny_model(3).save(paths[1])

    assert daqe_eval.main(["--color", *map(str, paths), "--data", str(data), "--qualities", "10,40", "--all_exits"]) == 0
    lines = capsys.readouterr().out.splitlines()

    quality = markdown_table(lines, "| set | model | mode | QF10")
    modes = [(row[1].split()[0], row[2]) for row in quality]
    assert modes == [("JPEG", ""), ("daqe.keras", "dynamic"), ("daqe.keras", "exit 0"), ("daqe.keras", "exit 1"),
                     ("daqe.keras", "exit 2"), ("core.keras", "exit 0"), ("core.keras", "exit 1"), ("core.keras", "exit 2")]
    psnr = {(row[1].split()[0], row[2]): [float(cell.split("\\")[0]) for cell in row[3:]] for row in quality}

    after = next(i for i, line in enumerate(lines) if line.startswith("kMACs"))
    compute = markdown_table(lines[after:], "| set | model | mode")
    macs = {(row[1].split()[0], row[2]): [float(c) for c in row[3:]] for row in compute}
    for name in ("daqe.keras", "core.keras"):  # deeper exits cost more, on the same plan
        assert macs[(name, "exit 0")][0] < macs[(name, "exit 1")][0] < macs[(name, "exit 2")][0]
    assert macs[("daqe.keras", "exit 0")][0] < macs[("daqe.keras", "dynamic")][0]  # routing adds the defocus head

    targets = markdown_table(lines, "| set | model | QF | PSNR dynamic")
    assert [row[2] for row in targets] == ["10", "40"]
    for row, column in zip(targets, (0, 1)):
        delta = float(row[3])
        expected = psnr[("daqe.keras", "dynamic")][column] - psnr[("daqe.keras", "exit 2")][column]
        assert abs(delta - expected) < 0.006  # the printed PSNRs are rounded to 0.01
        saved = 1 - macs[("daqe.keras", "dynamic")][column] / macs[("daqe.keras", "exit 2")][column]
        assert abs(float(row[4].rstrip("%")) - 100 * saved) <= 1  # from the printed (3-digit) MACs
        shares = [float(s.rstrip("%")) for s in row[5].split(" / ")]
        assert len(shares) == 3 and abs(sum(shares) - 100) <= 2
