"""benchmarks.recipe_sweep: equal compute per recipe, and its reading of the trainer's logs."""
import json

import pytest

from benchmarks import recipe_sweep
from benchmarks.recipe_sweep import RECIPES, command, deepest_gains, finished_validations, recipe_flags, steps_for

COLOUR_DEFAULT = {"patch_size": 128, "stem_stride": 1, "widths": [16, 24, 48, 96], "encoder_blocks": [1, 1, 1],
                  "bottleneck_blocks": [1, 2, 2], "decoder_blocks": [1, 0, 0], "texture": "cnn"}


def _flags(argv):
    return dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)


def test_every_recipe_gets_the_same_training_pixels():
    for name in RECIPES:
        flags = recipe_flags(name)
        argv = command(name, "runs/x", steps_for(4e7, flags["patch_size"], flags["batch_size"]), {}, ["--family", "qga_unet"])
        flags = _flags(argv)
        pixels = int(flags["patch_size"]) ** 2 * int(flags["batch_size"]) * int(flags["steps"])
        assert abs(pixels - 4e7) / 4e7 < 0.02, name
        assert int(flags["eval_every"]) * 2 == int(flags["steps"])  # validated at half and at the end


def test_a_daqe_recipe_routes_patches_of_its_training_crop_size():
    argv = command("patch_64", "runs/x", 100, {"widths": [8, 8, 8, 8]}, ["--family", "daqe"])
    config = json.loads(next(a for a in argv if a.startswith("--model_config=")).split("=", 1)[1])
    assert config == {"widths": [8, 8, 8, 8], "patch_size": 64}


def test_unknown_recipes_are_refused():
    with pytest.raises(SystemExit, match="unknown recipe"):
        command("adam_forever", "runs/x", 100, {}, [])
    assert steps_for(1, 128, 8) == 2  # never fewer than the two validations


def test_only_finished_runs_are_read(tmp_path):
    gains = {"q10_exit0": 0.1, "q10_exit2": 0.3, "q30_exit2": 0.2, "q10_dynamic": 0.25}
    records = [{"kind": "train", "step": 1}, {"kind": "val", "step": 2, "gains": gains}]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert finished_validations(tmp_path) == []  # no final.keras yet: an interrupted run is retrained (resumed)
    (tmp_path / "final.keras").write_bytes(b"")
    (val,) = finished_validations(tmp_path)
    assert deepest_gains(val) == {10: 0.3, 30: 0.2}


@pytest.mark.parametrize("name", ["block_naf", "block_inverted", "rebalance"])
def test_block_recipes_cost_what_the_default_costs(name):
    """Each exit within 12 % of the colour default's MACs per pixel on a routing patch."""
    from daqe_tf.complexity import macs_per_pixel
    from daqe_tf.models import build_model

    base = build_model("daqe", 3, **COLOUR_DEFAULT)
    changed = recipe_sweep.recipe_model_config(name, COLOUR_DEFAULT, ["--family=daqe"])
    assert changed != COLOUR_DEFAULT and changed["patch_size"] == 128
    model = build_model("daqe", 3, **changed)
    for k in range(3):
        assert macs_per_pixel(model, k, 128) == pytest.approx(macs_per_pixel(base, k, 128), rel=0.12), k


def test_equal_cpu_hours_give_each_recipe_its_own_steps(tmp_path, monkeypatch, capsys):
    """--cpu_hours: steps = hours / measured seconds per step (cached for resumed sweeps), curves against hours."""
    measured = []

    def measure(names, model_config, common):
        measured.extend(names)
        return {name: {"base": 1.0, "block_naf": 2.0}[name] for name in names}

    def train(argv, check):
        flags = _flags(argv)
        run_dir, steps = Path(flags["run_dir"]), int(flags["steps"])
        run_dir.mkdir(parents=True)
        records = [{"kind": "val", "step": s, "gains": {"q10_exit2": s / 1000, "q30_exit2": s / 2000}}
                   for s in range(int(flags["eval_every"]), steps + 1, int(flags["eval_every"]))]
        (run_dir / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (run_dir / "final.keras").write_bytes(b"")
        seen[run_dir.name] = (steps, json.loads(flags["model_config"]))

    from pathlib import Path

    seen = {}
    monkeypatch.setattr(recipe_sweep, "measure_step_seconds", measure)
    monkeypatch.setattr(recipe_sweep.subprocess, "run", train)
    argv = ["--out", str(tmp_path), "--cpu_hours", "0.5", "--evals", "3", "--recipes", "base,block_naf",
            "--plot", str(tmp_path / "curves.png"), "--", "--family=daqe"]
    assert recipe_sweep.main(argv) == 0
    assert seen["base"][0] == 1800 and seen["block_naf"][0] == 900
    assert seen["block_naf"][1]["block"] == "naf"
    out = capsys.readouterr().out
    assert "| block_naf | 2.000 | 900 | 0.500 | +0.900 | +0.450 | +0.675 |" in out
    assert (tmp_path / "curves.png").stat().st_size > 0
    # A second sweep reads the runs and the measured step times: nothing is measured or trained again.
    measured.clear()
    assert recipe_sweep.main(argv) == 0 and measured == []


def test_heldout_scores_final_models_through_the_enhancer(tmp_path):
    """A fresh DAQE model's exits are the identity: +0.000 at every QF; a perturbed one moves away from it."""
    import numpy as np
    from PIL import Image

    from daqe_tf.models import build_model
    from tests.helpers import natural_image

    for i in range(2):
        Image.fromarray(natural_image(80, 96, 3, seed=i)).save(tmp_path / f"img{i}.png")
    (tmp_path / "val.txt").write_text("img0.png\nimg1.png\n")
    tiny = {"patch_size": 32, "stem_stride": 1, "widths": [4, 4, 8, 8], "encoder_blocks": [1, 1, 1],
            "bottleneck_blocks": [1, 1, 1], "decoder_blocks": [1, 0, 0], "defocus_widths": [4, 4, 4, 4],
            "defocus_blocks": [1, 1, 1, 1]}
    for name, scale in (("fresh", 0.0), ("moved", 0.05)):
        model = build_model("daqe", 3, **tiny)
        model.heads[-1].bias.assign(np.full(3, scale, "float32"))
        (tmp_path / name).mkdir()
        model.save(tmp_path / name / "final.keras")
    text = recipe_sweep.heldout_table(["fresh", "moved"], ["--family=daqe", f"--val_data={tmp_path / 'val.txt'}", "--data_root", str(tmp_path)],
                                      tmp_path)
    fresh, moved = (line for line in text.splitlines() if line.startswith(("| fresh", "| moved")))
    assert fresh == "| fresh | +0.000 | +0.000 | +0.000 | +0.000 | +0.000 |"
    assert all(float(cell) < 0 for cell in moved.split("|")[2:-1])  # a constant offset only costs PSNR
