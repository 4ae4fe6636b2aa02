"""One analysis: image + nodule box -> :class:`Finding`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from thyroid_desktop.core.io.images import UltrasoundImage
from thyroid_desktop.core.models.shipped import Classifier, ModelCard, Segmenter
from thyroid_desktop.core.pipeline.detect import Detection, detect
from thyroid_desktop.core.pipeline.fov import FieldOfView, detect_fov, mask_outside
from thyroid_desktop.core.pipeline.marks import MarksStep, inpaint_marks, marks_step
from thyroid_desktop.core.pipeline.roi import JITTERS, ROI, BoxSource, crop_square
from thyroid_desktop.core.pipeline.scope import check_scope, modality_reason
from thyroid_desktop.core.pipeline.tirads_ai import TiradsSuggestion, nodule_mask
from thyroid_desktop.core.site.calibration import SHIPPED


@dataclass(frozen=True)
class Finding:
    """The model's estimate for one nodule box, with what is needed to explain and audit it.

    ``probability`` is the calibrated output averaged over the box, its mirror and the box
    jitters (`roi.JITTERS`); ``spread`` is how far those views disagree (max - min). When
    ``no_estimate_reason`` is set (not ultrasound, not B-mode-like, unlike the training
    images) there is no estimate: ask ``in_scope`` / ``estimate``, never re-derive the rule.
    """

    probability: float
    threshold: float
    roi: ROI
    roi_source: BoxSource
    window: ROI
    heatmap: np.ndarray = field(repr=False)
    model_id: str = ""
    model_version: str = ""
    device: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: Why the frame does not look like grey-scale B-mode ultrasound (empty when it does).
    warnings: tuple[str, ...] = ()
    #: What the reader assumed about the file (`UltrasoundImage.notes`); shown with the result.
    notes: tuple[str, ...] = ()
    #: Mean pre-calibration logit over the views (site profiles recalibrate from it).
    logit: float = 0.0
    #: The pre-calibration logit of each view (box, mirror, jitters): a calibration switch
    #: re-scores a stored result from these without analysing the image again.
    view_logits: tuple[float, ...] = ()
    #: Max - min of the views' calibrated probabilities.
    spread: float = 0.0
    #: Spread above the card's limit: the estimate depends on where the box is.
    unstable: bool = False
    #: Mahalanobis distance of the crop's features to the training crops (None: not checked).
    novelty: float | None = None
    #: Why there is no estimate ("" when there is one).
    no_estimate_reason: str = ""
    #: Name of the calibration that made ``probability`` and ``threshold``: "shipped" (the
    #: model card's) or the site profile's.
    calibration: str = SHIPPED
    #: AI suggestions for the TI-RADS descriptors (None: no heads shipped, or no estimate).
    tirads_suggestion: TiradsSuggestion | None = None
    #: Pooled features of the crop (crop + mirror mean) that the heads and novelty read.
    features: np.ndarray | None = field(default=None, repr=False, compare=False)
    #: The out-of-scope reason the clinician overrode ("Analyse anyway", ``predict --force``):
    #: the estimate exists but lies outside the validated scope ("" when in scope).
    overridden_reason: str = ""
    #: True when the calibration in use carries a validation on this site's own labelled
    #: cases (``Calibration.validated``); the shipped calibration never does.
    site_validated: bool = False

    @property
    def caveats(self) -> tuple[str, ...]:
        """What must be shown wherever this estimate is shown (panel, PDF, CSV, ``predict``):
        outside the validated scope, not validated at this site. Empty without an estimate."""
        return caveats_of(self.in_scope, self.overridden_reason, self.site_validated)

    @property
    def in_scope(self) -> bool:
        """True when the image is one the estimate is meant for (the one rule, asked here)."""
        return not self.no_estimate_reason

    @property
    def site_calibrated(self) -> bool:
        """True when a site's calibration, not the shipped one, made the numbers."""
        return self.calibration != SHIPPED

    @property
    def estimate(self) -> float | None:
        """The probability when there is an estimate, else None."""
        return self.probability if self.in_scope else None

    @property
    def label(self) -> Literal["benign", "malignant"]:
        """The model's call at the threshold (a model estimate, not a diagnosis)."""
        return "malignant" if self.probability >= self.threshold else "benign"

    @property
    def call_text(self) -> str:
        """The call in words: "suspicious (TI-RADS 4-5 likely)" or "not suspicious"."""
        return call_text(self.probability, self.threshold, self.in_scope)

    def shown(self, decimals: int = 2) -> tuple[str, str]:
        """The probability and the threshold as printed together (:func:`shown_numbers`)."""
        return shown_numbers(self.probability, self.threshold, decimals)


