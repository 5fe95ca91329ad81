"""The daqe command: batches, bad inputs, never overwriting, resuming, quiet start-up, progress, info."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import daqe_tf.cli as cli
from daqe_tf.cli import main
from tests.helpers import natural_image, tiny_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_model(3).save(path)
    return str(path)


def _write_jpeg(path, image, quality=20, **options):
    Image.fromarray(image).save(path, "JPEG", quality=quality, **options)
    return path


def test_batch_with_bad_files_continues_and_fails_status(tmp_path, model_file, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = _write_jpeg(inputs / "good.jpg", natural_image(40, 56))
    (inputs / "corrupt.jpg").write_bytes(good.read_bytes()[:300])
    (inputs / "notes.png").write_text("not an image")
    Image.fromarray(natural_image(20, 20)).convert("CMYK").save(inputs / "cmyk.jpg")
    Image.new("RGBA", (32, 32)).save(inputs / "alpha.png")
    Image.new("RGB", (1, 1)).save(inputs / "tiny.jpg")
    out = tmp_path / "out"
    status = main(["enhance", str(inputs), "-o", str(out), "--model", model_file, "-q"])
    err = capsys.readouterr().err
    assert status == 1
    assert (out / "good.png").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]
    for name in ("corrupt.jpg", "notes.png", "cmyk.jpg", "alpha.png", "tiny.jpg"):
        lines = [line for line in err.splitlines() if name in line]
        assert len(lines) == 1 and lines[0].startswith("daqe: error:"), (name, err)


def test_single_file_output_and_never_overwrite(tmp_path, model_file, capsys):
    src = _write_jpeg(tmp_path / "a.jpg", natural_image(32, 32))
    before = src.read_bytes()
    assert main(["enhance", str(src), "-o", str(tmp_path / "a_out.png"), "--model", model_file, "-q"]) == 0
    assert Image.open(tmp_path / "a_out.png").size == (32, 32)
    # Output named like the input: refused, input intact.
    assert main(["enhance", str(src), "-o", str(src), "--model", model_file, "-q"]) == 1
    assert main(["enhance", str(src), "-o", str(src), "--model", model_file, "-q", "--overwrite"]) == 1
    assert src.read_bytes() == before
    # An existing (complete) output is kept and skipped, with a note; --overwrite redoes it.
    out = tmp_path / "a_out.png"
    stamp = out.read_bytes()
    os.utime(out, ns=(0, 0))
    assert main(["enhance", str(src), "-o", str(out), "--model", model_file]) == 0
    assert out.read_bytes() == stamp and out.stat().st_mtime_ns == 0
    assert f"skipped {src}: {out} exists" in capsys.readouterr().err
    assert main(["enhance", str(src), "-o", str(out), "--model", model_file, "-q", "--overwrite"]) == 0
    assert out.stat().st_mtime_ns > 0


def test_same_stems_get_unique_outputs(tmp_path, model_file):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a = _write_jpeg(tmp_path / "x" / "photo.jpg", natural_image(32, 32, seed=1))
    b = _write_jpeg(tmp_path / "y" / "photo.jpg", natural_image(32, 32, seed=2))
    out = tmp_path / "out"
    assert main(["enhance", str(a), str(b), "-o", str(out), "--model", model_file, "-q", "--format", "jpg"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["photo.jpg", "photo_2.jpg"]


def test_missing_model_file_is_one_clear_error(tmp_path, capsys):
    src = _write_jpeg(tmp_path / "a.jpg", natural_image(32, 32))
    assert main(["enhance", str(src), "-o", str(tmp_path / "o.png"), "--model", str(tmp_path / "nope.keras")]) == 1
    assert "model file not found" in capsys.readouterr().err
    (tmp_path / "junk.keras").write_bytes(b"garbage")
    assert main(["enhance", str(src), "-o", str(tmp_path / "o.png"), "--model", str(tmp_path / "junk.keras")]) == 1
    assert "not a loadable .keras model" in capsys.readouterr().err


def test_bad_tile_is_a_usage_error(tmp_path, model_file):
    assert main(["enhance", "x.jpg", "-o", str(tmp_path), "--tile", "100"]) == 2


def test_info_prints_tables_subsampling_and_quality(tmp_path, capsys):
    src = _write_jpeg(tmp_path / "a.jpg", natural_image(32, 32), quality=42, subsampling=1)
    gray = _write_jpeg(tmp_path / "g.jpg", natural_image(32, 32, 1), quality=90, progressive=True)
    assert main(["info", str(src), str(gray), "--json"]) == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert (first["estimated_quality"], first["subsampling"], first["standard_tables"]) == (42, "4:2:2", True)
    assert (second["subsampling"], second["progressive"], second["components"]) == ("gray", True, 1)
    assert main(["info", str(src)]) == 0
    text = capsys.readouterr().out
    assert "estimated quality: 42" in text and "table 1 (8-bit" in text
    from daqe_tf.inference.pipeline import jpeg_evidence
    from daqe_tf.io import load_image

    assumed = jpeg_evidence(load_image(src)).describe()
    assert f"  compression assumed by the enhancer: {assumed}" in text.splitlines()
    assert first["compression"] == assumed
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff")
    assert main(["info", str(tmp_path / "bad.jpg")]) == 1


def test_maps_of_a_daqe_model_and_a_clear_error_for_qgaunet(tmp_path, model_file, capsys):
    """--maps writes <stem>_defocus.png and <stem>_exits.png in display orientation; QGAUNet has no routing."""
    from daqe_tf.models import build_model

    daqe = build_model("daqe", 3, widths=[4, 4, 8, 8], encoder_blocks=[1, 1, 1], bottleneck_blocks=[1, 1, 1],
                       decoder_blocks=[1, 0, 0], patch_size=32, defocus_widths=[4, 4, 4, 4], defocus_blocks=[1, 1, 1, 1])
    daqe_file = tmp_path / "daqe.keras"
    daqe.save(daqe_file)
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated: maps must follow the output
    src = tmp_path / "photo.jpg"
    Image.fromarray(natural_image(40, 72)).save(src, "JPEG", quality=20, exif=exif.tobytes())
    maps = tmp_path / "maps"
    assert main(["enhance", str(src), "-o", str(tmp_path / "out.png"), "--model", str(daqe_file), "--maps", str(maps)]) == 0
    assert "exits by defocus" in capsys.readouterr().out
    assert Image.open(tmp_path / "out.png").size == (40, 72)
    defocus, exits = Image.open(maps / "photo_defocus.png"), Image.open(maps / "photo_exits.png")
    assert (defocus.mode, defocus.size, exits.mode, exits.size) == ("L", (40, 72), "RGB", (40, 72))

    status = main(["enhance", str(src), "-o", str(tmp_path / "q.png"), "--model", model_file, "--maps", str(tmp_path / "m2")])
    err = capsys.readouterr().err
    assert status == 2 and "--maps needs a defocus-aware (DAQE) model" in err and "QGAUNet" in err
    assert main(["enhance", str(src), "-o", str(tmp_path / "f.png"), "--model", str(daqe_file), "--maps", str(maps), "--exit", "best"]) == 2
    # A rerun with the output and maps in place skips; one missing file is written, the others kept.
    rerun = ["enhance", str(src), "-o", str(tmp_path / "out.png"), "--model", str(daqe_file), "--maps", str(maps)]
    assert main(rerun) == 0 and "exists" in capsys.readouterr().err
    (tmp_path / "out.png").unlink()
    os.utime(maps / "photo_exits.png", ns=(0, 0))
    assert main(rerun) == 0
    assert (tmp_path / "out.png").is_file() and (maps / "photo_exits.png").stat().st_mtime_ns == 0


def test_rerun_resumes_an_interrupted_batch(tmp_path, model_file, capsys):
    """Finished outputs are skipped (exit 0, said on stderr), temporary files of dead writers are removed,
    a live writer's and a fresh untagged one are left alone; --overwrite redoes everything."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for i in range(3):
        _write_jpeg(inputs / f"p{i}.jpg", natural_image(32, 48, seed=i))
    assert main(["enhance", str(inputs), "-o", str(out), "--model", model_file, "-q"]) == 0
    done = out / "p0.png"
    stamp = done.read_bytes()
    os.utime(done, ns=(0, 0))
    for name in ("p1.png", "p2.png"):
        (out / name).unlink()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = [out / f".p1.png.{int(dead.stdout)}.0123456789ab.tmp", out / ".p2.png.0123456789ab.tmp"]
    kept = [out / f".p2.png.{os.getpid()}.abcdef012345.tmp", out / ".p1.png.abcdef012345.tmp", out / ".other.tmp"]
    for path in stale + kept:
        path.write_bytes(b"half an image")
    old = time.time() - 2 * cli.UNTAGGED_TEMP_AGE_S
    os.utime(stale[1], (old, old))

    assert main(["enhance", str(inputs), "-o", str(out), "--model", model_file]) == 0
    captured = capsys.readouterr()
    assert "removed 2 temporary file(s)" in captured.err
    assert "skipped 1 of 3 images whose outputs exist" in captured.err
    assert done.read_bytes() == stamp and done.stat().st_mtime_ns == 0
    assert "p0.jpg" not in captured.out and "p1.jpg" in captured.out and "p2.jpg" in captured.out
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert sorted(p.name for p in out.glob("*.png")) == ["p0.png", "p1.png", "p2.png"]

    assert main(["enhance", str(inputs), "-o", str(out), "--model", model_file, "--overwrite", "-q"]) == 0
    assert done.stat().st_mtime_ns > 0


