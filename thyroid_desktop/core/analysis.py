"""The one analysis service: file (and frame, and box) -> result, written to the audit log.

The window, the CLI's ``predict`` (with or without ``--roi``), the batch, ``validate`` and
``recalibrate``, the self-test and training's evaluation of the app's path all analyse
through :class:`AnalysisService`, so they open files, choose a cine loop's frame, find the
nodule, mask a drawn box and log what they did the same way: the same file and box give the
same estimate, frame, size and TI-RADS suggestion wherever they are analysed. Detection,
segmentation, classification and TI-RADS (``core.pipeline``) are this service's internals.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thyroid_desktop.core.clinical.measure import NoduleSize, finding_size
from thyroid_desktop.core.clinical.tirads import TiradsChoices
from thyroid_desktop.core.io.images import UltrasoundImage, open_image
from thyroid_desktop.core.models.gradcam import heatmap_rgba
from thyroid_desktop.core.models.shipped import Classifier, Segmenter
from thyroid_desktop.core.pipeline.detect import Detection, detect, gland_contours
from thyroid_desktop.core.pipeline.estimate import Finding, auto_predict, detect_nodules, predict
from thyroid_desktop.core.pipeline.fov import FieldOfView
from thyroid_desktop.core.pipeline.roi import ROI, BoxSource
from thyroid_desktop.core.pipeline.tirads_ai import (
    SUGGESTED_GROUPS,
    TiradsSuggestion,
    nodule_mask,
    review_of,
)
from thyroid_desktop.core.report.audit import AuditLog, record_for

log = logging.getLogger(__name__)

#: What the window, the CLI and the batch may use; the pipeline's steps stay behind this door.
__all__ = [
    "ROI",
    "SUGGESTED_GROUPS",
    "Action",
    "AnalysisResult",
    "BoxSource",
    "AnalysisService",
    "Detection",
    "Finding",
    "FrameScores",
    "gland_contours",
    "heatmap_rgba",
    "nodule_reports",
    "review_of",
    "searched_frames",
    "TiradsSuggestion",
]

#: A cine loop longer than this is searched for its best frame on every ``FRAME_STRIDE``-th
#: frame only (plus the first and last), so that opening a long loop stays quick.
MAX_SEARCHED_FRAMES = 64


class Action(enum.StrEnum):
    """What the user (or the program) asked for: the audit log's ``action``."""

    AUTO = "auto-detect"
    ANALYSE = "analyse"
    BATCH = "batch-analyse"
    CLI = "cli-predict"
    SELFTEST = "selftest"
    EXPORT = "export-report"
    ACCEPT_TIRADS = "accept-ai-tirads"


@dataclass(frozen=True)
class FrameScores:
    """Detector confidence per frame of a file: the best candidate's mean segmenter
    probability, 0 where no candidate was found, NaN for frames not searched."""

    scores: tuple[float, ...]

    @property
    def best(self) -> int:
        """The frame where the detector is most confident (the first one on ties)."""
        values = np.nan_to_num(np.asarray(self.scores, dtype=np.float64), nan=-1.0)
        return int(np.argmax(values)) if len(values) else 0


@dataclass(frozen=True)
class AnalysisResult:
    """One analysed frame: the image, the finding, and the detection when the box was found
    automatically (None for a box drawn by the user)."""

    image: UltrasoundImage
    finding: Finding
    detection: Detection | None = None
    frame_scores: FrameScores | None = None
    audit_problem: str = ""  # why the audit record could not be written, if it could not

    @property
    def frame(self) -> int:
        return self.image.frame_index

    @property
    def n_frames(self) -> int:
        return self.image.n_frames

    @property
    def size(self) -> NoduleSize:
        """The nodule's size by the one rule (``core.clinical.measure``: the mask inside the
        box, else the box) under the file's own scale; the window adds the clinician's
        calipers and scale line to the same rule."""
        return finding_size(self.finding, self.image.scale)


def searched_frames(n_frames: int, limit: int = MAX_SEARCHED_FRAMES) -> list[int]:
    """Every frame of a short loop; about ``limit`` evenly spaced ones (first and last
    included) of a longer one."""
    if n_frames <= limit:
        return list(range(n_frames))
    return sorted({int(round(v)) for v in np.linspace(0, n_frames - 1, limit)})


