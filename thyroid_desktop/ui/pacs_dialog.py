"""File > Export DICOM…, Send to PACS… and PACS settings…: thin wiring of
``core.report.dicom_out`` and ``core.report.pacs`` (the work runs in the worker pool)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
)

from thyroid_desktop.core.analysis import Action
from thyroid_desktop.core.report.pacs import (
    DEFAULT_CALLING_AE,
    Outbox,
    PacsError,
    PacsSettings,
    echo,
    load_settings,
    save_settings,
)
from thyroid_desktop.core.report.pdf import StudyInfo
from thyroid_desktop.ui.report_dialog import ReportDialog
from thyroid_desktop.ui.workers import Task


class PacsDialog(QDialog):
    """The PACS's AE title, host and port, and ours; "Test" sends a C-ECHO."""

    def __init__(self, initial: PacsSettings | None, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS settings")
        form = QFormLayout(self)
        self.ae_title = QLineEdit(initial.ae_title if initial else "")
        self.ae_title.setPlaceholderText("e.g. ORTHANC")
        self.host = QLineEdit(initial.host if initial else "")
        self.host.setPlaceholderText("e.g. pacs.hospital.example")
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(initial.port if initial else 104)
        self.calling_ae = QLineEdit(initial.calling_ae if initial else DEFAULT_CALLING_AE)
        form.addRow("PACS AE title", self.ae_title)
        form.addRow("PACS host", self.host)
        form.addRow("PACS port", self.port)
        form.addRow("Our AE title", self.calling_ae)
        # its own full-width row, the dialog growing with it: beside the button a GUI trial
        # saw only "the PACS ORTHANC@127.0.0.1:14242" of a failure
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.test_button = QPushButton("Test connection")
        self.test_button.clicked.connect(self.test)
        form.addRow(self.test_button)
        form.addRow(self.status)
        self.setMinimumWidth(480)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._task: Task | None = None

    def settings(self) -> PacsSettings:
        """What was typed. Raises PacsError when it cannot be used."""
        return PacsSettings(
            self.ae_title.text(), self.host.text(), self.port.value(), self.calling_ae.text()
        )

    def accept(self) -> None:
        try:
            save_settings(self.settings())
        except (PacsError, OSError) as err:
            self._say(f"Not saved: {err}")
            return
        super().accept()

    def test(self) -> None:
        try:
            settings = self.settings()
        except PacsError as err:
            self._say(str(err))
            return
        self._say(f"Asking {settings.text}…")
        self.test_button.setEnabled(False)
        self._task = Task(lambda: echo(settings))
        self._task.signals.finished.connect(self._tested)
        self._task.signals.failed.connect(lambda err: self._tested(str(err)))
        from PySide6.QtCore import QThreadPool

        QThreadPool.globalInstance().start(self._task)

    def _tested(self, problem: str) -> None:
        self.test_button.setEnabled(True)
        self._say(f"Not reached: {problem}" if problem else "Reached: the PACS answered (C-ECHO).")

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.adjustSize()  # the whole text, not its first line


class _Progress(QObject):
    """Progress from the worker to the status bar (queued onto the GUI thread)."""

    changed = Signal(int, int, str)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.changed.connect(self.on_changed)

    @Slot(int, int, str)
    def on_changed(self, done: int, total: int, name: str) -> None:
        if name:
            self.window.statusBar().showMessage(f"Sending to the PACS {done + 1}/{total}: {name}")


class DicomActionsMixin:
    """Mixed into MainWindow through ExportsMixin (widgets, session, worker, settings)."""

    def _study_details(self) -> StudyInfo | None:
        # the same details as the PDF export: typed for this study (kept), else the DICOM's
        dialog = ReportDialog(self.shown_report_details(), self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        study = dialog.study()
        self.settings.setValue("report/operator", study.operator)
        self.keep_report_details(study)
        return study

    def _dicom_job(self, study: StudyInfo, action: Action | None = Action.EXPORT_DICOM):
        """The worker's job ``job(folder)``: every nodule reported (PDF) and written as DICOM
        in ``folder`` (the session as it is now; the SR names the study's earlier SRs as the
        versions it supersedes), an ``action`` audit line per nodule (None: the caller
        records it); it returns the export, the nodules' report items and the audit log's
        problem ("" when written)."""
        from thyroid_desktop.core.analysis import nodule_reports
        from thyroid_desktop.core.report.dicom_out import export_study_dicom
        from thyroid_desktop.core.report.pdf import write_study_report

        state, service, card = self.session.state, self.service, self.classifier.card
        signature = self._signature()  # a signed study is sent signed
        ledger, study_id, recorded = self._sr_ledger(), state.study.id, state.study.sr_versions

        def job(folder: Path):
            items = nodule_reports(service, state)
            # read when it runs: an export queued just before has written its SR by then
            previous = ledger.versions(study_id, recorded)
            with tempfile.TemporaryDirectory(prefix="thyroid-report-") as tmp:
                pdf = write_study_report(Path(tmp) / "report.pdf", items, card, study, **signature)
                export = export_study_dicom(
                    folder, items, card, study, pdf, **signature, previous=previous
                )
            ledger.add(study_id, export.version)
            # its problem is the log's, not the export's: said, the export stands
            problem = service.record_report(items, action, export.message) if action else ""
            return export, items, problem

        return job

    def _sr_ledger(self):
        """The SRs this window's export jobs wrote, per study (``SrLedger``)."""
        from thyroid_desktop.core.report.dicom_out import SrLedger

        if getattr(self, "_srs_written", None) is None:
            self._srs_written = SrLedger()
        return self._srs_written

    def record_written_srs(self) -> None:
        """Records every SR the export jobs wrote with its study (at closing: a job that
        finished as the window closed delivers no result, but its SR was written)."""
        for study_id, versions in self._sr_ledger().written().items():
            for version in versions:
                self.session.record_sr(study_id, version)

    def _record_sr(self, study_id: str, export) -> None:
        """The study's record keeps the SR just written (a later one supersedes it)."""
        if export is not None and export.version is not None:
            self.session.record_sr(study_id, export.version)

    def _has_nodules(self) -> bool:
        if not self.session.state.nodules or self.classifier is None:
            self.show_message("Nothing to report", "Mark at least one nodule first.")
            return False
        return True

    def export_dicom_dialog(self) -> None:
        if not self._has_nodules():
            return
        study = self._study_details()
        if study is None:
            return
        folder = QFileDialog.getExistingDirectory(
            self, "Export DICOM into folder", str(self.reports_folder())
        )
        if folder:
            self.export_dicom(Path(folder), study)

    def ask_leaving_out(self) -> bool:
        """Whether to write a new version of the study's report although the earlier one
        reported nodules this one will not (deleted since, or their images are not open);
        True when it leaves none out."""
        state = self.session.state
        versions = self._sr_ledger().versions(state.study.id, state.study.sr_versions)
        left_out = state.left_out_of_report(versions)
        if not left_out:
            return True
        one = len(left_out) == 1
        it, where, image = (
            ("it", "its image is", "its image")
            if one
            else ("them", "their images are", "their images")
        )
        return self.ask_yes_no(
            "Earlier report",
            "The new version supersedes the earlier report, which also reported "
            f"{', '.join(left_out)}. The new version will not report {it} (it will say so): "
            f"deleted since, or {where} not open now.\n\nTo keep {it} in the "
            f"report, open {image} first. Write the new version anyway?",
        )

    def export_dicom(self, folder: Path, study: StudyInfo) -> None:
        if not self.ask_leaving_out():
            return
        study_id = self.session.state.study.id

        def done(out) -> None:
            export, _items, problem = out
            self.last_dicom_export = export
            self._record_sr(study_id, export)
            message = export.message + (
                ": sign it (File > Sign report…) to make it final"
                if export.unsigned_over_signed
                else ""
            )
            if problem:
                message += f" (audit log not written: {problem})"
            self.statusBar().showMessage(f"{message} in {folder}", 15000)
            if export.identity.new_study:  # not again when a later version joins it
                self.show_message("DICOM written in a new study", message, _INFO)
            else:  # the panel's line says what happened last, not an earlier export
                self.panel.show_state(message)

        job = self._dicom_job(study)
        self._run(
            lambda: job(folder),
            done,
            lambda err: self.show_message("DICOM not written", str(err)),
        )

    def pacs_settings_dialog(self) -> bool:
        try:
            current = load_settings()
        except PacsError as err:
            self.show_message("PACS settings", str(err))
            current = None
        return PacsDialog(current, self).exec() == QDialog.DialogCode.Accepted

    def send_to_pacs_dialog(self) -> None:
        """Writes the report as DICOM into the outbox and sends the outbox (with anything an
        earlier send left there); with no nodule, sends what waits in the outbox."""
        try:
            settings = load_settings()
        except PacsError as err:
            self.show_message("PACS settings", str(err))
            settings = None
        if settings is None:
            if not self.pacs_settings_dialog():
                return
            settings = load_settings()
        outbox = Outbox()
        if self.session.state.nodules and self.classifier is None:
            self.show_message("Nothing to report", "The model is not loaded.")
            return
        waiting = outbox.pending()
        if not self.session.state.nodules and not waiting:
            self.show_message("Nothing to send", "Mark at least one nodule first.")
            return
        if self.session.state.nodules and waiting and self._waiting_is_this_study(outbox):
            # a retry after a failed send: resend what waits rather than write the same
            # report again as a new version (a GUI trial's PACS got two of each); not when
            # another study's objects wait (that would send them, not this report)
            choice = self.ask_waiting(len(waiting), outbox)
            if choice is None:
                return
            if choice == WAITING_ONLY:
                self.send_to_pacs(settings, None, outbox)
                return
        if self.session.state.nodules and not self.ask_new_version():
            return
        study = self._study_details() if self.session.state.nodules else None
        if self.session.state.nodules and study is None:
            return
        self.send_to_pacs(settings, study, outbox)

    def ask_new_version(self) -> bool:
        """Whether to write the study's report again as a new version (asked when one was
        written before: a GUI trial's repeated sends piled up identical versions on the
        PACS); True when there is none yet."""
        state = self.session.state
        done = self._sr_ledger().versions(state.study.id, state.study.sr_versions)
        if not done:
            return True
        return self.ask_yes_no(
            "Send to PACS",
            f"Version {len(done)} of this study's report was already written as DICOM (sent "
            f"or exported). Write it again as version {len(done) + 1} and send it? It "
            "supersedes the earlier one on the PACS; send it only when the report changed.",
        )

    def _waiting_is_this_study(self, outbox: Outbox) -> bool:
        """Whether everything waiting in the outbox is of this study's report (an earlier
        version written by this window, or the images' own DICOM study)."""
        return outbox.pending_studies() <= self.session.state.study.dicom_studies

    def ask_waiting(self, n: int, outbox: Outbox) -> str | None:
        """Objects of an earlier send wait in the outbox: send only those
        (``WAITING_ONLY``), write the report again as a new version and send it with them
        (``NEW_VERSION``), or nothing (None)."""
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Send to PACS",
            f"{n} object(s) of an earlier send wait in the outbox ({outbox.folder}).\n\n"
            "Send only those, or write the report again as a new version (it supersedes "
            "the one waiting) and send everything?",
            QMessageBox.StandardButton.Cancel,
            self,
        )
        only = box.addButton("Send waiting only", QMessageBox.ButtonRole.AcceptRole)
        new = box.addButton("New version and send", QMessageBox.ButtonRole.ActionRole)
        box.setDefaultButton(only)
        box.exec()
        return {only: WAITING_ONLY, new: NEW_VERSION}.get(box.clickedButton())

    def send_to_pacs(self, settings: PacsSettings, study: StudyInfo | None, outbox: Outbox):
        if study is not None and not self.ask_leaving_out():
            return
        progress = _Progress(self)
        export = self._dicom_job(study, None) if study is not None else None
        study_id = self.session.state.study.id
        service = self.service
        audit = self.audit  # also before (or without) a model: waiting objects are sent

        def job():
            written, problem = None, ""
            if export is not None:
                with tempfile.TemporaryDirectory(prefix="thyroid-dicom-") as tmp:
                    written, items, _ = export(Path(tmp))
                    # send-pacs is written by whichever send stores the last of them
                    arrived = service.report_records(items, Action.SEND_PACS, written.message)
                    outbox.add(written.files, arrived)
                # audited once it is in the outbox (a failed add is the job's error)
                problem = service.record_report(items, Action.QUEUE_PACS, written.message)
            result = outbox.send(settings, progress.changed.emit, audit)
            return written, result, problem or result.audit_problem

        def done(out) -> None:
            written, result, problem = out
            self._record_sr(study_id, written)  # in the outbox: it reaches the PACS
            self.last_send = result
            progress.deleteLater()
            audit = f" (audit log not written: {problem})" if problem else ""
            if result.ok:
                # which version went, and whether into a new study (a trial read the same
                # "3 of 3 object(s) stored" for versions 1 and 2 of a PNG's new study)
                said = f"{written.message}: {result.message}" if written else result.message
                self.statusBar().showMessage(said + audit, 15000)
                # in the panel too: an earlier send's failure said there must not stay (a
                # GUI trial read "0 of 4 stored" after "8 of 8 stored")
                self.panel.show_state(said)
                return
            left = len(outbox.pending())
            self.show_message(  # one line in the panel; each object behind Show Details…
                "Not everything reached the PACS",
                f"{result.summary}\n\n{left} object(s) wait in the outbox ({outbox.folder}); "
                f"File > Send to PACS… sends them again.{audit}",
                details=result.message,
            )

        def failed(err) -> None:
            progress.deleteLater()
            self.show_message("Not sent to the PACS", str(err))

        self._run(job, done, failed)


_INFO = QMessageBox.Icon.Information
#: ``ask_waiting``'s answers.
WAITING_ONLY, NEW_VERSION = "waiting only", "new version"
