"""The main window: open an image, draw the nodule box, see the model's estimate."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QThreadPool, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from thyroid_desktop.core.audit import AuditLog, record_for
from thyroid_desktop.core.gradcam import heatmap_rgba
from thyroid_desktop.core.images import ImageLoadError, UltrasoundImage, open_image
from thyroid_desktop.core.inference import Finding, auto_predict, predict
from thyroid_desktop.core.measure import measure
from thyroid_desktop.core.models import (
    Classifier,
    ModelError,
    Segmenter,
    load_classifier,
    load_segmenter,
)
from thyroid_desktop.core.report import StudyInfo, write_report
from thyroid_desktop.core.roi import ROI
from thyroid_desktop.core.site import (
    ProfileError,
    activate,
    calibration_label,
    deactivate,
    model_sha256,
    same_calibration,
    use_active_profile,
)
from thyroid_desktop.core.study import StudyEntry, expand_paths, write_csv
from thyroid_desktop.ui.batch import BatchRunner, analyse_file
from thyroid_desktop.ui.calibration_menu import CalibrationMenu
from thyroid_desktop.ui.image_view import ImageView
from thyroid_desktop.ui.report_dialog import ReportDialog
from thyroid_desktop.ui.result_panel import ResultPanel
from thyroid_desktop.ui.study_list import StudyList, make_thumbnail
from thyroid_desktop.ui.tirads_panel import TiradsPanel
from thyroid_desktop.ui.validation_dialog import ValidationRunner, show_summary
from thyroid_desktop.ui.workers import Task

log = logging.getLogger(__name__)

FILE_FILTER = (
    "Ultrasound images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.dcm *.dicom);;All files (*)"
)


MAX_RECENT = 10


class MainWindow(QMainWindow):
    """Holds the study list, the current image, box and finding; all analysis runs in a
    one-thread pool so the GUI never blocks and the model is never called twice at once.

    Signals:
        findingShown(Finding): a result is on screen (used by the launch benchmark).
        batchFinished(int): a batch ended after analysing this many images.
    """

    findingShown = Signal(object)
    batchFinished = Signal(int)

    def __init__(self, settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings("ThyroidReview", "ThyroidReview")
        self._actions: list[QAction] = []
        self.setWindowTitle("Thyroid Review")
        self.setAcceptDrops(True)
        self.resize(1400, 900)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._tasks: set[Task] = set()
        self.classifier: Classifier | None = None
        self.segmenter: Segmenter | None = None
        self.entries: list[StudyEntry] = []
        self.current: int | None = None  # row of the shown image in the study list
        self.image: UltrasoundImage | None = None
        self.roi: ROI | None = None
        self.finding: Finding | None = None
        self.candidates: list = []  # the last auto-detection's candidates (core.detect)
        self._roi_source = "manual"
        self.user_mm_per_px: float | None = None
        self._pending = False
        self._closed = False
        #: Number of the latest analysis asked for the shown image; results of older ones,
        #: or of another image, are dropped so the box and the numbers always match.
        self._request = 0
        self._awaiting = False
        self.last_message: QMessageBox | None = None
        self.audit = AuditLog()

        self.study_list = StudyList()
        self.view = ImageView()
        self.panel = ResultPanel()
        self.tirads = TiradsPanel()
        column = QWidget()
        column_layout = QVBoxLayout(column)
        column_layout.addWidget(self.panel)
        column_layout.addWidget(self.tirads)
        column_layout.addStretch(1)
        side = QScrollArea()
        side.setWidgetResizable(True)
        side.setWidget(column)
        side.setMinimumWidth(380)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.study_list)
        split.addWidget(self.view)
        split.addWidget(side)
        split.setStretchFactor(1, 4)
        split.setSizes([230, 800, 380])
        self.setCentralWidget(split)
        self.device_label = QLabel("Device: –")
        self.calibration_status = QLabel("Calibration: –")
        self.validation = ValidationRunner(self._run, self)
        self.validation.finished.connect(self._validation_done)
        self.validation.failed.connect(
            lambda err: self.show_message("Validation not done", str(err))
        )
        self.last_validation = None  # (Validation, ValidationFiles) of the last finished run
        self.batch = BatchRunner(self._run, self)
        self.batch.stepDone.connect(self._batch_step)
        self.batch.finished.connect(self._batch_end)
        self.batch.cancel_button.clicked.connect(self.cancel_batch)
        self.statusBar().addPermanentWidget(self.batch.progress)
        self.statusBar().addPermanentWidget(self.batch.cancel_button)
        self.statusBar().addPermanentWidget(self.calibration_status)
        self.statusBar().addPermanentWidget(self.device_label)
        self.view.roiDrawn.connect(self.set_roi)
        self.view.candidatePicked.connect(self.pick_candidate)
        self.view.lineDrawn.connect(self._line_drawn)
        self.view.stepRequested.connect(self.step)
        self.study_list.currentRowChanged.connect(self._row_changed)
        self.tirads.changed.connect(self._tirads_changed)
        self.panel.overlayToggled.connect(self.view.set_overlay_visible)
        self.panel.opacityChanged.connect(self.view.set_overlay_opacity)
        self.view.set_overlay_opacity(0.7)
        self._split = split
        self._build_menus()
        self._restore_layout()

    # -- menus -----------------------------------------------------------------------------
    def _action(self, menu, text: str, slot, shortcut=None, checkable=False) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.setCheckable(checkable)
        act.triggered.connect(slot)
        menu.addAction(act)
        self._actions.append(act)
        return act

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open images…", self.open_dialog, QKeySequence.StandardKey.Open)
        self._action(file_menu, "Open &folder…", self.open_folder_dialog, "Ctrl+Shift+O")
        self.recent_menu = file_menu.addMenu("Open &recent")
        self._rebuild_recent()
        file_menu.addSeparator()
        self._action(file_menu, "&Export PDF report…", self.export_dialog, "Ctrl+E")
        self._action(
            file_menu, "Export study list as &CSV…", self.export_csv_dialog, "Ctrl+Shift+E"
        )
        file_menu.addSeparator()
        self._action(file_menu, "&Validate on local cases…", self.validate_dialog)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        view_menu = self.menuBar().addMenu("&View")
        self._action(view_menu, "&Fit to window", self.view.fit, "F")
        self._action(view_menu, "Actual size (&1:1)", self.view.actual_size, "1")
        self._action(
            view_menu, "Zoom &in", lambda: self.view.zoom(1.25), QKeySequence.StandardKey.ZoomIn
        )
        self._action(
            view_menu, "Zoom &out", lambda: self.view.zoom(0.8), QKeySequence.StandardKey.ZoomOut
        )
        self._action(view_menu, "Toggle &Grad-CAM", self.panel.overlay.toggle, "G")
        self.side_action = self._action(
            view_menu, "Grad-CAM &side by side", self.view.set_side_by_side, "S", checkable=True
        )
        self._action(view_menu, "&Reset window/level", self.view.reset_window_level, "R")
        view_menu.addSeparator()
        self._action(view_menu, "&Next image", lambda: self.step(1), "PgDown")
        self._action(view_menu, "&Previous image", lambda: self.step(-1), "PgUp")
        analysis = self.menuBar().addMenu("&Analysis")
        self._action(analysis, "&Auto-detect nodule", self.auto_detect, "A")
        self._action(analysis, "&Next candidate", self.next_candidate, "N")
        self._action(analysis, "Analyse &whole scan area", self.analyse_whole_image, "W")
        analysis.addSeparator()
        self._action(analysis, "Analyse all &images in the list", self.analyse_all, "Ctrl+B")
        self._action(analysis, "&Cancel batch", self.cancel_batch, "Ctrl+Shift+B")
        analysis.addSeparator()
        self._action(analysis, "Calibrate &scale (draw a known length)…", self.calibrate_scale, "K")
        self._action(analysis, "C&lear user scale", lambda: self.set_user_scale(None))
        analysis.addSeparator()
        self.calibration_menu = CalibrationMenu("Site &calibration", self)
        self.calibration_menu.chosen.connect(self.use_calibration)
        analysis.addMenu(self.calibration_menu)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", self.show_shortcuts, "F1")

    # -- settings, recent files, help ------------------------------------------------------
    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        split = self.settings.value("window/split3")
        if split is not None:
            self._split.restoreState(split)

    def recent_files(self) -> list[str]:
        value = self.settings.value("files/recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _remember(self, path: Path) -> None:
        recent = [str(path)] + [p for p in self.recent_files() if p != str(path)]
        self.settings.setValue("files/recent", recent[:MAX_RECENT])
        self.settings.setValue("files/last_folder", str(path.parent))
        self._rebuild_recent()

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        for i, name in enumerate(self.recent_files()):
            act = self.recent_menu.addAction(f"&{(i + 1) % 10} {name}")
            act.triggered.connect(lambda _=False, p=name: self.open_paths([Path(p)]))
        self.recent_menu.setEnabled(bool(self.recent_files()))

    def shortcuts_text(self) -> str:
        """Every action with a shortcut, from the menus themselves (one source of truth)."""
        rows = [
            f"{a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)}\t{a.text().replace('&', '')}"
            for a in self._actions
            if not a.shortcut().isEmpty()
        ]
        extra = [
            "Left-drag on the image\tdraw a new nodule box",
            "Drag inside / on the edge of the box\tmove / resize it",
            "Click in a dashed box\tanalyse that detected candidate",
            "Right-drag\twindow/level (brightness, contrast)",
            "Middle-drag\tpan",
            "Wheel\tzoom",
            "Up / Down\tprevious / next image in the study list",
        ]
        return "\n".join(rows + extra)

    def show_shortcuts(self) -> None:
        box = QMessageBox(
            QMessageBox.Icon.Information,
            "Keyboard shortcuts",
            self.shortcuts_text(),
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # -- model -----------------------------------------------------------------------------
    def start_model_loading(self, directory: Path | None = None) -> None:
        self.panel.show_state("Loading model…")
        self._run(
            lambda: (load_classifier(directory), load_segmenter(directory)),
            self._model_loaded,
            self._model_failed,
        )

    def _model_loaded(self, models: tuple[Classifier, Segmenter | None]) -> None:
        classifier, self.segmenter = models
        self.classifier = classifier
        card = classifier.card
        chosen = use_active_profile(classifier)
        if chosen.refused:
            self.statusBar().showMessage(f"Calibration: {chosen.message}", 20000)
        self.calibration_menu.classifier = classifier
        self._show_calibration()
        self.panel.set_output_name(card.output_name)
        self.panel.show_state("Model ready. Draw a box around the nodule.")
        self.device_label.setText(f"Device: {classifier.device}")
        if self._pending:
            self.analyse() if self.roi is not None else self.auto_detect()

    def _model_failed(self, err: Exception) -> None:
        message = (
            str(err) if isinstance(err, ModelError) else f"The model could not be loaded: {err}"
        )
        self.show_message("Model unavailable", message, QMessageBox.Icon.Critical)

    # -- study list and images -------------------------------------------------------------
    def open_dialog(self) -> None:
        folder = str(self.settings.value("files/last_folder", ""))
        paths, _ = QFileDialog.getOpenFileNames(self, "Open ultrasound images", folder, FILE_FILTER)
        if paths:
            self.open_paths([Path(p) for p in paths])

    def open_folder_dialog(self) -> None:
        folder = str(self.settings.value("files/last_folder", ""))
        path = QFileDialog.getExistingDirectory(self, "Open a folder of images", folder)
        if path:
            self.open_paths([Path(path)])

    def open_path(self, path: Path) -> bool:
        return self.open_paths([path])

    def open_paths(self, paths) -> bool:
        """Adds files and folders to the study list and shows the first new image that can
        be read. Files that cannot are marked in the list; the current image stays."""
        files = expand_paths(paths)
        if not files:
            self.show_message("Nothing to open", "No image files found there.")
            return False
        known = {e.path: i for i, e in enumerate(self.entries)}
        rows = []
        for f in files:
            if f not in known:
                known[f] = len(self.entries)
                self.entries.append(StudyEntry(f))
                self.study_list.add_entry(self.entries[-1])
            rows.append(known[f])
        for row in rows:
            if self.select(row):
                return True
        bad = self.entries[rows[0]]
        more = f" (and {len(rows) - 1} more)" if len(rows) > 1 else ""
        self.show_message("Cannot open", f"{bad.error}{more}")
        return False

    def _row_changed(self, row: int) -> None:
        """The user moved in the list (click or arrow keys)."""
        if row < 0 or row == self.current:
            return
        if not self.select(row):
            self._show_unreadable(row)

    def step(self, delta: int) -> None:
        """Previous (-1) or next (+1) image of the study list."""
        if not self.entries:
            return
        row = 0 if self.current is None else self.current + delta
        if 0 <= row < len(self.entries):
            self.study_list.setCurrentRow(row)

    def select(self, row: int) -> bool:
        """Reads the entry's file and shows it (with its earlier finding, if any)."""
        entry = self.entries[row]
        try:
            image = open_image(entry.path)
        except ImageLoadError as err:
            entry.status, entry.error = "error", str(err)
            self.study_list.update_entry(row, entry)
            return False
        if entry.sha256 and entry.sha256 != image.sha256:  # the file changed on disk
            entry.finding, entry.user_mm_per_px, entry.tirads = None, None, None
        entry.sha256, entry.spacing_mm = image.sha256, image.spacing_mm
        stale = entry.finding is not None and (
            self.classifier is not None and not same_calibration(entry.finding, self.classifier)
        )
        manual_box = entry.finding.roi if stale and entry.finding.roi_source == "manual" else None
        if stale:  # analysed under another calibration: analyse again, same box
            entry.finding = None
        if entry.finding is None:
            entry.status, entry.error = "not analysed", ""
        self.current = row
        self.study_list.setCurrentRow(row)
        self.study_list.update_entry(row, entry, make_thumbnail(image.pixels))
        self.user_mm_per_px = entry.user_mm_per_px
        self.tirads.set_descriptors(entry.tirads)
        self.show_image(image, roi=manual_box, finding=entry.finding)
        self._remember(entry.path)
        return True

    def _show_unreadable(self, row: int) -> None:
        """A list entry whose file cannot be read is selected: show no image, say why."""
        entry = self.entries[row]
        self.current, self.image, self.roi, self.finding = row, None, None, None
        self._request += 1
        self._awaiting = False
        self.view.clear()
        self.panel.clear()
        self.tirads.set_descriptors(None)
        self.tirads.set_size(None)
        self.panel.show_state(entry.error)
        self.setWindowTitle(f"Thyroid Review — {entry.name} (unreadable)")

    def show_image(
        self, image: UltrasoundImage, roi: ROI | None = None, finding: Finding | None = None
    ) -> None:
        """Shows ``image``; analyses ``roi``, or shows an earlier ``finding``, or auto-detects."""
        if image.source is None:  # the demo or an in-memory image: not in the study list
            self.current, self.user_mm_per_px = None, None
            self.study_list.setCurrentRow(-1)
            self.tirads.set_descriptors(None)
        self.image, self.finding, self.candidates = image, None, []
        self._request += 1  # results still coming for the previous image are dropped
        self._awaiting = False
        self.view.set_image(image.pixels)
        self.panel.clear()
        self.tirads.set_size(None)
        name = image.source.name if image.source else "demo phantom (synthetic)"
        self.setWindowTitle(f"Thyroid Review — {name}")
        if finding is not None:
            self.roi = finding.roi if finding.roi_source != "full" else None
            self.view.set_roi(finding.roi)
            self._show_finding(image, finding)
        elif roi is not None:
            self.set_roi(roi)
        else:
            self.roi = None
            self.auto_detect()

    def set_roi(self, roi: ROI, source: str = "manual") -> None:
        """Analyses ``roi``; ``source`` is "manual" (drawn, moved, resized) or "auto" (a
        detected candidate the user picked)."""
        self.roi, self._roi_source = roi, source
        self.view.set_roi(roi)
        self._show_candidates()
        self.analyse()

    def _show_candidates(self) -> None:
        self.view.set_candidates([c.roi for c in self.candidates if c.roi != self.roi])

    def pick_candidate(self, index: int) -> None:
        """Analyses another detected candidate (a click in its dashed box)."""
        others = [c for c in self.candidates if c.roi != self.roi]
        if 0 <= index < len(others):
            self.set_roi(others[index].roi, "auto")

    def next_candidate(self) -> None:
        """Moves the box to the next detected candidate, in rank order (N)."""
        if not self.candidates:
            self.statusBar().showMessage("No other candidate: press A to auto-detect.", 5000)
            return
        rois = [c.roi for c in self.candidates]
        i = rois.index(self.roi) + 1 if self.roi in rois else 0
        self.set_roi(rois[i % len(rois)], "auto")

    def auto_detect(self) -> None:
        """Lets the segmenter propose the box (best candidate) and analyses it."""
        if not self._ready():
            return
        if self.segmenter is None:
            self.analyse_whole_image()
            return
        image, clf, seg = self.image, self.classifier, self.segmenter
        req = self._new_request()
        self.panel.show_state("Looking for the nodule…")
        self._run(
            lambda: None if self._stale(req) else auto_predict(image, clf, seg),
            lambda r: r is not None and self._auto_done(image, req, *r),
            lambda err: self._analysis_failed(req, err),
        )

    def _new_request(self) -> int:
        self._request += 1
        self._awaiting = True
        return self._request

    def _stale(self, req: int) -> bool:
        """True when a newer analysis (or another image) superseded request ``req``; read
        in the worker too, to skip work nobody will see (e.g. while paging through a study)."""
        return req != self._request

    def _auto_done(self, image: UltrasoundImage, req: int, finding: Finding, detection) -> None:
        if self._stale(req) or image is not self.image:
            return
        n = len(detection.candidates)
        self.roi = finding.roi if finding.roi_source == "auto" else None
        self.candidates = list(detection.candidates)
        self._show_candidates()
        self._analysed(image, req, finding)
        found = (
            f"Auto-detected: {n} candidate{'s' if n != 1 else ''}; the best is boxed"
            + (", the others dashed (click one, or N)" if n > 1 else "")
            + ". Drag the box or its edges to adjust it, or draw a new one."
            if n
            else "No nodule found: the whole scan area was analysed. Draw a box around the nodule."
        )
        reason = "" if finding.in_scope else f"No estimate: {finding.no_estimate_reason}.\n"
        self.panel.show_state(reason + found)

    def analyse_whole_image(self) -> None:
        if self.image is not None:
            self.roi = None
            self.view.set_roi(None)
            self._show_candidates()
            self.analyse()

    def _ready(self) -> bool:
        """True when there is an image and a model; else remembers to analyse once loaded."""
        if self.image is None:
            return False
        self._pending = self.classifier is None
        return not self._pending

    def analyse(self) -> None:
        if not self._ready():
            return
        image, roi, clf = self.image, self.roi, self.classifier
        source = self._roi_source if roi is not None else "full"
        req = self._new_request()
        self.panel.show_state("Analysing…")
        self._run(
            lambda: None if self._stale(req) else predict(image, clf, roi, source),
            lambda f: f is not None and self._analysed(image, req, f),
            lambda err: self._analysis_failed(req, err),
        )

    def _analysed(self, image: UltrasoundImage, req: int, finding: Finding) -> None:
        if self._stale(req) or image is not self.image:
            return  # the user moved on or changed the box; a newer analysis follows
        self._awaiting = False
        self.view.set_roi(finding.roi)
        self._audit("analyse", finding, image.sha256, image.source)
        if self.current is not None:
            entry = self.entries[self.current]
            entry.finding, entry.status = finding, "analysed"
            self.study_list.update_entry(self.current, entry)
        self._show_finding(image, finding)

    def _show_finding(self, image: UltrasoundImage, finding: Finding) -> None:
        self.finding = finding
        self.panel.show_finding(finding)
        self._show_size()
        self.view.set_overlay(heatmap_rgba(finding.heatmap))
        self.panel.show_state(
            f"No estimate: {finding.no_estimate_reason}." if not finding.in_scope else "Done."
        )
        self.statusBar().showMessage(f"Analysed in {finding.timings_ms['total']:.0f} ms", 5000)
        self.device_label.setText(
            f"Device: {finding.device} · {finding.timings_ms['total']:.0f} ms"
        )
        self.findingShown.emit(finding)

    def _analysis_failed(self, req: int, err: Exception) -> None:
        if not self._stale(req):
            self._awaiting = False
            self.panel.show_state(f"Analysis failed: {err}")

    def _tirads_changed(self, descriptors) -> None:
        if self.current is not None and self.image is not None:
            entry = self.entries[self.current]
            entry.tirads = descriptors
            self.study_list.update_entry(self.current, entry)

    # -- scale -----------------------------------------------------------------------------
    def measurement(self):
        """Size of the analysed box: mm from DICOM or the user's scale, else pixels."""
        if self.finding is None or self.image is None:
            return None
        return measure(self.finding.roi, self.image.spacing_mm, self.user_mm_per_px)

    def _show_size(self) -> None:
        size = self.measurement()
        self.panel.show_measurement(size.text() if size else "")
        self.tirads.set_size(size.max_diameter_mm if size else None)

    def calibrate_scale(self) -> None:
        """Next left-drag draws a line along a known distance; its length in mm is asked."""
        if self.image is None:
            return
        if self.image.spacing_mm is not None:
            self.show_message(
                "Already calibrated",
                "This DICOM image carries its own pixel spacing; sizes use it.",
                QMessageBox.Icon.Information,
            )
            return
        self.view.start_measuring()
        self.panel.show_state(
            "Calibrate: drag along a known distance (e.g. between two depth-scale marks). "
            "Esc cancels."
        )

    def _line_drawn(self, length_px: float) -> None:
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
        if mm_per_px is not None and not mm_per_px > 0:
            raise ValueError(f"a scale must be positive, got {mm_per_px}")
        self.user_mm_per_px = mm_per_px
        if self.current is not None:
            self.entries[self.current].user_mm_per_px = mm_per_px
            self.study_list.update_entry(self.current, self.entries[self.current])
        self._show_size()
        self.statusBar().showMessage(
            f"User scale: {mm_per_px:.4f} mm per pixel" if mm_per_px else "User scale removed",
            8000,
        )

    # -- batch -----------------------------------------------------------------------------
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
        clf, seg = self.classifier, self.segmenter
        self.batch.start(rows, lambda row: partial(analyse_file, self.entries[row].path, clf, seg))

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
            sha, spacing, thumb, finding = result
            if entry.finding is None:  # the user may have analysed it meanwhile
                entry.sha256, entry.spacing_mm = sha, spacing
                entry.finding, entry.status, entry.error = finding, "analysed", ""
                self._audit("batch-analyse", finding, sha, entry.path)
                shown = self.image
                if (
                    row == self.current
                    and shown is not None
                    and shown.sha256 == sha
                    and self.finding is None
                    and not self._awaiting  # the user's own request wins
                ):
                    self.roi = finding.roi if finding.roi_source == "auto" else None
                    self.view.set_roi(finding.roi)
                    self._show_finding(shown, finding)
        self.study_list.update_entry(row, entry, thumb)

    def _batch_end(self, done: int, cancelled: bool) -> None:
        self.statusBar().showMessage(
            f"Batch {'cancelled' if cancelled else 'finished'}: {done} image(s) analysed.", 10000
        )
        self.batchFinished.emit(done)

    # -- site calibration and validation on local cases -----------------------------------
    def _show_calibration(self) -> None:
        """Says which calibration is in use: status bar and the model panel."""
        clf = self.classifier
        if clf is None:
            return
        label = calibration_label(clf.profile)
        self.calibration_status.setText(f"Calibration: {label.split(' (')[0]}")
        self.calibration_status.setToolTip(label)
        card = clf.card
        summary = card.performance_text().replace(" - ", ":\n", 1).replace(" | ", "\n")
        self.panel.show_model(card.id, card.version, f"{summary}\nIn use: {label}")

    def use_calibration(self, name: str | None) -> None:
        """Makes the site profile ``name`` (None: the shipped calibration) the active one and
        analyses the current image again with it."""
        clf = self.classifier
        if clf is None:
            self.show_message("Model not ready", "The model is still loading; try again shortly.")
            return
        if self.batch.running or self.validation.running:
            self.show_message("Busy", "Wait for the batch or validation to end, then switch.")
            self.calibration_menu.rebuild()
            return
        try:
            if name is None:
                deactivate()
                profile = None
            else:
                profile = activate(name, clf.card.id, model_sha256(clf))
        except (ProfileError, OSError) as err:
            self.show_message("Calibration not changed", str(err))
            self.calibration_menu.rebuild()
            return

        def switch() -> None:  # in the worker: no analysis sees half a switch
            clf.profile = profile

        self._run(
            switch,
            lambda _: self._calibration_changed(),
            lambda err: self.show_message("Calibration not changed", str(err)),
        )

    def _calibration_changed(self) -> None:
        self._show_calibration()
        self.calibration_menu.rebuild()
        self.statusBar().showMessage(
            f"Now using the {calibration_label(self.classifier.profile)}", 8000
        )
        if self.image is None:
            return
        if self.roi is not None:
            source = self.finding.roi_source if self.finding is not None else self._roi_source
            self.set_roi(self.roi, source)
        elif self.finding is not None:
            self.analyse()  # the whole scan area, as before
        else:
            self.auto_detect()

    def validate_dialog(self) -> None:
        folder = str(self.settings.value("files/last_folder", ""))
        path = QFileDialog.getExistingDirectory(
            self, "Validate on a folder of labelled cases (labels.csv: file,label,case)", folder
        )
        if path:
            self.validate_folder(Path(path))

    def validate_folder(self, folder: Path, out_dir: Path | None = None) -> bool:
        """Validates the model (current calibration) on a labelled folder in the worker."""
        if self.classifier is None:
            self.show_message("Model not ready", "The model is still loading; try again shortly.")
            return False
        if self.batch.running:
            self.show_message("Busy", "Wait for the batch to end, then validate.")
            return False
        return self.validation.start(folder, self.classifier, self.segmenter, out_dir)

    def _validation_done(self, validation, files) -> None:
        self.last_validation = (validation, files)
        self.statusBar().showMessage(f"Validation report written to {files.pdf}", 15000)
        self.last_message = show_summary(self, validation, files)

    # -- report and records ----------------------------------------------------------------
    def _audit(self, action: str, finding: Finding, sha256: str, file: Path | None) -> None:
        try:
            self.audit.append(
                record_for(
                    action,
                    sha256,
                    finding.roi,
                    roi_source=finding.roi_source,
                    model_id=finding.model_id,
                    probability=finding.probability,
                    file=str(file) if file else None,
                )
            )
        except OSError as err:  # the analysis stands; say the log could not be written
            self.statusBar().showMessage(f"Audit log not written: {err}", 15000)

    def export_dialog(self) -> None:
        if self.finding is None:
            self.show_message("Nothing to report", "Analyse an image before exporting a report.")
            return
        initial = StudyInfo.from_metadata(
            self.image.metadata, operator=str(self.settings.value("report/operator", ""))
        )
        dialog = ReportDialog(initial, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        study = dialog.study()
        self.settings.setValue("report/operator", study.operator)
        stem = self.image.source.stem if self.image.source else "demo"
        folder = Path(str(self.settings.value("files/last_folder", "")) or ".")
        path, _ = QFileDialog.getSaveFileName(
            self, "Export PDF report", str(folder / f"report_{stem}.pdf"), "PDF (*.pdf)"
        )
        if path:
            self.export_report(Path(path), study)

    def export_report(self, path: Path, study: StudyInfo | None = None) -> None:
        """Writes the PDF in the worker (atomically); reports success or failure."""
        image, finding, card = self.image, self.finding, self.classifier.card
        study = study or StudyInfo.from_metadata(image.metadata)
        size = self.measurement()
        tirads = self.tirads.descriptors()

        def done(out: Path) -> None:
            self._audit("export-report", finding, image.sha256, image.source)
            self.statusBar().showMessage(f"Report written to {out}", 10000)
            self.last_report = out

        self._run(
            lambda: write_report(path, image, finding, card, study, tirads, size),
            done,
            lambda err: self.show_message("Report not written", f"{path}: {err}"),
        )

    def export_csv_dialog(self) -> None:
        if not self.entries:
            self.show_message("Nothing to export", "Open some images first.")
            return
        folder = Path(str(self.settings.value("files/last_folder", "")) or ".")
        path, _ = QFileDialog.getSaveFileName(
            self, "Export study list", str(folder / "study.csv"), "CSV (*.csv)"
        )
        if path:
            self.export_csv(Path(path))

    def export_csv(self, path: Path) -> bool:
        try:
            write_csv(path, self.entries)
        except OSError as err:
            self.show_message("CSV not written", f"{path}: {err}")
            return False
        self.statusBar().showMessage(f"Study list written to {path}", 10000)
        return True

    # -- plumbing --------------------------------------------------------------------------
    def show_message(self, title: str, text: str, icon=QMessageBox.Icon.Warning) -> None:
        """Says what went wrong without blocking: panel, status bar and a window-modal box."""
        self.panel.show_state(text)
        self.statusBar().showMessage(text, 15000)
        box = QMessageBox(
            icon, f"Thyroid Review — {title}", text, QMessageBox.StandardButton.Ok, self
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.last_message = box

    def _run(self, fn, on_done, on_error) -> None:
        task = Task(fn)

        def finish(handler):
            def slot(value):
                self._tasks.discard(task)
                if not self._closed:  # a result arriving after close has nowhere to go
                    handler(value)

            return slot

        task.signals.finished.connect(finish(on_done))
        task.signals.failed.connect(finish(on_error))
        self._tasks.add(task)
        self.pool.start(task)

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_paths(paths)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/split3", self._split.saveState())
        self.batch.cancel()
        self.validation.cancel()
        self.pool.waitForDone(5000)
        self._closed = True
        super().closeEvent(event)
