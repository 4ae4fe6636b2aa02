"""File > Validate on local cases: runs ``core.site.validation`` in the window's worker with a
progress dialog and Cancel, then says what it found and where the PDF is. No analysis here."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox, QProgressDialog, QWidget

from thyroid_desktop.core.io.files import user_data_dir
from thyroid_desktop.core.models.shipped import Classifier, Segmenter
from thyroid_desktop.core.site.validation import (
    Validation,
    ValidationFiles,
    save_validation,
    validate,
)

#: Where the app writes validation reports (the CLI writes where it is told).
VALIDATIONS_FOLDER = "validations"


def default_output_dir() -> Path:
    return user_data_dir() / VALIDATIONS_FOLDER


class ValidationRunner(QObject):
    """One validation at a time, as one task in the window's one-thread pool (so it never
    runs beside another analysis); Cancel stops it after the current image.

    Signals:
        progressed(int, int, str): images done, total, the last file (from the worker).
        finished(object, object): the :class:`Validation` and its :class:`ValidationFiles`.
        failed(object): the exception (e.g. a folder without labels.csv).
    """

    progressed = Signal(int, int, str)
    finished = Signal(object, object)
    failed = Signal(object)

    def __init__(self, run: Callable, parent: QWidget) -> None:
        super().__init__(parent)
        self._run = run  # the window's run(fn, on_done, on_error)
        self._parent = parent
        self._cancel = threading.Event()
        self.running = False
        self.dialog: QProgressDialog | None = None
        self.progressed.connect(self._show_progress)

    def start(
        self,
        folder: Path,
        classifier: Classifier,
        segmenter: Segmenter | None,
        out_dir: Path | None = None,
    ) -> bool:
        """Starts validating ``folder``; False when one is already running."""
        if self.running:
            return False
        self.running = True
        self._cancel.clear()
        out_dir = out_dir or default_output_dir()
        dialog = QProgressDialog(f"Validating on {folder}…", "Cancel", 0, 0, self._parent)
        dialog.setWindowTitle("Thyroid Review — validation")
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(0)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.canceled.connect(self.cancel)
        dialog.show()
        self.dialog = dialog

        def work() -> tuple[Validation, ValidationFiles]:
            result = validate(
                folder, classifier, segmenter, self.progressed.emit, self._cancel.is_set
            )
            return result, save_validation(result, out_dir)

        self._run(work, self._done, self._failed)
        return True

    def cancel(self) -> None:
        if self.running:
            self._cancel.set()
            if self.dialog is not None:
                self.dialog.setLabelText("Cancelling after the current image…")

    def _show_progress(self, done: int, total: int, name: str) -> None:
        if self.dialog is not None:
            self.dialog.setMaximum(total)
            self.dialog.setValue(done)
            if not self._cancel.is_set():
                self.dialog.setLabelText(f"Validating: {done} / {total}\n{name}")

    def _close_dialog(self) -> None:
        self.running = False
        if self.dialog is not None:
            self.dialog.canceled.disconnect(self.cancel)
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None

    def _done(self, outcome: tuple[Validation, ValidationFiles]) -> None:
        self._close_dialog()
        self.finished.emit(*outcome)

    def _failed(self, err: Exception) -> None:
        self._close_dialog()
        self.failed.emit(err)


def show_summary(parent: QWidget, validation: Validation, files: ValidationFiles) -> QMessageBox:
    """A non-blocking box with the run's summary and where the report is."""
    text = "\n".join(validation.summary_lines())
    counts = validation.site_validation.counts  # the statement is in the summary lines
    box = QMessageBox(
        QMessageBox.Icon.Information if counts else QMessageBox.Icon.Warning,
        "Thyroid Review — validation finished"
        if not validation.cancelled
        else "Thyroid Review — validation cancelled",
        f"{text}\n\nReport (PDF): {files.pdf}\nPer-image results (JSON): {files.json}",
        QMessageBox.StandardButton.Ok,
        parent,
    )
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box
