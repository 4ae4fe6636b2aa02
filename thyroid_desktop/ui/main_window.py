"""The main window: open an image, draw the nodule box, see the model's estimate."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QThreadPool, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
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
from thyroid_desktop.ui.image_view import ImageView
from thyroid_desktop.ui.result_panel import ResultPanel
from thyroid_desktop.ui.tirads_panel import TiradsPanel
from thyroid_desktop.ui.workers import Task

log = logging.getLogger(__name__)

FILE_FILTER = (
    "Ultrasound images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.dcm *.dicom);;All files (*)"
)


MAX_RECENT = 10


class MainWindow(QMainWindow):
    """Holds the current image, box and finding; all analysis runs in a one-thread pool so
    the GUI never blocks and the model is never called twice at once.

    Signals:
        findingShown(Finding): a result is on screen (used by the launch benchmark).
    """

    findingShown = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.settings = QSettings("ThyroidReview", "ThyroidReview")
        self._actions: list[QAction] = []
        self.setWindowTitle("Thyroid Review")
        self.setAcceptDrops(True)
        self.resize(1280, 900)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._tasks: set[Task] = set()
        self.classifier: Classifier | None = None
        self.segmenter: Segmenter | None = None
        self.image: UltrasoundImage | None = None
        self.roi: ROI | None = None
        self.finding: Finding | None = None
        self._pending = False
        self.last_message: QMessageBox | None = None
        self.audit = AuditLog()

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
        split.addWidget(self.view)
        split.addWidget(side)
        split.setStretchFactor(0, 4)
        self.setCentralWidget(split)
        self.device_label = QLabel("Device: –")
        self.statusBar().addPermanentWidget(self.device_label)
        self.view.roiDrawn.connect(self.set_roi)
        self.panel.overlayToggled.connect(self.view.set_overlay_visible)
        self.panel.opacityChanged.connect(self.view.set_overlay_opacity)
        self.view.set_overlay_opacity(0.7)
        self._split = split
        self._build_menus()
        self._restore_layout()

    # -- menus -----------------------------------------------------------------------------
    def _action(self, menu, text: str, slot, shortcut=None) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(slot)
        menu.addAction(act)
        self._actions.append(act)
        return act

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open…", self.open_dialog, QKeySequence.StandardKey.Open)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self._rebuild_recent()
        self._action(file_menu, "&Export PDF report…", self.export_dialog, "Ctrl+E")
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
        self._action(view_menu, "&Reset window/level", self.view.reset_window_level, "R")
        analysis = self.menuBar().addMenu("&Analysis")
        self._action(analysis, "&Auto-detect nodule", self.auto_detect, "A")
        self._action(analysis, "Analyse &whole scan area", self.analyse_whole_image, "W")
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", self.show_shortcuts, "F1")

    # -- settings, recent files, help ------------------------------------------------------
    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        split = self.settings.value("window/split")
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
            act.triggered.connect(lambda _=False, p=name: self.open_path(Path(p)))
        self.recent_menu.setEnabled(bool(self.recent_files()))

    def shortcuts_text(self) -> str:
        """Every action with a shortcut, from the menus themselves (one source of truth)."""
        rows = [
            f"{a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)}\t{a.text().replace('&', '')}"
            for a in self._actions
            if not a.shortcut().isEmpty()
        ]
        extra = [
            "Left-drag on the image\tdraw the nodule box",
            "Right-drag\twindow/level (brightness, contrast)",
            "Wheel\tzoom",
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
        metrics = card.raw.get("metrics", {})
        cv, test = metrics.get("cv", {}).get("ddti", {}), metrics.get("test", {}).get("ddti", {})
        summary = ""
        if cv:
            summary += f"ddti CV AUROC {cv['mean']:.2f} ± {cv['sd']:.2f}\n"
        if test:
            lo, hi = test["auroc_ci95"]
            summary += f"ddti test AUROC {test['auroc']:.2f} (95% CI {lo:.2f}–{hi:.2f})"
        self.panel.show_model(card.id, card.version, summary)
        self.panel.show_state("Model ready. Draw a box around the nodule.")
        self.device_label.setText(f"Device: {classifier.device}")
        if self._pending:
            self.analyse() if self.roi is not None else self.auto_detect()

    def _model_failed(self, err: Exception) -> None:
        message = (
            str(err) if isinstance(err, ModelError) else f"The model could not be loaded: {err}"
        )
        self.show_message("Model unavailable", message, QMessageBox.Icon.Critical)

    # -- images ----------------------------------------------------------------------------
    def open_dialog(self) -> None:
        folder = str(self.settings.value("files/last_folder", ""))
        path, _ = QFileDialog.getOpenFileName(self, "Open ultrasound image", folder, FILE_FILTER)
        if path:
            self.open_path(Path(path))

    def open_path(self, path: Path) -> bool:
        try:
            image = open_image(path)
        except ImageLoadError as err:
            self.show_message("Cannot open", str(err))
            return False
        self.show_image(image)
        self._remember(path)
        return True

    def show_image(self, image: UltrasoundImage, roi: ROI | None = None) -> None:
        self.image, self.finding = image, None
        self.view.set_image(image.pixels)
        self.panel.clear()
        name = image.source.name if image.source else "demo phantom (synthetic)"
        self.setWindowTitle(f"Thyroid Review — {name}")
        if roi is not None:
            self.set_roi(roi)
        else:
            self.roi = None
            self.auto_detect()

    def set_roi(self, roi: ROI) -> None:
        self.roi = roi
        self.view.set_roi(roi)
        self.analyse()

    def auto_detect(self) -> None:
        """Lets the segmenter propose the box (best candidate) and analyses it."""
        if not self._ready():
            return
        if self.segmenter is None:
            self.analyse_whole_image()
            return
        image, clf, seg = self.image, self.classifier, self.segmenter
        self.panel.show_state("Looking for the nodule…")
        self._run(
            lambda: auto_predict(image, clf, seg),
            lambda r: self._auto_done(image, *r),
            self._analysis_failed,
        )

    def _auto_done(self, image: UltrasoundImage, finding: Finding, detection) -> None:
        if image is not self.image:
            return
        n = len(detection.candidates)
        self.roi = finding.roi if finding.roi_source == "auto" else None
        self.view.set_roi(finding.roi)
        self._show_finding(image, finding)
        self.panel.show_state(
            f"Auto-detected: {n} candidate{'s' if n != 1 else ''}; the best is boxed. "
            "Drag a new box to change it."
            if n
            else "No nodule found: the whole scan area was analysed. Draw a box around the nodule."
        )

    def analyse_whole_image(self) -> None:
        if self.image is not None:
            self.roi = None
            self.view.set_roi(None)
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
        source = "manual" if roi is not None else "full"
        self.panel.show_state("Analysing…")
        self._run(
            lambda: predict(image, clf, roi, source),
            lambda f: self._show_finding(image, f),
            self._analysis_failed,
        )

    def _show_finding(self, image: UltrasoundImage, finding: Finding) -> None:
        if image is not self.image:
            return  # the user moved on; a newer analysis follows
        self.finding = finding
        self.panel.show_finding(finding)
        size = measure(finding.roi, image.spacing_mm)
        self.panel.show_measurement(size.text())
        self.tirads.set_size(size.max_diameter_mm)
        self._audit("analyse", finding)
        self.view.set_overlay(heatmap_rgba(finding.heatmap))
        self.panel.show_state(
            "WARNING: " + "; ".join(finding.warnings) + ". Treat the estimate as meaningless."
            if finding.warnings
            else "Done."
        )
        self.statusBar().showMessage(f"Analysed in {finding.timings_ms['total']:.0f} ms", 5000)
        self.device_label.setText(
            f"Device: {finding.device} · {finding.timings_ms['total']:.0f} ms"
        )
        self.findingShown.emit(finding)

    def _analysis_failed(self, err: Exception) -> None:
        self.panel.show_state(f"Analysis failed: {err}")

    # -- report and records ----------------------------------------------------------------
    def _audit(self, action: str, finding: Finding) -> None:
        image = self.image
        try:
            self.audit.append(
                record_for(
                    action,
                    image.sha256,
                    finding.roi,
                    roi_source=finding.roi_source,
                    model_id=finding.model_id,
                    probability=finding.probability,
                    file=str(image.source) if image.source else None,
                )
            )
        except OSError as err:  # the analysis stands; say the log could not be written
            self.statusBar().showMessage(f"Audit log not written: {err}", 15000)

    def export_dialog(self) -> None:
        if self.finding is None:
            self.show_message("Nothing to report", "Analyse an image before exporting a report.")
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Export PDF report", "report.pdf", "PDF (*.pdf)"
        )
        if path:
            self.export_report(Path(path))

    def export_report(self, path: Path) -> None:
        """Writes the PDF in the worker (atomically); reports success or failure."""
        image, finding, card = self.image, self.finding, self.classifier.card
        study = StudyInfo.from_metadata(image.metadata)
        size = measure(finding.roi, image.spacing_mm)
        tirads = self.tirads.descriptors()

        def done(out: Path) -> None:
            self._audit("export-report", finding)
            self.statusBar().showMessage(f"Report written to {out}", 10000)
            self.last_report = out

        self._run(
            lambda: write_report(path, image, finding, card, study, tirads, size),
            done,
            lambda err: self.show_message("Report not written", f"{path}: {err}"),
        )

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
        for url in event.mimeData().urls():
            if url.isLocalFile() and self.open_path(Path(url.toLocalFile())):
                break

    def closeEvent(self, event) -> None:  # noqa: N802
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/split", self._split.saveState())
        self.pool.waitForDone(5000)
        super().closeEvent(event)
