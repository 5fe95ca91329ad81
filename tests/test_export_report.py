"""benchmarks.export_report on a tiny DAQE model and generated images: sizes, PSNR drops, pipeline
agreement and one latency row per signature and variant."""
import re

import pytest
from PIL import Image

from benchmarks import export_report
from tests.export_cases import build_case
from tests.helpers import markdown_table, natural_image


@pytest.mark.slow  # exports three LiteRT variants
def test_export_report_prints_quality_and_latency(tmp_path, capsys, representative_images):
    model = build_case("daqe_cnn")
    model.save(tmp_path / "daqe.keras")
    (tmp_path / "eval" / "LIVE1_color").mkdir(parents=True)
    Image.fromarray(natural_image(64, 96, 3, seed=5)).save(tmp_path / "eval" / "LIVE1_color" / "a.png")
    listing = tmp_path / "train.txt"
    listing.write_text("\n".join(representative_images))

    status = export_report.main([str(tmp_path / "daqe.keras"), "--data", str(tmp_path / "eval"), "--representative", str(listing),
                                 "--tile", "64", "--repeats", "1", "--calibration_samples", "4"])
    assert status == 0
    lines = capsys.readouterr().out.splitlines()

    quality = {row[0]: row for row in markdown_table(lines, "| runtime |")}
    assert set(quality) == {"JPEG", "Keras", "LiteRT float32", "LiteRT float16", "LiteRT int8"}
    sizes = {v: float(quality[f"LiteRT {v}"][1]) for v in ("float32", "float16", "int8")}
    assert sizes["float16"] < sizes["float32"] and sizes["int8"] < sizes["float32"]  # (tiny: int8 scales outweigh its bytes)
    for column in (3, 6):  # float32 reproduces the Keras pipeline: no drop, outputs nearly equal
        assert abs(float(quality["LiteRT float32"][column])) <= 0.01
        assert float(quality["LiteRT float32"][column + 1]) >= 45.0

    latency = markdown_table(lines, "| variant | signature |")
    signatures = {"exit_0", "exit_1", "defocus", "tile_64"}
    assert {(row[0], row[1]) for row in latency} == {(v, s) for v in sizes for s in signatures}
    assert all(float(row[2]) > 0 and float(row[3]) > 0 for row in latency)
    assert all(re.fullmatch(r"\d+\.\d\d", row[4]) for row in latency)
