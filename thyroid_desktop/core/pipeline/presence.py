"""Is this candidate a nodule at all? A calibrated "nodule present" probability per candidate.

The segmenter marks a part on most frames, nodule or not (on held-out arcegor sequences 29 %
of nodule-free frames got a box). Each candidate is described by a few numbers about its
part of the probability map (how sure, how large, how compact, where in the scan area, how
many parts the frame has) and a small logistic regression, fitted by ``training.presence``
on the segmenter's held-out sequences, turns them into a probability that the part is a
nodule. Below the model card's threshold the candidate is not proposed: "no nodule found"
is the answer rather than a box on tissue (when the card's section is ``enforced``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from thyroid_desktop.core.pipeline.fov import FieldOfView

#: The numbers that describe one candidate, in the order the model card's coefficients use.
FEATURES: tuple[str, ...] = (
    "mean_probability",  # the segmenter's mean probability over the part
    "max_probability",  # ... and its maximum
    "log_area_share",  # log of the part's share of the scan area
    "solidity",  # part area / its convex hull's area (nodules are compact)
    "extent",  # part area / its box's area
    "aspect",  # log of box width / height
    "depth",  # the part's centre, from the top (0) to the bottom (1) of the scan area box
    "off_centre",  # |centre - middle| / half width of the scan area box (0 middle, 1 edge)
    "edge_distance",  # distance of the part to the scan area's edge / the box's larger side
    "log_candidates",  # log of the frame's number of candidates
    "area_rank_share",  # the part's share of all candidates' area on the frame
    "gland_share",  # share of the part inside the gland (0 when no gland model ran)
    "grey_level",  # the part's mean grey level / the scan area's (echogenicity)
    "grey_contrast",  # (part mean - surrounding ring's mean) / the scan area's grey SD
    "grey_texture",  # the part's grey SD / the scan area's
    "dark_share",  # share of the part darker than the scan area's 10th percentile (anechoic)
    "ring_probability",  # the segmenter's mean probability just around the part (border sharpness)
)
#: Width of the ring around a part, as a share of the part's box's larger side (at least 3 px).
RING = 0.25


def part_features(
    labels: np.ndarray,
    parts: Sequence[tuple[int, Any]],
    prob: np.ndarray,
    fov: FieldOfView,
    gland: np.ndarray | None = None,
    gray: np.ndarray | None = None,
) -> np.ndarray:
    """One row of :data:`FEATURES` per candidate.

    Args:
        labels: connected-component labels of the thresholded map (image pixels).
        parts: (label, candidate) pairs; a candidate has ``roi`` and ``area_px``.
        prob: the segmenter's probability map at image resolution.
        fov: the frame's field of view.
        gland: the gland mask (image pixels), or None when no gland model ran.
        gray: the frame's grey levels (image pixels); None: the grey features are 0.

    Returns:
        ``len(parts) x len(FEATURES)`` float64.
    """
    out = np.zeros((len(parts), len(FEATURES)), np.float64)
    if not parts:
        return out
    box = fov.box
    fov_px = max(int(fov.mask.sum()), 1)
    side = float(max(box.w, box.h))
    edge = cv2.distanceTransform(fov.mask.astype(np.uint8), cv2.DIST_L2, 3)
    total = float(sum(c.area_px for _, c in parts)) or 1.0
    if gray is not None:
        scan = gray[fov.mask].astype(np.float64)
        scan_mean, scan_sd = max(float(scan.mean()), 1.0), max(float(scan.std()), 1.0)
        dark = float(np.percentile(scan, 10))
    h_img, w_img = prob.shape
    for row, (label, cand) in enumerate(parts):
        r = cand.roi
        part = labels[r.y : r.y + r.h, r.x : r.x + r.w] == label
        p = prob[r.y : r.y + r.h, r.x : r.x + r.w][part]
        ys, xs = np.nonzero(part)
        hull = cv2.convexHull(np.column_stack([xs, ys]).astype(np.int32))
        hull_area = max(float(cv2.contourArea(hull)), 1.0)
        cx, cy = r.x + float(xs.mean()), r.y + float(ys.mean())
        near = edge[r.y : r.y + r.h, r.x : r.x + r.w][part]
        g = 0.0
        if gland is not None:
            g = float(gland[r.y : r.y + r.h, r.x : r.x + r.w][part].mean())
        grey = (0.0, 0.0, 0.0, 0.0, 0.0)
        k = max(3, int(round(RING * max(r.w, r.h))))
        x0, y0 = max(r.x - k, 0), max(r.y - k, 0)
        x1, y1 = min(r.x + r.w + k, w_img), min(r.y + r.h + k, h_img)
        own = labels[y0:y1, x0:x1] == label
        grown = cv2.dilate(own.astype(np.uint8), np.ones((2 * k + 1, 2 * k + 1), np.uint8))
        ring = grown.astype(bool) & ~own & fov.mask[y0:y1, x0:x1]
        ring_p = float(prob[y0:y1, x0:x1][ring].mean()) if ring.any() else 0.0
        if gray is not None:
            g_in = gray[y0:y1, x0:x1][own].astype(np.float64)
            g_ring = gray[y0:y1, x0:x1][ring].astype(np.float64) if ring.any() else g_in
            grey = (
                float(g_in.mean()) / scan_mean,
                (float(g_in.mean()) - float(g_ring.mean())) / scan_sd,
                float(g_in.std()) / scan_sd,
                float((g_in <= dark).mean()),
                ring_p,
            )
        else:
            grey = (0.0, 0.0, 0.0, 0.0, ring_p)
        out[row] = (
            float(p.mean()),
            float(p.max()),
            math.log(cand.area_px / fov_px),
            min(cand.area_px / hull_area, 1.0),
            cand.area_px / float(r.w * r.h),
            math.log(r.w / r.h),
            (cy - box.y) / max(box.h, 1),
            abs(cx - (box.x + box.w / 2)) / max(box.w / 2, 1.0),
            float(near.min()) / side,
            math.log(len(parts)),
            cand.area_px / total,
            g,
            *grey,
        )
    return out


@dataclass(frozen=True)
class PresenceModel:
    """Logistic regression on standardised :data:`FEATURES`: ``sigmoid(coef . (x - mean) /
    scale + intercept)`` is the probability that a candidate is a nodule; a candidate is
    proposed from ``threshold`` on. With ``enforced`` False (the card's ``"enforced":
    false``) every candidate gets its probability but none is held back: the model is
    shipped for measurement until its gate is switched on."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float
    #: Whether the model reads the gland segmenter's mask (``gland_share``), so the gland
    #: segmenter must run wherever presence is needed.
    needs_gland: bool = False
    #: Whether candidates below ``threshold`` are held back (the card's ``enforced``).
    enforced: bool = True

    def __post_init__(self) -> None:
        n = len(self.features)
        if not (len(self.mean) == len(self.scale) == len(self.coef) == n):
            raise ValueError("presence model: features, mean, scale and coef differ in length")
        unknown = set(self.features) - set(FEATURES)
        if unknown:
            raise ValueError(f"presence model: unknown features {sorted(unknown)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"presence threshold must lie in 0..1, got {self.threshold}")

    @classmethod
    def from_card(cls, section: Mapping[str, Any] | None) -> PresenceModel | None:
        """The model the card's ``segmenter.presence`` section states, or None without one."""
        if not section:
            return None
        features = tuple(str(f) for f in section["features"])
        return cls(
            features,
            tuple(float(v) for v in section["mean"]),
            tuple(float(v) for v in section["scale"]),
            tuple(float(v) for v in section["coef"]),
            float(section["intercept"]),
            float(section["threshold"]),
            "gland_share" in features,
            bool(section.get("enforced", True)),
        )

    def probability(self, table: np.ndarray) -> np.ndarray:
        """The presence probability of each row of a :func:`part_features` table."""
        if len(table) == 0:
            return np.zeros(0)
        cols = [FEATURES.index(f) for f in self.features]
        z = (table[:, cols] - np.asarray(self.mean)) / np.asarray(self.scale)
        logit = z @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(logit, -60.0, 60.0)))
