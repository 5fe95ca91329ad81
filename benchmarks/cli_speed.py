"""End-to-end speed of the ``daqe`` command: the default (LiteRT) path beside the Keras path.

    python -m benchmarks.cli_speed [--repeats 5] [--small-count 10] [--peer keras|none]

Every number is one whole command, from process start to written file(s), as a user runs it
(``python -m daqe_tf enhance ... -o ...`` in a fresh process, a fresh output folder each time):

1. one photo of about 0.4 MP (``--one``), in seconds, and the process's peak memory;
2. a folder of small photos (``--small-count`` x about 0.15 MP, ``--small``), in seconds per MP;
3. one large photo of about 1.6 MP (``--large``), in seconds per MP;

and the folder's time per MP over the large photo's. The default path runs the shipped
``.tflite`` model on LiteRT; the peer passes the shipped ``.keras`` model (TensorFlow). The runs
of both paths alternate within each repeat, so both see the same machine load; each number is
the median over ``--repeats``. A second table times ``import daqe_tf`` alone and with Keras.
The photos are generated (``daqe_tf.sample``) and saved by Pillow as JPEG at ``--quality``.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _size(value: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, not {value!r}") from None
    if width < 16 or height < 16:
        raise argparse.ArgumentTypeError(f"{value}: at least 16x16")
    return width, height


def make_inputs(folder: Path, one: tuple[int, int], small: tuple[int, int], small_count: int,
                large: tuple[int, int], quality: int) -> dict:
    """The three inputs as JPEG files; returns {scenario: (input path, megapixels, images)}."""
    from PIL import Image

    from daqe_tf.sample import make_sample_image

    def save(path: Path, size: tuple[int, int], seed: int) -> None:
        Image.fromarray(make_sample_image(size[0], size[1], seed=seed)).save(path, "JPEG", quality=quality)

    save(folder / "one.jpg", one, 1)
    save(folder / "large.jpg", large, 2)
    (folder / "small").mkdir()
    for i in range(small_count):
        save(folder / "small" / f"small{i:03d}.jpg", small, 10 + i)
    mp = lambda size: size[0] * size[1] / 1e6  # noqa: E731
    return {
        "one": (folder / "one.jpg", mp(one), 1),
        "small": (folder / "small", mp(small) * small_count, small_count),
        "large": (folder / "large.jpg", mp(large), 1),
    }


def run_command(args: list[str], env: dict) -> tuple[float, float | None]:
    """Wall seconds of one command in a fresh process, and its peak resident memory in MB (Linux/macOS)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=err)
        peak = None
        if hasattr(os, "wait4"):
            _, status, usage = os.wait4(process.pid, 0)
            seconds = time.perf_counter() - start
            process.returncode = os.waitstatus_to_exitcode(status)
            peak = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
        else:
            process.wait()
            seconds = time.perf_counter() - start
        if process.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(args)} failed ({process.returncode}): {err.read().decode()[-2000:]}")
    return seconds, peak


def measure(inputs: dict, paths: dict, repeats: int, work: Path) -> dict:
    """{path name: {scenario: [(seconds, peak MB), ...]}}, the paths' runs alternating."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    times = {name: {scenario: [] for scenario in inputs} for name in paths}
    for r in range(repeats):
        for scenario, (source, _, count) in inputs.items():
            for name, model_args in paths.items():
                out = work / f"out_{name}_{scenario}_{r}"
                target = out if count > 1 else out.with_suffix(".png")
                command = [sys.executable, "-m", "daqe_tf", "enhance", str(source), "-o", str(target), *model_args]
                times[name][scenario].append(run_command(command, env))
    return times


def import_times(repeats: int, with_keras: bool) -> dict:
    """Median wall seconds of ``import daqe_tf`` (and of ``import daqe_tf, keras``) in fresh processes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    statements = {"import daqe_tf": "import daqe_tf"}
    if with_keras:
        statements["import daqe_tf, keras"] = "import daqe_tf, keras"
    code = "import time; t = time.perf_counter(); {}; print(time.perf_counter() - t)"
    result = {}
    for label, statement in statements.items():
        runs = []
        for _ in range(repeats):
            done = subprocess.run([sys.executable, "-c", code.format(statement)], env=env, capture_output=True, text=True, check=True)
            runs.append(float(done.stdout.split()[-1]))
        result[label] = statistics.median(runs)
    return result


