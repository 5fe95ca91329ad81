"""The Apache Beam archive pipeline (daqe_tf.beam) on the DirectRunner: the CLI's outputs, byte for
byte (colour, gray, EXIF orientation with an ICC profile, a re-saved photo's compression history),
a failures file for a bad photo, and a rerun that skips the outputs already written."""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

pytest.importorskip("apache_beam")

from daqe_tf import beam as daqe_beam  # noqa: E402
from daqe_tf.cli import main as cli_main  # noqa: E402
from daqe_tf.sample import make_sample_image  # noqa: E402

GOOD = {"color.jpg": "color.png", "gray.jpg": "gray.png", "sub/rotated.jpg": "sub/rotated.png",
        "sub/resaved.jpg": "sub/resaved.png"}
BAD = "sub/broken.jpg"


def _jpeg(pixels: np.ndarray, quality: int, **params) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality, **params)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """A tiny photo archive: colour, gray, EXIF-rotated with an ICC profile, re-saved, and one corrupt file."""
    root = tmp_path_factory.mktemp("archive") / "photos"
    (root / "sub").mkdir(parents=True)
    pixels = make_sample_image(72, 56, seed=3)
    (root / "color.jpg").write_bytes(_jpeg(pixels, 25))
    (root / "gray.jpg").write_bytes(_jpeg(np.ascontiguousarray(pixels[..., 0]), 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 90 degrees turned
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    (root / "sub" / "rotated.jpg").write_bytes(_jpeg(pixels[:48], 35, exif=exif.tobytes(), icc_profile=icc))
    early = np.asarray(Image.open(io.BytesIO(_jpeg(pixels, 15))).convert("RGB"))
    (root / "sub" / "resaved.jpg").write_bytes(_jpeg(early, 90))  # its pixels keep the QF 15 history
    (root / BAD).write_bytes(_jpeg(pixels, 25)[:400])  # truncated
    return root


def _run_beam(archive: Path, out: Path, *extra: str) -> int:
    return daqe_beam.main(["--input", f"{archive}/**.jpg", "--output", str(out), *extra,
                           "--runner", "DirectRunner", "--direct_num_workers", "1"])


@pytest.fixture(scope="module")
def outputs(archive, tmp_path_factory):
    """The pipeline's outputs and the CLI's on the same files."""
    beam_out = tmp_path_factory.mktemp("beam_out")
    assert _run_beam(archive, beam_out) == 0
    cli_out = tmp_path_factory.mktemp("cli_out")
    status = cli_main(["enhance", *(str(archive / name) for name in GOOD), str(archive / BAD), "-o", str(cli_out), "-q"])
    assert status == 1  # the corrupt file
    return beam_out, cli_out


def test_outputs_match_the_cli_byte_for_byte(outputs):
    beam_out, cli_out = outputs
    for relative in GOOD.values():
        written = beam_out / relative
        assert written.read_bytes() == (cli_out / Path(relative).name).read_bytes(), relative
    assert sorted(p.relative_to(beam_out).as_posix() for p in beam_out.rglob("*.png")) == sorted(GOOD.values())
    assert not list(beam_out.rglob(".*.tmp"))


def test_outputs_keep_gray_orientation_and_icc(outputs, archive):
    beam_out, _ = outputs
    with Image.open(beam_out / "gray.png") as gray:
        assert gray.mode == "L"
    with Image.open(beam_out / "sub/rotated.png") as rotated, Image.open(archive / "sub/rotated.jpg") as source:
        assert rotated.size == (source.height, source.width)  # turned upright
        assert rotated.getexif().get(0x0112) == 1
        assert rotated.info.get("icc_profile") == source.info["icc_profile"]


def test_resaved_photo_uses_its_compression_history(archive):
    from daqe_tf.inference.pipeline import jpeg_evidence
    from daqe_tf.io import load_image

    assert jpeg_evidence(load_image(archive / "sub/resaved.jpg")).source == "history"  # so the byte match above covers it


def test_bad_file_becomes_a_failure_record(outputs, archive):
    beam_out, _ = outputs
    lines = (beam_out / "failures.txt").read_text().splitlines()
    assert len(lines) == 1
    path, reason = lines[0].split("\t")
    assert Path(path).resolve() == (archive / BAD).resolve()
    assert reason and "\n" not in reason and "truncated" in reason


def test_rerun_skips_existing_outputs_and_overwrite_redoes_them(outputs, archive, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(outputs[0], out)
    before = {p: os.stat(p) for p in out.rglob("*.png")}
    (out / "gray.png").unlink()
    assert _run_beam(archive, out) == 0
    after = {p: os.stat(p) for p in out.rglob("*.png")}
    assert set(after) == set(before)
    redone = {p for p in after if (after[p].st_ino, after[p].st_mtime_ns) != (before[p].st_ino, before[p].st_mtime_ns)}
    assert redone == {out / "gray.png"}
    assert len((out / "failures.txt").read_text().splitlines()) == 1  # the bad file is tried again

    (out / "color.png").write_bytes(b"\x89PNG\r\n")  # a damaged output is reported, not skipped
    assert _run_beam(archive, out) == 0
    assert "color.jpg\t" in (out / "failures.txt").read_text() and "--overwrite" in (out / "failures.txt").read_text()

    assert _run_beam(archive, out, "--overwrite") == 0
    final = {p: os.stat(p) for p in out.rglob("*.png")}
    assert all(final[p].st_ino != after[p].st_ino for p in final if p != out / "color.png")
    assert (out / "color.png").read_bytes() == (outputs[0] / "color.png").read_bytes()


def test_output_paths_keep_the_relative_folders():
    assert daqe_beam.fixed_prefix("photos/**/*.jpg") == "photos/"
    assert daqe_beam.fixed_prefix("gs://bucket/a/b*/x?.jpg") == "gs://bucket/a/"
    assert daqe_beam.fixed_prefix("photos/one.jpg") == "photos/"
    assert daqe_beam.output_path("photos/2020/x.jpeg", "photos/", "out", ".png") == "out/2020/x.png"
    assert daqe_beam.output_path("gs://b/p/y.jpg", "gs://b/", "gs://o/run", ".webp") == "gs://o/run/p/y.webp"


def test_clashing_outputs_are_numbered_as_in_the_cli_and_inputs_are_never_replaced():
    resolve = daqe_beam.ResolveOutputs()
    entries = [("output", "p/a.jpg", "o/a.png"), ("output", "p/a.jpeg", "o/a.png")]
    assert list(resolve.process(("o/a.png", entries))) == [("p/a.jpeg", "o/a.png"), ("p/a.jpg", "o/a_2.png")]
    refused = list(resolve.process(("p/a.png", [("input", "p/a.png", None), ("output", "p/a.jpg", "p/a.png")])))
    assert len(refused) == 1 and refused[0].tag == daqe_beam.FAILURES
    assert refused[0].value[0] == "p/a.jpg" and "replace the input" in refused[0].value[1]


def test_temporaries_of_killed_runs_are_removed(tmp_path):
    (tmp_path / "sub").mkdir()
    stale = tmp_path / "sub" / ".x.png.999999999.0123456789ab.tmp"  # a writer pid that cannot be alive
    live = tmp_path / f".y.png.{os.getpid()}.0123456789ab.tmp"
    other = tmp_path / ".notes.tmp"
    for path in (stale, live, other):
        path.write_bytes(b"")
    assert daqe_beam.remove_stale_temporaries_under(str(tmp_path)) == [stale]
    assert live.exists() and other.exists() and not stale.exists()
