"""Field of view: the scan area of a B-mode frame, without the UI drawn around it.

Ultrasound frames carry burned-in text, depth scales, grey-scale bars and body markers on a
black background around the scan area. The segmenter and the classifier only see pixels
inside the field of view, so they cannot learn from those marks.

How: large connected black areas are background; dark tissue has black pixels too, but only
as isolated specks, so it stays scan area. On a downscaled copy a morphological opening
deletes text strokes, ticks and thin lines, and regions much smaller than the largest
(glyphs, separated grey-scale bars) are dropped; two panels side by side are both kept.
Each kept region becomes its bounding box when it is rectangular, else the convex hull of
itself and its mirror image (sector and trapezoid fans are symmetric), so dark cysts and
shadows inside or at the edge of the scan area are never left out. A text column that
merged with a rectangle's side (the settings column beside two-panel frames) is trimmed off:
columns with no long vertical run of scan pixels, mostly black, with crisp white glyphs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from thyroid_desktop.core.pipeline.roi import ROI

#: Longer side of the working copy; larger images are downscaled to it.
_WORK_SIDE = 320
#: Histogram bins searched for the background's grey level.
_DARKEST = 32
#: Share of the image a grey level must hold to be taken as the background's level.
_BLACK_SHARE = 0.02
#: Pixels at most this far above the background level count as black.
_BLACK_TOLERANCE = 2
#: Noise up to this far above black counts as black where most neighbours are black ...
_NOISE_TOLERANCE = 12
#: ... in a window of this side, in image pixels.
_NOISE_WINDOW = 5
#: A connected black area this large (share of the image) is background, not a dark speck.
_BACKGROUND_AREA = 0.002
#: A working pixel is scan area if this share of the image pixels it covers are not background.
_SCAN_SHARE = 0.75
#: Diameter of the opening kernel, in working pixels: wider than text strokes and ticks.
_OPEN = 7
#: Working pixels added around each region, for its partly covered edge pixels.
_PAD = 0.25
#: A region is kept if its area is at least this share of the largest region's.
_KEEP_SHARE = 0.25
#: The largest region must cover at least this share of the image, else: whole image.
_MIN_FRACTION = 0.05
#: A region whose top edge spans this share of its box's width is a rectangle.
_RECT_SPAN = 0.95
#: Rows at the top of a region whose extent gives its centre line.
_TOP_ROWS = 3
#: Rows or columns holding less than this share of a region's fullest one are left out of its box.
_EDGE_SHARE = 0.1
#: A region whose convex hull fills this share of its bounding box is taken as that box.
_RECT_FILL = 0.92
#: A column at the side of a rectangle is text, not scan area, if no run of scan pixels in it
#: is this long (share of the rectangle's height; a line of text is about a tenth) ...
_SIDE_RUN = 0.25
#: ... and a stripe of such columns is trimmed if at least this many image pixels wide ...
_SIDE_MIN = 4
#: ... and this share of its pixels are bright glyph strokes (this grey level or more) ...
_SIDE_GLYPHS = 0.02
_GLYPH_LEVEL = 160
#: Burned-in glyphs are drawn near white with hard edges: this share of the bright pixels
#: reach this level, where bright tissue fades through greys.
_GLYPH_CRISP = 0.8
_GLYPH_WHITE = 230
#: ... and this share is background black (dark tissue is not that black).
_SIDE_BLACK = 0.6
#: At most this share of a rectangle's width is trimmed on each side.
_SIDE_MAX = 0.15


@dataclass(frozen=True)
class FieldOfView:
    """Where the scan area lies in a frame.

    Attributes:
        mask: H x W bool, True inside the scan area (read-only).
        box: bounding box of ``mask``.
    """

    mask: np.ndarray
    box: ROI

    @property
    def fraction(self) -> float:
        """Share of the image inside the field of view."""
        return float(np.count_nonzero(self.mask)) / float(self.mask.size)

    @classmethod
    def whole(cls, width: int, height: int) -> FieldOfView:
        """The whole image as field of view."""
        return cls(_read_only(np.ones((height, width), dtype=bool)), ROI.full(width, height))


def detect_fov(gray: np.ndarray) -> FieldOfView:
    """Finds the scan area of a grey B-mode frame.

    Args:
        gray: H x W uint8 image (convert colour frames to grey first).

    Returns:
        The field of view; the whole image when no plausible scan area is found (an
        all-black frame, or a frame with no border around the scan area).
    """
    gray = np.asarray(gray)
    if gray.ndim != 2:
        raise ValueError(f"detect_fov expects an H x W grey image, got shape {gray.shape}")
    if gray.dtype != np.uint8:
        raise ValueError(f"detect_fov expects uint8 pixels, got {gray.dtype}")
    height, width = gray.shape
    if height < 2 or width < 2:
        return FieldOfView.whole(max(width, 1), max(height, 1))

    # Background = large connected black areas. Dark speckle has black pixels too, but as
    # isolated specks; the black around and between text glyphs joins the background.
    # Compression noise around glyphs (a little above black) counts as black where most
    # pixels around it are black, so it does not wall off the black between text lines.
    level = _black_level(gray)
    raw_black = cv2.compare(gray, level + _BLACK_TOLERANCE, cv2.CMP_LE)
    mostly_black = cv2.compare(cv2.blur(raw_black, (_NOISE_WINDOW, _NOISE_WINDOW)), 127, cv2.CMP_GT)
    near_black = cv2.compare(gray, level + _NOISE_TOLERANCE, cv2.CMP_LE)
    black = cv2.bitwise_and(near_black, mostly_black)
    n, labels = cv2.connectedComponents(black, connectivity=4)
    areas = np.bincount(labels.ravel(), minlength=n)
    is_background = areas >= _BACKGROUND_AREA * height * width
    # Black pockets cut off by text at the image edge are background too.
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    is_background[edge] = True
    is_background[0] = False  # label 0: everything not black
    scan_value = np.where(is_background, 0, 255).astype(np.uint8)
    scan = np.take(scan_value, labels)
    full_scan = scan > 0

    scale = min(1.0, _WORK_SIDE / max(height, width))
    if scale < 1.0:
        small_size = (max(2, round(width * scale)), max(2, round(height * scale)))
        scan = cv2.resize(scan, small_size, interpolation=cv2.INTER_AREA)
    sh, sw = scan.shape
    bright = (scan > round(_SCAN_SHARE * 255)).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_OPEN, _OPEN))
    bright = cv2.morphologyEx(bright, cv2.MORPH_OPEN, kernel)

    n, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=8)
    if n <= 1:
        return FieldOfView.whole(width, height)
    areas = stats[1:, cv2.CC_STAT_AREA]
    largest = int(areas.max())
    if largest < _MIN_FRACTION * sh * sw:
        return FieldOfView.whole(width, height)
    keep = 1 + np.flatnonzero(areas >= _KEEP_SHARE * largest)

    # Working pixel i spans [i, i+1) * sx image pixels. Pixels on the scan area's edge are
    # partly background and may have been left out, so every shape grows by _PAD of one
    # working pixel on each side.
    sx, sy = width / sw, height / sh
    mask = np.zeros((height, width), dtype=np.uint8)
    for label in keep:
        region = (labels == label).astype(np.uint8)
        contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        points = np.vstack(contours).reshape(-1, 2)
        hull = cv2.convexHull(points)
        x, y, w, h = _core_rect(region)
        if _is_rectangular(region, hull, (x, y, w, h)):
            x0, y0 = math.floor((x - _PAD) * sx), math.floor((y - _PAD) * sy)
            x1, y1 = math.ceil((x + w + _PAD) * sx), math.ceil((y + h + _PAD) * sy)
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
            x0, x1 = _without_side_text(
                gray, raw_black, full_scan, x0, y0, x1, y1, math.ceil(_PAD * sx)
            )
            mask[y0:y1, x0:x1] = 1
        else:
            hull = _mirrored_hull(hull.reshape(-1, 2), region, y)
            cv2.fillConvexPoly(mask, _hull_to_full(hull, sx, sy), 1)

    box = ROI(*(int(v) for v in cv2.boundingRect(mask)))
    return FieldOfView(_read_only(mask.astype(bool)), box)


def mask_outside(pixels: np.ndarray, fov: FieldOfView) -> np.ndarray:
    """Copy of an RGB uint8 image with the pixels outside the field of view set to 0."""
    pixels = np.asarray(pixels)
    if pixels.shape[:2] != fov.mask.shape:
        raise ValueError(
            f"image of shape {pixels.shape[:2]} does not match the field of view {fov.mask.shape}"
        )
    if pixels.dtype == np.uint8 and pixels.size and (pixels.ndim == 2 or pixels.shape[2] in (3, 4)):
        # The same masked copy at a fraction of boolean indexing's cost (the app's frames).
        keep = np.ascontiguousarray(fov.mask).view(np.uint8)
        return cv2.bitwise_and(pixels, pixels, mask=keep)
    out = pixels.copy()
    out[~fov.mask] = 0
    return out


def _black_level(gray: np.ndarray) -> int:
    """Grey level of the background: the darkest level that is common, else 0.

    Usually 0, but some scanners and video grabbers put black at 16 or higher. The darkest
    common level, not the commonest, so a large smooth far field is not taken for it.
    """
    hist = cv2.calcHist([gray], [0], None, [_DARKEST], [0, _DARKEST]).ravel()
    common = np.flatnonzero(hist >= _BLACK_SHARE * gray.size)
    return int(common[0]) if common.size else 0


def _core_rect(region: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box of a region, ignoring rows and columns it barely reaches.

    A glyph touching a corner of the scan area (a depth label, a scale tick) reaches a
    few rows or columns past it; the box of the scan area should not include it.
    """
    columns = region.sum(axis=0, dtype=np.int32)
    rows = region.sum(axis=1, dtype=np.int32)
    xs = np.flatnonzero(columns >= _EDGE_SHARE * columns.max())
    ys = np.flatnonzero(rows >= _EDGE_SHARE * rows.max())
    return int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)


