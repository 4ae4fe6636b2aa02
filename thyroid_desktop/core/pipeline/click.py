"""Click (or stroke) to segment: the clinician points at the nodule, the segmenter outlines it.

The nodule segmenter (``core.models.shipped.Segmenter``) sees square windows re-centred on
the click at a few sizes (``CLICK_SCALES``, shares of the scan area's longer side, kept
inside the scan area; 1.0 is the whole scan area, as the detector sees it), in one batch. The
windows' maps are fused (per pixel the largest probability, ``Fusion``), thresholded at
``CLICK_THRESHOLD``, and the connected part that holds the click (or the nearest one within
``SNAP_RADIUS``) is the nodule: its outline, its box and its mask. A stroke (a drag along the
nodule's long axis) gives the nodule's length and direction: windows centred on its midpoint
sized from its length, the parts it crosses (cut near its ends), and a box at least spanning
it.

When the segmenter finds nothing at the click, or the part found runs out of the largest
window, the result says the size is uncertain and why; with nothing found the box is a guess
(``DEFAULT_BOX``) around the click, or the ellipse on the stroke. The numbers below were
chosen on the segmenter's held-out arcegor sequences, with grouped cross-validation for the
figures (``python -m training.click_eval``).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import cv2
import numpy as np

from thyroid_desktop.core.pipeline.detect import threshold_of
from thyroid_desktop.core.pipeline.fov import FieldOfView, detect_fov, mask_outside
from thyroid_desktop.core.pipeline.roi import ROI

#: Click windows' sides as shares of the scan area's longer side (1.0: the whole scan area,
#: as the detector sees it). Chosen on the segmenter's held-out arcegor sequences
#: (``training.click_eval``): windows much smaller than the scan area made the segmenter,
#: trained on whole scan areas, outline less of the nodule, not more.
CLICK_SCALES: tuple[float, ...] = (0.5, 0.7, 1.0)
#: Stroke windows' sides as multiples of the stroke's length.
STROKE_SCALES: tuple[float, ...] = (3.0,)
#: Probability from which a pixel counts as nodule at a click or along a stroke: lower than
#: the detector's (``detect.MASK_THRESHOLD``), since the clinician says a nodule is there.
CLICK_THRESHOLD = 0.3
#: Windows are never smaller than this (pixels): below it the segmenter sees only speckle.
MIN_WINDOW_PX = 32
#: A stroke shorter than this (pixels) is a click at its midpoint.
MIN_STROKE_PX = 3.0
#: See ``ClickSettings.relative``.
RELATIVE_THRESHOLD = 0.0
#: The map's peak at a click is looked for within this share of the scan area's longer side.
PEAK_RADIUS = 0.02
#: A click that lands just outside the part found (a sloppy click near the border) snaps to
#: the nearest part within this share of the scan area's longer side (0: off; snapping did
#: not raise the hit rate of simulated sloppy clicks).
SNAP_RADIUS = 0.0
#: The outline is simplified to within this many pixels of the mask's border.
OUTLINE_TOLERANCE_PX = 1.0
#: With nothing found at the click, the guessed box's side, as a share of the scan area's
#: longer side (the best of 0.1-0.25 on arcegor, whose nodules are small).
DEFAULT_BOX = 0.1
#: With nothing found along a stroke, the guessed box is the ellipse with the stroke as its
#: long axis and this share of its length as its short axis.
STROKE_SHORT_AXIS = 0.6
#: Parts of the fused map are kept within this share of the stroke's half length beyond its
#: ends (a part that leaks into the tissue around the nodule is cut there).
STROKE_SLACK = 0.1


class Fusion(enum.StrEnum):
    """How the windows' maps become one: per pixel, the mean, the largest probability, or
    the mean weighted down near each window's inner edges (where a window sees only part of
    a nodule); or, for a click, the smallest window whose part at the click does not reach
    its edge (``SELECT``; a stroke then takes the mean)."""

    MEAN = "mean"
    MAX = "max"
    FEATHER = "feather"
    SELECT = "select"


#: With ``Fusion.FEATHER``, a window's weight rises from ``FEATHER_FLOOR`` at its inner edges
#: to 1 at this share of its side inside them.
FEATHER_RAMP = 0.25
FEATHER_FLOOR = 0.05


@dataclass(frozen=True)
class ClickSettings:
    """The free parameters of click and stroke segmentation (defaults: the chosen ones)."""

    scales: tuple[float, ...] = CLICK_SCALES
    stroke_scales: tuple[float, ...] = STROKE_SCALES
    fusion: Fusion = Fusion.MAX
    #: None: the segmenter's own threshold (``detect.threshold_of``).
    threshold: float | None = CLICK_THRESHOLD
    #: The threshold rises to this share of the map's peak at the click (or along the
    #: stroke) when that is higher: a faint nodule is still outlined at a low threshold
    #: while a clear one does not leak into its surroundings (0: a fixed threshold).
    relative: float = RELATIVE_THRESHOLD
    snap_radius: float = SNAP_RADIUS
    default_box: float = DEFAULT_BOX
    stroke_short_axis: float = STROKE_SHORT_AXIS
    stroke_slack: float = STROKE_SLACK


class Uncertain(enum.StrEnum):
    """Why a segmentation's size had to be guessed."""

    NOTHING_AT_CLICK = "nothing found at the click: a box of default size around it"
    NOTHING_ON_STROKE = "nothing found along the stroke: a box from the stroke's length"
    SNAPPED = "the click was beside the part found: the nearest part was taken"
    AT_WINDOW_EDGE = "the outline runs out of the largest window: the nodule may be larger"


