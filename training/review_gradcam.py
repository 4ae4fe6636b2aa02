"""Grad-CAM review of the shipped model on held-out images.

Writes a contact sheet (heat map over each test crop, with the expert's nodule outline)
for a person to look at, and measures where the attention goes: the share of Grad-CAM
mass inside the nodule mask against the share of the window the mask covers (what
attention spread evenly would give). The sheet shows patient images: it stays out of the
repository (``runs/`` is ignored).

Usage: python -m training.review_gradcam [--data ../shared/data] [--n 24] [--out runs/gradcam]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import cv2
import numpy as np

from thyroid_desktop.core.io.images import open_image
from thyroid_desktop.core.models.shipped import load_classifier
from thyroid_desktop.core.pipeline.estimate import predict
from thyroid_desktop.core.pipeline.fov import detect_fov
from thyroid_desktop.core.report.pdf import overlay
from training.data import DEFAULT_DATA, read_mask, sample_roi, samples_in

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=24, help="images on the contact sheet")
    parser.add_argument("--out", type=Path, default=Path("runs/gradcam"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    clf = load_classifier()
    test_files = set(clf.card.raw["data"]["split"]["test_files"])
    samples = samples_in(args.data, "ddti", test_files)
    inside_share, area_share, tiles = [], [], []
    for i, s in enumerate(samples):
        image = open_image(s.path)
        fov = detect_fov(image.gray)
        f = predict(image, clf, sample_roi(s, image.width, image.height, fov.box), "manual", fov)
        mask = read_mask(s.mask_path, image.width, image.height)
        w = f.window
        x0, y0 = max(w.x, 0), max(w.y, 0)
        x1, y1 = min(w.x + w.w, image.width), min(w.y + w.h, image.height)
        heat, m = f.heatmap[y0:y1, x0:x1], mask[y0:y1, x0:x1]
        if heat.sum() > 0:
            inside_share.append(float(heat[m].sum() / heat.sum()))
            area_share.append(float(m.mean()))
        if i < args.n:
            tile = overlay(np.asarray(image.pixels), f.heatmap)[y0:y1, x0:x1].copy()
            contours, _ = cv2.findContours(
                m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
            )
            cv2.drawContours(tile, contours, -1, (255, 255, 255), 1)
            tile = cv2.resize(tile, (200, 200))
            text = f"p={f.probability:.2f} {'M' if s.label else 'B'}"
            cv2.putText(tile, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
            tiles.append(tile)
    args.out.mkdir(parents=True, exist_ok=True)
    if tiles:
        while len(tiles) % 6:
            tiles.append(np.zeros_like(tiles[0]))
        rows = [np.hstack(tiles[r : r + 6]) for r in range(0, len(tiles), 6)]
        cv2.imwrite(
            str(args.out / "contact_sheet.png"), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR)
        )
    summary = {
        "images": len(inside_share),
        "median_heat_share_inside_nodule": float(np.median(inside_share)),
        "median_nodule_share_of_window": float(np.median(area_share)),
        "images_with_more_heat_inside_than_area": int(
            np.sum(np.array(inside_share) > np.array(area_share))
        ),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
