"""Is this a grey-scale (B-mode) ultrasound frame at all? A check run before every analysis,
so a photo, a blank or pure-noise frame or a colour Doppler frame gets a visible warning
instead of a confident-looking probability.

Three measurements inside the field of view, with thresholds set well outside what all
3,384 frames of ../shared/data show (README, "Out-of-scope images"):

- colour: share of saturated, non-dark pixels (B-mode is grey; Doppler boxes and photos are not);
- contrast: grey-level standard deviation (blank or nearly uniform frames have none);
- structure: correlation of each pixel with its neighbour two pixels away (ultrasound
  speckle is spatially correlated, >= 0.83 in these data; pure noise is ~0, fine textures low).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import cv2
import numpy as np

from thyroid_desktop.core.io.images import UltrasoundImage
from thyroid_desktop.core.pipeline.fov import FieldOfView
from thyroid_desktop.core.pipeline.marks import find_marks
from thyroid_desktop.core.pipeline.roi import ROI

#: DICOM storage classes that hold ultrasound (PS3.4 B.5): US image, US multi-frame, their
#: retired predecessors, enhanced US volume; secondary capture (a scanner's screen grab) is
#: allowed when the Modality says US.
ULTRASOUND_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6.1",
        "1.2.840.10008.5.1.4.1.1.6",
        "1.2.840.10008.5.1.4.1.1.3.1",
        "1.2.840.10008.5.1.4.1.1.3",
        "1.2.840.10008.5.1.4.1.1.6.2",
    }
)
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"


def modality_reason(image: UltrasoundImage) -> str:
    """Why the file's own header says it is not ultrasound ("" when it does not say so).

    A DICOM Modality other than US wins; without a Modality, a storage class that is neither
    ultrasound nor secondary capture does. Non-DICOM files have neither and pass.
    """
    modality = image.metadata.get("Modality", "").strip().upper()
    if modality and modality != "US":
        return f"not an ultrasound image: Modality {modality}"
    sop = image.metadata.get("SOPClassUID", "").strip()
    if (
        not modality
        and sop
        and sop not in ULTRASOUND_SOP_CLASSES
        and not sop.startswith(SECONDARY_CAPTURE_PREFIX)
    ):
        from pydicom.uid import UID

        return f"not an ultrasound image: stored as {UID(sop).name}"
    return ""


COLOUR_MAX = 0.01
STD_MIN = 12.0
CORR_MIN = 0.75


@dataclass(frozen=True)
class ScopeCheck:
    """``in_scope`` is False with one human reason per failed check."""

    colour_fraction: float
    grey_std: float
    neighbour_corr: float
    reasons: tuple[str, ...] = ()

    @property
    def in_scope(self) -> bool:
        return not self.reasons


#: The last check of each image still in memory, with the scan-area mask it was made with:
#: one analysis asks up to three times (scope verdict, finding, no-estimate finding), and the
#: marks search inside costs 1-3 ms a frame.
_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CHECKED_LOCK = threading.Lock()


def check_scope(image: UltrasoundImage, fov: FieldOfView) -> ScopeCheck:
    """Measures the frame inside ``fov`` and says why it does not look like B-mode ultrasound.
    The same image and scan area give the same check, measured once."""
    with _CHECKED_LOCK:
        hit = _CHECKED.get(image)
    if hit is not None and np.array_equal(hit[0], fov.mask):
        return hit[1]
    check = _measure(image, fov)
    # detect_fov's masks are read-only; a writable one is copied so that a later edit of it
    # is a different scan area, not a stale check.
    mask = fov.mask if not fov.mask.flags.writeable else fov.mask.copy()
    with _CHECKED_LOCK:
        _CHECKED[image] = (mask, check)
    return check


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's correlation of two samples (0 when either is constant): ``np.corrcoef``'s
    value (to about 1e-15) without its covariance-matrix overhead. Elementwise sums, not
    ``np.dot``: a large BLAS call leaves its threads spinning, and they slowed the model run
    that followed by half."""
    a = a.astype(np.float64) - a.mean(dtype=np.float64)
    b = b.astype(np.float64) - b.mean(dtype=np.float64)
    norm = float(np.sqrt(np.square(a).sum() * np.square(b).sum()))
    return min(max(float(np.multiply(a, b).sum()) / norm, -1.0), 1.0) if norm > 0 else 0.0


