"""Nodule size: one scale rule and one size rule, for the panel, the CSV, the PDF and TI-RADS.

Millimetres only where the image is calibrated (by the file, or by the user's line), never
guessed; otherwise pixels, said as such.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from thyroid_desktop.core.io.scale import Scale, ScaleSource
from thyroid_desktop.core.pipeline.roi import ROI

__all__ = [
    "NoduleSize",
    "Outline",
    "Scale",
    "ScaleSource",
    "SizeBasis",
    "effective_scale",
    "finding_size",
    "longest_axis",
    "nodule_size",
]

#: The convex hull of a nodule's mask: (x, y) image pixels, through the pixel centres.
Outline = tuple[tuple[int, int], ...]


def effective_scale(file_scale: Scale, user_mm_per_px: float | None = None) -> Scale:
    """The scale a nodule's size uses: the file's own calibration (DICOM ultrasound regions or
    pixel spacing) wins; else the user's line (``user_mm_per_px``, mm per pixel both ways);
    else none (sizes in pixels).

    Raises:
        ValueError: ``user_mm_per_px`` is not positive.
    """
    if file_scale.calibrated:
        return file_scale
    if user_mm_per_px is not None:
        return Scale.user_line(user_mm_per_px)
    return Scale.none()


def longest_axis(outline: Sequence[tuple[float, float]], scale: Scale | None = None) -> float:
    """The maximum diameter of an outline (largest distance between two of its points), in
    pixels, or in mm with a calibrated ``scale`` (each axis at its own size). The points run
    through pixel centres, so one pixel is added for the full extent."""
    pts = np.asarray(outline, dtype=np.float64).reshape(-1, 2)
    mm = scale is not None and scale.calibrated
    if mm:
        pts = pts * np.array([scale.col_mm, scale.row_mm])
    pixel = float(np.mean(scale.spacing_mm)) if mm else 1.0
    if len(pts) < 2:
        return float(min(scale.spacing_mm)) if mm else 1.0
    d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    return float(d.max()) + pixel


class SizeBasis(enum.StrEnum):
    """Which measurement a nodule's size (and so the TI-RADS advice) comes from."""

    CALIPERS = "calipers"
    MASK = "mask"
    BOX = "box"


@dataclass(frozen=True)
class NoduleSize:
    """A nodule's measurements under one :class:`Scale`; made by :func:`nodule_size`.

    ``max_diameter_mm`` (None when uncalibrated) is the size TI-RADS advice uses, from
    ``basis``: the clinician's caliper lines, else the segmenter's mask, else the box.
    """

    scale: Scale
    box_px: tuple[int, int]  # width, height
    box_mm: tuple[float, float] | None = None
    mask_px: float | None = None  # the mask's longest axis
    mask_mm: float | None = None
    calipers_px: tuple[float, ...] = ()  # each caliper line's length
    calipers_mm: tuple[float, ...] | None = None

    @property
    def basis(self) -> SizeBasis:
        if self.calipers_px:
            return SizeBasis.CALIPERS
        return SizeBasis.MASK if self.mask_px is not None else SizeBasis.BOX

    @property
    def max_diameter_px(self) -> float:
        if self.basis is SizeBasis.CALIPERS:
            return max(self.calipers_px)
        if self.basis is SizeBasis.MASK:
            return float(self.mask_px)  # type: ignore[arg-type]
        return float(max(self.box_px))

    @property
    def max_diameter_mm(self) -> float | None:
        if not self.scale.calibrated:
            return None
        if self.basis is SizeBasis.CALIPERS:
            return max(self.calipers_mm)  # type: ignore[arg-type]
        if self.basis is SizeBasis.MASK:
            return self.mask_mm
        return max(self.box_mm)  # type: ignore[arg-type]

    def _parts(self) -> list[str]:
        mm = self.scale.calibrated
        parts = []
        if self.calipers_px:
            values = self.calipers_mm if mm else self.calipers_px
            digits, unit = (".1f", "mm") if mm else (".0f", "px")
            parts.append(f"calipers {' x '.join(format(v, digits) for v in values)} {unit}")
        if self.mask_px is not None:
            axis = f"{self.mask_mm:.1f} mm" if mm else f"{self.mask_px:.0f} px"
            parts.append(f"mask's longest axis {axis}")
        if mm:
            parts.append(f"box {self.box_mm[0]:.1f} x {self.box_mm[1]:.1f} mm")  # type: ignore[index]
        else:
            parts.append(f"box {self.box_px[0]} x {self.box_px[1]} px")
        return parts

    @property
    def scale_text(self) -> str:
        return str(self.scale.source) if self.scale.calibrated else "uncalibrated: no mm"

    def text(self) -> str:
        """Every measurement, the one TI-RADS uses first, e.g. "mask's longest axis 14.2 mm
        (DICOM pixel spacing); box 13.4 x 11.5 mm" or "box 120 x 80 px (uncalibrated: no
        mm)"."""
        first, *rest = self._parts()
        return "; ".join([f"{first} ({self.scale_text})", *rest])

    def to_json(self) -> dict[str, Any]:
        """The size as ``predict --json`` and ``validate`` write it."""
        mm = self.max_diameter_mm
        return {
            "max_diameter_mm": None if mm is None else round(mm, 2),
            "max_diameter_px": round(self.max_diameter_px, 1),
            "basis": str(self.basis),
            "scale": str(self.scale.source),
            "text": self.text(),
        }

    def summary(self) -> str:
        """The size in one short phrase, e.g. "14.2 mm (mask)" or "130 px (box; uncalibrated)"."""
        if self.max_diameter_mm is not None:
            return f"{self.max_diameter_mm:.1f} mm ({self.basis})"
        return f"{self.max_diameter_px:.0f} px ({self.basis}; uncalibrated)"