def _without_side_text(
    gray: np.ndarray,
    raw_black: np.ndarray,
    scan: np.ndarray,
    x0: int,
    y0: int,
    x1: int,
    y1: int,
    pad: int,
) -> tuple[int, int]:
    """Columns x0..x1 of a rectangular scan area less a text column stuck to its left or right.

    A settings column drawn a few pixels beside the scan area (two-panel frames put it right
    next to the second panel) merges with it where compression noise around the glyphs and
    edge ticks bridge the thin black gap. Its columns hold no long vertical run of scan
    pixels (text lines alternate with black), it is mostly background black, and it holds
    near-white glyphs: all must hold to trim it, so a dark scan-area edge (poor probe
    contact, shadow, bright tissue fading into black) is kept.
    """
    h = y1 - y0
    limit = int(_SIDE_MAX * (x1 - x0))
    if h < 4 * _TOP_ROWS or limit < _SIDE_MIN:
        return x0, x1
    index = np.arange(h)[:, None]

    def text_like(c0: int, c1: int) -> np.ndarray:
        """Per column c0..c1: True where no run of scan pixels is _SIDE_RUN long."""
        rows = scan[y0:y1, c0:c1]
        last_gap = np.maximum.accumulate(np.where(rows, -1, index), axis=0)
        return (index - last_gap).max(axis=0) < _SIDE_RUN * h

    def is_text(c0: int, c1: int) -> bool:
        stripe = gray[y0:y1, c0:c1]
        glyphs = float(np.mean(stripe >= _GLYPH_LEVEL))
        crisp = float(np.mean(stripe >= _GLYPH_WHITE))
        black = float(np.mean(raw_black[y0:y1, c0:c1])) / 255.0
        return glyphs >= _SIDE_GLYPHS and crisp >= _GLYPH_CRISP * glyphs and black >= _SIDE_BLACK

    # Right side: the text stripe is [inner, x1), found from the outside in.
    side = text_like(x1 - limit, x1)
    inner = limit
    while inner > 0 and side[inner - 1]:
        inner -= 1
    if limit - inner >= _SIDE_MIN and is_text(x1 - limit + inner, x1):
        new_x1 = x1 - limit + inner + pad
    else:
        new_x1 = x1
    # Left side: [x0, x0 + inner).
    side = text_like(x0, x0 + limit)
    inner = 0
    while inner < limit and side[inner]:
        inner += 1
    if inner >= _SIDE_MIN and is_text(x0, x0 + inner):
        x0 = x0 + inner - pad
    return x0, new_x1