@dataclass(frozen=True)
class PointSegmentation:
    """The nodule outlined from a click or a stroke.

    Attributes:
        roi: the nodule's box in image pixels (at least spanning a stroke).
        mask: ``H x W`` bool, the nodule (None when the box is a guess).
        score: the segmenter's mean probability over the nodule (0 for a guess).
        size_uncertain: the box had to be guessed or may be cut (``reason`` says why).
        reason: an :class:`Uncertain` value's text, "" when the size is not uncertain.
        prompt: the click ``(x, y)`` or the stroke ``(x1, y1, x2, y2)``, image pixels.
        windows: the windows the segmenter saw, image pixels.
    """

    roi: ROI
    mask: np.ndarray | None = field(repr=False, compare=False)
    score: float
    size_uncertain: bool
    reason: str
    prompt: tuple[float, ...]
    windows: tuple[ROI, ...] = ()

    @property
    def is_stroke(self) -> bool:
        return len(self.prompt) == 4

    @cached_property
    def contour(self) -> tuple[tuple[int, int], ...]:
        """The outline, ``(x, y)`` image pixels (empty when the box is a guess)."""
        return () if self.mask is None else _outline(self.mask)


@dataclass(frozen=True)
class WindowMaps:
    """The segmenter's maps on some windows, placed on one canvas (the windows' union box)."""

    canvas: ROI
    windows: tuple[ROI, ...]
    #: n x h x w float32: each window's probability on the canvas (0 where it did not look).
    values: np.ndarray = field(repr=False)
    #: n x h x w bool: where each window looked (inside it and inside the scan area).
    covered: np.ndarray = field(repr=False)

    def subset(self, keep: Sequence[int]) -> WindowMaps:
        """The maps of some windows only, on their own union box."""
        keep = list(keep)
        windows = tuple(self.windows[i] for i in keep)
        canvas = union_box(windows)
        ys = slice(canvas.y - self.canvas.y, canvas.y - self.canvas.y + canvas.h)
        xs = slice(canvas.x - self.canvas.x, canvas.x - self.canvas.x + canvas.w)
        return WindowMaps(
            canvas, windows, self.values[keep][:, ys, xs], self.covered[keep][:, ys, xs]
        )

    def fused(self, fusion: Fusion, fov: FieldOfView | None = None) -> np.ndarray:
        """One map on the canvas (``fov``: the scan area, for ``FEATHER``'s inner edges)."""
        if fusion is Fusion.MAX:
            return self.values.max(axis=0)
        if fusion is Fusion.FEATHER and fov is not None:
            weights = np.stack([self._feather(w, fov) for w in self.windows]) * self.covered
            return (self.values * weights).sum(axis=0) / np.maximum(weights.sum(axis=0), 1e-6)
        count = self.covered.sum(axis=0)
        return self.values.sum(axis=0) / np.maximum(count, 1)

    def _feather(self, w: ROI, fov: FieldOfView) -> np.ndarray:
        """A window's weight on the canvas: low at its inner edges, 1 well inside."""
        c, b = self.canvas, fov.box
        ramp = max(FEATHER_RAMP * max(w.w, w.h), 1.0)
        dx = _edge_distance(np.arange(c.x, c.x + c.w), w.x, w.w, b.x, b.w)
        dy = _edge_distance(np.arange(c.y, c.y + c.h), w.y, w.h, b.y, b.h)
        d = np.minimum(dy[:, None], dx[None, :])
        return np.clip(d / ramp, FEATHER_FLOOR, 1.0).astype(np.float32)

    def reaches_edge(self, part: np.ndarray, fov: FieldOfView, window: ROI | None = None) -> bool:
        """True when ``part`` (canvas-sized bool) touches a side of ``window`` (default: the
        canvas) that is not the scan area's own border: the window cut it, the nodule may be
        larger."""
        c, b = self.canvas, fov.box
        w = window or c
        x0, y0 = w.x - c.x, w.y - c.y
        x1, y1 = x0 + w.w - 1, y0 + w.h - 1
        sides = (
            (part[y0, x0 : x1 + 1].any(), w.y > b.y),
            (part[y1, x0 : x1 + 1].any(), w.y + w.h < b.y + b.h),
            (part[y0 : y1 + 1, x0].any(), w.x > b.x),
            (part[y0 : y1 + 1, x1].any(), w.x + w.w < b.x + b.w),
        )
        return any(touches and inner for touches, inner in sides)


