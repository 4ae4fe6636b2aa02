"""Zoomed tiles of the scan area for the segmenter: an experiment of ``detector_eval --tiles``
(small nodules seen larger), not part of the app's detection."""

from __future__ import annotations

import cv2
import numpy as np

from thyroid_desktop.core.pipeline.fov import FieldOfView, mask_outside
from thyroid_desktop.core.pipeline.roi import ROI


def tile_boxes(box: ROI, grid: int = 2, overlap: float = 0.25) -> list[ROI]:
    """``grid`` x ``grid`` overlapping tiles covering ``box`` (each side ``overlap`` longer
    than an even split), for looking at small nodules zoomed in."""
    out = []
    tw = min(box.w, int(round(box.w / grid * (1 + overlap))))
    th = min(box.h, int(round(box.h / grid * (1 + overlap))))
    for i in range(grid):
        for j in range(grid):
            x = box.x + (0 if grid == 1 else round(j * (box.w - tw) / (grid - 1)))
            y = box.y + (0 if grid == 1 else round(i * (box.h - th) / (grid - 1)))
            out.append(ROI(int(x), int(y), tw, th))
    return out


def tiled_probability(
    pixels: np.ndarray, fov: FieldOfView, segment, size: int, grid: int = 2, overlap: float = 0.25
) -> np.ndarray:
    """The segmenter on overlapping zoomed tiles of the scan area, merged (per pixel, the
    largest probability) into one image-sized map (0 outside the field of view)."""
    height, width = pixels.shape[:2]
    masked = mask_outside(pixels, fov)
    tiles = tile_boxes(fov.box, grid, overlap)
    batch = np.stack(
        [
            cv2.resize(
                masked[t.y : t.y + t.h, t.x : t.x + t.w],
                (size, size),
                interpolation=cv2.INTER_LINEAR,
            )
            for t in tiles
        ]
    )
    probs = segment(batch)
    full = np.zeros((height, width), np.float32)
    for t, p in zip(tiles, probs, strict=True):
        part = cv2.resize(p.astype(np.float32), (t.w, t.h), interpolation=cv2.INTER_LINEAR)
        view = full[t.y : t.y + t.h, t.x : t.x + t.w]
        np.maximum(view, part, out=view)
    full[~fov.mask] = 0.0
    return full
