"""The one analysis service: file (and frame, and box) -> result, written to the audit log.

The window, the CLI's ``predict`` (with or without ``--roi``), the batch, ``validate`` and
``recalibrate``, the self-test and training's evaluation of the app's path all analyse
through :class:`AnalysisService`, so they open files, choose a cine loop's frame, find the
nodule, mask a drawn box and log what they did the same way: the same file and box give the
same estimate, frame, size and TI-RADS suggestion wherever they are analysed. Detection,
segmentation, classification and TI-RADS (``core.pipeline``) are this service's internals.

A box comes from the clinician (drawn: ``analyse``/``analyse_box``; a click or a stroke on
the nodule, outlined by the segmenter: ``analyse_point``/``analyse_stroke``) or from the
detector (a *proposal*: ``AnalysisResult.preliminary``). When the detector finds nothing
and nothing was asked for, there is no estimate (``NO_NODULE``); the whole scan area is
analysed only when asked (``scan_area_fallback``, ``analyse_box(image, None, ...)``).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thyroid_desktop.core.clinical.measure import NoduleSize, finding_size
from thyroid_desktop.core.clinical.tirads import TiradsChoices
from thyroid_desktop.core.io.images import UltrasoundImage, open_image
from thyroid_desktop.core.models.gradcam import heatmap_rgba
from thyroid_desktop.core.models.shipped import Classifier, Segmenter
from thyroid_desktop.core.pipeline.click import (
    ClickSettings,
    PointSegmentation,
    guess_point,
    guess_stroke,
    outline_mask,
    segment_point,
    segment_stroke,
)
from thyroid_desktop.core.pipeline.detect import (
    Detection,
    detect,
    gland_contours,
    segmenter_input,
)
from thyroid_desktop.core.pipeline.estimate import (
    Finding,
    detect_nodules,
    predict,
    shown_numbers,  # re-exported: the CLI prints estimates as the window does
)
from thyroid_desktop.core.pipeline.fov import FieldOfView, detect_fov
from thyroid_desktop.core.pipeline.roi import ROI, BoxSource
from thyroid_desktop.core.pipeline.scope import (
    ScopeVerdict,
    assess,
    check_scope,
    scan_view,
    scope_inputs,
)
from thyroid_desktop.core.pipeline.tirads_ai import (
    SUGGESTED_GROUPS,
    TiradsSuggestion,
    nodule_mask,
    review_of,
)
from thyroid_desktop.core.report.audit import AuditLog, AuditRecord, record_for
from thyroid_desktop.core.report.pacs import SEND_PACS as SEND_PACS_ACTION

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
    "NO_NODULE",
    "PointSegmentation",
    "ScopeVerdict",
    "gland_contours",
    "heatmap_rgba",
    "nodule_reports",
    "review_of",
    "searched_frames",
    "shown_numbers",
    "TiradsSuggestion",
]

#: A cine loop longer than this is searched for its best frame on every ``FRAME_STRIDE``-th
#: frame only (plus the first and last), so that opening a long loop stays quick.
MAX_SEARCHED_FRAMES = 64
#: Why there is no estimate when nothing was asked for and the detector found nothing.
NO_NODULE = "no nodule found"
#: How many frames' scope verdicts the service remembers (a box moved on the same frame is
#: not checked again).
SCOPE_CACHE = 64


class Action(enum.StrEnum):
    """What the user (or the program) asked for: the audit log's ``action``."""

    AUTO = "auto-detect"
    ANALYSE = "analyse"
    BATCH = "batch-analyse"
    CLI = "cli-predict"
    SELFTEST = "selftest"
    #: The study report written as a PDF (a line per nodule).
    EXPORT = "export-report"
    #: The report written as DICOM (SR, PDF, key images) into a folder.
    EXPORT_DICOM = "export-dicom"
    #: The study list written as CSV (a line per nodule row).
    EXPORT_CSV = "export-csv"
    #: The same written into the PACS outbox, to be sent; ``send-pacs`` once stored there.
    QUEUE_PACS = "queue-pacs"
    SEND_PACS = SEND_PACS_ACTION
    ACCEPT_TIRADS = "accept-ai-tirads"
    #: The clinician accepted the detector's proposal (it became a nodule) or rejected it.
    ACCEPT = "accept-proposal"
    REJECT = "reject-proposal"
    #: The clinician asked for an estimate on an image refused as out of scope.
    FORCE = "analyse-anyway"


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
    """One analysed frame: the image, the finding, the detection when the box was found
    automatically (None for a box drawn by the user), and the outline when the box came
    from a click or a stroke."""

    image: UltrasoundImage
    finding: Finding
    detection: Detection | None = None
    frame_scores: FrameScores | None = None
    audit_problem: str = ""  # why the audit record could not be written, if it could not
    #: The nodule outlined from the clinician's click or stroke (None for any other box).
    segmentation: PointSegmentation | None = None
    #: The scope check's verdict on this frame (None: not checked).
    scope: ScopeVerdict | None = None

    @property
    def refused(self) -> bool:
        """True when the image was refused as out of scope (no estimate)."""
        verdict = self.scope
        return (
            verdict is not None
            and not verdict.in_scope
            and self.finding.no_estimate_reason == verdict.reason
        )

    @property
    def can_force(self) -> bool:
        """True when the refusal may be overridden ("Analyse anyway", ``--force``)."""
        return self.refused and self.scope is not None and self.scope.overridable

    @property
    def preliminary(self) -> bool:
        """True when the box is the detector's proposal, not one the clinician gave."""
        return self.finding.roi_source is BoxSource.AUTO

    @property
    def size_uncertain(self) -> bool:
        """True when the outline from a click or stroke had to guess the nodule's size."""
        return self.segmentation is not None and self.segmentation.size_uncertain

    @property
    def frame(self) -> int:
        return self.image.frame_index

    @property
    def n_frames(self) -> int:
        return self.image.n_frames

    @property
    def size(self) -> NoduleSize | None:
        """The nodule's size by the one rule (``core.clinical.measure``: the mask inside the
        box, else the box) under the file's own scale; the window adds the clinician's
        calipers and scale line to the same rule. None when no box was analysed."""
        if self.finding.roi is None or self.finding.roi_source in (BoxSource.NONE, BoxSource.FULL):
            return None  # nothing found, or the whole scan area: no nodule to size
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
        self._scope: dict[tuple[str, int], ScopeVerdict] = {}

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
        scan_area_fallback: bool = False,
        force: bool = False,
    ) -> AnalysisResult:
        """The estimate for ``roi`` (drawn or picked by the user), or with no box for the
        detector's best candidate (a proposal: ``result.preliminary``). When the detector
        finds nothing there is no estimate (``NO_NODULE``), unless ``scan_area_fallback``
        asks for the whole scan area instead. An image out of scope (:meth:`scope`) gets no
        estimate, no heat map, no suggestions and no detection, unless ``force`` overrides
        a refusal that may be overridden (the finding then says so: ``overridden_reason``).
        Recorded in the audit log (not for ``action`` None)."""
        if roi is None:
            finding, detection = self._auto(image, scan_area_fallback, force)
        else:
            source = BoxSource.MANUAL if detection is None else BoxSource.AUTO
            fov, mask = self.box_context(image, roi, detection)
            finding = self._predict(image, roi, source, fov, mask, force, detection)
        problem = self.record(action, image, finding)
        return AnalysisResult(
            image,
            finding,
            detection if roi is None else None,
            None,
            problem,
            scope=self.scope(image, detection),
        )

    def _auto(
        self, image: UltrasoundImage, scan_area_fallback: bool, force: bool = False
    ) -> tuple[Finding, Detection | None]:
        """The detector's best candidate's finding; with none, the scan area's (when asked)
        or no estimate. Out of scope: the refusal, and no detection (nothing to show)."""
        det = self.detect(image)
        fov = det.fov if det is not None else detect_fov(image.gray)
        verdict = self.scope(image, det)
        if not verdict.in_scope and not (force and verdict.overridable):
            return self.nothing_found(image, fov, verdict.reason), None
        if det is not None and det.best is not None:
            mask = nodule_mask(det.probability, det.best.roi, det.threshold)
            finding = self._predict(image, det.best.roi, BoxSource.AUTO, fov, mask, force, det)
        elif scan_area_fallback:
            finding = self._predict(image, None, BoxSource.FULL, fov, None, force, det)
        else:  # nothing found (an overridden refusal is not the reason any more)
            finding = self.nothing_found(image, fov, NO_NODULE if not verdict.in_scope else "")
        return finding, det

    def _predict(
        self,
        image: UltrasoundImage,
        roi: ROI | None,
        source: BoxSource,
        fov: FieldOfView | None,
        mask: np.ndarray | None,
        force: bool,
        detection: Detection | None = None,
    ) -> Finding:
        """The classifier's finding for a box after the scope check: refused (no estimate,
        the classifier not run), or analysed, marked when a refusal was overridden."""
        verdict = self.scope(image, detection)
        if not verdict.in_scope and not (force and verdict.overridable):
            # refused: the box asked for stays the finding's box (a nodule keeps it)
            return self.nothing_found(image, fov, verdict.reason, roi, source)
        finding = predict(image, self.classifier, roi, source, fov, mask)
        if not verdict.in_scope:
            finding = dataclasses.replace(finding, overridden_reason=verdict.reason)
        return finding

    # ---------------------------------------------------------------- scope
    def scope(self, image: UltrasoundImage, detection: Detection | None = None) -> ScopeVerdict:
        """Is this frame thyroid ultrasound (``core.pipeline.scope.assess``)? The header,
        grey B-mode, and the scope model on the gland and nodule segmenters' maps and the
        classifier's view of the scan area; ``detection`` of this frame saves running the
        segmenters again. Remembered per file and frame."""
        key = (image.sha256, image.frame_index)
        if key in self._scope:
            return self._scope[key]
        fov = detection.fov if detection is not None else detect_fov(image.gray)
        clf, seg = self.classifier, self.segmenter
        model = getattr(clf, "scope", None)
        anatomy = scan = None
        if model is not None and seg is not None and getattr(seg, "gland", None) is not None:
            maps = detection.square_maps if detection is not None else None
            if maps is None or maps[1] is None:
                x = segmenter_input(np.asarray(image.pixels), fov, seg.size)[None]
                maps = (seg(x)[0], seg.gland(x)[0])
            anatomy, _ = scope_inputs(maps[1], maps[0], fov)
            if model.n_scan:
                view = scan_view(np.asarray(image.pixels), fov, clf.card.input_size)
                scan = clf.gradcam.run(view[None]).features
        verdict = assess(image, fov, anatomy, scan, model if anatomy is not None else None)
        if len(self._scope) >= SCOPE_CACHE:
            self._scope.pop(next(iter(self._scope)))
        self._scope[key] = verdict
        return verdict

    def nothing_found(
        self,
        image: UltrasoundImage,
        fov: FieldOfView | None = None,
        reason: str = "",
        roi: ROI | None = None,
        source: BoxSource = BoxSource.NONE,
    ) -> Finding:
        """The finding when nothing was found and nothing asked for, or the image is out of
        scope (``reason``): no estimate, no heat map, the classifier not run. ``roi`` is the
        box asked for (with its ``source``), else the scan area searched (``roi_source``
        "none"); an image out of scope says why."""
        fov = fov or detect_fov(image.gray)
        warnings = tuple(check_scope(image, fov).reasons)
        if not reason:
            verdict = self.scope(image)
            reason = verdict.reason or NO_NODULE
        clf = self.classifier
        calibration = clf.calibration if clf is not None else None
        return Finding(
            probability=float("nan"),
            threshold=calibration.threshold if calibration is not None else float("nan"),
            roi=fov.box if roi is None else roi.clipped(image.width, image.height),
            roi_source=BoxSource.NONE if roi is None else BoxSource(source),
            window=fov.box,
            heatmap=np.zeros((image.height, image.width), np.float32),
            model_id=clf.card.id if clf is not None else "",
            model_version=clf.card.version if clf is not None else "",
            device=clf.device if clf is not None else "",
            timings_ms={"total": 0.0},
            warnings=warnings,
            notes=image.notes,
            no_estimate_reason=reason,
            **({"calibration": calibration.name} if calibration is not None else {}),
        )

    def analyse_point(
        self,
        image: UltrasoundImage,
        point: tuple[float, float],
        action: Action | None = Action.ANALYSE,
        settings: ClickSettings | None = None,
        force: bool = False,
    ) -> AnalysisResult:
        """The nodule the clinician clicked on (``point``: x, y image pixels): outlined by the
        segmenter around the click (``core.pipeline.click``), its box analysed with its own
        mask (``roi_source`` "point"); ``result.segmentation`` holds the outline and whether
        its size had to be guessed.

        Raises:
            ValueError: the point lies outside the image.
        """
        fov = detect_fov(image.gray)
        if self.segmenter is None:
            seg = guess_point(fov, point, settings)
        else:
            seg = segment_point(
                np.asarray(image.pixels), image.gray, self.segmenter, point, settings, fov
            )
        return self._analyse_outline(image, seg, BoxSource.POINT, fov, action, force)

    def analyse_stroke(
        self,
        image: UltrasoundImage,
        stroke: tuple[float, float, float, float],
        action: Action | None = Action.ANALYSE,
        settings: ClickSettings | None = None,
        force: bool = False,
    ) -> AnalysisResult:
        """The nodule the clinician drew a stroke along (``stroke``: x1, y1, x2, y2 image
        pixels, its long axis), as :meth:`analyse_point` (``roi_source`` "stroke"); the box
        at least spans the stroke.

        Raises:
            ValueError: an end of the stroke lies outside the image.
        """
        fov = detect_fov(image.gray)
        if self.segmenter is None:
            seg = guess_stroke(fov, stroke, settings)
        else:
            seg = segment_stroke(
                np.asarray(image.pixels), image.gray, self.segmenter, stroke, settings, fov
            )
        return self._analyse_outline(image, seg, BoxSource.STROKE, fov, action, force)

    def _analyse_outline(
        self,
        image: UltrasoundImage,
        seg: PointSegmentation,
        source: BoxSource,
        fov: FieldOfView,
        action: Action | None,
        force: bool = False,
    ) -> AnalysisResult:
        """The estimate for an outlined nodule's box, with the mask of its outline (shape and
        size): the outline as the nodule stores it, so analysing the nodule again
        (:meth:`analyse_box` with ``outline``) gives the same numbers and suggestions."""
        result = self.analyse_box(image, seg.roi, source, action, seg.contour, fov, force)
        return dataclasses.replace(result, segmentation=seg)

    def analyse_box(
        self,
        image: UltrasoundImage,
        roi: ROI | None,
        source: BoxSource,
        action: Action | None = Action.ANALYSE,
        outline: Sequence[tuple[float, float]] | None = None,
        fov: FieldOfView | None = None,
        force: bool = False,
    ) -> AnalysisResult:
        """The estimate for a given box with its ``source`` (manual, or auto for a detected
        candidate the user picked), or with no box for the whole scan area. ``outline``: a
        clicked or stroked nodule's outline as stored (image pixels; empty when its box was
        a guess: the box alone), whose filled polygon is the nodule's mask; without it, the
        segmenter's map inside the box. ``fov``: the scan area, when already found. Out of
        scope: no estimate unless ``force`` (as :meth:`analyse`)."""
        if roi is None:
            fov = fov or detect_fov(image.gray)
            finding = self._predict(image, None, BoxSource.FULL, fov, None, force)
        elif outline is not None:
            mask = outline_mask(outline, image.width, image.height)
            fov = fov or detect_fov(image.gray)
            finding = self._predict(image, roi, source, fov, mask, force)
        else:
            fov, mask = self.box_context(image, roi)
            finding = self._predict(image, roi, source, fov, mask, force)
        problem = self.record(action, image, finding)
        return AnalysisResult(image, finding, None, None, problem, scope=self.scope(image))

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
        *,
        point: tuple[float, float] | None = None,
        stroke: tuple[float, float, float, float] | None = None,
        scan_area: bool = False,
        scan_area_fallback: bool = False,
        force: bool = False,
    ) -> AnalysisResult:
        """Opens ``path`` (a cine loop at its best frame unless ``frame`` is given) and
        analyses on that frame what was asked: ``roi`` as a box drawn (with the segmenter's
        mask inside it, as in the window), ``point`` or ``stroke`` as a click or a stroke
        (:meth:`analyse_point`, :meth:`analyse_stroke`), ``scan_area`` the whole scan area;
        with none of them the detector's best box (:meth:`analyse`, ``scan_area_fallback``
        as there)."""
        asked = [roi is not None, point is not None, stroke is not None, scan_area]
        if sum(asked) > 1:
            raise ValueError("give one of a box, a point, a stroke or the scan area")
        image, scores = self.open(path, frame)
        if point is not None:
            result = self.analyse_point(image, point, action, force=force)
        elif stroke is not None:
            result = self.analyse_stroke(image, stroke, action, force=force)
        elif scan_area:
            result = self.analyse_box(image, None, BoxSource.FULL, action, force=force)
        else:
            result = self.analyse(
                image, roi, action, scan_area_fallback=scan_area_fallback, force=force
            )
        return dataclasses.replace(result, frame_scores=scores)

    def analyse_all_frames(
        self,
        path: str | os.PathLike[str],
        action: Action = Action.CLI,
        scan_area_fallback: bool = False,
        force: bool = False,
    ) -> list[AnalysisResult]:
        """Every frame of a file, each with its own detected box (``scan_area_fallback`` and
        ``force`` as in :meth:`analyse`)."""
        first = open_image(path)
        results = [self.analyse(first, None, action, None, scan_area_fallback, force)]
        for i in range(1, first.n_frames):
            image = open_image(path, frame=i)
            results.append(self.analyse(image, None, action, None, scan_area_fallback, force))
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
        detail: str | None = None,
        nodule: str | None = None,
    ) -> str:
        """Appends one audit record (with the AI's TI-RADS suggestions, and with ``choices``
        what the clinician did with them; nothing for ``action`` None: a re-analysis for a
        report, whose export is recorded). Returns "" or, when the log cannot be written, why
        (the analysis stands; the caller says so)."""
        if self.audit is None or action is None:
            return ""
        return self._append(audit_record(action, image, finding, choices, detail, nodule))

    def _append(self, record: AuditRecord) -> str:
        """Appends ``record`` to the audit log; "" or why it could not be written."""
        try:
            self.audit.append(record)
        except OSError as err:
            log.warning("audit log %s not written: %s", self.audit.path, err)
            return f"audit log not written: {err}"
        return ""

    def record_report(
        self, items, action: Action = Action.EXPORT, detail: str | None = None
    ) -> str:
        """One audit record per nodule of a report just exported, written as DICOM, queued
        for or stored by the PACS (``nodule_reports``' items: its image, finding and the
        clinician's choices). Returns "" or the first problem."""
        problems = [
            self.record(action, it.image, it.finding, it.choices, detail, it.nodule_id)
            for it in items
        ]
        return next((p for p in problems if p), "")

    def record_rows(self, rows, detail: str | None = None) -> str:
        """One ``export-csv`` record per nodule row of a study CSV just written
        (``core.review.study.ResultRow``: its stored estimate, or none yet). Returns "" or
        the first problem."""
        if self.audit is None:
            return ""
        for row in rows:
            n, e = row.nodule, row.estimate
            if n is None:
                continue
            problem = self._append(
                record_for(
                    str(Action.EXPORT_CSV),
                    n.image,
                    e.box if e is not None else n.box,
                    roi_source=(e.roi_source if e is not None else n.source),
                    model_id=e.model_id if e is not None else "",
                    probability=e.probability if e is not None and e.in_scope else None,
                    file=str(row.entry.path),
                    frame=row.frame,
                    no_estimate_reason=(e.no_estimate_reason or None)
                    if e is not None
                    else "not analysed",
                    calibration=e.calibration if e is not None else None,
                    scope_override=(e.overridden_reason or None) if e is not None else None,
                    detail=detail,
                    nodule=n.id,
                )
            )
            if problem:
                return problem
        return ""

    def report_records(self, items, action: Action, detail: str | None = None) -> list:
        """The records `record_report` would write for ``items`` (none without an audit
        log): for the PACS outbox to write once the report has arrived (``Outbox.add``)."""
        if self.audit is None:
            return []
        return [
            audit_record(action, it.image, it.finding, it.choices, detail, it.nodule_id)
            for it in items
        ]


