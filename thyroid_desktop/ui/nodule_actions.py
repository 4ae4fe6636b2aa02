"""The window's nodule and cine actions: pick, add, delete and locate nodules, caliper lines, and moving through a cine loop's frames. The state they change lives in core.session."""

from __future__ import annotations

from pathlib import Path

from thyroid_desktop.core.io.images import ImageLoadError, UltrasoundImage, open_image


class NodulesMixin:
    """Mixed into MainWindow (which provides the widgets, the session and the worker)."""

    def _refresh_nodules(self) -> None:
        state = self.session.state
        names = {i.key: Path(i.path).name for i in state.images}
        self.nodules.show_nodules(list(state.nodules), self.nodule_id, names)
        self.view.set_other_nodules([(n.id, n.box) for n in self._others_shown()])
        self._show_candidates()  # a candidate marked as a nodule is drawn as that nodule

    def start_new_nodule(self) -> None:
        """The next box drawn on an image is a new nodule (N2, N3, ...)."""
        if not self._in_session():
            self.show_message("No image", "Open an image first, then add a nodule on it.")
            return
        self._adding = True
        self.panel.show_state("New nodule: draw its box on the image.")

    def delete_nodule(self) -> None:
        nodule = self._nodule()
        if nodule is None:
            return
        self.session.delete_nodule(nodule.id)
        left = self.session.state.nodules_on(nodule.image)
        self.nodule_id = left[0].id if left else None
        self._show_session_state()
        self._refresh_nodules()

    def pick_nodule(self, nodule_id: str) -> None:
        """Shows a nodule: its image, its frame and its box (analysed)."""
        nodule = self.session.state.nodule(nodule_id)
        if nodule is None:
            return
        self.nodule_id = nodule_id
        self._adding = False
        row = next((i for i, e in enumerate(self.entries) if e.sha256 == nodule.image), None)
        if row is None:
            self.show_message("Image not open", f"The image of {nodule_id} is not in the list.")
            return
        self.session.set_frame(nodule.image, nodule.frame)
        if row != self.current or self.image is None:
            self.select(row)
        elif self.image.frame_index != nodule.frame:
            self.show_frame(nodule.frame)
        else:
            self.tirads.set_choices(nodule.tirads)
            self._present(self.image)
        self._refresh_nodules()

    def _location_changed(self, lobe, pole) -> None:
        nodule = self._nodule()
        if nodule is not None:
            self.session.set_location(nodule.id, lobe, pole)

    def _needs_best_frame(self, image: UltrasoundImage | None = None) -> bool:
        image = image or self.image
        return image is not None and image.sha256 not in self.frame_scores

    def _find_best_frame(self) -> None:
        """Scores every frame with the detector in the worker, then shows the best one
        (unless the user moved to another frame meanwhile)."""
        if self.service is None or self.image is None or self.image.source is None:
            self._pending = self.image is not None
            self.panel.show_state("Loading model…")
            return
        image, service = self.image, self.service
        self.panel.show_state(f"Looking for the best of {image.n_frames} frames…")
        req = self._new_request()

        def done(scores) -> None:
            self.frame_scores[image.sha256] = scores.scores
            if self.image is None or self.image.sha256 != image.sha256:
                return
            self.frame_bar.set_scores(scores.scores)
            if self._stale(req):
                return  # the user moved to another frame: leave them there
            self._awaiting = False
            self.frame_bar.set_frame(scores.best)
            self.show_frame(scores.best)

        self._run(
            lambda: (
                None if self._stale(req) else service.frame_scores(image.source, image.n_frames)
            ),
            lambda scores: scores is not None and done(scores),
            lambda err: self._analysis_failed(req, err),
        )

    def show_frame(self, frame: int) -> None:
        """Shows another frame of the current cine loop (analysed unless it is playing)."""
        if self.current is None or self.image is None or self.image.n_frames <= 1:
            return
        entry = self.entries[self.current]
        try:
            image = open_image(entry.path, frame=frame)
        except ImageLoadError as err:
            self.frame_bar.set_playing(False)
            self.show_message("Frame not shown", str(err))
            return
        self.session.set_frame(image.sha256, frame)
        self.frame_bar.set_frame(frame)
        if self.frame_bar.playing:
            self.show_image(image, analyse=False)
            return
        self._present(image)

    def _playing_changed(self, playing: bool) -> None:
        if not playing and self.image is not None and self.finding is None:
            self._present(self.image)  # analyse the frame it stopped on