def _edge_distance(i: np.ndarray, start: int, length: int, lo: int, extent: int) -> np.ndarray:
    """Distance of pixel positions ``i`` to a window's inner edges along one axis (those not
    on the scan area's border ``lo``..``lo + extent``; infinite when there are none)."""
    d = np.full(i.shape, np.inf, np.float32)
    if start > lo:
        d = np.minimum(d, i - start + 0.5)
    if start + length < lo + extent:
        d = np.minimum(d, start + length - i - 0.5)
    return d


def union_box(boxes: Sequence[ROI]) -> ROI:
    """The smallest box holding all ``boxes``."""
    x0, y0 = min(b.x for b in boxes), min(b.y for b in boxes)
    x1, y1 = max(b.x + b.w for b in boxes), max(b.y + b.h for b in boxes)
    return ROI(x0, y0, x1 - x0, y1 - y0)


def square_window(fov: FieldOfView, cx: float, cy: float, side: float) -> ROI:
    """A square of ``side`` pixels centred on (cx, cy), shifted to lie inside the scan
    area's box (and cut to it when larger)."""
    b = fov.box
    side = max(float(side), MIN_WINDOW_PX)

    def span(c: float, lo: int, extent: int) -> tuple[int, int]:
        s = int(round(min(side, extent)))
        start = int(round(c - s / 2.0))
        return min(max(start, lo), lo + extent - s), s

    x, w = span(cx, b.x, b.w)
    y, h = span(cy, b.y, b.h)
    return ROI(x, y, w, h)


def click_windows(fov: FieldOfView, cx: float, cy: float, scales: Sequence[float]) -> list[ROI]:
    """The windows around a click: ``scales`` of the scan area's longer side (1.0 or more:
    the scan area's box itself, as the detector sees it)."""
    longer = max(fov.box.w, fov.box.h)
    return [fov.box if s >= 1.0 else square_window(fov, cx, cy, s * longer) for s in scales]