def _is_rectangular(region: np.ndarray, hull: np.ndarray, rect: tuple[int, int, int, int]) -> bool:
    """True if a region is a rectangular scan area, dark corners or sides allowed.

    Either its convex hull nearly fills its bounding box, or its top edge spans the box's
    full width, where a sector or trapezoid is narrower than further down.
    """
    x, y, w, h = rect
    hull_area = cv2.contourArea(hull) + 0.5 * cv2.arcLength(hull, True) + 1.0
    if hull_area >= _RECT_FILL * w * h:
        return True
    top = region[y : y + max(_TOP_ROWS, h // 20), x : x + w]
    columns = np.flatnonzero(top.any(axis=0))
    return columns.size > 0 and columns[-1] - columns[0] + 1 >= w - max(2.0, (1 - _RECT_SPAN) * w)


def _mirrored_hull(hull: np.ndarray, region: np.ndarray, top: int) -> np.ndarray:
    """Convex hull of a region and its mirror image about the centre of its top edge.

    Sector and trapezoid scan areas are left-right symmetric about the probe's centre line,
    and their near field (top) is rarely dark, so mirroring restores a far-field corner lost
    in shadow.
    """
    top_rows = region[top : top + _TOP_ROWS]
    columns = np.flatnonzero(top_rows.any(axis=0))
    axis = (columns[0] + columns[-1]) / 2.0
    mirrored = hull.astype(np.float64)
    mirrored[:, 0] = 2.0 * axis - mirrored[:, 0]
    both = np.vstack([hull.astype(np.float64), mirrored]).astype(np.float32)
    return cv2.convexHull(both).reshape(-1, 2)


def _hull_to_full(hull: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Hull vertices (working pixel centres) -> image vertices enclosing those pixels."""
    centre = hull.mean(axis=0)
    # Push each vertex outward to its pixel's far edge, plus the padding.
    corner = hull + 0.5 + (0.5 + _PAD) * np.sign(hull - centre)
    full = np.empty_like(corner, dtype=np.float64)
    full[:, 0] = corner[:, 0] * sx
    full[:, 1] = corner[:, 1] * sy
    return np.round(full - 0.5).astype(np.int32)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