def audit_record(
    action: Action | str,
    image: UltrasoundImage,
    finding: Finding,
    choices: TiradsChoices | None = None,
    detail: str | None = None,
    nodule: str | None = None,
) -> AuditRecord:
    """The audit record of ``action`` on ``finding`` (with the AI's TI-RADS suggestions and,
    with ``choices``, what the clinician did with them)."""
    if finding.overridden_reason and action in (Action.ANALYSE, Action.AUTO, Action.CLI):
        action = Action.FORCE  # an estimate made although the scope check refused it
    sug = finding.tirads_suggestion
    suggested = {g: s.value.name for g, s in sug.groups.items()} if sug else None
    review = review_of(choices, sug) if choices is not None else None
    return record_for(
        str(action),
        image.sha256,
        None if finding.roi_source is BoxSource.NONE else finding.roi,
        roi_source=finding.roi_source,
        model_id=finding.model_id,
        probability=finding.estimate,
        file=str(image.source) if image.source else None,
        frame=image.frame_index if image.n_frames > 1 else None,
        no_estimate_reason=finding.no_estimate_reason or None,
        calibration=finding.calibration,
        tirads_suggested=suggested,
        tirads_review=review,
        scope_override=finding.overridden_reason or None,
        detail=detail,
        nodule=nodule,
    )


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
        forced = n.estimate is not None and bool(n.estimate.overridden_reason)
        finding = service.analyse_box(
            image, box, n.source, None, n.outline_or_none, force=forced
        ).finding
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
                uid=n.uid,
                caliper_check=n.stray_text(),
            )
        )
    return items
