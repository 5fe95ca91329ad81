"""Throughput of the Beam archive pipeline (``daqe_tf.beam``) on the DirectRunner beside the CLI.

    nice -n 10 python -m benchmarks.beam_throughput [--count 24] [--size 640x448] [--repeats 2] [--workers 1 2]

One folder of generated photos (``daqe_tf.sample``, saved by Pillow as JPEG at ``--quality``; every
fourth one gray) is enhanced end to end, each run a fresh process writing to a fresh output folder:
``python -m daqe_tf enhance FOLDER -o OUT -q`` (the CLI), and ``python -m daqe_tf.beam --input
'FOLDER/*.jpg' --output OUT --runner DirectRunner --direct_num_workers N`` for each N of ``--workers``
(N > 1 in ``multi_processing`` mode: one process per worker, each loading the models once). The
runs alternate within each repeat, so all see the same machine load; the table gives the median
wall time, photos per second and megapixels per second, and the speed against the CLI. Before
timing, the pipeline's outputs are checked to be the CLI's, byte for byte.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_photos(folder: Path, count: int, size: tuple[int, int], quality: int) -> float:
    """``count`` JPEG photos of ``size``; returns their megapixels in all."""
    from PIL import Image

    from daqe_tf.sample import make_sample_image

    folder.mkdir(parents=True)
    for i in range(count):
        pixels = make_sample_image(size[0], size[1], seed=100 + i)
        if i % 4 == 3:
            pixels = pixels[..., 1]
        Image.fromarray(pixels).save(folder / f"photo{i:03d}.jpg", "JPEG", quality=quality)
    return count * size[0] * size[1] / 1e6


def commands(photos: Path, out: Path, workers: list[int]) -> dict[str, list[str]]:
    runs = {"CLI (daqe enhance)": [sys.executable, "-m", "daqe_tf", "enhance", str(photos), "-o", str(out), "-q"]}
    for n in workers:
        mode = ["--direct_running_mode", "multi_processing"] if n > 1 else []
        runs[f"Beam DirectRunner, {n} worker{'s' if n > 1 else ''}"] = [
            sys.executable, "-m", "daqe_tf.beam", "--input", f"{photos}/*.jpg", "--output", str(out),
            "--runner", "DirectRunner", "--direct_num_workers", str(n), *mode]
    return runs


def run(command: list[str], out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def check_same_outputs(cli_out: Path, beam_out: Path) -> None:
    cli_files = sorted(p.name for p in cli_out.glob("*.png"))
    beam_files = sorted(p.name for p in beam_out.glob("*.png"))
    if cli_files != beam_files or any((cli_out / n).read_bytes() != (beam_out / n).read_bytes() for n in cli_files):
        raise SystemExit("the pipeline's outputs differ from the CLI's")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24, help="photos in the folder (default 24)")
    parser.add_argument("--size", default="640x448", help="WIDTHxHEIGHT of each photo (default 640x448)")
    parser.add_argument("--quality", type=int, default=30, help="JPEG quality of the photos (default 30)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each command (default 2)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="DirectRunner worker counts (default 1 2)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="daqe-beam-bench-") as tmp:
        tmp = Path(tmp)
        megapixels = make_photos(tmp / "photos", args.count, (width, height), args.quality)
        runs = commands(tmp / "photos", tmp / "out", args.workers)
        cli_name = next(iter(runs))
        run(runs[cli_name], tmp / "out")  # warm the file cache; also the reference outputs
        shutil.copytree(tmp / "out", tmp / "cli_out")
        run(runs[list(runs)[1]], tmp / "out")
        check_same_outputs(tmp / "cli_out", tmp / "out")
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, command in runs.items():
                times[name].append(run(command, tmp / "out"))
    cli_time = statistics.median(times[cli_name])
    print(f"{args.count} photos of {width}x{height} (JPEG QF {args.quality}, every 4th gray), "
          f"{megapixels:.1f} MP; {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}; median of {args.repeats} runs, process start to last file written")
    print()
    print("| run | wall s | photos/s | MP/s | vs CLI |")
    print("|---|---:|---:|---:|---:|")
    for name, values in times.items():
        seconds = statistics.median(values)
        print(f"| {name} | {seconds:.1f} | {args.count / seconds:.2f} | {megapixels / seconds:.2f} | {cli_time / seconds:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
