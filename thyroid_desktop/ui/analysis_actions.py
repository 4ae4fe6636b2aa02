"""Boxes, proposals and analyses: the user's box or the detector's, sent to ``core.analysis`` in
the worker, and the result shown. Which box belongs to which nodule, and which result is the
latest, is decided by ``core.review.reading.Review``."""

from __future__ import annotations

from thyroid_desktop.core.analysis import (
    Action,
    AnalysisResult,
    Finding,
    gland_contours,
    heatmap_rgba,
)
from thyroid_desktop.core.io.images import UltrasoundImage
from thyroid_desktop.core.pipeline.roi import ROI, BoxSource
from thyroid_desktop.core.review.reading import frame_text


class AnalysisMixin:
    """Mixed into MainWindow (which provides the widgets, the review and the worker)."""

    # -- boxes and proposals ---------------------------------------------------------------
    def set_roi(self, roi: ROI, source: BoxSource = BoxSource.MANUAL) -> None:
        """Analyses ``roi``; ``source`` is manual (drawn, moved, resized) or auto (a detected
        candidate the user picked)."""
        self.view.set_roi(roi)
        if self.review.box_drawn(roi, source):
            self.tirads.set_choices(None)  # a new nodule starts with no choices
        self._refresh_nodules()
        self.analyse()

    def _show_candidates(self) -> None:
        self.view.set_candidates(self.review.offered())

    def pick_candidate(self, index: int) -> None:
        """Analyses another detected candidate (a click in its dashed box)."""
        offered = self.review.offered()
        if 0 <= index < len(offered):
            self.set_roi(offered[index], BoxSource.AUTO)

    def next_candidate(self) -> None:
        """Moves the box to the next detected candidate, in rank order (N)."""
        box = self.review.next_proposal()
        if isinstance(box, str):
            self.statusBar().showMessage(box, 5000)
        else:
            self.set_roi(box, BoxSource.AUTO)

    # -- analyses --------------------------------------------------------------------------
    def auto_detect(self) -> None:
        """Lets the segmenter propose the box (best candidate) and analyses it."""
        review = self.review
        if not review.ready(self.classifier is not None):
            return
        if self.segmenter is None:
            self.analyse_whole_image()
            return
        image, service = review.image, self.service
        req = self._new_request()
        self.panel.show_state("Looking for the nodule…")
        self._run(
            lambda: (
                None
                if review.stale(req)
                else service.analyse(image, None, Action.AUTO, scan_area_fallback=True)
            ),
            lambda r: r is not None and self._auto_done(image, req, r),
            lambda err: self._analysis_failed(req, err),
        )

    def analyse_whole_image(self) -> None:
        if self.review.image is not None:
            self.review.use_scan_area()
            self.view.set_roi(None)
            self._show_candidates()
            self.analyse()

    def analyse(self) -> None:
        review = self.review
        if not review.ready(self.classifier is not None):
            return
        image, roi, service = review.image, review.roi, self.service
        source = review.roi_source if roi is not None else BoxSource.FULL
        req = self._new_request()
        self.panel.show_state("Analysing…")
        self._run(
            lambda: (
                None
                if review.stale(req)
                else service.analyse_box(image, roi, source, Action.ANALYSE)
            ),
            lambda r: r is not None and self._analysed(image, req, r),
            lambda err: self._analysis_failed(req, err),
        )

    def _new_request(self) -> int:
        self.tirads.set_suggestion(None)  # the shown suggestion was for the previous box
        return self.review.begin_request()

    def _auto_done(self, image: UltrasoundImage, req: int, result: AnalysisResult) -> None:
        finding, detection = result.finding, result.detection
        if not self.review.detected(image, req, finding, detection):
            return
        self.view.set_gland(gland_contours(detection.gland))
        self._refresh_nodules()
        self._result_arrived(image, finding, result.audit_problem)
        n = len(detection.candidates)
        found = (
            f"Auto-detected: {n} candidate{'s' if n != 1 else ''}; the best is boxed"
            + (", the others dashed (click one, or N)" if n > 1 else "")
            + ". Drag the box or its edges to adjust it, or draw a new one."
            if n
            else "No nodule found: the whole scan area was analysed. Draw a box around the nodule."
        )
        reason = "" if finding.in_scope else "No estimate for this image: the reason is below.\n"
        self.panel.show_state(reason + found)

    def _analysed(self, image: UltrasoundImage, req: int, result: AnalysisResult) -> None:
        if self.review.analysed(image, req, result.finding):
            self._result_arrived(image, result.finding, result.audit_problem)

    def _result_arrived(self, image: UltrasoundImage, finding: Finding, problem: str) -> None:
        self.view.set_roi(finding.roi)
        if problem:
            self.statusBar().showMessage(f"Audit log not written: {problem}", 15000)
        self._show_row(self.review.current)
        self._show_finding(image, finding)

    def _show_finding(self, image: UltrasoundImage, finding: Finding) -> None:
        self.panel.show_finding(finding)
        self.tirads.set_suggestion(finding.tirads_suggestion if finding.in_scope else None)
        self._show_size()
        self.view.set_overlay(heatmap_rgba(finding.heatmap))
        self.panel.show_state(
            "No estimate for this image: the reason is below." if not finding.in_scope else "Done."
        )
        total = finding.timings_ms["total"]
        self.statusBar().showMessage(f"Analysed in {total:.0f} ms{frame_text(image, ' · ')}", 5000)
        runtime = f" ({self.classifier.runtime})" if self.classifier is not None else ""
        self.device_label.setText(f"Device: {finding.device}{runtime} · {total:.0f} ms")
        self.findingShown.emit(finding)

    def _analysis_failed(self, req: int, err: Exception) -> None:
        if self.review.failed(req):
            self.panel.show_state(f"Analysis failed: {err}")

    # -- TI-RADS choices -------------------------------------------------------------------
    def _tirads_changed(self, choices) -> None:
        """The clinician changed a TI-RADS choice: it belongs to the nodule shown."""
        if self.review.ensure_nodule():
            self.session.set_tirads(self.review.nodule_id, choices)

    def accept_ai_tirads(self) -> None:
        """The clinician accepts the AI's TI-RADS suggestions for the groups still open
        (one undo step; written to the audit log)."""
        choices = self.review.accept_suggestions()
        if choices is None:
            return
        if isinstance(choices, str):
            self.statusBar().showMessage(choices, 8000)
            return
        self.tirads.set_choices(choices)
        if self.service is not None:
            review = self.review
            problem = self.service.record(
                Action.ACCEPT_TIRADS, review.image, review.finding, choices
            )
            if problem:
                self.statusBar().showMessage(f"Audit log not written: {problem}", 15000)
        self.statusBar().showMessage(
            "AI suggestions accepted for the open groups: check each one before signing.", 8000
        )
