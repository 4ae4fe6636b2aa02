"""Regions of interest and the one crop used by both training and the app.

The classifier always sees a square crop centred on the nodule box, enlarged by a fixed
margin so the nodule's border and what lies just beneath it (posterior shadowing or
enhancement) are in view. Training and inference call :func:`crop_square`, so they cannot
drift apart.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import cv2
import numpy as np

#: Fraction of the box's longer side added on every side before cropping.
CROP_MARGIN = 0.15
#: Box jitters averaged into every estimate, as (shift x, shift y, scale, mirrored): shifts of
#: 10 % of the box's width/height and scales of +-15 %, as a clinician's box might differ.
#: With the crop and its mirror that makes 4 views; the heat map comes from the crop only.
#: Two opposite jitters, not four: each 260 px view cost ~25 ms on a 2-core CPU, and four
#: jitters took predict + Grad-CAM past 150 ms for no measurable gain (README, "Speed").
JITTERS: tuple[tuple[float, float, float, bool], ...] = (
    (+0.10, +0.10, 1.15, False),
    (-0.10, -0.10, 0.85, True),
)
#: Windows larger than this (pixels) are shrunk without padding them first, so a box over a
#: huge image never allocates more than the image itself (4096^2 x 3 bytes = 48 MiB).
MAX_CANVAS_PIXELS = 4096 * 4096


class BoxSource(enum.StrEnum):
    """Where a nodule's box came from (written as its value in sessions, the audit log, the
    CSV, the CLI's JSON and the report)."""

    AUTO = "auto"  # the detector's candidate
    MANUAL = "manual"  # drawn or moved by the user
    FULL = "full"  # the whole scan area (asked for, or nothing found where the caller
    # asked for the scan area then)
    POINT = "point"  # outlined by the segmenter around the user's click
    STROKE = "stroke"  # outlined along the user's stroke (the nodule's long axis)
    NONE = "none"  # nothing found and nothing asked for: no box, no estimate


@dataclass(frozen=True)
class ROI:
    """An axis-aligned box in original image pixels: top-left corner, width and height."""

    x: int
    y: int
    w: int
    h: int

    def __post_init__(self) -> None:
        if self.w <= 0 or self.h <= 0:
            raise ValueError(f"ROI must have positive size, got {self.w}x{self.h}")

    @classmethod
    def parse(cls, text: str) -> ROI:
        """Parses ``"x,y,w,h"`` (as typed on the command line)."""
        try:
            x, y, w, h = (int(round(float(v))) for v in text.split(","))
        except ValueError as err:
            raise ValueError(f"ROI must be four numbers x,y,w,h, got {text!r}") from err
        return cls(x, y, w, h)

    @classmethod
    def full(cls, width: int, height: int) -> ROI:
        """The whole image."""
        return cls(0, 0, width, height)

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]

    def clipped(self, width: int, height: int) -> ROI:
        """This box limited to an image of the given size.

        Raises:
            ValueError: the box lies entirely outside the image.
        """
        x0, y0 = max(self.x, 0), max(self.y, 0)
        x1, y1 = min(self.x + self.w, width), min(self.y + self.h, height)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"ROI {self.as_list()} lies outside the {width}x{height} image")
        return ROI(x0, y0, x1 - x0, y1 - y0)

    def iou(self, other: ROI) -> float:
        """Intersection over union of two boxes."""
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1 = min(self.x + self.w, other.x + other.w)
        y1 = min(self.y + self.h, other.y + other.h)
        inter = max(0, x1 - x0) * max(0, y1 - y0)
        return inter / float(self.w * self.h + other.w * other.h - inter)

    def jittered(self, dx: float, dy: float, scale: float, width: int, height: int) -> ROI:
        """This box shifted by ``dx``/``dy`` of its size and scaled about its centre, kept
        inside a ``width`` x ``height`` image (at least 1 pixel)."""
        w, h = max(self.w * scale, 1.0), max(self.h * scale, 1.0)
        cx, cy = self.x + self.w / 2.0 + dx * self.w, self.y + self.h / 2.0 + dy * self.h
        x0 = int(round(min(max(cx - w / 2.0, 0.0), width - 1)))
        y0 = int(round(min(max(cy - h / 2.0, 0.0), height - 1)))
        x1 = int(round(min(max(cx + w / 2.0, x0 + 1.0), width)))
        y1 = int(round(min(max(cy + h / 2.0, y0 + 1.0), height)))
        return ROI(x0, y0, max(x1 - x0, 1), max(y1 - y0, 1))

    def square_window(self, margin: float = CROP_MARGIN) -> ROI:
        """The square, margin-enlarged window the classifier sees (may extend past the image)."""
        side = int(round(max(self.w, self.h) * (1.0 + 2.0 * margin)))
        cx, cy = self.x + self.w / 2.0, self.y + self.h / 2.0
        return ROI(int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side, side)