def test_an_existing_output_that_is_not_a_whole_image_is_an_error(tmp_path, model_file, capsys):
    src = _write_jpeg(tmp_path / "a.jpg", natural_image(32, 32))
    out = tmp_path / "a.png"
    out.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert main(["enhance", str(src), "-o", str(out), "--model", model_file, "-q"]) == 1
    assert "not a complete image" in capsys.readouterr().err
    assert out.read_bytes().endswith(b"truncated")
    assert main(["enhance", str(src), "-o", str(out), "--model", model_file, "-q", "--overwrite"]) == 0


def test_a_single_image_shows_its_progress_on_a_terminal(tmp_path, model_file, capsys, monkeypatch):
    src = _write_jpeg(tmp_path / "a.jpg", natural_image(160, 200))
    monkeypatch.setattr(cli, "PATCH_BAR_DELAY_S", 0.0)
    assert main(["enhance", str(src), "-o", str(tmp_path / "plain.png"), "--model", model_file, "--tile", "64"]) == 0
    assert "patch" not in capsys.readouterr().err  # not a terminal: no bar
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: True)
    assert main(["enhance", str(src), "-o", str(tmp_path / "a.png"), "--model", model_file, "--tile", "64"]) == 0
    err = capsys.readouterr().err
    from daqe_tf.inference.tiling import plan_tiles

    tiles = len(plan_tiles(160, 200, 64, 32, 16))  # a QGAUNet runs tiles
    assert "a.jpg" in err and f"/{tiles} [" in err and "patch/s" in err
    assert main(["enhance", str(src), "-o", str(tmp_path / "q.png"), "--model", model_file, "--tile", "64", "-q"]) == 0
    assert capsys.readouterr().err == ""


