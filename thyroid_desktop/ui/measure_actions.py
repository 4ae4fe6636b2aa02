"""Sizes: the box's extent, caliper lines and the user's scale calibration."""

from __future__ import annotations

import math

from PySide6.QtWidgets import (
    QInputDialog,
    QMessageBox,
)

from thyroid_desktop.core.clinical.measure import finding_size


class MeasureMixin:
    """Mixed into MainWindow (which provides the widgets, the session and the worker)."""

    def measurement(self):
        """The shown nodule's size (``finding_size``, as the CSV and the PDF give it): its
        calipers, else the segmenter's mask, else the box; mm from DICOM or the user's
        scale, else pixels. None before an analysis."""
        review = self.review
        if review.finding is None or review.image is None:
            return None
        nodule = review.nodule()
        calipers = nodule.calipers_px if nodule is not None else ()
        return finding_size(review.finding, review.image.scale, review.user_mm_per_px, calipers)

    def _show_size(self) -> None:
        size = self.measurement()
        self.panel.show_measurement(size.text() if size else "")
        self.tirads.set_size(size.max_diameter_mm if size else None)

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

    def _line_drawn(self, dx_px: float, dy_px: float) -> None:
        if self._line_purpose == "caliper":
            self._line_purpose = "scale"
            self.view.hide_line()
            nodule = self.review.nodule()
            if nodule is not None:
                self.session.add_caliper(nodule.id, dx_px, dy_px)
                self._show_size()
            return
        length_px = math.hypot(dx_px, dy_px)
        mm, ok = QInputDialog.getDouble(
            self,
            "Calibrate scale",
            f"The line is {length_px:.1f} px long. Its length in mm:",
            10.0,
            0.01,
            1000.0,
            2,
        )
        self.view.hide_line()
        if ok:
            self.set_user_scale(mm / length_px)

    def set_user_scale(self, mm_per_px: float | None) -> None:
        """The user's scale for the current image (None removes it); sizes update at once."""
        self.review.set_user_scale(mm_per_px)
        self._show_size()
        self.statusBar().showMessage(
            f"User scale: {mm_per_px:.4f} mm per pixel" if mm_per_px else "User scale removed",
            8000,
        )

    def measure_nodule(self) -> None:
        """Next left-drag draws a caliper line across the shown nodule (up to three)."""
        if self.review.nodule() is None:
            self.show_message("No nodule", "Analyse or draw a nodule's box first.")
            return
        self._line_purpose = "caliper"
        self.view.start_measuring()
        self.panel.show_state(
            "Measure: drag across the nodule (up to three diameters; the longest sets the "
            "TI-RADS size). Esc cancels."
        )

    def clear_calipers(self) -> None:
        nodule = self.review.nodule()
        if nodule is not None and nodule.calipers_px:
            self.session.clear_calipers(nodule.id)
            self._show_size()
