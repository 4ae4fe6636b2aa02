"""The window's nodule and cine actions: pick, add, delete and locate nodules, caliper lines, and moving through a cine loop's frames. The state they change lives in core.review."""

from __future__ import annotations

from pathlib import Path

from thyroid_desktop.core.io.images import ImageLoadError


class NodulesMixin:
    """Mixed into MainWindow (which provides the widgets, the review and the worker)."""

    def _refresh_nodules(self) -> None:
        review = self.review
        state = review.session.state
        names = {i.key: Path(i.path).name for i in state.images}
        self.nodules.show_nodules(list(state.nodules), review.nodule_id, names)
        self.view.set_other_nodules([(n.id, n.box) for n in review.others_shown()])
        self._show_box()  # the nodule's box, or the proposal (dashed)
        self._show_candidates()  # a candidate marked as a nodule is drawn as that nodule
        self._show_calipers()  # the caliper lines and linked views on this frame

    def start_new_nodule(self) -> None:
        """The next box drawn on an image is a new nodule (N2, N3, ...)."""
        if not self.review.start_new_nodule():
            self.show_message("No image", "Open an image first, then add a nodule on it.")
            return
        self.panel.show_state("New nodule: draw its box on the image.")

    def delete_nodule(self) -> None:
        if self.review.delete_nodule():
            self._show_session_state()
            self._refresh_nodules()

    def pick_nodule(self, nodule_id: str) -> None:
        """Shows a nodule: its image, its frame and its box (analysed)."""
        review = self.review
        nodule = review.pick_nodule(nodule_id)
        if nodule is None:
            return
        row = review.row_of(nodule.image)
        if row is None:
            self.show_message("Image not open", f"The image of {nodule_id} is not in the list.")
            return
        if row != review.current or review.image is None:
            self.select(row)
        elif review.image.frame_index != nodule.frame:
            self.show_frame(nodule.frame)
        else:
            self.tirads.set_choices(nodule.tirads)
            self._present(review.image)
        self._refresh_nodules()

    def _location_changed(self, lobe, pole) -> None:
        nodule = self.review.nodule()
        if nodule is not None:
            self.session.set_location(nodule.id, lobe, pole)

    def _find_best_frame(self) -> None:
        """Scores every frame with the detector in the worker, then shows the best one
        (unless the user moved to another frame meanwhile)."""
        review = self.review
        if self.service is None or review.image is None or review.image.source is None:
            review.pending = review.image is not None
            self.panel.show_state("Loading model…")
            return
        image, service = review.image, self.service
        self.panel.show_state(f"Looking for the best of {image.n_frames} frames…")
        req = self._new_request()

        def done(scores) -> None:
            best = review.frames_scored(image, req, scores)
            if review.image is not None and review.image.sha256 == image.sha256:
                self.frame_bar.set_scores(scores.scores)
            if best is not None:
                self.frame_bar.set_frame(best)
                self.show_frame(best)

        self._run(
            lambda: (
                None if review.stale(req) else service.frame_scores(image.source, image.n_frames)
            ),
            lambda scores: scores is not None and done(scores),
            lambda err: self._analysis_failed(req, err),
        )

    def show_frame(self, frame: int) -> None:
        """Shows another frame of the current cine loop (analysed unless it is playing)."""
        review = self.review
        if review.current is None or review.image is None or review.image.n_frames <= 1:
            return
        try:
            image = review.open_frame(frame)
        except ImageLoadError as err:
            self.frame_bar.set_playing(False)
            self.show_message("Frame not shown", str(err))
            return
        self.frame_bar.set_frame(frame)
        if self.frame_bar.playing:
            self.show_image(image, analyse=False)
            return
        self._present(image)

    def _playing_changed(self, playing: bool) -> None:
        review = self.review
        if not playing and review.image is not None and review.finding is None:
            self._present(review.image)  # analyse the frame it stopped on
