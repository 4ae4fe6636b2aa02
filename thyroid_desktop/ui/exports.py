"""File menu actions that write or read files: the PDF reports, the study CSV and saved
sessions; File > Sign report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QInputDialog,
    QLabel,
)

from thyroid_desktop.core.analysis import Action
from thyroid_desktop.core.report.names import report_file_name
from thyroid_desktop.core.report.pdf import StudyInfo, write_report
from thyroid_desktop.core.review.lifecycle import sign_blocker, sign_records
from thyroid_desktop.core.review.session import (
    read_session,
    write_session,
)
from thyroid_desktop.core.review.study import write_csv
from thyroid_desktop.ui.pacs_dialog import DicomActionsMixin
from thyroid_desktop.ui.report_dialog import ReportDialog

FILE_FILTER = (
    "Ultrasound images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.dcm *.dicom);;All files (*)"
)


class ExportsMixin(DicomActionsMixin):
    """Mixed into MainWindow (which provides the widgets, the session and the worker)."""

    def open_dialog(self) -> None:
        folder = str(self.settings.value("files/last_folder", ""))
        paths, _ = QFileDialog.getOpenFileNames(self, "Open ultrasound images", folder, FILE_FILTER)
        if paths:
            self.open_paths([Path(p) for p in paths])

    def open_folder_dialog(self) -> None:
        folder = str(self.settings.value("files/last_folder", ""))
        path = QFileDialog.getExistingDirectory(self, "Open a folder of images", folder)
        if path:
            self.open_paths([Path(path)])

    def export_dialog(self) -> None:
        image, review = self.review.image, self.review
        if review.finding is None:
            self.show_message("Nothing to report", "Analyse an image before exporting a report.")
            return
        if review.in_session() and review.preliminary:  # only a confirmed nodule is reported
            self.show_message(
                "Nothing to report",
                "This is a proposal, not a nodule: accept it (Enter), adjust its box or draw "
                "the nodule's box first.",
            )
            return
        stem = image.source.stem if image.source else "demo"
        asked = self._ask_report("Export PDF report", f"report_{stem}.pdf")
        if asked is not None:
            self.export_report(*asked)

    def _ask_report(
        self, title: str, name: str | Callable[[StudyInfo], str]
    ) -> tuple[Path, StudyInfo] | None:
        """The report details (from the shown image's DICOM, else typed) and where to save
        (``name``: the file name offered, or made from the details); None when the user
        cancels. Remembers the operator and the reports folder."""
        dialog = ReportDialog(self.shown_report_details(), self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        study = dialog.study()
        self.keep_report_details(study)  # kept in the study's session
        self.settings.setValue("report/operator", study.operator)
        name = name(study) if callable(name) else name
        path, _ = QFileDialog.getSaveFileName(
            self, title, str(self.reports_folder() / name), "PDF (*.pdf)"
        )
        if not path:
            return None
        self.settings.setValue("report/folder", str(Path(path).parent))
        return Path(path), study

    def sign_report_dialog(self) -> None:
        """File > Sign report…: asks the clinician's name (the report's operator, else the
        last one) and signs the study's report."""
        if why := sign_blocker(self.session.state):  # as the exports, which need a nodule
            self.show_message("Nothing to sign", why)
            return
        kept = self.session.state.study.report
        unscored = self.session.state.unscored()
        stray = self.session.state.caliper_checks()
        if (unscored or stray) and not self.ask_sign_anyway(unscored, stray):
            return
        name = kept.operator or str(self.settings.value("report/operator", ""))
        name, ok = QInputDialog.getText(
            self, "Sign report", "Signed by (the clinician's name):", text=name
        )
        if ok:
            self.sign_report(name)

    def ask_sign_anyway(self, unscored: dict[str, list[str]], stray: list[str] = ()) -> bool:
        """Whether to sign although some nodules have no complete TI-RADS score (the report
        says "not scored" for them) or caliper lines outside their box (``stray``, the
        report says so too)."""
        parts = []
        if unscored:
            lines = "\n".join(
                f"{n}: {', '.join(groups)} not chosen" for n, groups in unscored.items()
            )
            these, them = (
                ("This nodule has", "it") if len(unscored) == 1 else ("These nodules have", "them")
            )
            parts.append(
                f"{these} no complete ACR TI-RADS score; the report will say "
                f'"not scored" for {them}:\n{lines}'
            )
        if stray:
            lines_are = (
                "This caliper line may not measure its nodule (it lies"
                if len(stray) == 1
                else "These caliper lines may not measure their nodule (they lie"
            )
            parts.append(
                f"{lines_are} outside its box); the report will say so:\n" + "\n".join(stray)
            )
        return self.ask_yes_no("Sign report", "\n\n".join(parts) + "\n\nSign anyway?")

    def sign_report(self, name: str) -> bool:
        """Signs the report now (``Session.sign``: kept in the study's session; editing the
        report's text afterwards takes the signature away). False when ``name`` is empty or
        the report lists no nodule."""
        import datetime as dt

        if why := sign_blocker(self.session.state):
            self.show_message("Nothing to sign", why)
            return False
        if not name.strip():
            self.show_message("Not signed", "A signature needs the clinician's name.")
            return False
        # The signature covers the details as the report shows them (typed, else the DICOM's,
        # else the last operator): kept first, so the export dialog showing the same details
        # does not count as an edit that takes the signature away.
        self.keep_report_details(self.shown_report_details())
        self.session.sign(name, dt.datetime.now().astimezone().isoformat(timespec="seconds"))
        said = f"Report {self.signature_text()}."
        try:
            for record in sign_records(self.session.state):  # what was signed, audited
                self.audit.append(record)
        except OSError as err:
            said += f" Audit log not written: {err}"
        self.statusBar().showMessage(said, 15000)
        return True

    def signature_text(self) -> str:
        """ "signed by Dr X, 2026-12-04 18:30" or "not signed"."""
        report = self.session.state.study.report
        if not report.signed:
            return "not signed"
        return f"signed by {report.signed_by}, {report.signed_at[:16].replace('T', ' ')}"

    def _build_signature_status(self) -> None:
        """The report's signed state in the status bar, kept up to date with the session."""
        self.signature_status = QLabel()
        self.statusBar().addPermanentWidget(self.signature_status)
        self.session.subscribe(lambda _what: self._show_signature())
        self._show_signature()

    def _show_signature(self) -> None:
        """The signed state; when an edit took the signature away (``Session.unsigned_by``),
        the status bar says which (only the permanent field changed before)."""
        removed = self.session.unsigned_by
        if removed is not None:
            what, undoable = removed
            undo = " (Ctrl+Z restores it)" if undoable else ""
            self.statusBar().showMessage(
                f"The report's signature was removed: {what} changed what was signed{undo}; "
                "sign again when done.",
                15000,
            )
        self.signature_status.setText(f"Report: {self.signature_text()}")

    def _signature(self) -> dict[str, str]:
        """The report's signature arguments: none while unsigned."""
        report = self.session.state.study.report
        return (
            {"signed_by": report.signed_by, "signed_at": report.signed_at} if report.signed else {}
        )

    def reports_folder(self) -> Path:
        """Where the report dialog opens: the folder of the last report, else "Thyroid
        reports" in the user's documents."""
        remembered = str(self.settings.value("report/folder", "") or "")
        if remembered and Path(remembered).is_dir():
            return Path(remembered)
        from platformdirs import user_documents_dir

        folder = Path(user_documents_dir()) / "Thyroid reports"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return Path.home()
        return folder

    def export_report(self, path: Path, study: StudyInfo | None = None) -> None:
        """Writes the PDF in the worker (atomically); reports success or failure."""
        image, finding, card = self.review.image, self.review.finding, self.classifier.card
        study = study or StudyInfo.from_metadata(image.metadata)
        size = self.measurement()
        tirads = self.tirads.descriptors()
        choices = self.tirads.choices()
        n = self.review.nodule()
        nodule = ", ".join(p for p in (n.id, n.location) if p) if n is not None else ""
        shown = self.review.calipers_shown()
        calipers = tuple((c.number, c.caliper) for c in shown if n and c.nodule_id == n.id)
        check = self.review.caliper_check()  # for the size the report prints
        # signed only as one of the signed study's nodules: the result shown is that
        # nodule's, on its own frame (not a proposal, a box tried or a linked view's frame)
        confirmed = self.review.shown_result_matches() and not self.review.awaiting
        signature = self._signature() if confirmed else {}

        def done(out: Path) -> None:
            problem = (
                self.service.record(
                    Action.EXPORT,
                    image,
                    finding,
                    choices,
                    f"one-nodule PDF {out}",
                    n.id if n is not None else None,
                )
                if self.service
                else ""
            )
            audit = f"; audit log not written: {problem}" if problem else ""
            self.statusBar().showMessage(f"Report written to {out}{audit}", 15000)
            self.last_report = out

        self._run(
            lambda: write_report(
                path,
                image,
                finding,
                card,
                study,
                tirads,
                size,
                nodule=nodule,
                choices=choices,
                calipers=calipers,
                caliper_check=check,
                **signature,
            ),
            done,
            lambda err: self.show_message("Report not written", f"{path}: {err}"),
        )

    def export_study_dialog(self) -> None:
        if not self.session.state.nodules or self.classifier is None:
            self.show_message("Nothing to report", "Mark at least one nodule first.")
            return
        asked = self._ask_report(
            "Export study report", lambda s: report_file_name(s.patient_id, s.study_date)
        )
        if asked is not None:
            self.export_study_report(*asked)

    def export_study_report(self, path: Path, study: StudyInfo | None = None) -> None:
        """Every nodule of the session in one PDF: a summary table, then a page per nodule
        (made in the worker, written atomically)."""
        from thyroid_desktop.core.analysis import nodule_reports
        from thyroid_desktop.core.report.pdf import write_study_report

        state, service, card = self.session.state, self.service, self.classifier.card
        image = self.review.image
        study = study or StudyInfo.from_metadata(image.metadata if image else {})
        signature = self._signature()

        def job() -> tuple[Path, str]:
            items = nodule_reports(service, state)
            out = write_study_report(path, items, card, study, **signature)
            # an export-report line per nodule
            return out, service.record_report(items, detail=f"study PDF {out}")

        def done(result: tuple[Path, str]) -> None:
            out, problem = result
            audit = f"; audit log not written: {problem}" if problem else ""
            self.statusBar().showMessage(f"Study report written to {out}{audit}", 15000)
            self.last_report = out

        self._run(
            job,
            done,
            lambda err: self.show_message("Study report not written", f"{path}: {err}"),
        )

    def export_csv_dialog(self) -> None:
        if not self.review.entries:
            self.show_message("Nothing to export", "Open some images first.")
            return
        path = self._ask_save_path("Export study list", "study.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def export_csv(self, path: Path) -> bool:
        rows = self.review.rows()
        if not self._write_file(
            lambda: write_csv(path, rows), path, "CSV not written", "Study list written"
        ):
            return False
        problem = self.service.record_rows(rows, f"study CSV {path}") if self.service else ""
        if problem:
            self.statusBar().showMessage(f"Study list written to {path} ({problem})", 15000)
        return True

    def save_session_dialog(self) -> None:
        if not self.session.state.images:
            self.show_message("Nothing to save", "Open some images first.")
            return
        path = self._ask_save_path("Save session", "session.thyroid.json", "Session (*.json)")
        if path:
            self.save_session(path)

    def save_session(self, path: Path) -> bool:
        return self._write_file(
            lambda: write_session(path, self.session.state),
            path,
            "Session not saved",
            "Session saved",
        )

    def _ask_save_path(self, title: str, name: str, file_filter: str) -> Path | None:
        """A save dialog opening where the reports go (:meth:`reports_folder`), not the
        images' folder, which may be read-only (a GUI trial's CSV dialog opened there); None
        when cancelled."""
        folder = self.reports_folder()
        path, _ = QFileDialog.getSaveFileName(self, title, str(folder / name), file_filter)
        return Path(path) if path else None

    def _write_file(self, write, path: Path, failed: str, done: str) -> bool:
        """Runs ``write`` (an atomic writer); says where it wrote, or why it could not."""
        try:
            write()
        except OSError as err:
            self.show_message(failed, f"{path}: {err}")
            return False
        self.statusBar().showMessage(f"{done} to {path}", 10000)
        return True

    def open_session_dialog(self) -> None:
        folder = str(self.reports_folder())  # where Save session offers to save it
        path, _ = QFileDialog.getOpenFileName(self, "Open session", folder, "Session (*.json)")
        if path:
            self.open_session(Path(path))

    def open_session(self, path: Path) -> bool:
        """Replaces the session with a saved one and opens its images (those still there)."""
        try:
            state = read_session(path)
        except ValueError as err:
            self.show_message("Session not opened", str(err))
            return False
        self.session.load(state)
        present = [Path(i.path) for i in state.images if Path(i.path).exists()]
        missing = len(state.images) - len(present)
        if missing:
            self.statusBar().showMessage(f"{missing} image(s) of the session are not found.", 15000)
        return self.open_paths(present) if present else False
