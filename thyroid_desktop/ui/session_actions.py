"""Edit > Undo / Redo, and showing what the session holds after an undo, a redo or opening a
saved session. The rules are in ``core.review`` (``Session``, ``Review``)."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import QTimer

from thyroid_desktop.core.report.pdf import StudyInfo
from thyroid_desktop.core.review.reading import Step
from thyroid_desktop.core.review.session import ReportText


class SessionMixin:
    """Mixed into MainWindow (which provides the widgets, the review and the worker)."""

    def undo(self) -> None:
        """Edit > Undo; the status bar says what was undone (an undo step may be off
        screen, such as the report's typed details)."""
        what = self.session.undo_text
        if not self.session.undo():
            self.statusBar().showMessage("Nothing to undo.", 3000)
        else:  # the panel too: its line may tell of the step undone ("Caliper 1 drawn: …")
            self.statusBar().showMessage(f"Undone: {what}.", 8000)
            self.panel.show_state(f"Undone: {what}.")

    def redo(self) -> None:
        what = self.session.redo_text
        if not self.session.redo():
            self.statusBar().showMessage("Nothing to redo.", 3000)
        else:
            self.statusBar().showMessage(f"Redone: {what}.", 8000)
            self.panel.show_state(f"Redone: {what}.")

    def report_details(self, metadata: dict[str, str], operator: str = "") -> StudyInfo:
        """The report dialog's fields: what was typed for this study (kept in its session),
        else the DICOM's, else the last operator."""
        typed = {k: v for k, v in self.session.state.study.report.text.items() if v}
        typed.setdefault("operator", operator)
        return StudyInfo.from_metadata(metadata, **typed)

    def shown_report_details(self) -> StudyInfo:
        """The report's details as the report dialog shows them for the image on screen."""
        meta = self.review.image.metadata if self.review.image is not None else {}
        return self.report_details(meta, str(self.settings.value("report/operator", "")))

    def keep_report_details(self, study: StudyInfo) -> None:
        """What the clinician typed in the report dialog is kept in the study's session
        (saved at once; one undo step)."""
        kept = self.session.state.study.report
        fields = {f.name: getattr(study, f.name) for f in dataclasses.fields(StudyInfo)}
        fields = {k: v for k, v in fields.items() if k in ReportText.__dataclass_fields__}
        self.session.set_report(dataclasses.replace(kept, **fields))

    def _update_undo_actions(self) -> None:
        for act, verb, what in (
            (self.undo_action, "&Undo", self.session.undo_text),
            (self.redo_action, "&Redo", self.session.redo_text),
        ):
            act.setText(f"{verb} {what}" if what else verb)
            act.setEnabled(bool(what))

    def _session_changed(self, what: str) -> None:
        """The session changed: update the edit menu, the nodule list and the list line;
        after undo/redo or opening a session, show what it now holds for the current image."""
        self._update_undo_actions()
        if self.session.save_problem:
            self.statusBar().showMessage(self.session.save_problem, 15000)
        if what.startswith(("undo ", "redo ", "open session")):
            self._show_session_state()
        if what != "estimate":  # a study reopened or undone to another calibration's numbers:
            # re-scored once this change is told to every listener (not inside it: the
            # signature's listener must hear this change first), its words after theirs
            QTimer.singleShot(0, self, self.rescore_if_stale)
        self._refresh_nodules()
        self._show_row(self.review.current)

    def _show_session_state(self) -> None:
        """Box, TI-RADS choices and scale of the current image, as the session holds them;
        a box that changed is analysed again."""
        review = self.review
        if not review.in_session():
            return
        review.session_shown()
        nodule = review.nodule()
        self.tirads.set_choices(nodule.tirads if nodule else None)
        self._show_size()
        step = review.box_to_reanalyse()
        self._show_box()
        if step is Step.ANALYSE_BOX:
            self._show_candidates()
            self.analyse()
        elif step is Step.ANALYSE_AREA:
            self.analyse_whole_image()
        elif step is Step.AUTO_DETECT:
            self._clear_result()
            self.auto_detect()