def caveats_of(in_scope: bool, overridden_reason: str, site_validated: bool) -> tuple[str, ...]:
    """The one wording of an estimate's caveats (``Finding.caveats``, and a stored result's)."""
    if not in_scope:
        return ()
    out = []
    if overridden_reason:
        out.append(f"outside the validated scope (analysed anyway: {overridden_reason})")
    if not site_validated:
        out.append("not validated at this site")
    return tuple(out)


def shown_numbers(probability: float, threshold: float, decimals: int = 2) -> tuple[str, str]:
    """The estimate and its threshold as printed side by side: with ``decimals``, more where
    fewer would print them on the wrong side of each other (0.32905 under a threshold of
    0.32924 read "0.33 · not suspicious, below the threshold (0.33)" and, with 4 and 3
    decimals in the SR, 0.3291 against 0.329: found in a GUI trial)."""
    d = decimals
    while d < 6:
        p, t = float(f"{probability:.{d}f}"), float(f"{threshold:.{d}f}")
        if (p >= t) == (probability >= threshold):
            break
        d += 1
    return f"{probability:.{d}f}", f"{threshold:.{d}f}"


def call_text(probability: float | None, threshold: float, in_scope: bool = True) -> str:
    """The one wording of the model's call at its threshold (an estimate, not a diagnosis)."""
    if not in_scope or probability is None:
        return "no estimate"
    return "suspicious (TI-RADS 4-5 likely)" if probability >= threshold else "not suspicious"


#: Below this share of a given box inside the scan area there is no estimate: the crop
#: would be mostly black margin, text or scanner controls, not tissue. Every expert nodule
#: box of ddti (595) and arcegor (1,371) lies at least 96.8 % inside the detected scan area
#: (docs/model-card.md, "When there is no estimate").
MIN_BOX_IN_SCAN = 0.5


def box_in_scan(fov: FieldOfView, roi: ROI) -> float:
    """The share of ``roi`` (clipped to the image) that lies in the scan area."""
    window = fov.mask[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w]
    return float(window.mean()) if window.size else 0.0


def no_estimate_reason(
    modality: str,
    warnings: tuple[str, ...],
    novelty: float | None,
    limit: float | None,
    in_scan: float | None = None,
) -> str:
    """The one rule for "no estimate": the header says not ultrasound, or the frame does not
    look like B-mode ultrasound, or the box given lies mostly outside the scan area
    (``in_scan``: its share inside, :func:`box_in_scan`; None for the scan area itself), or
    its features are unlike every training crop."""
    if modality:
        return modality
    if warnings:
        return "the image does not look like grey-scale ultrasound: " + "; ".join(warnings)
    if in_scan is not None and in_scan < MIN_BOX_IN_SCAN:
        return (
            f"the box lies mostly outside the scan area ({in_scan:.0%} inside): "
            "a box on the nodule is needed"
        )
    if novelty is not None and limit is not None and novelty > limit:
        return (
            f"unlike the images the model was trained on (novelty {novelty:.1f}, limit {limit:.1f})"
        )
    return ""


