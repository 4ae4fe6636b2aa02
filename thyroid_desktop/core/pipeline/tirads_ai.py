"""AI suggestions for the ACR TI-RADS descriptors, for the clinician to confirm.

Composition, echogenicity, margin and echogenic foci come from small heads (standardised
logistic regression, one per group) on the classifier's pooled features of the analysed crop,
trained on the DDTI radiologists' descriptors (``training/descriptors.py``). Shape
(taller-than-wide) comes from the geometry of the nodule's mask, and its size from
``core.clinical.measure`` (the one size rule). A suggestion is
never a choice: :class:`core.clinical.tirads.TiradsChoices` holds what the clinician confirmed, and
only that sets the level they sign.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import cv2
import numpy as np

from thyroid_desktop.core.clinical.measure import Outline, Scale, longest_axis
from thyroid_desktop.core.clinical.tirads import (
    GROUPS,
    Composition,
    EchogenicFoci,
    Echogenicity,
    Level,
    Margin,
    Shape,
    TiradsChoices,
    TiradsDescriptors,
    points_text,
)
from thyroid_desktop.core.pipeline.detect import MASK_THRESHOLD
from thyroid_desktop.core.pipeline.roi import ROI

#: The DDTI vocabulary (``metadata.csv``, lower-cased) -> ACR 2017 lexicon. Words not listed
#: ("dense", "None", empty) are not used for training. DDTI gives one calcification kind
#: per nodule; ACR echogenic foci may combine kinds.
DDTI_TO_ACR: dict[str, dict[str, Enum]] = {
    "composition": {
        "cystic": Composition.CYSTIC,
        "spongiform": Composition.SPONGIFORM,
        "predominantly cystic": Composition.MIXED,
        "predominantly solid": Composition.MIXED,
        "predominantly-solid": Composition.MIXED,
        "solid": Composition.SOLID,
    },
    "echogenicity": {
        "hyperechogenicity": Echogenicity.HYPER_ISO,
        "isoechogenicity": Echogenicity.HYPER_ISO,
        "hypoechogenicity": Echogenicity.HYPO,
        "marked hypoechogenicity": Echogenicity.VERY_HYPO,
        "marked-hypoechogenicity": Echogenicity.VERY_HYPO,
    },
    "margin": {
        "well defined": Margin.SMOOTH,
        "well-defined": Margin.SMOOTH,
        "well defined smooth": Margin.SMOOTH,
        "ill defined": Margin.ILL_DEFINED,
        "ill-defined": Margin.ILL_DEFINED,
        "ill- defined": Margin.ILL_DEFINED,
        "microlobulated": Margin.LOBULATED,
        "macrolobulated": Margin.LOBULATED,
        "spiculated": Margin.LOBULATED,
    },
    "echogenic_foci": {
        "non": EchogenicFoci.NONE,
        "macrocalcification": EchogenicFoci.MACRO,
        "macrocalcifications": EchogenicFoci.MACRO,
        "microcalcification": EchogenicFoci.PUNCTATE,
        "microcalcifications": EchogenicFoci.PUNCTATE,
    },
}
#: The DDTI ``metadata.csv`` column of each group.
DDTI_COLUMNS = {
    "composition": "composition",
    "echogenicity": "echogenicity",
    "margin": "margins",
    "echogenic_foci": "calcifications",
}
#: Group -> its enum, in the order the panel, report and CLI list them.
SUGGESTED_GROUPS: dict[str, type[Enum]] = {
    "composition": Composition,
    "echogenicity": Echogenicity,
    "shape": Shape,
    "margin": Margin,
    "echogenic_foci": EchogenicFoci,
}
#: Groups suggested by a head on image features (shape comes from the mask).
HEAD_GROUPS = ("composition", "echogenicity", "margin", "echogenic_foci")
HEADS_FILE = "tirads_heads.npz"


def ddti_to_acr(group: str, word: str) -> Enum | None:
    """The ACR category of a DDTI descriptor word, or None when it has none."""
    return DDTI_TO_ACR[group].get(word.strip().lower())


@dataclass(frozen=True)
class Suggestion:
    """One group's suggestion: the category, how sure the head is (its probability for that
    category; None for geometry) and how it was made."""

    value: Enum
    confidence: float | None
    method: str  # "image features", "mask geometry" or "box geometry"

    def confidence_text(self) -> str:
        """The head's probability as a percentage ("72 %"), never "100 %" or "0 %": a head
        is not certain ("> 99 %", "< 1 %"); "" for geometry."""
        if self.confidence is None:
            return ""
        percent = 100 * float(self.confidence)
        if percent >= 99.5:
            return "> 99 %"
        if percent < 0.5:
            return "< 1 %"
        return f"{percent:.0f} %"

    def to_json(self) -> dict:
        conf = None if self.confidence is None else round(float(self.confidence), 3)
        return {
            "value": self.value.name,
            "label": self.value.value[0],
            "confidence": conf,
            "method": self.method,
        }


@dataclass(frozen=True)
class TiradsSuggestion:
    """The AI's descriptor suggestions for one nodule, and the AI-only points and level.

    ``size_px`` / ``size_mm``: the mask's longest axis (mm only under a calibrated
    ``scale``; :meth:`under` gives it under another one, e.g. the user's line). ``outline``:
    the mask's convex hull, from which ``core.clinical.measure.nodule_size`` sizes the
    nodule (empty without a mask). Groups without an offered head are absent; their points
    count as 0 and ``complete`` is False.
    """

    groups: dict[str, Suggestion]
    size_px: float | None = None
    size_mm: float | None = None
    aspect: float | None = None  # anteroposterior / transverse extent
    outline: Outline = ()
    scale: Scale = field(default_factory=Scale.none)

    def under(self, scale: Scale) -> TiradsSuggestion:
        """The same suggestion with its size under ``scale``: the user's line drawn after the
        analysis applies at once (a suggestion read from an old session, with no outline,
        keeps its size in pixels)."""
        if not self.outline:
            return dataclasses.replace(self, scale=scale, size_mm=None)
        size_mm = longest_axis(self.outline, scale) if scale.calibrated else None
        return dataclasses.replace(
            self, size_px=longest_axis(self.outline), size_mm=size_mm, scale=scale
        )

    @property
    def complete(self) -> bool:
        return all(g in self.groups for g in SUGGESTED_GROUPS)

    def value(self, group: str) -> Enum | None:
        s = self.groups.get(group)
        return s.value if s is not None else None

    @property
    def choices(self) -> TiradsChoices:
        """The suggestions as if all were accepted (open where there is none)."""
        out = TiradsChoices()
        for g in GROUPS:
            if g in self.groups:
                out = out.with_choice(g, self.groups[g].value)
        foci = self.value("echogenic_foci")
        return out.with_focus(foci, True) if foci is not None else out

    @property
    def descriptors(self) -> TiradsDescriptors:
        """AI-only descriptors; a group with no suggestion takes its 0-point category."""
        defaults = {
            "composition": Composition.CYSTIC,
            "echogenicity": Echogenicity.ANECHOIC,
            "shape": Shape.WIDER,
            "margin": Margin.SMOOTH,
        }
        chosen = {g: self.value(g) or defaults[g] for g in GROUPS}
        foci = self.value("echogenic_foci") or EchogenicFoci.NONE
        return TiradsDescriptors(**chosen, foci=frozenset({foci}))

    @property
    def points(self) -> int:
        return self.descriptors.points

    @property
    def level(self) -> Level:
        return self.descriptors.level

    def to_json(self) -> dict:
        return {
            **{
                g: (self.groups[g].to_json() if g in self.groups else None)
                for g in SUGGESTED_GROUPS
            },
            "points": self.points,
            "level": f"TR{self.level.tr}",
            "complete": self.complete,
            "size_px": None if self.size_px is None else round(self.size_px, 1),
            "size_mm": None if self.size_mm is None else round(self.size_mm, 1),
            "scale": {"source": str(self.scale.source), "spacing_mm": self.scale.spacing_mm},
            "mask_outline_px": [list(p) for p in self.outline],
            "aspect_ap_over_transverse": None if self.aspect is None else round(self.aspect, 3),
            "note": "AI suggestions for the clinician to confirm; the level is not a reading",
        }

    @classmethod
    def from_json(cls, data: dict) -> TiradsSuggestion:
        """Reads :meth:`to_json` back (saved sessions)."""
        groups = {}
        for g, enum in SUGGESTED_GROUPS.items():
            d = data.get(g)
            if d:
                groups[g] = Suggestion(enum[d["value"]], d.get("confidence"), str(d["method"]))
        return cls(
            groups,
            data.get("size_px"),
            data.get("size_mm"),
            data.get("aspect_ap_over_transverse"),
            tuple((int(x), int(y)) for x, y in data.get("mask_outline_px") or ()),
            _scale_from_json(data.get("scale")),
        )

    @property
    def level_text(self) -> str:
        """e.g. "TR4, 4 points" or, when a group has no suggestion, "TR4, 4 points; without
        composition (counted 0)": an AI-only level is never shown as complete when it is not."""
        missing = [g.replace("_", " ") for g in SUGGESTED_GROUPS if g not in self.groups]
        text = f"TR{self.level.tr}, {points_text(self.points)}"
        return text + (f"; without {', '.join(missing)} (counted 0)" if missing else "")

    def text(self) -> str:
        """e.g. "solid 72 %; hypoechoic 55 %; wider-than-tall; ..." (what was suggested)."""
        parts = []
        for s in self.groups.values():
            conf = f" {c}" if (c := s.confidence_text()) else ""
            parts.append(f"{s.value.value[0]}{conf}")
        return "; ".join(parts)


