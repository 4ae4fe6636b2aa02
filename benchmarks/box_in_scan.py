"""How much of a real nodule's box lies in the detected scan area (the "box mostly outside
the scan area" rule, ``core.pipeline.estimate.MIN_BOX_IN_SCAN``): for every expert nodule
mask of ddti and arcegor, the bounding box of its largest component against
``detect_fov`` of the frame, measured with ``box_in_scan`` as ``predict`` measures it.
Prints per collection the count, minimum, 1st / 5th percentile, median and how many lie
below the limit. About 30 s.

Usage: python benchmarks/box_in_scan.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from thyroid_desktop.core.pipeline.estimate import MIN_BOX_IN_SCAN, box_in_scan  # noqa: E402
from thyroid_desktop.core.pipeline.fov import detect_fov  # noqa: E402
from thyroid_desktop.core.pipeline.roi import ROI  # noqa: E402


def share_inside(image: Path, mask: Path) -> float | None:
    """The share of the mask's largest component's box inside the frame's scan area."""
    gray = cv2.imread(str(image), cv2.IMREAD_GRAYSCALE)
    m = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
    if gray is None or m is None or not m.any():
        return None
    if m.shape != gray.shape:
        m = cv2.resize(m, gray.shape[::-1], interpolation=cv2.INTER_NEAREST)
    n, _, stats, _ = cv2.connectedComponentsWithStats((m > 127).astype(np.uint8))
    if n < 2:
        return None
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[i, :4])
    return box_in_scan(detect_fov(gray), ROI(x, y, w, h))


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def main() -> int:
    from training.data import DEFAULT_DATA

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    data = parser.parse_args().data
    pairs = {
        "ddti": [
            (data / "ddti" / r["file"], data / "ddti" / r["mask"])
            for r in rows(data / "ddti" / "metadata.csv")
            if r.get("mask")
        ],
        "arcegor": [
            (data / "arcegor" / r["file"], data / "arcegor" / r["mask"])
            for r in rows(data / "arcegor" / "masks.csv")
            if r["has_nodule"] == "1"
        ],
    }
    print(f"share of the expert nodule box inside the scan area (limit {MIN_BOX_IN_SCAN:g})")
    for name, files in pairs.items():
        v = np.array([s for s in (share_inside(*f) for f in files) if s is not None])
        print(
            f"{name}: {len(v)} boxes, min {v.min():.3f}, p1 {np.percentile(v, 1):.3f}, "
            f"p5 {np.percentile(v, 5):.3f}, median {np.median(v):.3f}, "
            f"below the limit {int((v < MIN_BOX_IN_SCAN).sum())}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
