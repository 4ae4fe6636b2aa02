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
    "Caliper",
    "Diameters",
    "NoduleSize",
    "Outline",
    "Scale",
    "Plane",
    "ScaleSource",
    "SizeBasis",
    "ViewMeasure",
    "caliper_length_text",
    "effective_scale",
    "ellipsoid_volume_ml",
    "finding_size",
    "longest_axis",
    "nodule_size",
    "three_diameters",
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
    #: The three diameters of two views (transverse and longitudinal) exceed the one view's.
    DIAMETERS = "three diameters"


class Plane(enum.StrEnum):
    """The plane an image of a nodule was taken in."""

    TRANSVERSE = "transverse"
    LONGITUDINAL = "longitudinal"

    @property
    def other(self) -> Plane:
        return Plane.LONGITUDINAL if self is Plane.TRANSVERSE else Plane.TRANSVERSE


@dataclass(frozen=True)
class Caliper:
    """One caliper line the clinician drew: its two ends in image pixels (x, y), on frame
    ``frame`` of its image."""

    start: tuple[float, float]
    end: tuple[float, float]
    frame: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", (float(self.start[0]), float(self.start[1])))
        object.__setattr__(self, "end", (float(self.end[0]), float(self.end[1])))
        object.__setattr__(self, "frame", int(self.frame))

    @classmethod
    def of_extent(cls, dx: float, dy: float, centre=(0.0, 0.0), frame: int = 0) -> Caliper:
        """A line of extent (``dx``, ``dy``) centred on ``centre`` (sessions saved before
        calipers kept their ends only had the extent)."""
        cx, cy = centre
        dx, dy = abs(float(dx)), abs(float(dy))
        return cls((cx - dx / 2, cy - dy / 2), (cx + dx / 2, cy + dy / 2), frame)

    @property
    def dx(self) -> float:
        return abs(self.end[0] - self.start[0])

    @property
    def dy(self) -> float:
        return abs(self.end[1] - self.start[1])

    @property
    def length_px(self) -> float:
        return math.hypot(self.dx, self.dy)

    @property
    def horizontal(self) -> bool:
        """Closer to across the image than down it (a width or a length, not a depth)."""
        return self.dx >= self.dy

    def length_mm(self, scale: Scale) -> float | None:
        return scale.length_mm(self.dx, self.dy)

    def with_end(self, which: int, point: tuple[float, float]) -> Caliper:
        """The line with end ``which`` (0: start, 1: end) moved to ``point``."""
        if which == 0:
            return Caliper(point, self.end, self.frame)
        return Caliper(self.start, point, self.frame)


def caliper_length_text(caliper: Caliper, scale: Scale) -> str:
    """ "12.3 mm" under a calibrated scale, else "123 px"."""
    mm = caliper.length_mm(scale)
    return f"{mm:.1f} mm" if mm is not None else f"{caliper.length_px:.0f} px"


def _as_caliper(c: Caliper | tuple[float, float]) -> Caliper:
    return c if isinstance(c, Caliper) else Caliper.of_extent(*c)


@dataclass(frozen=True)
class ViewMeasure:
    """One image of a nodule as the size rule reads it: its plane, box, scale (see
    :func:`effective_scale`), the segmenter's mask outline in the box (None if not
    analysed) and the clinician's calipers on it."""

    plane: Plane
    box: ROI
    scale: Scale
    outline: Outline | None = None
    calipers: tuple[Caliper, ...] = ()


def ellipsoid_volume_ml(a_mm: float, b_mm: float, c_mm: float) -> float:
    """The ellipsoid formula: pi/6 x a x b x c, three diameters in mm -> millilitres."""
    return math.pi / 6.0 * a_mm * b_mm * c_mm / 1000.0


