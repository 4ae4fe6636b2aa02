"""Marks drawn inside the scan area (calipers, crosses, dotted lines, text) found and painted out.

Sonographers draw calipers (``+``, ``x``), dotted measuring lines and labels ("d1", "S1")
onto the image, on the nodule that worried them: a classifier can learn "marks = malignant".
Burned-in text *outside* the scan area is blacked out by ``fov.mask_outside``; this step
handles what lies *inside* it. A mark is

- a coloured glyph: a pixel whose colour differs from the frame's own tint (grey ultrasound,
  or grey tinted by a colour map), or
- a thin, near-saturated bright structure: bright against its 3-px neighbourhood (white
  top-hat), and shaped like a stroke (a line, a cross, a letter: thin for its length), or a
  run of three or more small bright dots evenly spaced on a line (a dotted line).

Compact bright spots (echogenic foci, calcifications) and blurred tissue lines are kept:
they are neither thin for their length nor near-saturated. The marks are inpainted (Telea,
``cv2.inpaint``) from the surrounding tissue. :func:`inpaint_marks` is the one function the
app (``estimate.scan_pixels``) and training (``training.data.load_crops`` and the feature
cache, through ``classifier_crop``) call.
"""

from __future__ import annotations

import enum
from typing import Any

import cv2
import numpy as np

#: Residual chroma (|pixel - its grey level x the frame's tint|, in grey levels) above which a
#: pixel is a coloured glyph. Grey JPEG frames stay under ~15 (chroma noise at edges).
CHROMA_MIN = 40
#: Cr, Cb per unit of RGB chroma (about 0.5 for the colours of marks: yellow, green, cyan).
CHROMA_TO_YCC = 0.45
#: Grey level a pixel of a thin bright mark reaches (drawn marks are near-saturated).
BRIGHT_MIN = 150
#: How much brighter than its 5 x 5 opening (white top-hat) a mark's pixel is.
TOPHAT_MIN = 60
#: Side of the top-hat's square element: strokes thinner than this stand out.
TOPHAT_SIZE = 3
#: Grey level of a drawn, near-saturated mark (crosses, dots, dashes are drawn at ~250).
SATURATED = 235
#: A component with this many saturated pixels that survive the 3 x 3 opening is a
#: compact bright spot (an echogenic focus, a calcification): kept.
FOCUS_MIN_CORE = 3
#: A thin component narrower than this (pixels) across ...
STROKE_MIN_WIDTH = 3
#: ... and shorter than this is a speckle streak unless saturated (ultrasound speckle smears
#: sideways into 5-11 px streaks; a drawn line is longer, a letter or cross is 2-D).
LINE_MIN_LENGTH = 12
#: A long component is a drawn line when its pixels spread at most this much (pixels, s.d.)
#: across its axis: straight. Tissue interfaces are bright thin lines too, but they curve.
LINE_MAX_WOBBLE = 0.8
#: ... and one pixel thick (area / length, pixels): a tissue interface is 2 px or more.
LINE_MAX_THICKNESS = 1.3
#: A long saturated sparse component at least this tall and wide is a run of text.
TEXT_MIN_HEIGHT = 5
#: A stroke component spans at least this many pixels ...
STROKE_MIN_SPAN = 5
#: ... and is at most this thick on average (area / longest side, pixels).
STROKE_MAX_THICKNESS = 1.8
#: ... or, when saturated, covers at most this share of its bounding box (a cross, an
#: "x", a letter).
STROKE_MAX_FILL = 0.45
#: A saturated (drawn) stroke may be this thick on average (anti-aliased text, 2-px lines).
DRAWN_MAX_THICKNESS = 2.8
#: A component spanning at most this many pixels may be one dot of a dotted line.
DOT_MAX_SPAN = 4
#: Spacing (pixels) between neighbouring dots of a dotted line.
DOT_SPACING = (3.0, 16.0)
#: Two neighbours of a dot are on one line when their directions differ from opposite by at
#: most this (degrees) and their distances by at most ``DOT_SPACING_TOLERANCE`` (fraction).
DOT_ANGLE_TOLERANCE = 15.0
DOT_SPACING_TOLERANCE = 0.3
#: More small bright dots than this in one image: speckle or foci, not a dotted line.
MAX_DOTS = 400
#: The found marks grow by this many pixels (their anti-aliased rim) before inpainting.
GROW = 1
#: ``cv2.inpaint`` radius (pixels).
INPAINT_RADIUS = 3


