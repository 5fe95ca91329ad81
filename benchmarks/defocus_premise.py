"""Does JPEG hurt defocused patches less on our evaluation sets? The premise DAQE is built on.

    python -m benchmarks.defocus_premise [--data DIR] [--patch 64] [--plot docs/defocus_premise.png]

DAQE spends less compute on defocused patches because JPEG destroyed less there (the paper: patch
groups of rising defocus had compressed PSNR 27.4 / 29.1 / 31.1 dB on one DIV2K image). Here every
image of LIVE1_color (RGB), LIVE1_gray and Classic5 (Y) is cut into non-overlapping ``--patch``
patches; a patch's defocus is the pseudo label of the UNCOMPRESSED image (classical estimator,
cached under data_cache/), as the model clusters it: the mean over its 16-px cells of log1p(mean
sigma). Its JPEG PSNR is that of the patch after compressing the whole image at QF 10/20/30/40
(the evaluation protocol). Printed per set and QF: Pearson and Spearman over all patches, the
median per-image Spearman (content differs between images; this keeps only within-image order),
and the mean PSNR of the sharpest, middle and most defocused third of the patches. The plot shows
each set's patches and their binned means per QF.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.jpeg_baselines import default_data_dir
from benchmarks.stats import pearson, spearman
from daqe_tf.defocus import DefocusLabelCache
from daqe_tf.evaluation import load_image
from daqe_tf.io import list_image_files
from daqe_tf.jpeg.simulate import compress
from daqe_tf.models.daqe import defocus_cell_targets

QUALITIES = (10, 20, 30, 40)
SETS = (("LIVE1_color", False), ("LIVE1_gray", True), ("Classic5", True))  # (folder, grayscale protocol)
QF_COLOURS = {10: (200, 40, 40), 20: (230, 140, 20), 30: (40, 150, 60), 40: (40, 90, 210)}
MAX_PSNR = 60.0  # flat patches can compress losslessly; cap them so one patch cannot dominate


def patch_grid(array: np.ndarray, patch: int) -> np.ndarray:
    """(rows, cols, patch, patch[, C]) view of the whole ``patch`` patches (the remainder is dropped)."""
    rows, cols = array.shape[0] // patch, array.shape[1] // patch
    cropped = array[: rows * patch, : cols * patch]
    shaped = cropped.reshape(rows, patch, cols, patch, *array.shape[2:])
    return np.swapaxes(shaped, 1, 2)


def patch_defocus(sigma_map: np.ndarray, patch: int) -> np.ndarray:
    """Per patch: mean over its 16-px cells of log1p(mean sigma), the model's patch defocus."""
    cells = defocus_cell_targets(sigma_map[: sigma_map.shape[0] // patch * patch, : sigma_map.shape[1] // patch * patch])
    return patch_grid(cells, patch // 16).mean(axis=(2, 3)).ravel()


def patch_psnr(reference: np.ndarray, decoded: np.ndarray, patch: int) -> np.ndarray:
    """PSNR of every whole patch (over all channels), capped at ``MAX_PSNR``."""
    error = (reference.astype(np.float64) - decoded.astype(np.float64)) ** 2
    grid = patch_grid(error, patch)
    mse = grid.reshape(grid.shape[0], grid.shape[1], -1).mean(axis=2).ravel()
    return np.minimum(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10)), MAX_PSNR)


def measure(folder: Path, grayscale: bool, patch: int, qualities, cache: DefocusLabelCache, max_images: int = 0) -> dict:
    """{"defocus": per-patch array, "image": image index per patch, QF: per-patch PSNR} for one set."""
    files = list_image_files(folder)[: max_images or None]
    defocus, image_ids, psnr = [], [], {q: [] for q in qualities}
    for i, path in enumerate(files):
        reference = load_image(path, grayscale)
        values = patch_defocus(cache.get(path, reference), patch)
        defocus.append(values)
        image_ids.append(np.full(values.size, i))
        for q in qualities:
            psnr[q].append(patch_psnr(reference, compress(reference, q).decoded, patch))
    return {"defocus": np.concatenate(defocus), "image": np.concatenate(image_ids),
            **{q: np.concatenate(v) for q, v in psnr.items()}}


def summarize(data: dict, quality: int) -> dict:
    """Correlations and tertile means of defocus against JPEG PSNR at ``quality``."""
    d, p, ids = data["defocus"], data[quality], data["image"]
    per_image = [spearman(d[ids == i], p[ids == i]) for i in np.unique(ids) if (ids == i).sum() >= 4]
    order = np.argsort(d, kind="mergesort")
    thirds = [p[part].mean() for part in np.array_split(order, 3)]
    return {"pearson": pearson(d, p), "spearman": spearman(d, p), "image_spearman": float(np.nanmedian(per_image)),
            "thirds": thirds, "patches": d.size}


def draw_plot(results: dict, qualities, path: Path) -> None:
    """One panel per set: every patch (defocus, JPEG PSNR) as a dot, binned means as lines, by QF."""
    from PIL import Image, ImageDraw, ImageFont

    panel_w, panel_h, margin = 420, 380, 56
    image = Image.new("RGB", (panel_w * len(results), panel_h + 60), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    x_max = max(float(np.percentile(r["defocus"], 99.5)) for r in results.values())
    psnrs = np.concatenate([r[q] for r in results.values() for q in qualities])
    y_min, y_max = np.floor(np.percentile(psnrs, 0.5)), np.ceil(np.percentile(psnrs, 99.5))
    draw.text((10, 8), "Per-patch defocus (pseudo label of the uncompressed image) vs JPEG PSNR; lines: binned means",
              fill="black", font=font)
    for k, (name, data) in enumerate(results.items()):
        left, top = k * panel_w + margin, 40
        width, height = panel_w - margin - 16, panel_h - 70

        def to_px(x, y, left=left, top=top, width=width, height=height):  # this panel's box
            px = left + np.clip(x / x_max, 0, 1) * width
            py = top + (1 - np.clip((y - y_min) / (y_max - y_min), 0, 1)) * height
            return px, py

        draw.rectangle([left, top, left + width, top + height], outline="black")
        for q in qualities:
            colour = QF_COLOURS.get(q, (90, 90, 90))
            faint = tuple(int(255 - 0.35 * (255 - c)) for c in colour)
            xs, ys = to_px(data["defocus"], data[q])
            for x, y in zip(xs, ys):
                draw.point((float(x), float(y)), fill=faint)
        for q in qualities:
            edges = np.linspace(0, x_max, 13)
            which = np.digitize(data["defocus"], edges[1:-1])
            centres = [(data["defocus"][which == b].mean(), data[q][which == b].mean()) for b in range(12) if (which == b).sum() >= 5]
            points = [tuple(float(v) for v in to_px(x, y)) for x, y in centres]
            if len(points) > 1:
                draw.line(points, fill=QF_COLOURS.get(q, (90, 90, 90)), width=3)
        for tick in np.linspace(0, x_max, 5):
            x, _ = to_px(tick, y_min)
            draw.line([x, top + height, x, top + height + 4], fill="black")
            draw.text((x - 10, top + height + 6), f"{tick:.2f}", fill="black", font=font)
        for tick in np.arange(y_min, y_max + 0.1, max(1.0, np.ceil((y_max - y_min) / 6))):
            _, y = to_px(0, tick)
            draw.line([left - 4, y, left, y], fill="black")
            draw.text((left - 30, y - 5), f"{tick:.0f}", fill="black", font=font)
        draw.text((left + 4, top + 4), name, fill="black", font=font)
        draw.text((left + width // 2 - 80, top + height + 22), "defocus: mean log1p(sigma px) per patch", fill="black", font=font)
        draw.text((left - 50, top - 14), "JPEG PSNR (dB)", fill="black", font=font)
    legend_x = 10
    for q in qualities:
        draw.rectangle([legend_x, panel_h + 36, legend_x + 12, panel_h + 48], fill=QF_COLOURS.get(q, (90, 90, 90)))
        draw.text((legend_x + 16, panel_h + 37), f"QF {q}", fill="black", font=font)
        legend_x += 70
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="evaluation folder (default: benchmarks.jpeg_baselines')")
    parser.add_argument("--patch", type=int, default=64, help="patch side, a multiple of 16")
    parser.add_argument("--qualities", default=",".join(map(str, QUALITIES)))
    parser.add_argument("--cache", default="data_cache/defocus", help="pseudo-label cache folder")
    parser.add_argument("--plot", default="docs/defocus_premise.png", help="PNG to draw ('' = none)")
    parser.add_argument("--max_images", type=int, default=0, help="first N images per set (0 = all)")
    args = parser.parse_args(argv)
    if args.patch % 16:
        parser.error("--patch must be a multiple of 16")
    data_dir = Path(args.data or default_data_dir())
    qualities = [int(q) for q in args.qualities.split(",")]
    cache = DefocusLabelCache(args.cache)
    results = {name: measure(data_dir / name, gray, args.patch, qualities, cache, args.max_images) for name, gray in SETS}
    print(f"Per-patch ({args.patch}x{args.patch}) defocus of the uncompressed image vs JPEG PSNR of the patch "
          "(colour: RGB, gray: Y). Positive = defocused patches lose less to JPEG.")
    print("| set | QF | patches | Pearson | Spearman | median per-image Spearman | PSNR sharp / mid / defocused third (dB) |")
    print("|---|---|---|---|---|---|---|")
    for name, data in results.items():
        for q in qualities:
            s = summarize(data, q)
            thirds = " / ".join(f"{v:.2f}" for v in s["thirds"])
            print(f"| {name} | {q} | {s['patches']} | {s['pearson']:.2f} | {s['spearman']:.2f} | {s['image_spearman']:.2f} | {thirds} |")
    if args.plot:
        draw_plot(results, qualities, Path(args.plot))
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
