"""Analysis > Analyse all images: the batch's steps merged into the list and the session."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from thyroid_desktop.core.io.images import ImageLoadError
from thyroid_desktop.core.review.session import (
    BoxSource,
    Estimate,
)
from thyroid_desktop.ui.batch import analyse_file


class BatchMixin:
    """Mixed into MainWindow (which provides the widgets, the session and the worker)."""

    def analyse_all(self) -> None:
        """Analyses every image of the list not analysed yet, one after another (auto-detected
        box); the list fills in as it goes and Cancel stops after the current image."""
        if self.batch.running:
            return
        if self.classifier is None:
            self.show_message("Model not ready", "The model is still loading; try again shortly.")
            return
        rows = [i for i, e in enumerate(self.entries) if e.finding is None]
        if not rows:
            self.statusBar().showMessage("Every image in the list is analysed.", 5000)
            return
        service = self.service
        self.batch.start(rows, lambda row: partial(analyse_file, self.entries[row].path, service))

    def cancel_batch(self) -> None:
        if self.batch.running:
            self.batch.cancel()
            self.statusBar().showMessage("Cancelling after the current image…", 5000)

    def _batch_step(self, row: int, result, err: Exception | None) -> None:
        entry = self.entries[row]
        thumb = None
        if err is not None:
            if entry.finding is None:  # an earlier result of the user's stands
                entry.status = "error"
                entry.error = (
                    str(err) if isinstance(err, ImageLoadError) else f"Analysis failed: {err}"
                )
        else:
            analysed, thumb = result
            finding, sha = analysed.finding, analysed.image.sha256
            self._batch_into_session(entry.path, analysed)
            if entry.finding is None:  # the user may have analysed it meanwhile
                entry.sha256, entry.scale = sha, analysed.image.scale
                entry.finding, entry.status, entry.error = finding, "analysed", ""
                entry.frame = analysed.frame if analysed.n_frames > 1 else None
                shown = self.image
                if (
                    row == self.current
                    and shown is not None
                    and shown.sha256 == sha
                    and self.finding is None
                    and not self._awaiting  # the user's own request wins
                ):
                    self.roi = finding.roi if finding.roi_source is BoxSource.AUTO else None
                    self.view.set_roi(finding.roi)
                    self._show_finding(shown, finding)
        self.study_list.update_entry(row, entry, thumb)

    def _batch_into_session(self, path: Path, analysed) -> None:
        """A batch result becomes the file's first nodule when nothing was done on it yet."""
        image, finding = analysed.image, analysed.finding
        self.session.add_image(image.sha256, path, image.n_frames)
        if finding.roi_source is BoxSource.AUTO and not self.session.state.nodules_on(image.sha256):
            self.session.set_frame(image.sha256, image.frame_index)
            nodule_id = self.session.add_nodule(
                image.sha256, image.frame_index, finding.roi, BoxSource.AUTO, by_user=False
            )
            self.session.set_estimate(nodule_id, Estimate.of(finding))
            shown = self.image
            if shown is not None and (shown.sha256, shown.frame_index) == (
                image.sha256,
                image.frame_index,
            ):
                self.nodule_id = self.nodule_id or nodule_id  # the box on screen is this one
                self._refresh_nodules()

    def _batch_end(self, done: int, cancelled: bool) -> None:
        self.statusBar().showMessage(
            f"Batch {'cancelled' if cancelled else 'finished'}: {done} image(s) analysed.", 10000
        )
        self.batchFinished.emit(done)
