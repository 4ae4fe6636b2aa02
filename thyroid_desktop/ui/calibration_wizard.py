"""Analysis > Site calibration > Calibrate for this site…: a labelled folder or labels CSV is
validated in the window's worker (progress, Cancel), then the dialog shows the ROC and
reliability plots with their 95 % intervals and the site-validation statement, and Accept fits
a site profile (``core.site.profile.fit_profile``, as ``recalibrate`` does), saves it and hands
it to the window, which makes it the active calibration (everything shown is re-scored).
The run, the figures and the fit are ``core.site``'s; nothing is decided here."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from thyroid_desktop.core.models.shipped import Classifier, Segmenter
from thyroid_desktop.core.site.profile import (
    DEFAULT_TARGET_SENSITIVITY,
    MIN_PER_CLASS,
    ProfileError,
    SiteProfile,
    check_name,
    fit_profile,
    profile_path,
    save_profile,
    unused_name,
)
from thyroid_desktop.core.site.validation import (
    LabelledFolderError,
    Validation,
    ValidationFiles,
    read_labels,
    validation_plots_png,
)
from thyroid_desktop.ui.validation_dialog import ValidationRunner, default_output_dir

GOOD = "color: #1e8449; font-weight: bold;"
WARN = "color: #d35400; font-weight: bold;"


class CalibrationWizard(QDialog):
    """Pick, validate, look, accept. ``run`` is the window's ``run(fn, on_done, on_error)``
    (its one-thread worker: the validation never runs beside another analysis).

    The run always uses the shipped calibration, as ``recalibrate`` does: the figures are what
    the model does here out of the box, and the profile maps the model's own score.

    Signals:
        profileAccepted(object): the :class:`SiteProfile` fitted and saved on Accept; the
            window makes it the active calibration.
    """

    profileAccepted = Signal(object)

    def __init__(
        self,
        run: Callable,
        classifier: Classifier,
        segmenter: Segmenter | None,
        parent: QWidget | None = None,
        start_folder: str = "",
        out_dir: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Thyroid Review — calibrate for this site")
        self._run = run
        self._classifier = classifier
        self._segmenter = segmenter
        self._start_folder = start_folder
        self._out_dir = out_dir or default_output_dir()
        self.runner = ValidationRunner(run, self)
        self.runner.finished.connect(self._finished)
        self.runner.failed.connect(self._failed)
        #: The last finished (or cancelled) run and its PDF/JSON; the profile accepted.
        self.validation: Validation | None = None
        self.files: ValidationFiles | None = None
        self.profile: SiteProfile | None = None

        intro = QLabel(
            "Choose a folder of your own labelled cases (labels.csv with the columns "
            "file,label and, ideally, case) or such a CSV. Every image is analysed as the "
            "window analyses it, under the shipped calibration. At least "
            f"{MIN_PER_CLASS} benign and {MIN_PER_CLASS} malignant images are needed for a "
            "profile, and 50 cases of each for it to count as a validation at this site."
        )
        intro.setWordWrap(True)
        self.source = QLineEdit()
        self.source.setPlaceholderText("labelled folder or labels CSV")
        self.source.returnPressed.connect(lambda: self.start(Path(self.source.text())))
        folder_button = QPushButton("Folder…")
        folder_button.clicked.connect(self.choose_folder)
        csv_button = QPushButton("CSV…")
        csv_button.clicked.connect(self.choose_csv)
        self.validate_button = QPushButton("Validate")
        self.validate_button.clicked.connect(lambda: self.start(Path(self.source.text())))
        pick = QHBoxLayout()
        for w in (self.source, folder_button, csv_button, self.validate_button):
            pick.addWidget(w)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.statement = QLabel("")
        self.statement.setWordWrap(True)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.plots = QLabel("")
        self.plots.setAlignment(Qt.AlignmentFlag.AlignCenter)
        results = QWidget()
        results_layout = QVBoxLayout(results)
        for w in (self.statement, self.plots, self.summary):
            results_layout.addWidget(w)
        results_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(results)
        self.name = QLineEdit(unused_name(f"site-{dt.date.today():%Y%m%d}"))
        self.sensitivity = QDoubleSpinBox()
        self.sensitivity.setRange(0.50, 0.99)
        self.sensitivity.setSingleStep(0.05)
        self.sensitivity.setValue(DEFAULT_TARGET_SENSITIVITY)
        self.force = QCheckBox("Fit even when the AUROC's 95 % interval reaches 0.5")
        self.force.setToolTip(
            "Then nothing shows that the model ranks this site's nodules; a profile would map "
            "every nodule to about the prevalence."
        )
        form = QFormLayout()
        form.addRow("Profile name", self.name)
        form.addRow("Target sensitivity", self.sensitivity)
        form.addRow(self.force)
        self.accept_button = QPushButton(
            "Accept: fit the profile and use it unless it scores worse"
        )
        self.accept_button.setEnabled(False)
        self.accept_button.clicked.connect(self.accept_profile)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.accept_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(pick)
        layout.addWidget(self.status)
        layout.addWidget(scroll, 1)
        layout.addLayout(form)
        layout.addLayout(buttons)
        self.resize(980, 860)

    # -- choosing and running ---------------------------------------------------------------
    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Labelled folder (labels.csv: file,label,case)", self._start_folder
        )
        if path:
            self.start(Path(path))

    def choose_csv(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Labels CSV (file,label,case)", self._start_folder, "CSV (*.csv);;All files (*)"
        )
        if path:
            self.start(Path(path))

    @property
    def running(self) -> bool:
        return self.runner.running

    def start(self, path: Path) -> bool:
        """Reads the labels and starts the run; False (and why, in the dialog) when the
        labels cannot be used or a run is going on."""
        if self.running:
            return False
        self.source.setText(str(path))
        try:
            folder = read_labels(path)
        except LabelledFolderError as err:
            self._say(str(err), WARN)
            return False
        self.validation = self.files = None
        self.accept_button.setEnabled(False)
        for label in (self.statement, self.summary, self.plots):
            label.clear()
        malignant = sum(i.label for i in folder.images)
        self._say(
            f"Validating {len(folder.images)} labelled images ({len(folder.images) - malignant} "
            f"benign, {malignant} malignant; cases from {folder.case_source}) in {folder.root}…"
        )
        shipped = dataclasses.replace(self._classifier, profile=None)  # as recalibrate does
        self.validate_button.setEnabled(False)
        return self.runner.start(folder, shipped, self._segmenter, self._out_dir)

    def cancel(self) -> None:
        """Stops the run after the current image (its figures cover the images done)."""
        self.runner.cancel()

    def _finished(self, validation: Validation, files: ValidationFiles) -> None:
        self.validation, self.files = validation, files
        self.validate_button.setEnabled(True)
        site = validation.site_validation
        self.statement.setText(f"Site validation: {site.statement()}")
        self.statement.setStyleSheet(GOOD if site.counts else WARN)
        self.summary.setText(
            "\n".join(validation.summary_lines())
            + f"\n\nReport (PDF): {files.pdf}\nPer-image results (JSON): {files.json}"
        )
        if validation.metrics is not None:
            self.plots.setText("Drawing the plots…")
            self._run(
                lambda: validation_plots_png(validation),
                self._show_plots,
                lambda err: self.plots.setText(f"The plots could not be drawn: {err}"),
            )
        why_not = self.accept_blocker()
        self.accept_button.setEnabled(not why_not)
        if why_not:
            self._say(f"No profile can be fitted from this run: {why_not}.", WARN)
        else:
            self._say(
                "Check the figures, then Accept to fit a site profile on these cases and make "
                "it the calibration in use."
            )

    def _failed(self, err: Exception) -> None:
        self.validate_button.setEnabled(True)
        self._say(f"Validation not done: {err}", WARN)

    def _show_plots(self, png: bytes) -> None:
        pixmap = QPixmap()
        pixmap.loadFromData(png, "PNG")
        self.plots.setPixmap(pixmap)

    def accept_blocker(self) -> str:
        """Why Accept is off for the last run ("" when a fit may be tried)."""
        v = self.validation
        if v is None:
            return "nothing validated yet"
        if v.cancelled:
            return "the run was cancelled; run it to the end"
        if v.metrics is None:
            return v.metrics_error
        return ""

    # -- accepting --------------------------------------------------------------------------
    def accept_profile(self) -> bool:
        """Fits the profile in the worker, saves it and hands it to the window; False (and
        why, in the dialog) when the name is unusable or nothing can be fitted."""
        validation = self.validation
        if validation is None or self.accept_blocker():
            return False
        name = self.name.text().strip()
        try:
            check_name(name)
            if profile_path(name).exists():
                raise ProfileError(f"a site profile named {name!r} exists already: choose another")
        except ProfileError as err:
            self._say(str(err), WARN)
            return False
        target, force = self.sensitivity.value(), self.force.isChecked()
        self.accept_button.setEnabled(False)
        self._say(f"Fitting site profile {name!r}…")

        def fit() -> SiteProfile:
            profile = fit_profile(validation, target, name, force=force)
            save_profile(profile)
            return profile

        self._run(fit, self._saved, self._not_fitted)
        return True

    def _saved(self, profile: SiteProfile) -> None:
        self.profile = profile
        figures = profile.cv_text()
        if profile.worse_than_shipped:  # saved, not put in use: the clinician decides
            self._say(
                f"Site profile {profile.name!r} saved but NOT put in use: "
                f"{profile.worse_text()}. "
                "Choose it in Analysis > Site calibration only if you want it anyway.",
                WARN,
            )
            return
        self._say(
            f"Site profile {profile.name!r} saved and now in use: threshold "
            f"{profile.threshold:.3f}; estimates under it are {profile.validation_text()}"
            + (f"; {figures}" if figures else "")
            + ".",
            GOOD if profile.validated else WARN,
        )
        self.profileAccepted.emit(profile)

    def _not_fitted(self, err: Exception) -> None:
        self.accept_button.setEnabled(not self.accept_blocker())
        self._say(f"No profile fitted: {err}", WARN)

    def _say(self, text: str, style: str = "") -> None:
        self.status.setText(text)
        self.status.setStyleSheet(style)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.runner.cancel()
        super().closeEvent(event)
