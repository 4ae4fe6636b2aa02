"""Sizes: the box's extent, caliper lines that stay (drawn, moved, deleted), a second view of
a nodule (transverse / longitudinal) and the user's scale calibration. The rules are in
``core.review.reading.Review`` and the one size rule in ``core.clinical.measure``."""

from __future__ import annotations

import math

from PySide6.QtWidgets import (
    QInputDialog,
    QMessageBox,
)

from thyroid_desktop.core.clinical.measure import Plane


class MeasureMixin:
    """Mixed into MainWindow (which provides the widgets, the session and the worker)."""

    def _build_measure_menu(self, analysis) -> None:
        """The measuring actions of the Analysis menu."""
        self._action(analysis, "Calibrate &scale (draw a known length)…", self.calibrate_scale, "K")
        self._action(analysis, "C&lear user scale", lambda: self.set_user_scale(None))
        self._action(analysis, "&Measure nodule (caliper line)…", self.measure_nodule, "M")
        self._action(analysis, "Delete selected caliper", self.delete_selected_caliper)
        self._action(analysis, "Clear calipe&rs", self.clear_calipers)
        self._action(
            analysis,
            "Link this frame to nodule… as &longitudinal view",
            lambda: self.link_view_dialog(Plane.LONGITUDINAL),
        )
        self._action(
            analysis,
            "Link this frame to nodule… as &transverse view",
            lambda: self.link_view_dialog(Plane.TRANSVERSE),
        )
        self.view.caliperMoved.connect(self._caliper_moved)
        self.view.caliperDeleteRequested.connect(self.delete_caliper)

    def measurement(self):
        """The size the panel shows (``Review.size_shown``, as the CSV and the PDF give it):
        the nodule's calipers, else the segmenter's mask, else the box, with its three
        diameters and volume when it has two views; mm from DICOM or the user's scale, else
        pixels. None before an analysis."""
        return self.review.size_shown()

    def _show_size(self) -> None:
        size = self.measurement()
        self.panel.show_measurement(size.text() if size else "", self.review.caliper_check())
        self.tirads.set_size(size.max_diameter_mm if size else None)
        self._show_calipers()

    def _show_calipers(self) -> None:
        """The caliper lines and linked views on the frame on screen, as the session holds
        them, and the shown nodule's views in the nodule panel."""
        review = self.review
        self.view.set_calipers(review.calipers_shown())
        self.view.set_views([(f"{i} {v.plane}", v.box) for i, v in review.views_shown()])
        self.nodules.show_views(review.measured_nodule(), self._image_names())

    def _image_names(self) -> dict[str, str]:
        from pathlib import Path

        return {i.key: Path(i.path).name for i in self.session.state.images}

    def calibrate_scale(self) -> None:
        """Next left-drag draws a line along a known distance; its length in mm is asked."""
        if self.review.image is None:
            return
        if self.review.image.scale.calibrated:
            self.show_message(
                "Already calibrated",
                "This DICOM image carries its own pixel spacing; sizes use it.",
                QMessageBox.Icon.Information,
            )
            return
        self._line_purpose = "scale"
        self.view.start_measuring()
        self.panel.show_state(
            "Calibrate: drag along a known distance (e.g. between two depth-scale marks). "
            "Esc cancels."
        )

    def _line_drawn(self, start, end) -> None:
        self.view.hide_line()
        if self._line_purpose == "caliper":
            self._line_purpose = "scale"
            number = self.review.add_caliper(start, end)
            if number is not None:
                self._show_size()
                done = (
                    f"Caliper {number} drawn: drag an end to move it; select it and press "
                    "Delete to remove it."
                )
                self.statusBar().showMessage(done, 8000)
                self.panel.show_state(done)  # not the "Measure: drag…" instruction any more
            return
        length_px = math.hypot(end[0] - start[0], end[1] - start[1])
        mm, ok = QInputDialog.getDouble(
            self,
            "Calibrate scale",
            f"The line is {length_px:.1f} px long. Its length in mm:",
            10.0,
            0.01,
            1000.0,
            2,
        )
        if ok:
            self.set_user_scale(mm / length_px)

    def set_user_scale(self, mm_per_px: float | None) -> None:
        """The user's scale for the current image (None removes it); sizes update at once."""
        self.review.set_user_scale(mm_per_px)
        self._show_size()
        done = f"User scale: {mm_per_px:.4f} mm per pixel" if mm_per_px else "User scale removed"
        self.statusBar().showMessage(done, 8000)
        self.panel.show_state(done)  # not the "Calibrate: drag…" instruction any more

    def measure_nodule(self) -> None:
        """Next left-drag draws a caliper line across the nodule shown (three per view)."""
        if self.review.caliper_target() is None:
            self.show_message(
                "No nodule",
                "Accept the proposal (Enter), click on the nodule or draw its box first.",
            )
            return
        self._line_purpose = "caliper"
        self.view.start_measuring()
        self.panel.show_state(
            "Measure: drag across the nodule (up to three lines per view; the longest sets "
            "the TI-RADS size). Esc cancels."
        )

    def _caliper_moved(self, nodule_id: str, number: int, start, end) -> None:
        self.review.move_caliper(nodule_id, number, start, end)
        self._show_size()

    def delete_caliper(self, nodule_id: str, number: int) -> None:
        """Deletes caliper ``number`` of ``nodule_id`` (one undo step)."""
        self.session.delete_caliper(nodule_id, number)
        self.view.select_caliper(None)
        self._show_size()
        self.statusBar().showMessage(f"Caliper {number} of {nodule_id} deleted (Ctrl+Z).", 5000)

    def delete_selected_caliper(self) -> None:
        selected = self.view.selected_caliper()
        if selected is None:
            self.statusBar().showMessage("Click a caliper line first to select it.", 5000)
            return
        self.delete_caliper(*selected)

    def clear_calipers(self) -> None:
        nodule = self.review.measured_nodule()
        if nodule is not None and nodule.numbered_calipers():
            self.session.clear_calipers(nodule.id)
            self._show_size()

    def link_view_dialog(self, plane: Plane) -> None:
        """Asks which nodule the frame on screen shows, then links it as that nodule's
        view in ``plane``."""
        review = self.review
        here = review.image.sha256 if review.image is not None else None
        frame = review.image.frame_index if review.image is not None else None
        choices = [n.id for n in self.session.state.nodules if (n.image, n.frame) != (here, frame)]
        if not choices:
            self.show_message(
                "No nodule to link", "Mark the nodule on its other image or frame first."
            )
            return
        nodule_id, ok = QInputDialog.getItem(
            self, f"Link as {plane} view", "This frame shows nodule:", choices, 0, False
        )
        if ok:
            self.link_view(nodule_id, plane)

    def link_view(self, nodule_id: str, plane: Plane) -> bool:
        """Links the frame on screen, with its box, to ``nodule_id`` as its ``plane`` view."""
        problem = self.review.link_view(nodule_id, Plane(plane))
        if problem:
            self.show_message("Not linked", problem)
            return False
        self._refresh_nodules()
        self._show_box()  # no longer a proposal: no Accept / Reject
        self._show_size()
        own = self.session.state.nodule(nodule_id)
        shown = own.estimate.shown()[0] if own.estimate is not None else ""
        recorded = f" ({shown})" if shown else ""  # as the panel prints it
        self.panel.show_state(
            f"This frame is {nodule_id}'s {plane} view. The estimate and AI suggestions "
            f"below are this view's box's; {nodule_id}'s own estimate{recorded} and TI-RADS "
            "choices are from its own frame."
        )
        self.say_about_image(
            f"This frame is now {nodule_id}'s {plane} view: its three diameters and volume "
            "are in the panel.",
            8000,
        )
        return True