def _measure(image: UltrasoundImage, fov: FieldOfView) -> ScopeCheck:
    inside = fov.mask
    hsv = cv2.cvtColor(np.asarray(image.pixels), cv2.COLOR_RGB2HSV)
    coloured = (hsv[..., 1] > 90) & (hsv[..., 2] > 50) & inside
    colour = float(coloured.sum()) / max(int(inside.sum()), 1)
    grey = image.gray.astype(np.float32)
    std = float(grey[inside].std()) if inside.any() else 0.0
    # Speckle is measured on the tissue: calipers, dotted lines and labels (thin 1-px strokes)
    # would lower the correlation of a small frame below the limit.
    texture = inside & ~find_marks(np.asarray(image.pixels), inside)
    texture = texture if texture.sum() > 0.5 * inside.sum() else inside
    both = texture[:, :-2] & texture[:, 2:]
    a, b = grey[:, :-2][both], grey[:, 2:][both]
    corr = _correlation(a, b) if a.size > 16 else 0.0
    reasons = []
    if colour > COLOUR_MAX:
        reasons.append(
            f"{100 * colour:.0f} % of the scan area is in colour: a colour Doppler or "
            "elastography frame, or not an ultrasound image; the model was trained on grey B-mode only"
        )
    if std < STD_MIN:
        reasons.append("the frame is blank or nearly uniform")
    elif corr < CORR_MIN:
        reasons.append(
            "the frame has no ultrasound speckle structure (noise or another kind of image)"
        )
    return ScopeCheck(colour, std, corr, tuple(reasons))


# ------------------------------------------------------------------ what was scanned
#: Words in a DICOM header's BodyPartExamined, StudyDescription, ProtocolName,
#: SeriesDescription or anatomic region that name the thyroid or the neck (evidence for scope).
THYROID_WORDS = ("THYROID", "THYR", "NECK", "CERVICAL", "SCHILDDR", "TIROID", "TIREO", "HALS")
#: Words that name another body part; one of these without a thyroid word refuses the image.
OTHER_BODY_PARTS = (
    "BREAST", "MAMMA", "ABDOMEN", "ABDOM", "LIVER", "KIDNEY", "RENAL", "GALLBLADDER", "SPLEEN",
    "PANCREAS", "PELVIS", "UTERUS", "OVARY", "PROSTATE", "BLADDER", "TESTIS", "SCROTUM",
    "HEART", "CARDIAC", "ECHO", "CHEST", "LUNG", "THORAX", "FETAL", "FETUS", "OBSTETRIC",
    "KNEE", "SHOULDER", "HIP", "ANKLE", "WRIST", "ELBOW", "HAND", "FOOT", "MUSCLE", "LEG",
    "ARM", "EYE", "HEAD", "BRAIN",
)  # fmt: skip
#: The header fields read for what was scanned, in the order they are quoted.
BODY_PART_FIELDS = (
    "BodyPartExamined",
    "AnatomicRegion",
    "StudyDescription",
    "ProtocolName",
    "SeriesDescription",
)


def _words(text: str) -> set[str]:
    import re

    return set(re.findall(r"[A-Z]+", text.upper()))


def header_scope(image: UltrasoundImage) -> tuple[str, str]:
    """(refusal, evidence) from what the DICOM header says was scanned.

    ``refusal``: why the header says another body part (a field names one and none names the
    thyroid or neck); ``evidence``: the field naming the thyroid or neck (evidence for scope,
    not proof: the image is still checked). Both "" for files that say nothing."""
    other, thyroid = "", ""
    for key in BODY_PART_FIELDS:
        text = image.metadata.get(key, "")
        if not text:
            continue
        words, upper = _words(text), text.upper()
        if words & set(THYROID_WORDS) or "THYR" in upper or "SCHILDDR" in upper:
            thyroid = thyroid or f"{key} {text}"
        elif words & set(OTHER_BODY_PARTS):
            other = other or f"{key} {text}"
    if thyroid:
        return "", thyroid
    if other:
        return f"the DICOM header says another body part was scanned ({other})", ""
    return "", ""


# ------------------------------------------------------------------ anatomy features
#: The segmenters' maps are read on this grid (over the scan area's box) for the scope check.
ANATOMY_GRID = 64
#: Names of :func:`anatomy_features`' values, in order (the scope model's card lists them).
ANATOMY_FEATURES = (
    "gland_q50",
    "gland_q90",
    "gland_q99",
    "gland_max",
    "gland_share",
    "gland_largest_share",
    "gland_second_share",
    "gland_components",
    "gland_cx",
    "gland_cy",
    "gland_w",
    "gland_h",
    "gland_solidity",
    "gland_mean_in_largest",
    "nodule_max",
    "nodule_share",
    "nodule_in_gland",
)