class AnalysisService:
    """Opens, detects, analyses and logs, with the models it was given.

    Args:
        classifier: the loaded classifier (with the site calibration in use, if any); None
            for a service that only finds nodules (:meth:`detect`, :meth:`frame_scores`).
        segmenter: the nodule segmenter, or None (then the scan area is analysed).
        audit: where every analysis is recorded; None turns the log off (``--no-audit``).
    """

    def __init__(
        self, classifier: Classifier | None, segmenter: Segmenter | None, audit: AuditLog | None
    ) -> None:
        self.classifier = classifier
        self.segmenter = segmenter
        self.audit = audit

    # ---------------------------------------------------------------- frames
    def frame_scores(self, path: str | os.PathLike[str], n_frames: int) -> FrameScores:
        """The detector's confidence on each frame of a cine loop (decoded one at a time)."""
        scores = [float("nan")] * n_frames
        if self.segmenter is None:
            return FrameScores(tuple(scores))
        for i in searched_frames(n_frames):
            det = self._candidates_only(open_image(path, frame=i))  # no gland: not shown
            scores[i] = det.best.score if det.best is not None else 0.0
        return FrameScores(tuple(scores))

    def open(
        self, path: str | os.PathLike[str], frame: int | None = None
    ) -> tuple[UltrasoundImage, FrameScores | None]:
        """One frame of a file: ``frame``, or for a cine loop the frame where the detector
        is most confident (with the scores of every frame)."""
        image = open_image(path, frame=frame or 0)
        if frame is not None or image.n_frames <= 1 or self.segmenter is None:
            return image, None
        scores = self.frame_scores(path, image.n_frames)
        best = scores.best
        return (image if best == 0 else open_image(path, frame=best)), scores

    # ---------------------------------------------------------------- detection
    def detect(self, image: UltrasoundImage) -> Detection | None:
        """The candidates the automatic box is chosen from (best first; with the gland prior
        when the card asks for it), as :meth:`analyse` without a box finds them; None
        without a segmenter."""
        if self.segmenter is None:
            return None
        return detect_nodules(image, self.segmenter)

    # ---------------------------------------------------------------- analysis
    def analyse(
        self,
        image: UltrasoundImage,
        roi: ROI | None = None,
        action: Action | None = Action.ANALYSE,
        detection: Detection | None = None,
    ) -> AnalysisResult:
        """The estimate for ``roi`` (drawn or picked by the user), or with no box for the
        detector's best candidate (else the scan area). Recorded in the audit log (not for
        ``action`` None)."""
        if roi is None:
            finding, detection = auto_predict(image, self.classifier, self.segmenter)
        else:
            source = BoxSource.MANUAL if detection is None else BoxSource.AUTO
            fov, mask = self.box_context(image, roi, detection)
            finding = predict(image, self.classifier, roi, source, fov, mask)
        problem = self.record(action, image, finding)
        return AnalysisResult(image, finding, detection if roi is None else None, None, problem)

    def analyse_box(
        self,
        image: UltrasoundImage,
        roi: ROI | None,
        source: BoxSource,
        action: Action | None = Action.ANALYSE,
    ) -> AnalysisResult:
        """The estimate for a given box with its ``source`` (manual, or auto for a detected
        candidate the user picked), or with no box for the whole scan area."""
        if roi is None:
            finding = predict(image, self.classifier, None, BoxSource.FULL)
        else:
            fov, mask = self.box_context(image, roi)
            finding = predict(image, self.classifier, roi, source, fov, mask)
        problem = self.record(action, image, finding)
        return AnalysisResult(image, finding, None, None, problem)

    def box_context(
        self, image: UltrasoundImage, roi: ROI, detection: Detection | None = None
    ) -> tuple[FieldOfView | None, np.ndarray | None]:
        """The scan area and the nodule's mask inside ``roi`` (the segmenter's map there, as
        the TI-RADS heads were trained on), for any box: found, picked, moved or drawn. The
        segmenter runs now when no ``detection`` of this frame is given."""
        if detection is None and self.segmenter is not None:
            detection = self._candidates_only(image)
        if detection is None:
            return None, None
        return detection.fov, nodule_mask(detection.probability, roi, detection.threshold)

    def analyse_file(
        self,
        path: str | os.PathLike[str],
        frame: int | None = None,
        roi: ROI | None = None,
        action: Action | None = Action.ANALYSE,
    ) -> AnalysisResult:
        """Opens ``path`` (a cine loop at its best frame unless ``frame`` is given) and
        analyses it as :meth:`analyse` does: ``roi`` as a box drawn on that frame (with the
        segmenter's mask inside it, as in the window), else the detector's best box."""
        image, scores = self.open(path, frame)
        result = self.analyse(image, roi, action)
        return dataclasses.replace(result, frame_scores=scores)

    def analyse_all_frames(
        self, path: str | os.PathLike[str], action: Action = Action.CLI
    ) -> list[AnalysisResult]:
        """Every frame of a file, each with its own detected box."""
        first = open_image(path)
        results = [self.analyse(first, None, action)]
        for i in range(1, first.n_frames):
            results.append(self.analyse(open_image(path, frame=i), None, action))
        return results

    def _candidates_only(self, image: UltrasoundImage) -> Detection:
        """The nodule segmenter's detection, without the gland pass unless the card's gland
        filter needs it (nothing here shows the gland: frame scores, a drawn box's mask)."""
        seg = self.segmenter
        if getattr(seg, "filter_by_gland", False):
            return detect_nodules(image, seg)
        return detect(np.asarray(image.pixels), image.gray, seg, seg.size)

    # ---------------------------------------------------------------- audit
    def record(
        self,
        action: Action | str | None,
        image: UltrasoundImage,
        finding: Finding,
        choices: TiradsChoices | None = None,
    ) -> str:
        """Appends one audit record (with the AI's TI-RADS suggestions, and with ``choices``
        what the clinician did with them; nothing for ``action`` None: a re-analysis for a
        report, whose export is recorded). Returns "" or, when the log cannot be written, why
        (the analysis stands; the caller says so)."""
        if self.audit is None or action is None:
            return ""
        sug = finding.tirads_suggestion
        suggested = {g: s.value.name for g, s in sug.groups.items()} if sug else None
        review = review_of(choices, sug) if choices is not None else None
        try:
            self.audit.append(
                record_for(
                    str(action),
                    image.sha256,
                    finding.roi,
                    roi_source=finding.roi_source,
                    model_id=finding.model_id,
                    probability=finding.estimate,
                    file=str(image.source) if image.source else None,
                    frame=image.frame_index if image.n_frames > 1 else None,
                    no_estimate_reason=finding.no_estimate_reason or None,
                    calibration=finding.calibration,
                    tirads_suggested=suggested,
                    tirads_review=review,
                )
            )
        except OSError as err:
            log.warning("audit log %s not written: %s", self.audit.path, err)
            return f"audit log not written: {err}"
        return ""


