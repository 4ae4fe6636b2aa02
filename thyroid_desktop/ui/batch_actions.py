"""Analysis > Analyse all images: the batch's steps merged into the list and the session."""

from __future__ import annotations

from functools import partial

from thyroid_desktop.core.io.images import ImageLoadError
from thyroid_desktop.ui.batch import analyse_file


class BatchMixin:
    """Mixed into MainWindow (which provides the widgets, the review and the worker)."""

    def analyse_all(self) -> None:
        """Analyses every image of the list not analysed yet, one after another (auto-detected
        box); the list fills in as it goes and Cancel stops after the current image."""
        if self.batch.running:
            return
        if self.classifier is None:
            self.show_message("Model not ready", "The model is still loading; try again shortly.")
            return
        rows = self.review.rows_to_analyse()
        if not rows:
            self.statusBar().showMessage("Every image in the list is analysed.", 5000)
            return
        service, entries = self.service, self.review.entries
        self.batch.start(rows, lambda row: partial(analyse_file, entries[row].path, service))

    def cancel_batch(self) -> None:
        if self.batch.running:
            self.batch.cancel()
            self.statusBar().showMessage("Cancelling after the current image…", 5000)

    def _batch_step(self, row: int, result, err: Exception | None) -> None:
        """One image of the batch: ``Review.batch_result`` files it (a proposal, never a
        nodule) and says whether to show it now."""
        thumb = None
        if err is not None:
            why = str(err) if isinstance(err, ImageLoadError) else f"Analysis failed: {err}"
            self.review.batch_failed(row, why)
        else:
            analysed, thumb = result
            if self.review.batch_result(row, analysed):  # a proposal, preliminary
                self._show_finding(self.review.image, analysed.finding)
            self._refresh_nodules()
        self._show_row(row, thumb)

    def _batch_end(self, done: int, cancelled: bool) -> None:
        failed = self.batch.failed
        more = f"; {failed} could not be read or analysed (the list says why)" if failed else ""
        self.statusBar().showMessage(
            f"Batch {'cancelled' if cancelled else 'finished'}: {done - failed} image(s) "
            f"analysed{more}.",
            10000,
        )
        self.batchFinished.emit(done)