def nodule_size(
    box: ROI,
    scale: Scale,
    outline: Sequence[tuple[float, float]] | None = None,
    calipers_px: Sequence[tuple[float, float]] = (),
) -> NoduleSize:
    """The one size rule, for every place that shows, exports or uses a nodule's size.

    The maximum diameter comes from the clinician's caliper lines (``calipers_px``: (dx, dy)
    of each) when there are any; else from the segmenter's mask inside the box (``outline``:
    its convex hull, see ``core.pipeline.tirads_ai.mask_outline``), its longest axis being
    the nodule's true maximum diameter, also for an oblique nodule; else from the box's
    longer side (a box can be looser than the nodule). Lengths are in mm under ``scale``
    (see :func:`effective_scale`), each axis at its own size, else in pixels only.
    """
    mm = scale.calibrated
    w, h = int(box.w), int(box.h)
    box_mm = (w * scale.col_mm, h * scale.row_mm) if mm else None  # type: ignore[operator]
    mask_px = mask_mm = None
    if outline is not None and len(outline) > 0:
        mask_px = longest_axis(outline)
        mask_mm = longest_axis(outline, scale) if mm else None
    segments = tuple((abs(float(dx)), abs(float(dy))) for dx, dy in calipers_px)
    lengths_px = tuple(math.hypot(dx, dy) for dx, dy in segments)
    lengths_mm = tuple(scale.length_mm(dx, dy) for dx, dy in segments) if mm else None
    return NoduleSize(scale, (w, h), box_mm, mask_px, mask_mm, lengths_px, lengths_mm)  # type: ignore[arg-type]


class _Analysed(Protocol):
    """What :func:`finding_size` reads of a ``core.pipeline.estimate.Finding``."""

    roi: ROI
    tirads_suggestion: Any


def box_size(
    box: ROI,
    suggestion: Any,
    file_scale: Scale,
    user_mm_per_px: float | None = None,
    calipers_px: Sequence[tuple[float, float]] = (),
) -> NoduleSize:
    """:func:`nodule_size` of an analysed box: under :func:`effective_scale`, with the mask
    the segmenter gave inside it (carried by the box's TI-RADS ``suggestion``; none when the
    image is out of scope, whose mask is not trusted either) and the clinician's calipers.
    The panel, the CSV and the PDF all size a nodule through here."""
    outline = suggestion.outline if suggestion is not None else None
    scale = effective_scale(file_scale, user_mm_per_px)
    return nodule_size(box, scale, outline, calipers_px)


def finding_size(
    finding: _Analysed,
    file_scale: Scale,
    user_mm_per_px: float | None = None,
    calipers_px: Sequence[tuple[float, float]] = (),
) -> NoduleSize:
    """:func:`box_size` of a ``Finding`` (its box and its TI-RADS suggestion)."""
    return box_size(finding.roi, finding.tirads_suggestion, file_scale, user_mm_per_px, calipers_px)