class MarksStep(enum.StrEnum):
    """What the crop step does with marks inside the scan area (the card's ``crop.marks``)."""

    KEEP = "keep"
    INPAINT = "inpaint"


def marks_step(card: dict[str, Any]) -> MarksStep:
    """The card's choice (``crop.marks``); a card without it trained on crops with marks kept."""
    return MarksStep(str((card.get("crop") or {}).get("marks", MarksStep.KEEP)))


def _gray(pixels: np.ndarray) -> np.ndarray:
    return pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)


def coloured_pixels(pixels: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """Pixels whose colour differs from the frame's tint (bool ``H x W``); none for grey."""
    if pixels.ndim == 2 or pixels.shape[2] < 3:
        return np.zeros(pixels.shape[:2], bool)
    r, g, b = cv2.split(np.ascontiguousarray(pixels[..., :3]))
    chroma = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))
    if int(chroma.max()) < CHROMA_MIN:
        return np.zeros(pixels.shape[:2], bool)  # a grey frame: the common case, fast
    ycc = cv2.cvtColor(np.ascontiguousarray(pixels[..., :3]), cv2.COLOR_RGB2YCrCb)
    y = ycc[..., 0].astype(np.float32)
    sel = y[::4, ::4] > 20  # a tint scales with brightness: Cr - 128 = k Y
    if inside is not None:
        sel &= inside[::4, ::4]
    out = np.zeros(pixels.shape[:2], bool)
    for c in (1, 2):
        off = ycc[..., c].astype(np.float32) - 128.0
        k = float(np.median(off[::4, ::4][sel] / y[::4, ::4][sel])) if sel.any() else 0.0
        out |= np.abs(off - k * y) > CHROMA_MIN * CHROMA_TO_YCC
    return out


def _dotted(centroids: np.ndarray, dots: np.ndarray) -> np.ndarray:
    """Labels (indices into ``stats``) of small dots that sit on evenly spaced lines."""
    if len(dots) < 3 or len(dots) > MAX_DOTS:
        return np.zeros(0, int)
    c = centroids[dots]
    d = c[None, :, :] - c[:, None, :]
    dist = np.hypot(d[..., 0], d[..., 1])
    lo, hi = DOT_SPACING
    near = (dist >= lo) & (dist <= hi)
    on_line = set()
    cos_max = -np.cos(np.deg2rad(DOT_ANGLE_TOLERANCE))
    for i in np.flatnonzero(near.sum(axis=1) >= 2):
        js = np.flatnonzero(near[i])
        u = d[i, js] / dist[i, js, None]
        cos = u @ u.T  # opposite directions: cos near -1
        a, b = np.nonzero(np.triu(cos <= cos_max, 1))
        for ja, jb in zip(js[a], js[b], strict=True):
            da, db = dist[i, ja], dist[i, jb]
            if abs(da - db) <= DOT_SPACING_TOLERANCE * max(da, db):
                on_line.update((i, int(ja), int(jb)))
    return dots[sorted(on_line)] if on_line else np.zeros(0, int)


def _straightness(part: np.ndarray) -> float:
    """Spread (pixels, standard deviation) of a component's pixels across its main axis."""
    ys, xs = np.nonzero(part)
    if len(xs) < 3:
        return 0.0
    cov = np.cov(np.stack([xs, ys]).astype(np.float64))
    return float(np.sqrt(max(np.linalg.eigvalsh(cov)[0], 0.0)))