def window_maps(
    masked: np.ndarray, fov: FieldOfView, windows: Sequence[ROI], segment, size: int
) -> WindowMaps:
    """Runs the segmenter once on a batch of windows of ``masked`` (the image with the
    outside of the scan area black) and places each map on the windows' union box."""
    canvas = union_box(windows)
    x0, y0, x1, y1 = canvas.x, canvas.y, canvas.x + canvas.w, canvas.y + canvas.h
    batch = np.stack(
        [
            cv2.resize(
                masked[w.y : w.y + w.h, w.x : w.x + w.w],
                (size, size),
                interpolation=cv2.INTER_AREA if max(w.w, w.h) > size else cv2.INTER_LINEAR,
            )
            for w in windows
        ]
    )
    probs = np.asarray(segment(batch), dtype=np.float32)
    inside = fov.mask[y0:y1, x0:x1]
    values = np.zeros((len(windows), canvas.h, canvas.w), np.float32)
    covered = np.zeros(values.shape, bool)
    for i, (w, p) in enumerate(zip(windows, probs, strict=True)):
        sl = (i, slice(w.y - y0, w.y - y0 + w.h), slice(w.x - x0, w.x - x0 + w.w))
        values[sl] = cv2.resize(p, (w.w, w.h), interpolation=cv2.INTER_LINEAR)
        covered[sl] = True
    covered &= inside[None]
    values[~covered] = 0.0
    return WindowMaps(canvas, tuple(windows), values, covered)


def part_at(binary: np.ndarray, px: int, py: int, radius: float) -> tuple[np.ndarray | None, bool]:
    """The 8-connected part of ``binary`` holding (px, py), else the nearest one within
    ``radius`` pixels: (the part or None, whether it was snapped to)."""
    n, labels = cv2.connectedComponents(binary.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None, False
    h, w = binary.shape
    if 0 <= py < h and 0 <= px < w and labels[py, px]:
        return labels == labels[py, px], False
    r = int(math.ceil(radius))
    ys, xs = np.nonzero(labels[max(py - r, 0) : py + r + 1, max(px - r, 0) : px + r + 1])
    if not len(ys):
        return None, False
    ys, xs = ys + max(py - r, 0), xs + max(px - r, 0)
    d2 = (ys - py) ** 2 + (xs - px) ** 2
    k = int(np.argmin(d2))
    if d2[k] > radius * radius:
        return None, False
    return labels == labels[ys[k], xs[k]], True


def outline_mask(outline, width: int, height: int) -> np.ndarray | None:
    """The nodule's mask (H x W bool) from its outline, as stored with a nodule: the filled
    polygon; None for an empty outline (a guessed box: the box alone)."""
    if outline is None or len(outline) < 3:
        return None
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.asarray(outline, dtype=np.int32).reshape(-1, 1, 2)], 1)
    return mask.astype(bool)


def _outline(mask: np.ndarray) -> tuple[tuple[int, int], ...]:
    """The outer outline of a bool mask (its largest contour), image pixels."""
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    if not contours:
        return ()
    c = max(contours, key=cv2.contourArea)
    c = cv2.approxPolyDP(c, OUTLINE_TOLERANCE_PX, True).reshape(-1, 2)
    return tuple((int(x), int(y)) for x, y in c)


