"""Analysis > Site calibration: "Shipped calibration" and the saved site profiles, the one
in use checked, and "Calibrate for this site…" (the wizard). Lists what ``core.site`` says;
choosing one is the window's job."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QActionGroup
from PySide6.QtWidgets import QMenu

from thyroid_desktop.core.models.shipped import Classifier
from thyroid_desktop.core.site.profile import incompatibility, list_profiles, model_sha256

SHIPPED_TEXT = "Shipped calibration"
CALIBRATE_TEXT = "Calibrate for this site…"


class CalibrationMenu(QMenu):
    """Rebuilt each time it opens (profiles saved by the CLI appear at once).

    Signals:
        chosen(object): a profile name, or None for the shipped calibration.
        calibrateRequested(): the user asks for the calibration wizard.
    """

    chosen = Signal(object)
    calibrateRequested = Signal()

    def __init__(self, title: str, parent=None) -> None:
        super().__init__(title, parent)
        self.classifier: Classifier | None = None
        self.setToolTipsVisible(True)
        self.aboutToShow.connect(self.rebuild)
        self.rebuild()

    def rebuild(self) -> None:
        """Profiles fitted for another model are listed, greyed out, with the reason."""
        self.clear()
        group = QActionGroup(self)
        clf = self.classifier
        current = clf.profile.name if clf is not None and clf.profile is not None else None
        shipped = self.addAction(SHIPPED_TEXT)
        shipped.setCheckable(True)
        shipped.setChecked(current is None)
        shipped.setEnabled(clf is not None)
        shipped.triggered.connect(lambda _=False: self.chosen.emit(None))
        group.addAction(shipped)
        for profile in list_profiles():
            why = incompatibility(profile, clf.card.id, model_sha256(clf)) if clf else ""
            act = self.addAction(
                f"{profile.name} (threshold {profile.threshold:.2f}, {profile.n_cases} cases)"
                + (" — other model" if why else "")
                + (" — worse than shipped" if profile.worse_than_shipped and not why else "")
            )
            act.setCheckable(True)
            act.setChecked(profile.name == current)
            act.setEnabled(clf is not None and not why)
            act.setToolTip(why or profile.summary())
            act.triggered.connect(lambda _=False, n=profile.name: self.chosen.emit(n))
            group.addAction(act)
        self.addSeparator()
        calibrate = self.addAction(CALIBRATE_TEXT)
        calibrate.setEnabled(clf is not None)
        calibrate.setToolTip(
            "Validate on your labelled cases, see the figures, and fit a site profile "
            "(headless: python -m thyroid_desktop recalibrate FOLDER --name …)"
        )
        calibrate.triggered.connect(lambda _=False: self.calibrateRequested.emit())