@dataclass(frozen=True)
class Diameters:
    """A nodule's three diameters from its transverse view (``width``, ``depth``: AP) and its
    longitudinal view (``length``), in mm when both views are calibrated (``mm``), else in
    pixels; each from the view's calipers where drawn along that axis, else from the
    segmenter's mask, else from the box. ``volume_ml``: the ellipsoid volume, in mm only."""

    width: float
    depth: float
    length: float
    mm: bool
    bases: tuple[SizeBasis, SizeBasis, SizeBasis]

    @property
    def volume_ml(self) -> float | None:
        if not self.mm:
            return None
        return ellipsoid_volume_ml(self.width, self.depth, self.length)

    @property
    def longest(self) -> float:
        return max(self.width, self.depth, self.length)

    def values_text(self) -> str:
        """width x AP depth x length, e.g. "12.0 x 8.0 x 15.0 mm"."""
        digits, unit = (".1f", "mm") if self.mm else (".0f", "px")
        return " x ".join(format(v, digits) for v in (self.width, self.depth, self.length)) + (
            f" {unit}"
        )

    def text(self) -> str:
        """e.g. "diameters 12.0 x 8.0 x 15.0 mm (W x AP x L), volume 0.75 ml", saying which
        diameters are not from calipers ("(W x AP x L; AP from the mask)"; all three from
        the box: "(W x AP x L, from the box)"): a caliper deleted must not go unnoticed."""
        volume = (
            f", volume {self.volume_ml:.2f} ml"
            if self.volume_ml is not None
            else ", no volume (uncalibrated)"
        )
        names = ("W", "AP", "L")
        others = [(n, b) for n, b in zip(names, self.bases, strict=True) if b != SizeBasis.CALIPERS]
        if not others:
            where = ""
        elif len({b for _, b in others}) == 1 and len(others) == 3:
            where = f", from the {others[0][1]}"
        else:
            where = "; " + ", ".join(f"{n} from the {b}" for n, b in others)
        return f"diameters {self.values_text()} (W x AP x L{where}){volume}"


def _axes(view: ViewMeasure, mm: bool) -> tuple[tuple[float, SizeBasis], tuple[float, SizeBasis]]:
    """A view's extent across (horizontal) and down (vertical) the image: the longest caliper
    drawn that way, else the mask's extent, else the box's side."""

    def length(c: Caliper) -> float:
        return c.length_mm(view.scale) if mm else c.length_px  # type: ignore[return-value]

    sx, sy = (view.scale.col_mm, view.scale.row_mm) if mm else (1.0, 1.0)
    if view.outline:
        pts = np.asarray(view.outline, dtype=np.float64).reshape(-1, 2)
        extent = ((np.ptp(pts[:, 0]) + 1) * sx, (np.ptp(pts[:, 1]) + 1) * sy)
        fallback = SizeBasis.MASK
    else:
        extent = (view.box.w * sx, view.box.h * sy)
        fallback = SizeBasis.BOX
    out = []
    for i, horizontal in enumerate((True, False)):
        drawn = [length(c) for c in view.calipers if c.horizontal == horizontal]
        out.append((max(drawn), SizeBasis.CALIPERS) if drawn else (float(extent[i]), fallback))
    return out[0], out[1]


def three_diameters(views: Sequence[ViewMeasure]) -> Diameters | None:
    """Width and AP depth from the transverse view, length from the longitudinal one (the
    first of each plane); None unless both planes are there."""
    by_plane = {}
    for v in views:
        by_plane.setdefault(v.plane, v)
    if set(by_plane) != set(Plane):
        return None
    trans, longi = by_plane[Plane.TRANSVERSE], by_plane[Plane.LONGITUDINAL]
    mm = trans.scale.calibrated and longi.scale.calibrated
    (width, wb), (depth, db) = _axes(trans, mm)
    (length, lb), _ = _axes(longi, mm)
    return Diameters(width, depth, length, mm, (wb, db, lb))


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
    #: The three diameters and the volume, when the nodule has both a transverse and a
    #: longitudinal view.
    diameters: Diameters | None = None

    @property
    def _view_basis(self) -> SizeBasis:
        if self.calipers_px:
            return SizeBasis.CALIPERS
        return SizeBasis.MASK if self.mask_px is not None else SizeBasis.BOX

    @property
    def _views_win(self) -> bool:
        """The two views' longest diameter exceeds the one view's (same units only)."""
        d = self.diameters
        if d is None or d.mm != self.scale.calibrated:
            return False
        return d.longest > self._one_view(d.mm)

    def _one_view(self, mm: bool) -> float:
        basis = self._view_basis
        if basis is SizeBasis.CALIPERS:
            return max(self.calipers_mm if mm else self.calipers_px)  # type: ignore[arg-type]
        if basis is SizeBasis.MASK:
            return float(self.mask_mm if mm else self.mask_px)  # type: ignore[arg-type]
        return float(max(self.box_mm if mm else self.box_px))  # type: ignore[arg-type]

    @property
    def basis(self) -> SizeBasis:
        return SizeBasis.DIAMETERS if self._views_win else self._view_basis

    @property
    def max_diameter_px(self) -> float:
        if self._views_win and not self.scale.calibrated:
            return self.diameters.longest  # type: ignore[union-attr]
        return self._one_view(False)

    @property
    def max_diameter_mm(self) -> float | None:
        if not self.scale.calibrated:
            return None
        if self._views_win:
            return self.diameters.longest  # type: ignore[union-attr]
        return self._one_view(True)

    @property
    def volume_ml(self) -> float | None:
        return self.diameters.volume_ml if self.diameters is not None else None

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
        if self.diameters is not None:
            parts.insert(0, self.diameters.text())
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
            "diameters": None if self.diameters is None else self.diameters.values_text(),
            "volume_ml": None if self.volume_ml is None else round(self.volume_ml, 3),
        }

    def summary(self) -> str:
        """The size in one short phrase, e.g. "14.2 mm (mask)" or "130 px (box; uncalibrated)";
        with two views also the volume, e.g. "15.0 mm (three diameters), 0.75 ml"."""
        volume = f", {self.volume_ml:.2f} ml" if self.volume_ml is not None else ""
        if self.max_diameter_mm is not None:
            return f"{self.max_diameter_mm:.1f} mm ({self.basis}){volume}"
        return f"{self.max_diameter_px:.0f} px ({self.basis}; uncalibrated)"