def _result(
    part: np.ndarray,
    fused: np.ndarray,
    maps: WindowMaps,
    shape: tuple[int, int],
    prompt: tuple[float, ...],
    reason: str,
    at_least: ROI | None = None,
) -> PointSegmentation:
    """The segmentation from a canvas-sized part (``at_least``: a box it must span)."""
    c = maps.canvas
    full = np.zeros(shape, bool)
    full[c.y : c.y + c.h, c.x : c.x + c.w] = part
    ys, xs = np.nonzero(part)
    x0, y0, x1, y1 = xs.min() + c.x, ys.min() + c.y, xs.max() + c.x + 1, ys.max() + c.y + 1
    if at_least is not None:
        x0, y0 = min(x0, at_least.x), min(y0, at_least.y)
        x1, y1 = max(x1, at_least.x + at_least.w), max(y1, at_least.y + at_least.h)
    roi = ROI(int(x0), int(y0), int(x1 - x0), int(y1 - y0)).clipped(shape[1], shape[0])
    return PointSegmentation(
        roi=roi,
        mask=full,
        score=float(fused[part].mean()),
        size_uncertain=bool(reason),
        reason=reason,
        prompt=prompt,
        windows=maps.windows,
    )


def _guess(
    roi: ROI, shape: tuple[int, int], prompt: tuple[float, ...], reason: str, windows
) -> PointSegmentation:
    return PointSegmentation(
        roi=roi.clipped(shape[1], shape[0]),
        mask=None,
        score=0.0,
        size_uncertain=True,
        reason=reason,
        prompt=prompt,
        windows=tuple(windows),
    )


def settle_point(
    maps: WindowMaps,
    fov: FieldOfView,
    point: tuple[float, float],
    settings: ClickSettings,
    threshold: float,
    fused: np.ndarray | None = None,
) -> PointSegmentation:
    """The nodule at a click from the windows' maps (``maps``, made by :func:`window_maps`;
    ``fused``: their fused map, when already made)."""
    shape = fov.mask.shape
    longer = max(fov.box.w, fov.box.h)
    c = maps.canvas
    px, py = int(round(point[0])) - c.x, int(round(point[1])) - c.y
    radius = settings.snap_radius * longer
    if settings.fusion is Fusion.SELECT:
        return _select(maps, fov, point, threshold, radius, settings)
    fused = maps.fused(settings.fusion, fov) if fused is None else fused
    if settings.relative > 0:
        r = int(math.ceil(max(radius, PEAK_RADIUS * longer)))
        near = fused[max(py - r, 0) : py + r + 1, max(px - r, 0) : px + r + 1]
        peak = float(near.max()) if near.size else 0.0
        threshold = max(threshold, settings.relative * peak)
    part, snapped = part_at(fused >= threshold, px, py, radius)
    if part is None:
        return replace(guess_point(fov, point, settings), windows=maps.windows)
    reason = ""
    if maps.reaches_edge(part, fov):
        reason = Uncertain.AT_WINDOW_EDGE
    elif snapped:
        reason = Uncertain.SNAPPED
    return _result(part, fused, maps, shape, tuple(point), str(reason))


def _select(
    maps: WindowMaps,
    fov: FieldOfView,
    point: tuple[float, float],
    threshold: float,
    radius: float,
    settings: ClickSettings,
) -> PointSegmentation:
    """The part at the click in the smallest window where it does not reach the window's
    edge; else the largest window's part (size uncertain)."""
    c = maps.canvas
    px, py = int(round(point[0])) - c.x, int(round(point[1])) - c.y
    order = sorted(range(len(maps.windows)), key=lambda i: maps.windows[i].w * maps.windows[i].h)
    last = None
    for i in order:
        part, snapped = part_at(maps.values[i] >= threshold, px, py, radius)
        if part is None:
            continue
        last = (part, snapped, i)
        if not maps.reaches_edge(part, fov, maps.windows[i]):
            reason = Uncertain.SNAPPED if snapped else ""
            return _result(part, maps.values[i], maps, fov.mask.shape, tuple(point), str(reason))
    if last is None:
        return replace(guess_point(fov, point, settings), windows=maps.windows)
    part, _, i = last
    return _result(
        part, maps.values[i], maps, fov.mask.shape, tuple(point), str(Uncertain.AT_WINDOW_EDGE)
    )