def grid_maps(
    gland_prob: np.ndarray, nodule_prob: np.ndarray, inside: np.ndarray, grid: int = ANATOMY_GRID
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The segmenters' square maps (over the scan area's box) and the scan area's mask on the
    same box, resized to ``grid x grid`` (area averaging)."""

    def small(a: np.ndarray) -> np.ndarray:
        return cv2.resize(np.asarray(a, np.float32), (grid, grid), interpolation=cv2.INTER_AREA)

    return small(gland_prob), small(nodule_prob), small(inside.astype(np.float32)) >= 0.5


def anatomy_features(gland: np.ndarray, nodule: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """What the gland and nodule segmenters see inside the scan area (:data:`ANATOMY_FEATURES`),
    from :func:`grid_maps`: how much gland there is, how sure, where, what shape, and whether a
    nodule sits in it. Positions are relative to the scan area's box; the scan area's own
    shape is not a feature (it tells the probe and the screen layout, not the anatomy)."""
    inside = inside if inside.any() else np.ones_like(inside)
    g = gland[inside]
    n_inside = float(inside.sum())
    binary = ((gland >= 0.5) & inside).astype(np.uint8)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(binary, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA] if count > 1 else np.zeros(0, int)
    order = np.argsort(areas)[::-1]
    grid = float(gland.shape[0])
    if len(order):
        k = int(order[0]) + 1
        comp = labels == k
        x, y, w, h = (float(v) for v in stats[k, :4])
        cx, cy = (float(v) / grid for v in centroids[k])
        contours, _ = cv2.findContours(
            comp.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        hull = cv2.contourArea(cv2.convexHull(np.vstack(contours))) if contours else 0.0
        solidity = float(areas[order[0]]) / max(hull, 1.0)
        mean_in = float(gland[comp].mean())
        largest = float(areas[order[0]]) / n_inside
        second = float(areas[order[1]]) / n_inside if len(order) > 1 else 0.0
        w, h = w / grid, h / grid
    else:
        cx = cy = w = h = solidity = mean_in = largest = second = 0.0
    significant = int((areas >= 0.01 * n_inside).sum())
    nod = nodule[inside]
    nodule_bin = (nodule >= 0.5) & inside
    in_gland = (
        float((nodule_bin & (gland >= 0.5)).sum()) / float(nodule_bin.sum())
        if nodule_bin.any()
        else 0.0
    )
    return np.array(
        [
            np.quantile(g, 0.5),
            np.quantile(g, 0.9),
            np.quantile(g, 0.99),
            g.max(),
            float((g >= 0.5).mean()),
            largest,
            second,
            min(significant, 4) / 4.0,
            cx,
            cy,
            min(w, 1.0),
            min(h, 1.0),
            min(solidity, 1.0),
            mean_in,
            nod.max(),
            float((nod >= 0.5).mean()),
            in_gland,
        ],
        np.float32,
    )


def inner_box(fov: FieldOfView, fill: float = 0.98, step: float = 0.04) -> ROI:
    """The scan area's box shrunk until at least ``fill`` of it lies in the scan area: the
    box itself for a rectangular scan area, the middle of a fan. The classifier's view for
    the scope check is cut here, so that it sees tissue, not the scan area's outline."""
    from thyroid_desktop.core.pipeline.roi import ROI

    b = fov.box
    for i in range(int(0.45 / step) + 1):
        dx, dy = int(round(b.w * step * i)), int(round(b.h * step * i / 2))
        box = ROI(b.x + dx, b.y + dy, max(b.w - 2 * dx, 1), max(b.h - 2 * dy, 1))
        part = fov.mask[box.y : box.y + box.h, box.x : box.x + box.w]
        if part.size and part.mean() >= fill:
            return box
    return box


def scan_view(pixels: np.ndarray, fov: FieldOfView, size: int) -> np.ndarray:
    """The classifier's ``size x size x 3`` view of the scan area for the scope check: the
    :func:`inner_box` resized (its aspect not kept)."""
    box = inner_box(fov)
    part = np.asarray(pixels)[box.y : box.y + box.h, box.x : box.x + box.w]
    interp = cv2.INTER_AREA if max(box.w, box.h) > size else cv2.INTER_LINEAR
    return cv2.resize(part, (size, size), interpolation=interp)


