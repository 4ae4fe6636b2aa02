"""Finding the nodule by itself: field of view -> segmenter -> candidate boxes.

The segmenter sees the scan area only (pixels outside the field of view are black), cut to
the field of view's box and resized to a square. Its probability map is mapped back to the
image, thresholded, and each connected part becomes a candidate box, best first. "No nodule
found" is a valid answer: no candidate is ever made up. With a presence model in the card
(``core.pipeline.presence``), each candidate also gets a "nodule present" probability and
those below its threshold are not proposed (kept aside in ``Detection.below_presence``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from thyroid_desktop.core.pipeline.fov import FieldOfView, detect_fov, mask_outside
from thyroid_desktop.core.pipeline.presence import PresenceModel, part_features
from thyroid_desktop.core.pipeline.roi import ROI

#: Probability from which a pixel counts as nodule, for candidates and for a box's mask; a
#: segmenter whose model card states its own ``threshold`` uses that one (`threshold_of`).
MASK_THRESHOLD = 0.5
#: Parts smaller than this share of the field of view are noise, not nodules.
MIN_AREA_FRACTION = 0.002
#: Gland-segmenter probability from which a pixel counts as thyroid gland (likewise).
GLAND_THRESHOLD = 0.5
#: A candidate is kept when at least this share of its box lies in the gland grown by
#: ``GLAND_GROW`` of the scan area's larger side (0: touching it is enough); chosen on
#: development groups (README, "Finding the nodule").
GLAND_MIN_OVERLAP = 0.0
GLAND_GROW = 0.03


@dataclass(frozen=True)
class Candidate:
    """One detected nodule: its box in image pixels, the segmenter's mean probability and,
    with a presence model, the probability that it is a nodule at all (None: no model)."""

    roi: ROI
    score: float
    area_px: int
    presence: float | None = None


@dataclass(frozen=True)
class Detection:
    """The segmenter's answer for one image."""

    fov: FieldOfView
    candidates: list[Candidate]
    probability: np.ndarray = field(repr=False)  # H x W float32, 0 outside the FOV
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: H x W bool: where the gland segmenter sees thyroid gland (None: no gland model).
    gland: np.ndarray | None = field(default=None, repr=False)
    #: Candidates the gland prior removed (outside the gland), best first.
    outside_gland: list[Candidate] = field(default_factory=list)
    #: The probability from which ``probability`` counts as nodule (for a box's mask too).
    threshold: float = MASK_THRESHOLD
    #: The nodule and gland segmenters' own square maps over the scan area's box (the gland's
    #: None without a gland model), which the scope check reads.
    square_maps: tuple[np.ndarray, np.ndarray | None] | None = field(default=None, repr=False)
    #: Candidates the presence model judged not to be a nodule (below its threshold), best
    #: first: never proposed, kept for frame scores and debugging.
    below_presence: list[Candidate] = field(default_factory=list)

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


def threshold_of(segment, default: float = MASK_THRESHOLD) -> float:
    """The threshold a segmenter's model card states (``Segmenter.threshold``), else
    ``default`` (any other callable: tests, benchmarks)."""
    value = getattr(segment, "threshold", None)
    return default if value is None else float(value)


def candidate_parts(
    prob: np.ndarray, fov: FieldOfView, threshold: float = MASK_THRESHOLD
) -> tuple[np.ndarray, list[tuple[int, Candidate]]]:
    """The thresholded map's component labels and its (label, candidate) pairs, largest
    mean probability x area first (specks below ``MIN_AREA_FRACTION`` left out)."""
    binary = (prob >= threshold).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    min_area = MIN_AREA_FRACTION * max(int(fov.mask.sum()), 1)
    out = []
    for i in range(1, n):
        area = int(stats[i, cv2.CC_STAT_AREA])
        if area < min_area:
            continue
        x, y, w, h = (int(v) for v in stats[i, :4])
        part = labels[y : y + h, x : x + w] == i
        score = float(prob[y : y + h, x : x + w][part].mean())
        out.append((i, Candidate(ROI(x, y, w, h), score, area)))
    out.sort(key=lambda lc: lc[1].score * np.sqrt(lc[1].area_px), reverse=True)
    return labels, out


def candidates_from_map(
    prob: np.ndarray, fov: FieldOfView, threshold: float = MASK_THRESHOLD
) -> list[Candidate]:
    """Connected parts of the thresholded map, largest mean probability x area first."""
    return [c for _, c in candidate_parts(prob, fov, threshold)[1]]


def presence_of(segment) -> PresenceModel | None:
    """The presence model a segmenter's card states (``Segmenter.presence``), else None."""
    model = getattr(segment, "presence", None)
    return model if isinstance(model, PresenceModel) else None


