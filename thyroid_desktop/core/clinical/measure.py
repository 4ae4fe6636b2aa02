"""Nodule size from the box: millimetres only where the image is calibrated, never guessed."""

from __future__ import annotations

import math
from dataclasses import dataclass

from thyroid_desktop.core.pipeline.roi import ROI


@dataclass(frozen=True)
class Measurement:
    """Horizontal and vertical extent of the nodule box.

    ``*_mm`` are None when neither the file (DICOM calibration) nor the user gave a scale.
    """

    width_px: int
    height_px: int
    width_mm: float | None
    height_mm: float | None
    scale_source: str | None  # "DICOM calibration", "user scale" or None

    @property
    def max_diameter_mm(self) -> float | None:
        if self.width_mm is None or self.height_mm is None:
            return None
        return max(self.width_mm, self.height_mm)

    def text(self) -> str:
        if self.width_mm is None or self.height_mm is None:
            return f"{self.width_px} x {self.height_px} px (uncalibrated: no mm)"
        return f"{self.width_mm:.1f} x {self.height_mm:.1f} mm ({self.scale_source})"


def measure(
    roi: ROI, spacing_mm: tuple[float, float] | None, user_mm_per_px: float | None = None
) -> Measurement:
    """Size of ``roi``; ``spacing_mm`` is (row_mm, col_mm) from the file, which wins over a
    user-entered isotropic scale."""
    if spacing_mm is not None:
        row, col = spacing_mm
        return Measurement(roi.w, roi.h, roi.w * col, roi.h * row, "DICOM calibration")
    if user_mm_per_px is not None:
        if not user_mm_per_px > 0:
            raise ValueError(f"a scale must be positive, got {user_mm_per_px}")
        s = user_mm_per_px
        return Measurement(roi.w, roi.h, roi.w * s, roi.h * s, "user scale")
    return Measurement(roi.w, roi.h, None, None, None)


@dataclass(frozen=True)
class Calipers:
    """Caliper lines drawn across a nodule (up to three diameters), each as (dx, dy) in
    image pixels; lengths in mm only where the image is calibrated."""

    segments_px: tuple[tuple[float, float], ...]
    lengths_mm: tuple[float, ...] | None
    scale_source: str | None

    @property
    def max_diameter_mm(self) -> float | None:
        return max(self.lengths_mm) if self.lengths_mm else None

    def text(self) -> str:
        if not self.segments_px:
            return ""
        if self.lengths_mm is None:
            px = " x ".join(f"{math.hypot(dx, dy):.0f}" for dx, dy in self.segments_px)
            return f"calipers {px} px (uncalibrated: no mm)"
        mm = " x ".join(f"{v:.1f}" for v in self.lengths_mm)
        return f"calipers {mm} mm ({self.scale_source})"


def measure_calipers(
    segments_px, spacing_mm: tuple[float, float] | None, user_mm_per_px: float | None = None
) -> Calipers:
    """Lengths of caliper lines; ``spacing_mm`` (row_mm, col_mm) from the file wins over a
    user's isotropic scale, and an anisotropic spacing is applied per axis."""
    segments = tuple((abs(float(dx)), abs(float(dy))) for dx, dy in segments_px)
    if spacing_mm is not None:
        row, col = spacing_mm
        lengths = tuple(math.hypot(dx * col, dy * row) for dx, dy in segments)
        return Calipers(segments, lengths, "DICOM calibration")
    if user_mm_per_px is not None:
        lengths = tuple(user_mm_per_px * math.hypot(dx, dy) for dx, dy in segments)
        return Calipers(segments, lengths, "user scale")
    return Calipers(segments, None, None)