def scope_inputs(
    gland_prob: np.ndarray, nodule_prob: np.ndarray, fov: FieldOfView
) -> tuple[np.ndarray, np.ndarray]:
    """(:func:`anatomy_features`, the gland grid) from the segmenters' square maps over the
    scan area's box (their own input: ``core.pipeline.detect.segmenter_input``)."""
    b = fov.box
    inside = fov.mask[b.y : b.y + b.h, b.x : b.x + b.w]
    gland, nodule, inside_grid = grid_maps(gland_prob, nodule_prob, inside)
    return anatomy_features(gland, nodule, inside_grid), gland


# ------------------------------------------------------------------ the scope model
#: Why an image is refused when the scope model says it is not thyroid ultrasound.
NOT_THYROID = "does not look like thyroid ultrasound"


@dataclass(frozen=True)
class ScopeModel:
    """Logistic regression "is this thyroid ultrasound?" on :func:`anatomy_features` and the
    classifier's features of :func:`scan_view` (fitted by ``python -m training.scope``).

    Attributes:
        mean, scale: standardisation of the features (anatomy first, then scan).
        coef, intercept: the regression.
        threshold: probabilities below it are refused (the card's ``scope.threshold``).
        n_anatomy, n_scan: how many features of each kind the model reads (0: not read).
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float
    n_anatomy: int
    n_scan: int

    def probability(self, anatomy: np.ndarray, scan: np.ndarray | None) -> float:
        """Probability that the frame is thyroid ultrasound."""
        parts = []
        if self.n_anatomy:
            parts.append(np.asarray(anatomy, np.float64).reshape(-1)[: self.n_anatomy])
        if self.n_scan:
            if scan is None:
                raise ValueError("the scope model needs the classifier's scan features")
            parts.append(np.asarray(scan, np.float64).reshape(-1))
        x = (np.concatenate(parts) - self.mean) / self.scale
        z = float(x @ self.coef + self.intercept)
        return float(1.0 / (1.0 + np.exp(-np.clip(z, -60, 60))))

    @classmethod
    def load(cls, path, threshold: float) -> ScopeModel:
        with np.load(path) as data:
            return cls(
                data["mean"].astype(np.float64),
                data["scale"].astype(np.float64),
                data["coef"].astype(np.float64),
                float(data["intercept"]),
                float(threshold),
                int(data["n_anatomy"]),
                int(data["n_scan"]),
            )


@dataclass(frozen=True)
class ScopeVerdict:
    """Is this frame one the estimate is meant for? ``reason`` says why not ("" in scope).

    Attributes:
        reason: why the image is refused, in words ("" when in scope).
        overridable: the clinician may analyse it anyway (the refusal rests on the scope
            model or on the header's body part; a non-ultrasound modality or a frame that is
            not grey B-mode is never analysed).
        score: the scope model's probability of thyroid ultrasound (None: not run).
        threshold: the scope model's threshold (None: not run).
        evidence: what the DICOM header says for scope (a thyroid or neck study), if anything.
    """

    reason: str = ""
    overridable: bool = False
    score: float | None = None
    threshold: float | None = None
    evidence: str = ""

    @property
    def in_scope(self) -> bool:
        return not self.reason


def assess(
    image: UltrasoundImage,
    fov: FieldOfView,
    anatomy: np.ndarray | None,
    scan: np.ndarray | None,
    model: ScopeModel | None,
) -> ScopeVerdict:
    """The one scope rule, run on every image before any estimate: the header's modality,
    then grey B-mode, then the header's body part, then the scope model (when it and its
    inputs are there)."""
    modality = modality_reason(image)
    if modality:
        return ScopeVerdict(modality)
    bmode = check_scope(image, fov).reasons
    if bmode:
        return ScopeVerdict(
            "the image does not look like grey-scale ultrasound: " + "; ".join(bmode)
        )
    refusal, evidence = header_scope(image)
    if refusal:
        return ScopeVerdict(refusal, overridable=True, evidence=evidence)
    if model is None or anatomy is None:
        return ScopeVerdict(evidence=evidence)
    score = model.probability(anatomy, scan)
    if score < model.threshold:
        # imported here: estimate imports this module
        from thyroid_desktop.core.pipeline.estimate import shown_numbers

        shown, below = shown_numbers(score, model.threshold)  # never "0.30, below 0.30"
        return ScopeVerdict(
            f"{NOT_THYROID} (scope score {shown}, below {below})",
            overridable=True,
            score=score,
            threshold=model.threshold,
            evidence=evidence,
        )
    return ScopeVerdict("", False, score, model.threshold, evidence)