def _scale_from_json(data) -> Scale:
    """The scale a saved suggestion's mm were under (none for sessions saved before)."""
    if not isinstance(data, dict) or not data.get("spacing_mm"):
        return Scale.none()
    try:
        return Scale.of_spacing(tuple(data["spacing_mm"]), data.get("source", ""))
    except ValueError:
        return Scale.none()


# ---------------------------------------------------------------------- geometry
def largest_component(mask: np.ndarray) -> np.ndarray | None:
    """The largest 8-connected part of a boolean mask, or None when it is empty."""
    m = np.asarray(mask, dtype=np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return None
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == k


def nodule_mask(probability: np.ndarray | None, roi: ROI, threshold: float = MASK_THRESHOLD):
    """The nodule inside ``roi`` from the segmenter's image-sized probability map: the
    largest part above ``threshold`` within the box, or None."""
    if probability is None:
        return None
    sub = np.zeros(probability.shape, bool)
    r = roi.clipped(probability.shape[1], probability.shape[0])
    sub[r.y : r.y + r.h, r.x : r.x + r.w] = (
        probability[r.y : r.y + r.h, r.x : r.x + r.w] >= threshold
    )
    return largest_component(sub)


def mask_outline(mask: np.ndarray) -> Outline:
    """The convex hull of the mask's outline, as (x, y) pixel centres: all that its sizes
    need (``core.clinical.measure.nodule_size``), under any scale."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    pts = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float32)
    hull = cv2.convexHull(pts).reshape(-1, 2)
    return tuple((int(round(x)), int(round(y))) for x, y in hull)


def extents(mask: np.ndarray, scale: Scale | None = None) -> tuple[float, float]:
    """(transverse, anteroposterior) extent of the mask: its width and height on the image
    (depth runs top to bottom), in pixels or in mm with a calibrated ``scale``."""
    ys, xs = np.nonzero(mask)
    w, h = float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)
    if scale is not None and scale.calibrated:
        w, h = w * scale.col_mm, h * scale.row_mm
    return w, h


def shape_of(transverse: float, anteroposterior: float) -> Shape:
    """ACR shape: taller-than-wide when the anteroposterior extent exceeds the transverse."""
    return Shape.TALLER if anteroposterior > transverse else Shape.WIDER


def geometry(
    mask: np.ndarray | None, roi: ROI, scale: Scale | None = None
) -> tuple[Suggestion, Outline, float]:
    """Shape suggestion, the mask's outline (for its size) and aspect, from the mask; from
    the box (no outline) when there is no mask. Shape compares the extents in mm under a
    calibrated ``scale`` (a user's line is the same both ways: it never changes the shape)."""
    scale = scale or Scale.none()
    if mask is None or not mask.any():
        w, h = float(roi.w), float(roi.h)
        if scale.calibrated:
            w, h = w * scale.col_mm, h * scale.row_mm
        return Suggestion(shape_of(w, h), None, "box geometry"), (), h / max(w, 1e-9)
    w, h = extents(mask, scale)
    return Suggestion(shape_of(w, h), None, "mask geometry"), mask_outline(mask), h / w


# ---------------------------------------------------------------------- grey levels
#: Names of :func:`intensity_features`, in order.
INTENSITY_FEATURES = (
    "log_mean_ratio",
    "log_median_ratio",
    "p10_ratio",
    "p90_ratio",
    "anechoic_fraction",
    "bright_fraction",
    "std_ratio",
)


def intensity_features(
    gray: np.ndarray, mask: np.ndarray | None, roi: ROI, fov_mask: np.ndarray | None = None
) -> np.ndarray:
    """Grey levels inside the nodule relative to the tissue just around it, as a reader
    judges echogenicity and cystic parts (robust to the scanner's gain). The nodule is its
    mask, else the ellipse inscribed in the box; the surroundings a ring about a third of
    the nodule's size wide, inside the scan area.

    Returns:
        ``len(INTENSITY_FEATURES)`` float64 values.
    """
    g = np.asarray(gray)
    h, w = g.shape
    if mask is None or not np.any(mask):
        mask = np.zeros((h, w), np.uint8)
        r = roi.clipped(w, h)
        cv2.ellipse(
            mask,
            (r.x + r.w // 2, r.y + r.h // 2),
            (max(r.w // 2, 1), max(r.h // 2, 1)),
            0,
            0,
            360,
            1,
            -1,
        )
    inside = np.asarray(mask, bool)
    x, y, bw, bh = cv2.boundingRect(inside.view(np.uint8))
    k = max(3, int(0.35 * max(bw, bh))) | 1
    # The ring lies within k // 2 of the nodule: read only that window of the frame (the
    # dilation's cost follows the nodule, not the frame; the values are the same).
    pad = k // 2 + 1
    x0, y0, x1, y1 = max(x - pad, 0), max(y - pad, 0), min(x + bw + pad, w), min(y + bh + pad, h)
    inside = inside[y0:y1, x0:x1]
    win = g[y0:y1, x0:x1].astype(np.float32)
    grown = cv2.dilate(
        inside.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    )
    ring = grown.astype(bool) & ~inside
    if fov_mask is not None:
        ring &= np.asarray(fov_mask, bool)[y0:y1, x0:x1]
    vals, around = win[inside], win[ring]
    ref = (
        float(np.median(around)) + 1.0
        if around.size
        else float(np.median(g.astype(np.float32))) + 1.0
    )
    return np.array(
        [
            np.log((vals.mean() + 1.0) / ref),
            np.log((np.median(vals) + 1.0) / ref),
            np.percentile(vals, 10) / ref,
            np.percentile(vals, 90) / ref,
            float((vals < 0.35 * ref).mean()),
            float((vals > 1.6 * ref).mean()),
            vals.std() / ref,
        ],
        dtype=np.float64,
    )


# ---------------------------------------------------------------------- heads
#: What a head reads: the classifier's pooled features, the grey-level features, or both.
HEAD_INPUTS = ("features", "features+intensity", "intensity")


@dataclass(frozen=True)
class Head:
    """One group's standardised multinomial logistic regression."""

    classes: tuple[Enum, ...]
    mean: np.ndarray = field(repr=False)
    scale: np.ndarray = field(repr=False)
    coef: np.ndarray = field(repr=False)  # K x D
    intercept: np.ndarray = field(repr=False)  # K
    inputs: str = "features"

    @staticmethod
    def design(inputs: str, features: np.ndarray | None, intensity: np.ndarray | None):
        """The head's input vector (or rows) from the two kinds of features."""
        parts = {
            "features": [features],
            "intensity": [intensity],
            "features+intensity": [features, intensity],
        }[inputs]
        return np.concatenate([np.asarray(p, np.float64) for p in parts], axis=-1)

    def probabilities(self, features: np.ndarray | None, intensity: np.ndarray | None = None):
        z = (self.design(self.inputs, features, intensity) - self.mean) / self.scale
        logits = self.coef @ z + self.intercept
        e = np.exp(logits - logits.max())
        return e / e.sum()

    def suggest(self, features, intensity=None) -> Suggestion:
        p = self.probabilities(features, intensity)
        k = int(np.argmax(p))
        return Suggestion(self.classes[k], float(p[k]), "image features")


class DescriptorHeads:
    """The offered heads, by group (a head near chance is not shipped)."""

    def __init__(self, heads: dict[str, Head]) -> None:
        self.heads = heads

    @classmethod
    def load(cls, path: str | Path) -> DescriptorHeads:
        """Reads ``tirads_heads.npz``: per group ``{g}_classes`` (enum names), ``{g}_mean``,
        ``{g}_scale``, ``{g}_coef``, ``{g}_intercept``; ``groups`` lists the offered ones."""
        heads = {}
        with np.load(path, allow_pickle=False) as z:
            for g in (str(v) for v in z["groups"]):
                enum = SUGGESTED_GROUPS[g]
                heads[g] = Head(
                    tuple(enum[str(n)] for n in z[f"{g}_classes"]),
                    z[f"{g}_mean"],
                    z[f"{g}_scale"],
                    z[f"{g}_coef"],
                    z[f"{g}_intercept"],
                    str(z[f"{g}_inputs"]) if f"{g}_inputs" in z.files else "features",
                )
        return cls(heads)

    def save(self, path: str | Path) -> None:
        arrays: dict[str, np.ndarray] = {"groups": np.array(list(self.heads))}
        for g, h in self.heads.items():
            arrays[f"{g}_classes"] = np.array([c.name for c in h.classes])
            arrays[f"{g}_mean"] = h.mean
            arrays[f"{g}_scale"] = h.scale
            arrays[f"{g}_coef"] = h.coef
            arrays[f"{g}_intercept"] = h.intercept
            arrays[f"{g}_inputs"] = np.array(h.inputs)
        path = Path(path)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    def suggest(
        self,
        features: np.ndarray | None,
        roi: ROI,
        mask: np.ndarray | None = None,
        scale: Scale | None = None,
        gray: np.ndarray | None = None,
        fov_mask: np.ndarray | None = None,
    ) -> TiradsSuggestion:
        """Suggestions for one nodule from its crop's pooled features, the image's grey
        levels (``gray``, for heads that read them) and the nodule's mask; its size is under
        ``scale`` (the image's own; :meth:`TiradsSuggestion.under` applies a user's line)."""
        groups: dict[str, Suggestion] = {}
        needs = any("intensity" in h.inputs for h in self.heads.values())
        intensity = (
            intensity_features(gray, mask, roi, fov_mask) if needs and gray is not None else None
        )
        for g, head in self.heads.items():
            if ("features" in head.inputs and features is None) or (
                "intensity" in head.inputs and intensity is None
            ):
                continue
            groups[g] = head.suggest(features, intensity)
        shape, outline, aspect = geometry(mask, roi, scale)
        groups["shape"] = shape
        ordered = {g: groups[g] for g in SUGGESTED_GROUPS if g in groups}
        return TiradsSuggestion(ordered, aspect=aspect, outline=outline).under(
            scale or Scale.none()
        )


def review_of(choices: TiradsChoices, suggestion: TiradsSuggestion | None) -> dict[str, str]:
    """Per group, what the clinician did with the suggestion: "accepted" (their choice is the
    suggestion), "changed" (they chose otherwise), "open" (not chosen yet), "chosen" (no
    suggestion was made), or "accepted earlier" (the choice is an AI suggestion accepted
    for an earlier box, and the suggestion for this box differs or is none)."""
    out = {}
    for g in SUGGESTED_GROUPS:
        s = suggestion.groups.get(g) if suggestion is not None else None
        if g == "echogenic_foci":
            chosen = choices.foci if choices.foci_set else None
            same = s is not None and choices.foci == frozenset({s.value})
        else:
            chosen = getattr(choices, g)
            same = s is not None and chosen is s.value
        if chosen is None:
            out[g] = "open"
        elif same:
            out[g] = "accepted"
        elif g in choices.by_ai:
            out[g] = "accepted earlier"
        else:
            out[g] = "chosen" if s is None else "changed"
    return out


def accept_all(choices: TiradsChoices, suggestion: TiradsSuggestion) -> TiradsChoices:
    """The clinician's one-click acceptance: every group still open takes its suggestion, and
    echogenic foci take the suggested kind; choices already made stay."""
    out, taken = choices, []
    for g in GROUPS:
        if getattr(out, g) is None and g in suggestion.groups:
            out = out.with_choice(g, suggestion.groups[g].value)
            taken.append(g)
    foci = suggestion.value("echogenic_foci")
    if foci is not None and not choices.foci_set:
        out = out.with_focus(foci, True)
        taken.append("echogenic_foci")
    return out.set_by_ai(taken)


def review_text(review: dict[str, str]) -> str:
    """e.g. "composition accepted; echogenicity changed; shape open" (report, CSV)."""
    return "; ".join(f"{g.replace('_', ' ')} {v}" for g, v in review.items())
