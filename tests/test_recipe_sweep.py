"""benchmarks.recipe_sweep: equal compute per recipe, and its reading of the trainer's logs."""
import json

import pytest

from benchmarks.recipe_sweep import RECIPES, command, deepest_gains, finished_validations, steps_for


def test_every_recipe_gets_the_same_training_pixels():
    for name in RECIPES:
        argv = command(name, "runs/x", 4e7, {}, ["--family", "qga_unet"])
        flags = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
        pixels = int(flags["patch_size"]) ** 2 * int(flags["batch_size"]) * int(flags["steps"])
        assert abs(pixels - 4e7) / 4e7 < 0.02, name
        assert int(flags["eval_every"]) * 2 == int(flags["steps"])  # validated at half and at the end


def test_a_daqe_recipe_routes_patches_of_its_training_crop_size():
    argv = command("patch_64", "runs/x", 4e7, {"widths": [8, 8, 8, 8]}, ["--family", "daqe"])
    config = json.loads(next(a for a in argv if a.startswith("--model_config=")).split("=", 1)[1])
    assert config == {"widths": [8, 8, 8, 8], "patch_size": 64}


def test_unknown_recipes_are_refused():
    with pytest.raises(SystemExit, match="unknown recipe"):
        command("adam_forever", "runs/x", 4e7, {}, [])
    assert steps_for(1, 128, 8) == 2  # never fewer than the two validations


def test_only_finished_runs_are_read(tmp_path):
    gains = {"q10_exit0": 0.1, "q10_exit2": 0.3, "q30_exit2": 0.2, "q10_dynamic": 0.25}
    records = [{"kind": "train", "step": 1}, {"kind": "val", "step": 2, "gains": gains}]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert finished_validations(tmp_path) == []  # no final.keras yet: an interrupted run is retrained (resumed)
    (tmp_path / "final.keras").write_bytes(b"")
    (val,) = finished_validations(tmp_path)
    assert deepest_gains(val) == {10: 0.3, 30: 0.2}