def split_by_presence(
    parts: list[tuple[int, Candidate]],
    labels: np.ndarray,
    prob: np.ndarray,
    fov: FieldOfView,
    model: PresenceModel,
    gland: np.ndarray | None = None,
    gray: np.ndarray | None = None,
) -> tuple[list[Candidate], list[Candidate]]:
    """(proposed, below): every candidate with its presence probability, split at the
    model's threshold (none below when the model is not ``enforced``); both keep the
    detector's order."""
    table = part_features(labels, parts, prob, fov, gland, gray)
    kept, below = [], []
    for (_, c), p in zip(parts, model.probability(table), strict=True):
        c = replace(c, presence=float(p))
        (kept if p >= model.threshold or not model.enforced else below).append(c)
    return kept, below


def grown_gland(gland: np.ndarray, fov: FieldOfView, grow: float = GLAND_GROW) -> np.ndarray:
    """The gland mask grown by ``grow`` of the scan area's larger side (touching counts)."""
    k = max(1, int(round(grow * max(fov.box.w, fov.box.h)))) * 2 + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    return cv2.dilate(gland.astype(np.uint8), kernel).astype(bool)


def gland_overlap(roi: ROI, grown: np.ndarray) -> float:
    """Share of the box ``roi`` that lies in the (grown) gland."""
    part = grown[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w]
    return float(part.mean()) if part.size else 0.0


def split_by_gland(
    cands: list[Candidate],
    gland: np.ndarray,
    fov: FieldOfView,
    min_overlap: float = GLAND_MIN_OVERLAP,
    grow: float = GLAND_GROW,
) -> tuple[list[Candidate], list[Candidate]]:
    """(kept, removed): a candidate is kept when more than ``min_overlap`` of its box lies in
    the gland grown by ``grow`` (with 0, touching it is enough). When no gland is seen at
    all, every candidate is kept: the prior only removes what it can place."""
    if not gland.any():
        return cands, []
    grown = grown_gland(gland, fov, grow)
    kept, removed = [], []
    for c in cands:
        share = gland_overlap(c.roi, grown)
        (kept if share > min_overlap or (min_overlap == 0 and share > 0) else removed).append(c)
    return kept, removed


def gland_contours(gland: np.ndarray | None) -> list[np.ndarray]:
    """Outlines of the gland mask (each ``N x 2`` x, y image pixels), for the viewer."""
    if gland is None or not gland.any():
        return []
    contours, _ = cv2.findContours(
        gland.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    return [c.reshape(-1, 2) for c in contours if len(c) >= 3]


def detect(
    pixels: np.ndarray,
    gray: np.ndarray,
    segment,
    size: int,
    gland=None,
    filter_by_gland: bool = False,
) -> Detection:
    """Runs FOV detection and the segmenter (``segment``: uint8 batch -> probability maps);
    with ``gland`` (the gland segmenter, same input) also finds the thyroid gland and, with
    ``filter_by_gland``, keeps only candidates in or touching it. With a presence model
    (``segment.presence``) candidates below its threshold are not proposed (they go to
    ``below_presence``); a model that reads the gland runs ``segment.gland`` when ``gland``
    is not given."""
    import time

    t0 = time.perf_counter()
    fov = detect_fov(gray)
    t1 = time.perf_counter()
    x = segmenter_input(pixels, fov, size)[None]
    prob = segment(x)[0]
    t2 = time.perf_counter()
    height, width = pixels.shape[:2]
    full = map_to_image(prob, fov, width, height)
    threshold = threshold_of(segment)
    labels, parts = candidate_parts(full, fov, threshold)
    t3 = time.perf_counter()
    timings = {
        "fov": 1000 * (t1 - t0),
        "segmenter": 1000 * (t2 - t1),
        "candidates": 1000 * (t3 - t2),
    }
    presence = presence_of(segment)
    if gland is None and presence is not None and presence.needs_gland and parts:
        gland = getattr(segment, "gland", None)
    gland_mask, gland_square = None, None
    if gland is not None:
        gland_square = gland(x)[0]
        gland_prob = map_to_image(gland_square, fov, width, height)
        gland_mask = gland_prob >= threshold_of(gland, GLAND_THRESHOLD)
        timings["gland"] = 1000 * (time.perf_counter() - t3)
    below: list[Candidate] = []
    if presence is not None:
        t4 = time.perf_counter()
        cands, below = split_by_presence(parts, labels, full, fov, presence, gland_mask, gray)
        timings["presence"] = 1000 * (time.perf_counter() - t4)
    else:
        cands = [c for _, c in parts]
    removed: list[Candidate] = []
    if gland_mask is not None and filter_by_gland:
        cands, removed = split_by_gland(cands, gland_mask, fov)
    return Detection(
        fov,
        cands,
        full,
        timings,
        gland_mask,
        removed,
        threshold,
        below_presence=below,
        square_maps=(prob, gland_square),
    )
