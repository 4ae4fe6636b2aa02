"""Batch analysis of the study list: one image per worker task, a progress bar and Cancel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QProgressBar, QPushButton

from thyroid_desktop.core.analysis import Action, AnalysisResult, AnalysisService
from thyroid_desktop.ui.study_list import make_thumbnail


def analyse_file(path: Path, service: AnalysisService) -> tuple[AnalysisResult, object]:
    """One batch step, in the worker: the file analysed as opening it would (a cine loop at
    its best frame), and its thumbnail."""
    result = service.analyse_file(path, action=Action.BATCH)
    return result, make_thumbnail(result.image.pixels)


class BatchRunner(QObject):
    """Queues rows and runs them one after another through the window's worker pool, so a
    user's own analysis can slip in between two steps. Cancel stops after the current one.

    Signals:
        stepDone(int, object, object): row, result of ``analyse_file`` or None, error or None.
        finished(int, bool): how many steps ran, and whether it was cancelled.
    """

    stepDone = Signal(int, object, object)
    finished = Signal(int, bool)

    def __init__(self, run: Callable, parent=None) -> None:
        super().__init__(parent)
        self._run = run  # the window's one-thread pool: run(fn, on_done, on_error)
        self.rows: list[int] = []
        self.cancelled = False
        self.done = 0
        self.failed = 0  # of ``done``: the file could not be read or analysed
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setFormat("%v / %m images")
        self.cancel_button = QPushButton("Cancel batch")  # the window connects it
        for w in (self.progress, self.cancel_button):
            w.hide()

    @property
    def running(self) -> bool:
        return bool(self.rows)

    def start(self, rows: list[int], job: Callable[[int], Callable[[], object]]) -> None:
        """``job(row)`` returns the function the worker runs for that row."""
        self.rows, self.cancelled, self.done, self._job = list(rows), False, 0, job
        self.failed = 0
        self.progress.setRange(0, len(rows))
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()
        self._next()

    def cancel(self) -> None:
        if self.rows:
            self.cancelled = True

    def _next(self) -> None:
        if self.cancelled or not self.rows:
            self.rows = []
            self.progress.hide()
            self.cancel_button.hide()
            self.finished.emit(self.done, self.cancelled)
            return
        row = self.rows[0]
        self._run(
            self._job(row),
            lambda result: self._step(row, result, None),
            lambda err: self._step(row, None, err),
        )

    def _step(self, row: int, result, err) -> None:
        self.rows.pop(0)
        self.done += 1
        self.failed += err is not None
        self.progress.setValue(self.done)
        self.stepDone.emit(row, result, err)
        self._next()
