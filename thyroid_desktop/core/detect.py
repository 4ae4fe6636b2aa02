"""Finding the nodule by itself: field of view -> segmenter -> candidate boxes.

The segmenter sees the scan area only (pixels outside the field of view are black), cut to
the field of view's box and resized to a square. Its probability map is mapped back to the
image, thresholded, and each connected part becomes a candidate box, best first. "No nodule
found" is a valid answer: no candidate is ever made up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from thyroid_desktop.core.fov import FieldOfView, detect_fov, mask_outside
from thyroid_desktop.core.roi import ROI

#: Probability above which a pixel counts as nodule.
MASK_THRESHOLD = 0.5
#: Parts smaller than this share of the field of view are noise, not nodules.
MIN_AREA_FRACTION = 0.002


@dataclass(frozen=True)
class Candidate:
    """One detected nodule: its box in image pixels and the segmenter's mean probability."""

    roi: ROI
    score: float
    area_px: int


@dataclass(frozen=True)
class Detection:
    """The segmenter's answer for one image."""

    fov: FieldOfView
    candidates: list[Candidate]
    probability: np.ndarray = field(repr=False)  # H x W float32, 0 outside the FOV
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


def segmenter_input(pixels: np.ndarray, fov: FieldOfView, size: int) -> np.ndarray:
    """The segmenter's ``size x size x 3`` uint8 input: the FOV box, outside blacked out."""
    b = fov.box
    scan = mask_outside(pixels, fov)[b.y : b.y + b.h, b.x : b.x + b.w]
    interp = cv2.INTER_AREA if max(b.w, b.h) > size else cv2.INTER_LINEAR
    return cv2.resize(scan, (size, size), interpolation=interp)


def map_to_image(prob: np.ndarray, fov: FieldOfView, width: int, height: int) -> np.ndarray:
    """A square probability map over the FOV box, back at image resolution (0 outside)."""
    b = fov.box
    full = np.zeros((height, width), np.float32)
    full[b.y : b.y + b.h, b.x : b.x + b.w] = cv2.resize(
        prob.astype(np.float32), (b.w, b.h), interpolation=cv2.INTER_LINEAR
    )
    full[~fov.mask] = 0.0
    return full


def candidates_from_map(prob: np.ndarray, fov: FieldOfView) -> list[Candidate]:
    """Connected parts of the thresholded map, largest mean probability x area first."""
    binary = (prob >= MASK_THRESHOLD).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    min_area = MIN_AREA_FRACTION * max(int(fov.mask.sum()), 1)
    out = []
    for i in range(1, n):
        area = int(stats[i, cv2.CC_STAT_AREA])
        if area < min_area:
            continue
        x, y, w, h = (int(v) for v in stats[i, :4])
        out.append(Candidate(ROI(x, y, w, h), float(prob[labels == i].mean()), area))
    out.sort(key=lambda c: c.score * np.sqrt(c.area_px), reverse=True)
    return out


def detect(pixels: np.ndarray, gray: np.ndarray, segment, size: int) -> Detection:
    """Runs FOV detection and the segmenter (``segment``: uint8 batch -> probability maps)."""
    import time

    t0 = time.perf_counter()
    fov = detect_fov(gray)
    t1 = time.perf_counter()
    prob = segment(segmenter_input(pixels, fov, size)[None])[0]
    t2 = time.perf_counter()
    full = map_to_image(prob, fov, pixels.shape[1], pixels.shape[0])
    cands = candidates_from_map(full, fov)
    t3 = time.perf_counter()
    return Detection(
        fov,
        cands,
        full,
        {"fov": 1000 * (t1 - t0), "segmenter": 1000 * (t2 - t1), "candidates": 1000 * (t3 - t2)},
    )