def _load_average() -> str:
    """The 1-minute load average (processes wanting a CPU), or n/a where the OS does not tell."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):
        return "n/a"


def summarise(times: dict, inputs: dict) -> dict:
    """{path: {"one_s", "one_mb", "small_s_per_mp", "large_s_per_mp", "small_over_large"}} from medians."""
    rows = {}
    for name, scenarios in times.items():
        med = {s: statistics.median(t for t, _ in runs) for s, runs in scenarios.items()}
        peaks = [p for _, p in scenarios["one"] if p is not None]
        small, large = med["small"] / inputs["small"][1], med["large"] / inputs["large"][1]
        rows[name] = {"one_s": med["one"], "one_mb": statistics.median(peaks) if peaks else None,
                      "small_s_per_mp": small, "large_s_per_mp": large, "small_over_large": small / large}
    return rows


def table(rows: dict, inputs: dict, labels: dict) -> list[str]:
    one_mp, (_, small_mp, count), large_mp = inputs["one"][1], inputs["small"], inputs["large"][1]
    lines = [
        f"| path | one {one_mp:.2f}-MP photo (s) | its peak memory (MB) | folder of {count} x {small_mp / count:.2f} MP (s/MP) "
        f"| one {large_mp:.2f}-MP photo (s/MP) | folder / large, per MP |",
        "|---|---|---|---|---|---|",
    ]
    mb = lambda v: "n/a" if v is None else f"{v:.0f}"  # noqa: E731
    for name, row in rows.items():
        lines.append(f"| {labels[name]} | {row['one_s']:.2f} | {mb(row['one_mb'])} | {row['small_s_per_mp']:.2f} "
                     f"| {row['large_s_per_mp']:.2f} | {row['small_over_large']:.2f} |")
    if "keras" in rows and "litert" in rows:
        k, lite = rows["keras"], rows["litert"]
        ratio = lambda a, b: "n/a" if a is None or b is None else f"{a / b:.1f}x"  # noqa: E731
        lines.append(f"| Keras / LiteRT | {ratio(k['one_s'], lite['one_s'])} | {ratio(k['one_mb'], lite['one_mb'])} "
                     f"| {ratio(k['small_s_per_mp'], lite['small_s_per_mp'])} | {ratio(k['large_s_per_mp'], lite['large_s_per_mp'])} | |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command; the table shows medians (default 5)")
    parser.add_argument("--one", type=_size, default=(768, 528), help="the single photo, WxH (default 768x528, 0.41 MP)")
    parser.add_argument("--small", type=_size, default=(464, 320), help="each small photo, WxH (default 464x320, 0.15 MP)")
    parser.add_argument("--small-count", type=int, default=10, help="small photos in the folder (default 10)")
    parser.add_argument("--large", type=_size, default=(1552, 1040), help="the large photo, WxH (default 1552x1040, 1.61 MP)")
    parser.add_argument("--quality", type=int, default=30, help="JPEG quality of the generated photos (default 30)")
    parser.add_argument("--peer", choices=["keras", "none"], default="keras",
                        help="the path measured beside the default: the shipped .keras model (default) or none")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.small_count < 2:
        parser.error("--repeats must be at least 1 and --small-count at least 2")

    from daqe_tf.inference.models import default_model_path, shipped_model_path

    default = shipped_model_path(False)
    if default.suffix != ".tflite":
        parser.error(f"the default path is not LiteRT here ({default.name}): install ai-edge-litert")
    paths = {"litert": []}
    labels = {"litert": f"LiteRT, default ({default.name})"}
    if args.peer == "keras":
        paths["keras"] = ["--model", str(default_model_path(False))]
        labels["keras"] = f"Keras, peer ({default_model_path(False).name})"
    load_before = _load_average()
    with tempfile.TemporaryDirectory(prefix="daqe_cli_speed_") as tmp:
        work = Path(tmp)
        inputs = make_inputs(work, args.one, args.small, args.small_count, args.large, args.quality)
        times = measure(inputs, paths, args.repeats, work)
    rows = summarise(times, inputs)
    starts = import_times(args.repeats, with_keras=args.peer == "keras")
    load_after = _load_average()

    print(f"daqe enhance end to end (process start to written files), median of {args.repeats} runs, paths alternating;")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"JPEG quality {args.quality}; load average {load_before} before, {load_after} after (other work shares the CPUs)")
    print()
    for line in table(rows, inputs, labels):
        print(line)
    print()
    print("| start-up | s |")
    print("|---|---|")
    for label, seconds in starts.items():
        print(f"| `{label}` | {seconds:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
