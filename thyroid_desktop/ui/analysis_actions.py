"""Boxes, proposals and analyses: the user's box or the detector's, sent to ``core.analysis`` in
the worker, and the result shown. Which box belongs to which nodule, and which result is the
latest, is decided by ``core.review.reading.Review``."""

from __future__ import annotations

import numpy as np

from thyroid_desktop.core.analysis import (
    NO_NODULE,
    ROI,
    Action,
    AnalysisResult,
    BoxSource,
    Finding,
    gland_contours,
    heatmap_rgba,
)
from thyroid_desktop.core.io.images import UltrasoundImage
from thyroid_desktop.core.review.reading import NOTHING_FOUND, frame_text


class AnalysisMixin:
    """Mixed into MainWindow (which provides the widgets, the review and the worker)."""

    # -- boxes and proposals ---------------------------------------------------------------
    def _wire_boxes(self) -> None:
        """The view's boxes and the result panel's buttons, to the actions below."""
        self.view.roiDrawn.connect(self.set_roi)
        self.view.candidatePicked.connect(self.pick_candidate)
        self.view.pointClicked.connect(self.point_at)
        self.view.nodulePicked.connect(self.pick_nodule)
        self.view.strokeDrawn.connect(self.stroke_along)
        self.panel.acceptRequested.connect(self.accept_proposal)
        self.panel.rejectRequested.connect(self.reject_proposal)
        self.panel.forceRequested.connect(self.analyse_anyway)
        self.panel.overlayToggled.connect(self.view.set_overlay_visible)
        self.panel.opacityChanged.connect(self.view.set_overlay_opacity)
        self.view.set_overlay_opacity(0.7)

    def set_roi(self, roi: ROI, source: BoxSource = BoxSource.MANUAL) -> None:
        """Analyses ``roi``, drawn, moved or resized by the clinician: the shown nodule's
        box, or a new nodule (a proposal adjusted, or their own box)."""
        self.view.set_contour(None)  # an outline from a click is for the box it made
        if self.review.box_drawn(roi, source):
            self.tirads.set_choices(None)  # a new nodule starts with no choices
            self.say_about_image(f"{self.review.nodule_id} added.", 5000)
        self._show_box()
        self._refresh_nodules()
        self._show_size()  # the moved box's size and caliper check, before its analysis
        self.analyse()

    def point_at(self, x: float, y: float) -> None:
        """A click on the image (no drag, outside every box): the nodule is there. It is
        outlined around the click and analysed; the click confirms it (a new nodule)."""
        self._outline("analyse_point", (x, y), "Outlining the nodule at the click…")

    def stroke_along(self, x1: float, y1: float, x2: float, y2: float) -> None:
        """A Shift+drag along the nodule's long axis: outlined from both ends, a nodule."""
        self._outline("analyse_stroke", (x1, y1, x2, y2), "Outlining the nodule along the line…")

    def _outline(self, method: str, prompt: tuple[float, ...], busy: str) -> None:
        review = self.review
        if not review.ready(self.classifier is not None):
            return
        outline = getattr(self.service, method)  # AnalysisService.analyse_point / _stroke
        image = review.image
        force = review.forced(image)
        req = self._new_request()
        self.panel.show_state(busy)
        self._run(
            lambda: None if review.stale(req) else outline(image, prompt, force=force),
            lambda r: r is not None and self._outlined(image, req, r),
            lambda err: self._analysis_failed(req, err),
        )

    def _outlined(self, image: UltrasoundImage, req: int, result: AnalysisResult) -> None:
        """The clicked (or stroked) nodule's outline and result: drawn, a nodule."""
        seg = result.segmentation
        outline = seg.contour if seg is not None else ()
        if not self.review.outlined(image, req, result.finding, outline):
            return
        self.tirads.set_choices(None)  # a new nodule starts with no choices
        self._refresh_nodules()
        self._result_arrived(image, result.finding, result.audit_problem)
        self.panel.set_refusal(result.can_force)
        self.view.set_contour(np.asarray(outline) if outline else None)
        if seg is not None and seg.size_uncertain:
            why = f": {seg.reason}" if seg.reason else ""
            self.panel.show_state(f"{self.review.nodule_id} outlined; size uncertain{why}.")
        elif self.review.nodule_id:
            self.panel.show_state(f"{self.review.nodule_id} outlined from your click.")

    def _show_box(self) -> None:
        """The box on screen as the review holds it: a nodule's (solid) or a proposal
        (dashed, labelled); Accept / Reject shown with a proposal."""
        review = self.review
        proposal = review.proposal is not None and review.roi == review.proposal
        self.view.set_roi(review.roi, proposal=proposal)
        self.panel.set_proposal(proposal, review.preliminary)
        outline = review.contour_shown()  # a click's, else the mask that sizes it
        self.view.set_contour(np.asarray(outline) if outline else None)

    def _show_candidates(self) -> None:
        self.view.set_candidates(self.review.offered())

    def _look_at(self, roi: ROI) -> None:
        """A detected candidate becomes the proposal on screen, analysed (not a nodule)."""
        self.review.show_proposal(roi)
        self.tirads.set_choices(None)
        self._show_box()
        self._refresh_nodules()
        self.analyse()

    def pick_candidate(self, index: int) -> None:
        """Looks at another detected candidate (a click in its dashed box)."""
        offered = self.review.offered()
        if 0 <= index < len(offered):
            self._look_at(offered[index])

    def next_candidate(self) -> None:
        """Looks at the next detected candidate, in rank order (N)."""
        box = self.review.next_proposal()
        if isinstance(box, str):
            self.statusBar().showMessage(box, 5000)
        else:
            self._look_at(box)

    def accept_proposal(self) -> None:
        """The clinician accepts the proposal on screen (Enter, Y, or the button): a nodule."""
        if self.review.accept_proposal() is None:
            self.statusBar().showMessage("No proposal to accept.", 3000)
            return
        self._show_accepted()

    def _show_accepted(self) -> None:
        """After a proposal was accepted, however (``Review.take_accepted``): the audit
        log's ``accept-proposal`` line (with its result when that was on screen), and the
        panel, box, lists and status showing it as the nodule it now is."""
        review = self.review
        accepted = review.take_accepted()
        if accepted is None:
            return
        nodule_id, finding = accepted
        if self.service is not None and finding is not None:
            problem = self.service.record(Action.ACCEPT, review.image, finding)
            if problem:
                self.statusBar().showMessage(f"Audit log not written: {problem}", 15000)
        self.tirads.set_choices(review.nodule().tirads)
        self._show_box()
        self._refresh_nodules()
        self._show_row(review.current)
        if review.finding is not None and review.shown_result_matches():
            self._show_finding(review.image, review.finding)  # no "Enter accepts it" left
        self.say_about_image(f"Proposal accepted as {nodule_id}.", 5000)

    def reject_proposal(self) -> None:
        """The clinician rejects the proposal on screen (X, or the button): hidden on this
        frame; the next candidate, if any, is proposed."""
        review = self.review
        rejected = review.finding if review.finding is not None else None
        if not review.reject_proposal():
            self.statusBar().showMessage("No proposal to reject.", 3000)
            return
        if self.service is not None and rejected is not None:
            self.service.record(Action.REJECT, review.image, rejected)
        self._clear_result()
        self._show_box()
        self._refresh_nodules()
        self._show_row(review.current)
        if review.proposal is not None:
            self.analyse()
        else:
            self.panel.show_state(NOTHING_FOUND)

    def _clear_result(self) -> None:
        self.panel.clear()
        self.view.set_overlay(None)
        self.view.set_contour(None)
        self.tirads.set_suggestion(None)
        self.tirads.set_size(None)

    # -- analyses --------------------------------------------------------------------------
    def auto_detect(self) -> None:
        """Lets the segmenter propose the box (best candidate) and analyses it."""
        review = self.review
        if not review.ready(self.classifier is not None):
            return
        if self.segmenter is None:
            self.panel.show_state(
                "The nodule detector is not available: draw a box around the nodule, or W for "
                "the whole scan area."
            )
            return
        image, service = review.image, self.service
        force = review.forced(image)
        req = self._new_request()
        self.panel.show_state("Looking for the nodule…")
        self._run(
            lambda: (
                None
                if review.stale(req)
                else service.analyse(image, None, Action.AUTO, force=force)
            ),
            lambda r: r is not None and self._auto_done(image, req, r),
            lambda err: self._analysis_failed(req, err),
        )

    def analyse_whole_image(self) -> None:
        """The whole scan area, analysed because the user asked (W): a preliminary result."""
        if self.review.image is not None:
            self.review.use_scan_area()
            self._show_box()
            self._show_candidates()
            self.analyse()

    def analyse(self) -> None:
        review = self.review
        if not review.ready(self.classifier is not None):
            return
        image, roi, service = review.image, review.roi, self.service
        source = review.roi_source if roi is not None else BoxSource.FULL
        outline = review.outline()
        force = review.forced(image)
        req = self._new_request()
        self.panel.show_state("Analysing…")
        self._run(
            lambda: (
                service.analyse_box(image, roi, source, Action.ANALYSE, outline, force=force)
                if review.still_wanted(req, image, roi)
                else None
            ),
            lambda r: r is not None and self._analysed(image, req, r),
            lambda err: self._analysis_failed(req, err),
        )

    def _new_request(self) -> int:
        self.tirads.set_suggestion(None)  # the shown suggestion was for the previous box
        return self.review.begin_request()

    def _auto_done(self, image: UltrasoundImage, req: int, result: AnalysisResult) -> None:
        """The detector's answer: its best box is a proposal (analysed, preliminary); when
        it found nothing: no estimate, no heat map, and the user is asked to point."""
        review, finding, detection = self.review, result.finding, result.detection
        if not review.detected(image, req, finding, detection):
            return
        # refused as out of scope: no gland outline either (detection None)
        self.view.set_gland(gland_contours(detection.gland) if detection is not None else [])
        self._show_box()
        self._refresh_nodules()
        self._show_row(review.current)
        if review.nothing_found:
            self._clear_result()
            self.panel.set_refusal(result.can_force)  # "Analyse anyway" for a scope refusal
            reason = finding.no_estimate_reason
            out_of_scope = reason and reason != NO_NODULE  # say why first: not B-mode, ...
            self.panel.show_state(f"No estimate: {reason}." if out_of_scope else NOTHING_FOUND)
            return
        if review.finding is None:  # the best one was rejected here: the next is analysed
            self.analyse()
            return
        self._result_arrived(image, finding, result.audit_problem)
        n = len(review.offered()) + 1
        found = (
            f"Proposal ({n} candidate{'s' if n != 1 else ''}"
            + ", the others dashed: click one, or N" * (n > 1)
            + "). Enter accepts it, X rejects it; or adjust its box, or draw your own."
        )
        reason = "" if finding.in_scope else "No estimate for this image: the reason is below.\n"
        self.panel.show_state(reason + found)

    def _analysed(self, image: UltrasoundImage, req: int, result: AnalysisResult) -> None:
        if self.review.analysed(image, req, result.finding):
            self._result_arrived(image, result.finding, result.audit_problem)
            self.panel.set_refusal(result.can_force)

    def analyse_anyway(self) -> None:
        """The clinician overrides the scope check's refusal of the shown image: it is
        analysed, every result of it marked "outside the validated scope", and the override
        written to the audit log (as the analyses are, with the reason overridden)."""
        if not self.review.force_scope():
            return
        self.panel.set_refusal(False)
        self.say_about_image(
            "Analysed anyway: the estimate lies outside the validated scope.", 8000
        )
        if self.review.roi is not None and self.review.nodule_id is not None:
            self.analyse()
        else:
            self.auto_detect()

    def _result_arrived(self, image: UltrasoundImage, finding: Finding, problem: str) -> None:
        self._show_box()
        if problem:
            self.statusBar().showMessage(f"Audit log not written: {problem}", 15000)
        self._show_row(self.review.current)
        self._show_finding(image, finding)

    def _show_finding(self, image: UltrasoundImage, finding: Finding) -> None:
        self.panel.show_finding(finding)
        self._show_box()  # a proposal's estimate is marked preliminary
        self.tirads.set_suggestion(finding.tirads_suggestion if finding.in_scope else None)
        self._show_size()
        self.view.set_overlay(heatmap_rgba(finding.heatmap))
        self.panel.show_state(
            "No estimate for this image: the reason is below." if not finding.in_scope else "Done."
        )
        total = finding.timings_ms["total"]
        self.say_about_image(f"Analysed in {total:.0f} ms{frame_text(image, ' · ')}", 5000)
        runtime = f" ({self.classifier.runtime})" if self.classifier is not None else ""
        self.device_label.setText(f"Device: {finding.device}{runtime} · {total:.0f} ms")
        self.findingShown.emit(finding)

    def _analysis_failed(self, req: int, err: Exception) -> None:
        if self.review.failed(req):
            self.panel.show_state(f"Analysis failed: {err}")

    # -- TI-RADS choices -------------------------------------------------------------------
    def _tirads_changed(self, choices) -> None:
        """The clinician changed a TI-RADS choice: it belongs to the nodule shown (a proposal
        described is accepted first); with nothing on screen it is not kept."""
        review = self.review
        if not review.ensure_nodule():
            if review.in_session():  # no box on screen: nothing to describe
                self.tirads.set_choices(None)
                self.say_about_image(NOTHING_FOUND, 8000)
            return
        self.session.set_tirads(review.nodule_id, choices)
        self._show_accepted()  # describing a proposal accepted it

    def accept_ai_tirads(self) -> None:
        """The clinician accepts the AI's TI-RADS suggestions for the groups still open
        (one undo step; written to the audit log)."""
        choices = self.review.accept_suggestions()
        if choices is None:
            return
        if isinstance(choices, str):
            self.say_about_image(choices, 8000)
            return
        self._show_accepted()  # a proposal described so is accepted first
        self.tirads.set_choices(choices)
        if self.service is not None:
            review = self.review
            problem = self.service.record(
                Action.ACCEPT_TIRADS, review.image, review.finding, choices
            )
            if problem:
                self.statusBar().showMessage(f"Audit log not written: {problem}", 15000)
        self.say_about_image(
            "AI suggestions accepted for the open groups: check each one before signing.", 8000
        )