def roi_from_mask(mask: np.ndarray) -> ROI | None:
    """Bounding box of the largest connected component of a binary mask, or None if empty.

    A two-part mask in these data is usually one nodule shown in two panels side by side,
    so the largest part is the nodule and boxes never span both panels.
    """
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    if binary.ndim == 3:
        binary = binary.max(axis=2)
    n, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[largest, :4])
    return ROI(x, y, w, h)


def crop_square(
    pixels: np.ndarray,
    roi: ROI,
    size: int,
    margin: float = CROP_MARGIN,
    resolution: int | None = None,
) -> tuple[np.ndarray, ROI]:
    """Cuts the classifier's input from an RGB image.

    Args:
        pixels: H x W x 3 uint8 image.
        roi: nodule box in image pixels.
        size: output side in pixels.
        margin: fraction of the box's longer side added on every side.
        resolution: when set (the card's ``crop.resolution``), a window wider than this is
            first shrunk to ``resolution`` pixels a side (area averaging) and then brought to
            ``size`` (linear), so the crop's detail follows neither the box size nor the
            scanner's pixel size, and a 1-3 px change of a large box moves the grid by a
            fraction of a pixel. None or 0: straight to ``size``.

    Returns:
        The ``size x size x 3`` uint8 crop (parts outside the image are black, as the
        background of an ultrasound frame is) and the square window it was cut from, in
        image pixels, so a heat map can be mapped back.
    """
    height, width = pixels.shape[:2]
    roi = roi.clipped(width, height)
    win = roi.square_window(margin)
    sx0, sy0 = max(win.x, 0), max(win.y, 0)
    sx1, sy1 = min(win.x + win.w, width), min(win.y + win.h, height)
    side = size if not resolution or win.w <= resolution else min(resolution, size)
    if win.w * win.h > MAX_CANVAS_PIXELS:
        small = _crop_large_window(pixels[sy0:sy1, sx0:sx1], win, sx0, sy0, side)
    else:
        canvas = np.zeros((win.h, win.w, 3), dtype=np.uint8)
        canvas[sy0 - win.y : sy1 - win.y, sx0 - win.x : sx1 - win.x] = pixels[sy0:sy1, sx0:sx1]
        interp = cv2.INTER_AREA if win.w > side else cv2.INTER_LINEAR
        small = cv2.resize(canvas, (side, side), interpolation=interp)
    if side == size:
        return small, win
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR), win


def _crop_large_window(part: np.ndarray, win: ROI, x0: int, y0: int, size: int) -> np.ndarray:
    """The same crop for a window too large to hold padded in memory: shrink the part that lies
    inside the image, then place it on the black square (memory bounded by the image)."""
    scale = size / win.w
    out = np.zeros((size, size, 3), dtype=np.uint8)
    ox, oy = int(round((x0 - win.x) * scale)), int(round((y0 - win.y) * scale))
    w = min(max(int(round(part.shape[1] * scale)), 1), size - ox)
    h = min(max(int(round(part.shape[0] * scale)), 1), size - oy)
    if w > 0 and h > 0:
        out[oy : oy + h, ox : ox + w] = cv2.resize(part, (w, h), interpolation=cv2.INTER_AREA)
    return out