def _cli(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it
    return subprocess.run([sys.executable, "-m", "daqe_tf", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_no_runtime_log_lines_unless_verbose(tmp_path, model_file):
    """The shipped default (LiteRT) and a .keras model (TensorFlow) both start without log lines on stderr."""
    src = _write_jpeg(tmp_path / "a.jpg", natural_image(48, 64))
    shipped = _cli(["enhance", str(src), "-o", str(tmp_path / "shipped.png")], tmp_path)
    assert shipped.returncode == 0 and shipped.stderr == "", shipped.stderr
    assert "a.jpg ->" in shipped.stdout
    keras = _cli(["enhance", str(src), "-o", str(tmp_path / "keras.png"), "--model", model_file], tmp_path)
    assert keras.returncode == 0 and keras.stderr == "", keras.stderr
    verbose = _cli(["enhance", str(src), "-o", str(tmp_path / "verbose.png"), "--verbose"], tmp_path)
    assert verbose.returncode == 0 and "a.jpg ->" in verbose.stdout


def test_quality_and_strength_pass_through_with_clear_errors(tmp_path, model_file, capsys):
    from daqe_tf.inference.pipeline import jpeg_evidence
    from daqe_tf.io import load_image

    src = _write_jpeg(tmp_path / "a.jpg", natural_image(32, 48), quality=20)
    decoded = np.asarray(Image.open(src))
    run = ["enhance", str(src), "--model", model_file]
    assert main([*run, "-o", str(tmp_path / "full.png")]) == 0
    full = np.asarray(Image.open(tmp_path / "full.png"))
    assert jpeg_evidence(load_image(src)).describe() in capsys.readouterr().out

    assert main([*run, "-o", str(tmp_path / "q60.png"), "--quality", "60"]) == 0
    assert f"[{jpeg_evidence(load_image(src), 60).describe()};" in capsys.readouterr().out
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "q60.png")), full)  # a finer Q-map, another output

    assert main([*run, "-o", str(tmp_path / "s0.png"), "--strength", "0"]) == 0
    assert "strength 0: the input unchanged" in capsys.readouterr().out
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "s0.png")), decoded)
    assert main([*run, "-o", str(tmp_path / "s05.png"), "--strength", "0.5"]) == 0
    assert "; strength 0.5]" in capsys.readouterr().out
    half = np.asarray(Image.open(tmp_path / "s05.png")).astype(int)
    expected = decoded + 0.5 * (full.astype(int) - decoded)
    assert np.abs(half - expected).max() <= 1

    for option, value, message in (("--quality", "0", "--quality takes a JPEG quality factor 1..100"),
                                   ("--quality", "high", "--quality takes"),
                                   ("--strength", "-0.5", "--strength takes a number from 0"),
                                   ("--strength", "nan", "--strength takes"),
                                   ("--strength", "9", "--strength takes")):
        with pytest.raises(SystemExit) as stop:
            main([*run, "-o", str(tmp_path / "x.png"), option, value])
        assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_the_atomic_writers_temporary_files_are_recognised(tmp_path, monkeypatch):
    """The names daqe_tf.io gives its temporary files are the ones a rerun knows as its own."""
    from daqe_tf.io import save_image

    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append(Path(src).name)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    save_image(natural_image(16, 16), tmp_path / "x.png")
    monkeypatch.undo()
    assert cli._temp_owner(seen[0], {"x.png"}) == ("x.png", os.getpid())
    assert cli._temp_owner(seen[0], {"y.png"}) is None and cli._temp_owner("x.png", {"x.png"}) is None


def test_ensemble_option(tmp_path, model_file, capsys):
    src = tmp_path / "e.jpg"
    _write_jpeg(src, natural_image(48, 64))
    assert main(["enhance", str(src), "-o", str(tmp_path / "e.png"), "--model", model_file, "--ensemble"]) == 0
    assert "average of 4 flipped and transposed views" in capsys.readouterr().out
    with Image.open(tmp_path / "e.png") as written:
        assert written.size == (64, 48)
    assert main(["enhance", str(src), "-o", str(tmp_path / "m.png"), "--model", model_file, "--ensemble",
                 "--maps", str(tmp_path / "maps")]) == 2
    assert "--ensemble averages four" in capsys.readouterr().err