def stroke_windows(
    fov: FieldOfView, stroke: tuple[float, float, float, float], scales: Sequence[float]
) -> list[ROI]:
    """Windows centred on the stroke's midpoint, ``scales`` times its length."""
    x1, y1, x2, y2 = stroke
    length = math.hypot(x2 - x1, y2 - y1)
    return [square_window(fov, (x1 + x2) / 2, (y1 + y2) / 2, s * length) for s in scales]


def _stroke_box(stroke: tuple[float, float, float, float]) -> ROI:
    x1, y1, x2, y2 = stroke
    x0, y0 = int(math.floor(min(x1, x2))), int(math.floor(min(y1, y2)))
    return ROI(
        x0, y0, max(int(math.ceil(max(x1, x2))) - x0, 1), max(int(math.ceil(max(y1, y2))) - y0, 1)
    )


def stroke_ellipse(stroke: tuple[float, float, float, float], short_axis: float) -> ROI:
    """The box of the ellipse with the stroke as its long axis and ``short_axis`` times its
    length as its short one."""
    x1, y1, x2, y2 = stroke
    a = math.hypot(x2 - x1, y2 - y1) / 2
    b = a * short_axis
    t = math.atan2(y2 - y1, x2 - x1)
    hw = math.hypot(a * math.cos(t), b * math.sin(t))
    hh = math.hypot(a * math.sin(t), b * math.cos(t))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    x0, y0 = int(math.floor(cx - hw)), int(math.floor(cy - hh))
    return ROI(x0, y0, max(int(math.ceil(cx + hw)) - x0, 1), max(int(math.ceil(cy + hh)) - y0, 1))


def settle_stroke(
    maps: WindowMaps,
    fov: FieldOfView,
    stroke: tuple[float, float, float, float],
    settings: ClickSettings,
    threshold: float,
    fused: np.ndarray | None = None,
) -> PointSegmentation:
    """The nodule along a stroke from the windows' maps: the parts the stroke crosses, cut
    to a disc a little wider than the stroke, in a box at least spanning the stroke."""
    shape = fov.mask.shape
    x1, y1, x2, y2 = stroke
    length = math.hypot(x2 - x1, y2 - y1)
    c = maps.canvas
    fusion = Fusion.MEAN if settings.fusion is Fusion.SELECT else settings.fusion
    fused = maps.fused(fusion, fov) if fused is None else fused
    steps = max(int(math.ceil(length)), 1) + 1
    lx = np.clip(np.round(np.linspace(x1, x2, steps)).astype(int) - c.x, 0, c.w - 1)
    ly = np.clip(np.round(np.linspace(y1, y2, steps)).astype(int) - c.y, 0, c.h - 1)
    if settings.relative > 0:
        threshold = max(threshold, settings.relative * float(fused[ly, lx].max()))
    binary = fused >= threshold
    # Keep what lies near the stroke: within (1 + slack) of its half length of the midpoint.
    yy, xx = np.mgrid[c.y : c.y + c.h, c.x : c.x + c.w]
    reach = (length / 2) * (1 + settings.stroke_slack)
    binary &= (xx - (x1 + x2) / 2) ** 2 + (yy - (y1 + y2) / 2) ** 2 <= reach * reach
    n, labels = cv2.connectedComponents(binary.astype(np.uint8), connectivity=8)
    crossed = set(np.unique(labels[ly, lx]).tolist()) - {0}
    prompt = tuple(float(v) for v in stroke)
    if not crossed:
        box = stroke_ellipse(stroke, settings.stroke_short_axis)
        return _guess(box, shape, prompt, Uncertain.NOTHING_ON_STROKE, maps.windows)
    part = np.isin(labels, sorted(crossed))
    reason = Uncertain.AT_WINDOW_EDGE if maps.reaches_edge(part, fov) else ""
    return _result(part, fused, maps, shape, prompt, str(reason), at_least=_stroke_box(stroke))