def nodule_size(
    box: ROI,
    scale: Scale,
    outline: Sequence[tuple[float, float]] | None = None,
    calipers: Sequence[Caliper | tuple[float, float]] = (),
    plane: Plane | None = None,
    others: Sequence[ViewMeasure] = (),
) -> NoduleSize:
    """The one size rule, for every place that shows, exports or uses a nodule's size.

    The maximum diameter comes from the clinician's caliper lines (``calipers``: each a
    :class:`Caliper`, or the (dx, dy) of one) when there are any; else from the segmenter's
    mask inside the box (``outline``: its convex hull, see
    ``core.pipeline.tirads_ai.mask_outline``), its longest axis being the nodule's true
    maximum diameter, also for an oblique nodule; else from the box's longer side (a box can
    be looser than the nodule). Lengths are in mm under ``scale`` (see
    :func:`effective_scale`), each axis at its own size, else in pixels only.

    A nodule seen in ``plane`` with its other views (``others``) in the other plane also has
    its three diameters and ellipsoid volume (:class:`Diameters`); the largest of them is its
    maximum diameter when larger than this view's.
    """
    mm = scale.calibrated
    lines = tuple(_as_caliper(c) for c in calipers)
    diameters = None
    if plane is not None and others:
        this = ViewMeasure(plane, box, scale, tuple(outline) if outline else None, lines)
        diameters = three_diameters((this, *others))
    w, h = int(box.w), int(box.h)
    box_mm = (w * scale.col_mm, h * scale.row_mm) if mm else None  # type: ignore[operator]
    mask_px = mask_mm = None
    if outline is not None and len(outline) > 0:
        mask_px = longest_axis(outline)
        mask_mm = longest_axis(outline, scale) if mm else None
    lengths_px = tuple(c.length_px for c in lines)
    lengths_mm = tuple(c.length_mm(scale) for c in lines) if mm else None
    return NoduleSize(
        scale,
        (w, h),
        box_mm,
        mask_px,
        mask_mm,
        lengths_px,
        lengths_mm,  # type: ignore[arg-type]
        diameters,
    )


class _Analysed(Protocol):
    """What :func:`finding_size` reads of a ``core.pipeline.estimate.Finding``."""

    roi: ROI
    tirads_suggestion: Any


def box_size(
    box: ROI,
    suggestion: Any,
    file_scale: Scale,
    user_mm_per_px: float | None = None,
    calipers: Sequence[Caliper | tuple[float, float]] = (),
    plane: Plane | None = None,
    others: Sequence[ViewMeasure] = (),
) -> NoduleSize:
    """:func:`nodule_size` of an analysed box: under :func:`effective_scale`, with the mask
    the segmenter gave inside it (carried by the box's TI-RADS ``suggestion``; none when the
    image is out of scope, whose mask is not trusted either), the clinician's calipers and
    the nodule's other views. The panel, the CSV and the PDF all size a nodule through
    here."""
    outline = suggestion.outline if suggestion is not None else None
    scale = effective_scale(file_scale, user_mm_per_px)
    return nodule_size(box, scale, outline, calipers, plane, others)


def finding_size(
    finding: _Analysed,
    file_scale: Scale,
    user_mm_per_px: float | None = None,
    calipers: Sequence[Caliper | tuple[float, float]] = (),
    plane: Plane | None = None,
    others: Sequence[ViewMeasure] = (),
) -> NoduleSize:
    """:func:`box_size` of a ``Finding`` (its box and its TI-RADS suggestion)."""
    return box_size(
        finding.roi, finding.tirads_suggestion, file_scale, user_mm_per_px, calipers, plane, others
    )