def thin_bright_marks(gray: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """Thin near-saturated strokes (lines, crosses, letters) and dotted lines (bool ``H x W``)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (TOPHAT_SIZE, TOPHAT_SIZE))
    tophat = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, kernel)
    cand = (tophat >= TOPHAT_MIN) & (gray >= BRIGHT_MIN)
    if inside is not None:
        cand &= inside
    if not cand.any():
        return cand
    # Strokes a pixel apart (the arms of a hollow "+", a letter's parts) are one mark.
    near = cv2.dilate(cand.view(np.uint8), np.ones((3, 3), np.uint8))
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(near, 8)
    area = np.bincount(labels[cand], minlength=n)  # the bright pixels, not the dilated ones
    peak = np.zeros(n, np.uint8)
    np.maximum.at(peak, labels[cand], gray[cand])
    w, h = stats[:, cv2.CC_STAT_WIDTH] - 2, stats[:, cv2.CC_STAT_HEIGHT] - 2
    span = np.maximum(np.maximum(w, h), 1)
    saturated = peak >= SATURATED
    thin = (span >= STROKE_MIN_SPAN) & (area <= STROKE_MAX_THICKNESS * span)
    # A short flat streak is speckle smeared sideways unless drawn (saturated) or long.
    streak = (np.minimum(w, h) < STROKE_MIN_WIDTH) & (span < LINE_MIN_LENGTH)
    sparse = (span >= STROKE_MIN_SPAN) & (area <= STROKE_MAX_FILL * np.maximum(w * h, 1))
    # A saturated blob thick enough to survive the opening is an echogenic focus, not a mark.
    core = np.bincount(labels[(gray - tophat) >= SATURATED], minlength=n)
    # Drawn (saturated) letters and crosses are often anti-aliased: up to ~2.5 px thick.
    drawn = saturated & (span >= STROKE_MIN_SPAN) & (area <= DRAWN_MAX_THICKNESS * span)
    keep = ((thin & ~streak) | ((thin | sparse | drawn) & saturated)) & (core < FOCUS_MIN_CORE)
    # A long component is a drawn line only when straight and 1 px thick (tissue interfaces
    # curve and are thicker), or a saturated run of text (2-D and sparse).
    text = saturated & (np.minimum(w, h) >= TEXT_MIN_HEIGHT) & sparse
    for i in np.flatnonzero(keep & (span >= LINE_MIN_LENGTH) & ~text):
        x, y = stats[i, cv2.CC_STAT_LEFT], stats[i, cv2.CC_STAT_TOP]
        part = labels[y : y + h[i] + 2, x : x + w[i] + 2] == i
        straight = _straightness(part & cand[y : y + h[i] + 2, x : x + w[i] + 2]) <= LINE_MAX_WOBBLE
        keep[i] = straight and area[i] <= LINE_MAX_THICKNESS * span[i]
    keep[0] = False
    dots = np.flatnonzero((span <= DOT_MAX_SPAN) & saturated & (core < FOCUS_MIN_CORE))
    dots = dots[dots > 0]
    keep[_dotted(centroids, dots)] = True
    return keep[labels] & cand


def find_marks(pixels: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """Where marks are drawn (bool ``H x W``), within ``inside`` (the scan area) if given."""
    pixels = np.asarray(pixels)
    found = coloured_pixels(pixels, inside) | thin_bright_marks(_gray(pixels), inside)
    if inside is not None:
        found &= inside
    if GROW and found.any():
        k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * GROW + 1, 2 * GROW + 1))
        found = cv2.dilate(found.view(np.uint8), k).astype(bool)
        if inside is not None:
            found &= inside
    return found


def inpaint_marks(pixels: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """Copy of an RGB (or grey) uint8 image with the marks inside ``inside`` painted out
    (Telea); the image itself when there are none."""
    pixels = np.asarray(pixels)
    return paint_out(pixels, find_marks(pixels, inside))


def paint_out(pixels: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Copy of ``pixels`` with the pixels of ``found`` (bool or 0/1, ``H x W``) painted from
    their surroundings (Telea), as the marks step paints marks; ``pixels`` itself when
    ``found`` is empty."""
    pixels = np.asarray(pixels)
    found = np.asarray(found).astype(bool)
    if not found.any():
        return pixels
    # Inpaint each mark's own box (plus the radius): the cost follows the marks, not the frame.
    out = pixels.copy()
    n, _, stats, _ = cv2.connectedComponentsWithStats(found.view(np.uint8), 8)
    pad = INPAINT_RADIUS + 2
    height, width = found.shape
    for x, y, w, h, _ in stats[1:]:
        y0, y1 = max(y - pad, 0), min(y + h + pad, height)
        x0, x1 = max(x - pad, 0), min(x + w + pad, width)
        mask = np.ascontiguousarray(found[y0:y1, x0:x1]).view(np.uint8)
        part = np.ascontiguousarray(out[y0:y1, x0:x1])
        out[y0:y1, x0:x1] = cv2.inpaint(part, mask, INPAINT_RADIUS, cv2.INPAINT_TELEA)
    return out
