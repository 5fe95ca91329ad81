"""Learning curve: PSNR of the deepest exit on an evaluation set against training hours.

    python -m benchmarks.learning_curve runs/first/final.keras runs/second \\
        [--set LIVE1_color] [--quality 10] [--data DIR] [--plot docs/learning_curve_color.png] [--max_images N]

Why: the shipped weights are trained in runs that resume or start from the previous run's
weights (``--init_weights``), on whatever compute is at hand; the question for the next run is
whether more hours still buy quality, and how far the published class is. Each positional
argument is one segment of that history, in order:

- a ``.keras`` file with its training log beside it (``NAME.log.jsonl``, as shipped models have):
  one point at the log's last ``train_seconds``;
- a run folder: a point for each ``snapshots/step_NNNNNN.keras`` (``--snapshot_every``) and its
  ``final.keras``, at the ``train_seconds`` of the log records.

Hours add up along the segments (a run folder's clock starts at the end of the segment before
it), and the curve starts at 0 h from the JPEG itself: every exit of an untrained model is the
identity (zero-initialised heads). Points are scored with the protocol of
``benchmarks.daqe_eval`` (the whole set, every patch or tile through the deepest exit). Printed: a
table per point; drawn: the curve with the published ARCNN and QGAC levels for the set and QF
where ``PUBLISHED`` has them.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.daqe_eval import SETS, score
from benchmarks.jpeg_baselines import default_data_dir
from daqe_tf.evaluation import evaluate_folder
from daqe_tf.inference.models import load_model

# Published PSNR (dB) by (set, QF), from ../shared/reference/published.md (LIVE1 colour: JDEC's
# table for QGAC and its text for ARCNN; gray sets: the FBCNN README table).
PUBLISHED = {
    ("LIVE1_color", 10): {"ARCNN": 26.91, "QGAC": 27.65},
    ("LIVE1_gray", 10): {"ARCNN": 28.96, "QGAC": 29.51},
    ("Classic5", 10): {"ARCNN": 29.03, "QGAC": 29.84},
}


def _log_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _last_train_seconds(records: list[dict]) -> float:
    seconds = [r["train_seconds"] for r in records if "train_seconds" in r]
    if not seconds:
        raise ValueError("the training log has no train_seconds records")
    return float(seconds[-1])


def segment_points(segment: str) -> tuple[list[tuple[float, int, Path]], float]:
    """([(seconds since the segment's start, step, model path)], the segment's length in seconds)."""
    path = Path(segment)
    if path.is_dir():
        log = path / "log.jsonl"
        if not log.is_file():
            raise FileNotFoundError(f"{path}: not a run folder (no log.jsonl)")
        records = _log_records(log)
        points = [(float(r["train_seconds"]), int(r["step"]), path / r["path"])
                  for r in records if r["kind"] == "snapshot" and (path / r["path"]).is_file()]
        length = _last_train_seconds(records)
        final = path / "final.keras"
        final_step = max((r["step"] for r in records if r["kind"] == "final"), default=None)
        if final.is_file() and final_step is not None and all(step != final_step for _, step, _ in points):
            points.append((length, int(final_step), final))
        return points, length
    log = path.with_name(path.name.removesuffix(".keras") + ".log.jsonl")
    if not path.is_file() or not log.is_file():
        raise FileNotFoundError(f"{segment}: expected a run folder, or a .keras file with its {log.name} beside it")
    records = _log_records(log)
    length = _last_train_seconds(records)
    step = max(r["step"] for r in records if "step" in r)
    return [(length, int(step), path)], length


def curve_points(segments: list[str]) -> list[tuple[float, int, str, Path]]:
    """(hours since the first segment's start, step within its run, label, model path) for every point."""
    points, offset = [], 0.0
    for segment in segments:
        found, length = segment_points(segment)
        points += [((offset + seconds) / 3600, step, f"{Path(segment).name} step {step}", model_path)
                   for seconds, step, model_path in found]
        offset += length
    return points


SERIES_COLOURS = [(0, 130, 60), (200, 60, 40), (40, 90, 200), (150, 60, 170), (220, 140, 0), (0, 150, 160)]


def draw_curve(path: Path, series: dict[str, list[tuple[float, float]]], levels: dict[str, float], title: str,
               x_label: str = "training hours (CPU)", y_label: str = "PSNR (dB)"):
    """A PNG line plot: one line per series of (hours, value), each named at its end, and each level
    (JPEG, published methods) as a dashed horizontal line named at the right."""
    from PIL import Image, ImageDraw, ImageFont

    width, height, left, top, right, bottom = 720, 420, 70, 40, 150, 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    hours = [h for rows in series.values() for h, _ in rows]
    values = [v for rows in series.values() for _, v in rows] + list(levels.values())
    x_max = max(hours) * 1.05 or 1.0
    y_min, y_max = np.floor(min(values) * 4 - 0.5) / 4, np.ceil(max(values) * 4 + 0.5) / 4
    plot_w, plot_h = width - left - right, height - top - bottom

    def to_px(x, y):
        return left + x / x_max * plot_w, top + (1 - (y - y_min) / (y_max - y_min)) * plot_h

    draw.rectangle([left, top, left + plot_w, top + plot_h], outline="black")
    for i, (name, level) in enumerate(levels.items()):
        colour = (120, 120, 120) if i == 0 else SERIES_COLOURS[i % len(SERIES_COLOURS)]
        _, y = to_px(0, level)
        for x in range(left, left + plot_w, 8):
            draw.line([x, y, min(x + 4, left + plot_w), y], fill=colour)
        draw.text((left + plot_w + 6, y - 6), f"{name} {level:.2f}", fill=colour, font=font)
    for i, (name, rows) in enumerate(series.items()):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        points = [to_px(h, v) for h, v in rows]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        if len(series) > 1:
            draw.text((points[-1][0] + 6, points[-1][1] - 6), name, fill=colour, font=font)
    x_step = next(s for s in (0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 20, 50, 100) if s * 6 >= x_max)
    for tick in np.arange(0, x_max + 1e-9, x_step):
        x, _ = to_px(tick, y_min)
        draw.line([x, top + plot_h, x, top + plot_h + 4], fill="black")
        draw.text((x - 10, top + plot_h + 8), f"{tick:.2f}".rstrip("0").rstrip("."), fill="black", font=font)
    for tick in np.arange(y_min, y_max + 1e-6, 0.25 if y_max - y_min <= 3 else 0.5):
        _, y = to_px(0, tick)
        draw.line([left - 4, y, left, y], fill="black")
        draw.text((left - 40, y - 6), f"{tick:.2f}", fill="black", font=font)
    draw.text((left, 12), title, fill="black", font=font)
    draw.text((left + plot_w // 2 - 3 * len(x_label), height - 24), x_label, fill="black", font=font)
    draw.text((6, top - 16), y_label, fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    image.save(tmp, optimize=True)
    tmp.replace(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("segments", nargs="+", help="in training order: .keras files with their .log.jsonl, run folders")
    parser.add_argument("--set", default="LIVE1_color", choices=[name for name, _, _ in SETS])
    parser.add_argument("--quality", type=int, default=10)
    parser.add_argument("--data", default=None, help="evaluation folder (default: benchmarks.jpeg_baselines')")
    parser.add_argument("--plot", default="", help="PNG to draw (default: none)")
    parser.add_argument("--max_images", type=int, default=0, help="first N images (0 = all; for quick checks)")
    args = parser.parse_args(argv)
    name, space, grayscale = next(s for s in SETS if s[0] == args.set)
    folder = Path(args.data or default_data_dir()) / name
    points = curve_points(args.segments)
    jpeg = evaluate_folder(folder, [args.quality], on=space, grayscale=grayscale, progress=False,
                           max_images=args.max_images)[args.quality]
    rows = [(0.0, "JPEG (untrained model: every exit is the identity)", jpeg.psnr, jpeg.ssim, jpeg.psnr_b)]
    for hours, _, point_label, model_path in points:
        model = load_model(model_path)
        metrics, _ = score(model, f"exit {model.num_exits - 1}", folder, space, grayscale, [args.quality], args.max_images)
        m = metrics[args.quality]
        rows.append((hours, point_label, m.psnr, m.ssim, m.psnr_b))
        print(f"  {hours:.2f} h {point_label}: {m.psnr:.3f} dB", flush=True)
    print(f"{name} QF{args.quality}, deepest exit ({'RGB' if space == 'rgb' else 'Y'}); hours of training on the "
          "machine that ran each segment")
    print("| hours | model | PSNR (dB) | gain over JPEG (dB) | SSIM | PSNR-B |")
    print("|---|---|---|---|---|---|")
    for hours, point_label, psnr, ssim, psnr_b in rows:
        print(f"| {hours:.2f} | {point_label} | {psnr:.2f} | {psnr - jpeg.psnr:+.2f} | {ssim:.4f} | {psnr_b:.2f} |")
    # The published numbers are means over the whole set: a subset (--max_images) is not comparable.
    published = {} if args.max_images else PUBLISHED.get((name, args.quality), {})
    if published:
        print("published: " + ", ".join(f"{k} {v:.2f} dB ({v - jpeg.psnr:+.2f})" for k, v in published.items()))
    if args.plot:
        draw_curve(Path(args.plot), {"model": [(h, p) for h, _, p, _, _ in rows]}, {"JPEG": jpeg.psnr, **published},
                   f"{name} QF{args.quality}: deepest exit PSNR vs training hours")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
