"""How much of the marks' effect is the painted patch, and does a fill that keeps the
speckle's grain move the estimate less than Telea's smooth fill? Development images only.

For a seeded sample of ddti and chaouchi development images (never the card's test split),
draws the same calipers, dotted line and label as ``bench_what_it_looks_at.py`` on the auto
box's nodule and paints *the drawn pixels of the clean image* (no marks) with each fill, then
runs the app's default path (``AnalysisService``, the auto box kept, scope overridden) and
prints mean / median / 95th percentile of |p(painted) - p(clean)| and, paired against Telea,
the change of the mean with a 95 % bootstrap interval:

- ``telea``: ``core.pipeline.marks.paint_out``, what the app and training paint;
- ``tex2`` / ``tex1`` / ``tex07``: Telea's fill plus the image's high frequencies (the image
  minus a Gaussian blur of sigma 2 / 1 / 0.7 px) copied from the nearest unmasked place a
  few pixels away along 8 directions (the grain of the speckle kept);
- ``copy``: every pixel copied from the nearest unmasked place along 4 directions;
- ``marked``: the marks themselves, found and painted by the app (for comparison);
- ``box``: one random 1-3 px change of the auto box, the clean image (the pixel grid's noise).

Usage: python benchmarks/marks_fill.py [--limit 200] [--seed 7] [--json FILE]
(about 2 minutes per 200 images on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

#: Offsets (dy, dx) tried in order for the high frequencies: 8 directions, growing radius.
OFFSETS = [
    (dy * r, dx * r)
    for r in (4, 6, 8, 10, 12, 16, 20, 24)
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1))
]


def _take(values, found, offsets, ring):
    """For each pixel of ``found``, ``values`` at the first offset landing outside ``ring``."""
    h, w = found.shape
    out = np.zeros_like(values)
    ys, xs = np.nonzero(found)
    for dy, dx in offsets:
        if not len(ys):
            break
        sy, sx = ys + dy, xs + dx
        ok = (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)
        ok[ok] &= ~ring[sy[ok], sx[ok]]
        out[ys[ok], xs[ok]] = values[sy[ok], sx[ok]]
        ys, xs = ys[~ok], xs[~ok]
    return out


def textured(pixels: np.ndarray, found: np.ndarray, sigma: float) -> np.ndarray:
    """Telea's fill plus high frequencies copied from nearby (see the module docstring)."""
    from thyroid_desktop.core.pipeline.marks import paint_out

    found = np.asarray(found).astype(bool)
    if not found.any():
        return pixels
    src = np.asarray(pixels).astype(np.float32)
    high = src - cv2.GaussianBlur(src, (0, 0), sigma)
    side = 2 * int(np.ceil(2 * sigma)) + 1  # a mark's own edges blur this far
    ring = cv2.dilate(found.view(np.uint8), np.ones((side, side), np.uint8)).astype(bool)
    out = paint_out(pixels, found).astype(np.float32)
    out[found] += _take(high, found, OFFSETS, ring)[found]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def copied(pixels: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Every pixel of ``found`` copied from the nearest unmasked place (4 directions)."""
    found = np.asarray(found).astype(bool)
    ring = cv2.dilate(found.view(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    offsets = [
        (dy * r, dx * r) for r in range(2, 30) for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0))
    ]
    out = np.array(pixels, copy=True)
    out[found] = _take(np.asarray(pixels), found, offsets, ring)[found]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import bench_what_it_looks_at as looks

    from thyroid_desktop.core.analysis import AnalysisService
    from thyroid_desktop.core.io.images import from_array, open_image
    from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter
    from thyroid_desktop.core.pipeline.marks import paint_out
    from training.data import load_dataset, read_mask, sample_key

    clf = load_classifier()
    service = AnalysisService(clf, load_segmenter(), None)
    test = set(clf.card.raw["data"]["split"]["test_files"])
    samples = [
        s
        for site in looks.SITES
        for s in load_dataset(args.data / site)
        if sample_key(s) not in test
    ]
    pick = np.random.default_rng(args.seed).permutation(len(samples))[: args.limit]
    samples = [samples[i] for i in sorted(pick)]
    fills = {
        "telea": paint_out,
        "tex2": lambda px, m: textured(px, m, 2.0),
        "tex1": lambda px, m: textured(px, m, 1.0),
        "tex07": lambda px, m: textured(px, m, 0.7),
        "copy": copied,
    }
    rng = np.random.default_rng(args.seed)
    p = {k: [] for k in ("clean", *fills, "marked", "box")}
    t0 = time.perf_counter()
    for k, s in enumerate(samples):
        image = open_image(s.path)
        det = service.detect(image)
        box = det.best.roi if det.best is not None else det.fov.box
        mask = read_mask(s.mask_path, image.width, image.height) if s.mask_path else None
        marked = looks.draw_marks(image.pixels, box, mask, rng)
        drawn, _ = looks.drawn_and_found(image.pixels, marked, det.fov.mask)

        def estimate(im, roi=box):
            return looks.forced_finding(service, im, roi, det).probability  # noqa: B023

        p["clean"].append(estimate(image))
        for name, fill in fills.items():
            p[name].append(estimate(from_array(fill(image.pixels, drawn))))
        p["marked"].append(estimate(from_array(marked)))
        changed = looks.box_changes(box, 1, rng, image.width, image.height)[0]
        p["box"].append(estimate(image, changed))
        if (k + 1) % 50 == 0:
            print(f"  {k + 1}/{len(samples)} images, {time.perf_counter() - t0:.0f} s", flush=True)

    arr = {k: np.asarray(v, float) for k, v in p.items()}
    shift = {k: np.abs(arr[k] - arr["clean"]) for k in arr if k != "clean"}
    boot = np.random.default_rng(0)
    print(f"{len(samples)} development images (seed {args.seed}); |p - p(clean)|:")
    summary = {}
    for name, d in shift.items():
        line = f"  {name:7s} mean {np.nanmean(d):.4f}  median {np.nanmedian(d):.4f}  p95 {np.nanpercentile(d, 95):.4f}"
        row = {
            "mean": float(np.nanmean(d)),
            "median": float(np.nanmedian(d)),
            "p95": float(np.nanpercentile(d, 95)),
        }
        if name in fills and name != "telea":
            diff = d - shift["telea"]
            diff = diff[np.isfinite(diff)]
            means = [diff[boot.integers(0, len(diff), len(diff))].mean() for _ in range(2000)]
            lo, hi = np.percentile(means, [2.5, 97.5])
            line += f"  vs telea {diff.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]"
            row["vs_telea"] = [float(diff.mean()), float(lo), float(hi)]
        summary[name] = row
        print(line)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "seed": args.seed,
                    "n": len(samples),
                    "summary": summary,
                    "p": {k: v.tolist() for k, v in arr.items()},
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