def guess_point(
    fov: FieldOfView, point: tuple[float, float], settings: ClickSettings | None = None
) -> PointSegmentation:
    """The box of default size around a click, size uncertain (no segmenter to ask)."""
    settings = settings or ClickSettings()
    _inside(fov.mask.shape, *point)
    side = max(settings.default_box * max(fov.box.w, fov.box.h), 1.0)
    x, y = float(point[0]), float(point[1])
    box = ROI(int(round(x - side / 2)), int(round(y - side / 2)), int(side), int(side))
    return _guess(box, fov.mask.shape, (x, y), Uncertain.NOTHING_AT_CLICK, ())


def guess_stroke(
    fov: FieldOfView,
    stroke: tuple[float, float, float, float],
    settings: ClickSettings | None = None,
) -> PointSegmentation:
    """The box of the stroke's ellipse, size uncertain (no segmenter to ask)."""
    settings = settings or ClickSettings()
    x1, y1, x2, y2 = (float(v) for v in stroke)
    _inside(fov.mask.shape, x1, y1)
    _inside(fov.mask.shape, x2, y2)
    box = stroke_ellipse((x1, y1, x2, y2), settings.stroke_short_axis)
    return _guess(box, fov.mask.shape, (x1, y1, x2, y2), Uncertain.NOTHING_ON_STROKE, ())


def _inside(image_shape: tuple[int, int], x: float, y: float) -> None:
    h, w = image_shape
    if not (0 <= x < w and 0 <= y < h):
        raise ValueError(f"point ({x:g}, {y:g}) lies outside the {w}x{h} image")


def segment_point(
    pixels: np.ndarray,
    gray: np.ndarray,
    segment,
    point: tuple[float, float],
    settings: ClickSettings | None = None,
    fov: FieldOfView | None = None,
) -> PointSegmentation:
    """Outlines the nodule at a click.

    Args:
        pixels: H x W x 3 uint8 image.
        gray: its grey version (for the scan area).
        segment: the nodule segmenter (``Segmenter``, or any callable uint8 batch -> maps
            with a ``size``).
        point: the click ``(x, y)`` in image pixels.
        settings: the free parameters (default: the chosen ones).
        fov: the scan area, when already found.

    Raises:
        ValueError: the click lies outside the image.
    """
    settings = settings or ClickSettings()
    _inside(pixels.shape[:2], *point)
    fov = fov or detect_fov(gray)
    windows = click_windows(fov, point[0], point[1], settings.scales)
    maps = window_maps(mask_outside(pixels, fov), fov, windows, segment, segment.size)
    threshold = settings.threshold if settings.threshold is not None else threshold_of(segment)
    return settle_point(maps, fov, (float(point[0]), float(point[1])), settings, threshold)


def segment_stroke(
    pixels: np.ndarray,
    gray: np.ndarray,
    segment,
    stroke: tuple[float, float, float, float],
    settings: ClickSettings | None = None,
    fov: FieldOfView | None = None,
) -> PointSegmentation:
    """Outlines the nodule along a stroke ``(x1, y1, x2, y2)`` (image pixels) drawn along its
    long axis; arguments as :func:`segment_point`.

    Raises:
        ValueError: an end of the stroke lies outside the image.
    """
    settings = settings or ClickSettings()
    x1, y1, x2, y2 = (float(v) for v in stroke)
    _inside(pixels.shape[:2], x1, y1)
    _inside(pixels.shape[:2], x2, y2)
    if math.hypot(x2 - x1, y2 - y1) < MIN_STROKE_PX:  # a click, not a stroke
        return segment_point(pixels, gray, segment, ((x1 + x2) / 2, (y1 + y2) / 2), settings, fov)
    fov = fov or detect_fov(gray)
    windows = stroke_windows(fov, (x1, y1, x2, y2), settings.stroke_scales)
    maps = window_maps(mask_outside(pixels, fov), fov, windows, segment, segment.size)
    threshold = settings.threshold if settings.threshold is not None else threshold_of(segment)
    return settle_stroke(maps, fov, (x1, y1, x2, y2), settings, threshold)