def heatmap_to_image(cam: np.ndarray, window: ROI, width: int, height: int) -> np.ndarray:
    """Places a crop-grid Grad-CAM map back onto the image: ``H x W`` float32 in 0..1,
    zero outside the window the classifier saw."""
    full = np.zeros((height, width), dtype=np.float32)
    x0, y0 = max(window.x, 0), max(window.y, 0)
    x1, y1 = min(window.x + window.w, width), min(window.y + window.h, height)
    if x1 <= x0 or y1 <= y0:
        return full
    # Bilinear upsampling of the part inside the image only (as cv2.resize of the whole
    # window would give, pixel centres aligned), so memory stays bounded by the image.
    cam = np.asarray(cam, dtype=np.float32)
    sx, sy = cam.shape[1] / window.w, cam.shape[0] / window.h
    to_cam = np.array(
        [[sx, 0.0, (x0 - window.x + 0.5) * sx - 0.5], [0.0, sy, (y0 - window.y + 0.5) * sy - 0.5]]
    )
    full[y0:y1, x0:x1] = cv2.warpAffine(
        cam,
        to_cam,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.clip(full, 0.0, 1.0)


def views_window(roi: ROI, margin: float, width: int, height: int) -> ROI:
    """The part of the image any of ``roi``'s crops reads: the union of the square windows of
    the box and of its jitters (`roi.JITTERS`), clipped to the image."""
    wins = [roi.clipped(width, height).square_window(margin)]
    wins += [
        roi.jittered(dx, dy, s, width, height).square_window(margin) for dx, dy, s, _ in JITTERS
    ]
    x0, y0 = max(min(w.x for w in wins), 0), max(min(w.y for w in wins), 0)
    x1 = min(max(w.x + w.w for w in wins), width)
    y1 = min(max(w.y + w.h for w in wins), height)
    return ROI(x0, y0, max(x1 - x0, 1), max(y1 - y0, 1))


def scan_pixels(
    image: UltrasoundImage,
    fov: FieldOfView,
    roi: ROI,
    margin: float,
    marks: MarksStep = MarksStep.KEEP,
) -> np.ndarray:
    """The image the classifier's crops of ``roi`` are cut from: black outside the scan area;
    with ``marks`` INPAINT, the marks drawn inside it (calipers, text: `marks.inpaint_marks`)
    painted out where the box's crops and jitters read (`views_window`), so the cost
    follows the box, not the frame."""
    masked = mask_outside(image.pixels, fov)
    if MarksStep(marks) is not MarksStep.INPAINT:
        return masked
    win = views_window(roi, margin, image.width, image.height)
    ys, xs = slice(win.y, win.y + win.h), slice(win.x, win.x + win.w)
    masked[ys, xs] = inpaint_marks(masked[ys, xs], fov.mask[ys, xs])
    return masked


def classifier_crop(
    image: UltrasoundImage,
    roi: ROI,
    size: int,
    margin: float,
    fov: FieldOfView | None = None,
    marks: MarksStep = MarksStep.KEEP,
    resolution: int | None = None,
) -> tuple[np.ndarray, ROI]:
    """The classifier's input, shared by training and the app: the scan area only (burned-in
    text, scale bars and glyphs outside the field of view are black; with ``marks`` INPAINT
    the marks inside it painted out), cut square around the box (at most ``resolution``
    pixels of detail a side: `crop_square`). Returns the crop and its window in image
    pixels."""
    fov = fov or detect_fov(image.gray)
    pixels = scan_pixels(image, fov, roi, margin, marks)
    return crop_square(pixels, roi, size, margin, resolution)


def card_crop(
    image: UltrasoundImage, roi: ROI, card: ModelCard, fov: FieldOfView | None = None
) -> tuple[np.ndarray, ROI]:
    """The crop `predict` analyses for ``roi``, cut as ``card`` asks (its input side, margin,
    marks step and detail limit): for code outside `predict` that must see what it sees."""
    marks = marks_step(card.raw)
    size, margin, resolution = card.input_size, card.crop_margin, card.crop_resolution
    return classifier_crop(image, roi, size, margin, fov, marks, resolution)


def jitter_views(
    image: UltrasoundImage,
    roi: ROI,
    size: int,
    margin: float,
    fov: FieldOfView,
    masked: np.ndarray | None = None,
    marks: MarksStep = MarksStep.KEEP,
    resolution: int | None = None,
) -> np.ndarray:
    """The crops of the box jitters (`roi.JITTERS`), mirrored where the jitter says so;
    ``masked`` is `scan_pixels` of this box, if already made."""
    masked = scan_pixels(image, fov, roi, margin, marks) if masked is None else masked
    views = []
    for dx, dy, scale, mirrored in JITTERS:
        box = roi.jittered(dx, dy, scale, image.width, image.height)
        crop, _ = crop_square(masked, box, size, margin, resolution)
        views.append(crop[:, ::-1] if mirrored else crop)
    return np.stack(views) if views else np.zeros((0, size, size, 3), np.uint8)


def card_views(
    image: UltrasoundImage, roi: ROI, card: ModelCard, fov: FieldOfView
) -> tuple[np.ndarray, ROI, np.ndarray]:
    """What `predict` puts through the classifier for ``roi`` (already clipped), cut as
    ``card`` asks: the crop, its window in image pixels and the box jitters' views (the mirror
    is made by the classifier). The marks are painted out once for the crop and its jitters."""
    masked = scan_pixels(image, fov, roi, card.crop_margin, marks_step(card.raw))
    size, margin, resolution = card.input_size, card.crop_margin, card.crop_resolution
    crop, window = crop_square(masked, roi, size, margin, resolution)
    views = jitter_views(image, roi, size, margin, fov, masked, resolution=resolution)
    return crop, window, views


def predict(
    image: UltrasoundImage,
    classifier: Classifier,
    roi: ROI | None = None,
    roi_source: BoxSource | str | None = None,
    fov: FieldOfView | None = None,
    mask: np.ndarray | None = None,
) -> Finding:
    """Calibrated estimate and Grad-CAM for the box ``roi`` (the whole scan area if None),
    averaged over the box, its mirror and the box jitters in one batch; the heat map is the
    box's own. Deterministic: the same image and box give the same numbers. ``mask``: the
    nodule's mask (image-sized bool) when the segmenter found it, for the shape and size
    suggestions (else they come from the box).
    """
    t0 = time.perf_counter()
    card = classifier.card
    fov = fov or detect_fov(image.gray)
    # a box given (drawn, clicked, proposed, --roi) is judged by how much of it lies in the
    # scan area; the scan area itself (no box) is not
    given = roi is not None and BoxSource(roi_source or BoxSource.MANUAL) not in (
        BoxSource.FULL,
        BoxSource.NONE,
    )
    if roi is None:
        roi, roi_source = fov.box, roi_source or BoxSource.FULL
    roi = roi.clipped(image.width, image.height)
    crop, window, views = card_views(image, roi, card, fov)
    t1 = time.perf_counter()
    out = classifier.gradcam.run(crop[None], mirror=card.tta, views=views)
    t2 = time.perf_counter()
    logit = float(np.mean(out.logits))
    calibration = classifier.calibration  # the shipped one or the active site profile's
    prob, per_view = calibration.apply(logit), calibration.apply(out.logits)
    spread = float(per_view.max() - per_view.min())
    heat = heatmap_to_image(out.cam, window, image.width, image.height)
    warnings = tuple(check_scope(image, fov).reasons)
    novelty_model = classifier.novelty
    novelty = (
        novelty_model.distance(out.features)
        if novelty_model is not None and out.features is not None
        else None
    )
    # The scope model (``classifier.scope``, run by the analysis service before this) decides
    # what is thyroid ultrasound; the novelty distance only refuses when there is none (it
    # does not separate other organs' lesions from thyroid nodules: docs/model-card.md).
    limit = (
        novelty_model.limit
        if novelty_model is not None and getattr(classifier, "scope", None) is None
        else None
    )
    in_scan = box_in_scan(fov, roi) if given else None
    reason = no_estimate_reason(modality_reason(image), warnings, novelty, limit, in_scan)
    if reason:  # no estimate, no heat map: nothing to explain
        heat = np.zeros_like(heat)
    heads = classifier.tirads_heads
    suggestion = (
        heads.suggest(out.features, roi, mask, image.scale, image.gray, fov.mask)
        if heads is not None and not reason and roi_source != BoxSource.FULL
        else None
    )
    t3 = time.perf_counter()
    return Finding(
        probability=prob,
        threshold=calibration.threshold,
        roi=roi,
        roi_source=BoxSource(roi_source or BoxSource.MANUAL),
        window=window,
        heatmap=heat,
        model_id=card.id,
        model_version=card.version,
        device=classifier.device,
        timings_ms={
            "crop": 1000 * (t1 - t0),
            "model": 1000 * (t2 - t1),
            "heatmap": 1000 * (t3 - t2),
            "total": 1000 * (t3 - t0),
        },
        warnings=warnings,
        notes=image.notes,
        logit=logit,
        view_logits=tuple(float(v) for v in np.ravel(out.logits)),
        spread=spread,
        unstable=spread > card.spread_limit,
        novelty=novelty,
        no_estimate_reason=reason,
        calibration=calibration.name,
        site_validated=calibration.validated,
        tirads_suggestion=suggestion,
        features=out.features,
    )


def detect_nodules(image: UltrasoundImage, segmenter: Segmenter) -> Detection:
    """Candidate nodule boxes, best first (possibly none)."""
    return detect(
        np.asarray(image.pixels),
        image.gray,
        segmenter,
        segmenter.size,
        getattr(segmenter, "gland", None),  # any callable segmenter (tests, benchmarks)
        getattr(segmenter, "filter_by_gland", False),
    )


def auto_predict(
    image: UltrasoundImage, classifier: Classifier, segmenter: Segmenter | None
) -> tuple[Finding, Detection | None]:
    """Finds the nodule and analyses the best candidate (``roi_source`` "auto"); with no
    candidate, or no segmenter (detection None), analyses the whole scan area
    (``roi_source`` "full")."""
    if segmenter is None:
        return predict(image, classifier, None, BoxSource.FULL), None
    det = detect_nodules(image, segmenter)
    if det.best is not None:
        mask = nodule_mask(det.probability, det.best.roi, det.threshold)
        finding = predict(image, classifier, det.best.roi, BoxSource.AUTO, fov=det.fov, mask=mask)
    else:
        finding = predict(image, classifier, None, BoxSource.FULL, fov=det.fov)
    return finding, det