def nodule_reports(service: AnalysisService, state) -> list:
    """Every nodule of a session (``core.review.session.SessionState``) as the study report shows
    it: its frame opened again, its box analysed again (the same numbers: analysis is
    deterministic) for the heat map, its size and the clinician's TI-RADS choices.

    Raises:
        ImageLoadError: a nodule's file cannot be read, or is no longer the file it was.
    """
    from thyroid_desktop.core.clinical.measure import finding_size
    from thyroid_desktop.core.io.images import ImageLoadError
    from thyroid_desktop.core.report.pdf import NoduleReport, ReportView

    def opened(key: str, frame: int, name: str):
        record = state.image(key)
        image = open_image(record.path, frame=frame)
        if image.sha256 != key:
            raise ImageLoadError(f"{Path(record.path).name} changed since {name} was marked")
        return image

    items = []
    for n in state.nodules:
        record = state.image(n.image)
        image = opened(n.image, n.frame, n.id)
        box = None if n.source is BoxSource.FULL else n.box
        finding = service.analyse_box(image, box, n.source, action=None).finding
        views = state.linked_views(n)
        size = finding_size(finding, image.scale, record.user_mm_per_px, n.calipers, n.plane, views)
        other = None
        if n.views:
            v, measure = n.views[0], views[0]
            other = ReportView(
                opened(v.image, v.frame, n.id),
                v.plane,
                v.box,
                tuple((c.number, c.caliper) for c in n.calipers_on(v.image, v.frame)),
                measure.scale,
            )
        items.append(
            NoduleReport(
                n.id,
                n.location,
                image,
                finding,
                size,
                n.tirads.descriptors,
                n.notes,
                n.tirads,
                tuple((c.number, c.caliper) for c in n.calipers_on(n.image, n.frame)),
                n.plane,
                other,
            )
        )
    return items
