"""The main window: open an image, draw the nodule box, see the model's estimate."""

from __future__ import annotations

import logging
import math
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

from thyroid_desktop.core.analysis import Action, AnalysisService
from thyroid_desktop.core.audit import AuditLog
from thyroid_desktop.core.gradcam import heatmap_rgba
from thyroid_desktop.core.images import ImageLoadError, UltrasoundImage, open_image
from thyroid_desktop.core.inference import Finding
from thyroid_desktop.core.measure import measure, measure_calipers
from thyroid_desktop.core.models import (
    Classifier,
    ModelError,
    Segmenter,
    load_classifier,
    load_segmenter,
)
from thyroid_desktop.core.report import StudyInfo, write_report
from thyroid_desktop.core.roi import ROI
from thyroid_desktop.core.session import (
    BoxSource,
    Estimate,
    Session,
    SessionStore,
    read_session,
    write_session,
)
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
from thyroid_desktop.ui.frame_bar import FrameBar
from thyroid_desktop.ui.image_view import ImageView
from thyroid_desktop.ui.nodule_panel import NodulePanel
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
FIRST_RUN_HINT = (
    "To start: drop images, cine loops or a folder on the window, or File > Open (Ctrl+O). "
    "F1 lists every shortcut."
)


def _frame_text(image: UltrasoundImage, prefix: str) -> str:
    """ ", frame 3 of 20" for a cine loop (1-based, for people), "" for a single frame."""
    if image.n_frames <= 1:
        return ""
    return f"{prefix}frame {image.frame_index + 1} of {image.n_frames}"


def _fps(image: UltrasoundImage) -> float | None:
    """The loop's frame rate from DICOM (CineRate, else 1000 / FrameTime in ms), if given."""
    try:
        if image.metadata.get("CineRate"):
            return float(image.metadata["CineRate"])
        if image.metadata.get("FrameTime"):
            return 1000.0 / float(image.metadata["FrameTime"])
    except (TypeError, ValueError, ZeroDivisionError):
        pass
    return None


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
        #: Thumbnails of a newly opened study are made here, beside (not before) analyses.
        self.thumb_pool = QThreadPool(self)
        self.thumb_pool.setMaxThreadCount(1)
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
        #: The review state (nodules, boxes, TI-RADS choices, scales), autosaved; the window
        #: shows it and sends it the user's edits.
        self.session = Session(SessionStore())
        self.service: AnalysisService | None = None
        self.nodule_id: str | None = None  # the session's nodule shown on this image
        self.frame_scores: dict[str, tuple[float, ...]] = {}  # image sha256 -> per frame

        self.study_list = StudyList()
        self.view = ImageView()
        self.panel = ResultPanel()
        self.tirads = TiradsPanel()
        self.nodules = NodulePanel()
        self._adding = False  # the next box drawn is a new nodule
        self._line_purpose = "scale"  # what the next measuring line is for: scale or caliper
        column = QWidget()
        column_layout = QVBoxLayout(column)
        column_layout.addWidget(self.panel)
        column_layout.addWidget(self.nodules)
        column_layout.addWidget(self.tirads)
        column_layout.addStretch(1)
        side = QScrollArea()
        side.setWidgetResizable(True)
        side.setWidget(column)
        side.setMinimumWidth(380)
        self.frame_bar = FrameBar()
        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.setSpacing(0)
        centre_layout.addWidget(self.view, 1)
        centre_layout.addWidget(self.frame_bar)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.study_list)
        split.addWidget(centre)
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
        self.tirads.chosen.connect(lambda: self.view.setFocus())
        self.frame_bar.frameChanged.connect(self.show_frame)
        self.frame_bar.playingChanged.connect(self._playing_changed)
        self.session.subscribe(self._session_changed)
        self.nodules.picked.connect(self.pick_nodule)
        self.nodules.addRequested.connect(self.start_new_nodule)
        self.nodules.deleteRequested.connect(self.delete_nodule)
        self.nodules.locationChanged.connect(self._location_changed)
        self.panel.overlayToggled.connect(self.view.set_overlay_visible)
        self.panel.opacityChanged.connect(self.view.set_overlay_opacity)
        self.view.set_overlay_opacity(0.7)
        self._split = split
        self._build_menus()
        self._restore_layout()
        if not self.settings.value("hints/first_run_shown", False, type=bool):
            self.statusBar().showMessage(FIRST_RUN_HINT, 60000)
            self.settings.setValue("hints/first_run_shown", True)

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
            file_menu, "Export s&tudy report (all nodules)…", self.export_study_dialog, "Ctrl+R"
        )
        self._action(
            file_menu, "Export study list as &CSV…", self.export_csv_dialog, "Ctrl+Shift+E"
        )
        file_menu.addSeparator()
        self._action(file_menu, "&Validate on local cases…", self.validate_dialog)
        file_menu.addSeparator()
        self._action(file_menu, "&Save session as…", self.save_session_dialog, "Ctrl+S")
        self._action(file_menu, "Open sessio&n…", self.open_session_dialog)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        edit_menu = self.menuBar().addMenu("&Edit")
        self.undo_action = self._action(
            edit_menu, "&Undo", self.undo, QKeySequence.StandardKey.Undo
        )
        self.redo_action = self._action(edit_menu, "&Redo", self.redo, "Ctrl+Shift+Z")
        self._update_undo_actions()
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
        self._action(view_menu, "Next &frame", lambda: self.frame_bar.step(1), "Right")
        self._action(view_menu, "Previous fra&me", lambda: self.frame_bar.step(-1), "Left")
        self._action(
            view_menu,
            "&Play / pause loop",
            lambda: self.frame_bar.set_playing(not self.frame_bar.playing),
            "Space",
        )
        analysis = self.menuBar().addMenu("&Analysis")
        self._action(analysis, "&Auto-detect nodule", self.auto_detect, "A")
        self._action(analysis, "&Next candidate", self.next_candidate, "N")
        self._action(analysis, "Analyse &whole scan area", self.analyse_whole_image, "W")
        analysis.addSeparator()
        self._action(analysis, "A&dd nodule (draw its box)", self.start_new_nodule, "Ctrl+N")
        self._action(analysis, "De&lete nodule", self.delete_nodule)
        analysis.addSeparator()
        self._action(analysis, "Analyse all &images in the list", self.analyse_all, "Ctrl+B")
        self._action(analysis, "&Cancel batch", self.cancel_batch, "Ctrl+Shift+B")
        analysis.addSeparator()
        self._action(analysis, "Calibrate &scale (draw a known length)…", self.calibrate_scale, "K")
        self._action(analysis, "C&lear user scale", lambda: self.set_user_scale(None))
        self._action(analysis, "&Measure nodule (caliper line)…", self.measure_nodule, "M")
        self._action(analysis, "Clear calipe&rs", self.clear_calipers)
        analysis.addSeparator()
        self.calibration_menu = CalibrationMenu("Site &calibration", self)
        self.calibration_menu.chosen.connect(self.use_calibration)
        analysis.addMenu(self.calibration_menu)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", self.show_shortcuts, "F1")
        self._action(help_menu, "&About Thyroid Review", self.show_about)

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
        self.service = AnalysisService(classifier, self.segmenter, self.audit)
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
            self._pending = False
            if self.image is not None and self.image.n_frames > 1 and self._needs_best_frame():
                self._find_best_frame()
            else:
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
                self._make_thumbnail(known[f])
            rows.append(known[f])
        for row in rows:
            if self.select(row):
                return True
        bad = self.entries[rows[0]]
        more = f" (and {len(rows) - 1} more)" if len(rows) > 1 else ""
        self.show_message("Cannot open", f"{bad.error}{more}")
        return False

    def _make_thumbnail(self, row: int) -> None:
        """Reads the file in the background and shows its thumbnail in the list (a file
        that cannot be read says why when it is selected)."""
        entry = self.entries[row]
        task = Task(lambda: make_thumbnail(open_image(entry.path).pixels))

        def done(thumb) -> None:
            self._tasks.discard(task)
            if not self._closed and row < len(self.entries) and self.entries[row] is entry:
                self.study_list.update_entry(row, entry, thumb)

        task.signals.finished.connect(done)
        task.signals.failed.connect(lambda _err: self._tasks.discard(task))
        self._tasks.add(task)
        self.thumb_pool.start(task)

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
        """Reads the entry's file and shows it with what the session holds for it (its
        nodule's box and TI-RADS choices, the frame and scale last used), else finds the
        nodule; a cine loop seen for the first time opens on its best frame."""
        entry = self.entries[row]
        try:
            image = open_image(entry.path)
            if entry.sha256 and entry.sha256 != image.sha256:  # the file changed on disk
                entry.finding, entry.user_mm_per_px, entry.tirads = None, None, None
            self.session.add_image(image.sha256, entry.path, image.n_frames)
            record = self.session.state.image(image.sha256)
            if record.frame:
                image = open_image(entry.path, frame=record.frame)
        except ImageLoadError as err:
            entry.status, entry.error = "error", str(err)
            self.study_list.update_entry(row, entry)
            return False
        entry.sha256, entry.spacing_mm = image.sha256, image.spacing_mm
        entry.user_mm_per_px = record.user_mm_per_px
        self.current = row
        self.study_list.setCurrentRow(row)
        self.study_list.update_entry(row, entry, make_thumbnail(image.pixels))
        self.user_mm_per_px = entry.user_mm_per_px
        nodules = self.session.state.nodules_on(image.sha256)
        keep = next((n for n in nodules if n.id == self.nodule_id), None)
        shown = keep or (nodules[0] if nodules else None)
        self.nodule_id = shown.id if shown else None
        self.tirads.set_choices(shown.tirads if shown else None)
        self._adding = False
        self._refresh_nodules()
        self.frame_bar.set_loop(image.n_frames, image.frame_index, _fps(image))
        if image.sha256 in self.frame_scores:
            self.frame_bar.set_scores(self.frame_scores[image.sha256])
        self._remember(entry.path)
        if image.n_frames > 1 and not nodules and self._needs_best_frame(image):
            self.show_image(image, analyse=False)
            self._find_best_frame()
            return True
        self._present(image, entry.finding)
        return True

    def _present(self, image: UltrasoundImage, cached: Finding | None = None) -> None:
        """Shows a frame of the current entry: analyses its nodule's box when the nodule is
        on this frame, shows ``cached`` when it is still valid, else finds the nodule."""
        nodule = self._nodule(image)
        on_frame = nodule is not None and nodule.frame == image.frame_index
        if cached is not None and (
            image.n_frames > 1
            or (self.classifier is not None and not same_calibration(cached, self.classifier))
            or (on_frame and cached.roi != nodule.box)
        ):
            cached = None  # another frame, calibration or box: analyse again
        if cached is None and self.current is not None:
            entry = self.entries[self.current]
            entry.finding, entry.status, entry.error = None, "not analysed", ""
        if cached is not None:
            self.show_image(image, finding=cached)
        elif on_frame and nodule.source is not BoxSource.FULL:
            self.show_image(image, analyse=False)
            self.roi, self._roi_source = nodule.box, str(nodule.source)
            self.view.set_roi(nodule.box)
            self.analyse()
        else:
            self.show_image(image)

    def _nodule(self, image: UltrasoundImage | None = None):
        """The session's nodule shown on ``image`` (default: the current one), or None."""
        image = image or self.image
        n = self.session.state.nodule(self.nodule_id) if self.nodule_id else None
        return n if n is not None and image is not None and n.image == image.sha256 else None

    def _in_session(self) -> bool:
        return (
            self.image is not None
            and self.image.source is not None
            and self.session.state.image(self.image.sha256) is not None
        )

    # -- cine loops ------------------------------------------------------------------------
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
        self,
        image: UltrasoundImage,
        roi: ROI | None = None,
        finding: Finding | None = None,
        analyse: bool = True,
    ) -> None:
        """Shows ``image``; analyses ``roi``, or shows an earlier ``finding``, or auto-detects
        (nothing when ``analyse`` is False: a cine loop playing, or a box to follow)."""
        if image.source is None:  # the demo or an in-memory image: not in the study list
            self.current, self.user_mm_per_px, self.nodule_id = None, None, None
            self.study_list.setCurrentRow(-1)
            self.tirads.set_choices(None)
            self.frame_bar.set_loop(image.n_frames)
        self.image, self.finding, self.candidates = image, None, []
        self._request += 1  # results still coming for the previous image are dropped
        self._awaiting = False
        self.view.set_image(image.pixels)
        self.panel.clear()
        self.tirads.set_size(None)
        name = image.source.name if image.source else "demo phantom (synthetic)"
        self.setWindowTitle(f"Thyroid Review — {name}{_frame_text(image, ', ')}")
        if not analyse:
            self.roi = None
            self.view.set_roi(None)
            self.view.set_candidates([])
        elif finding is not None:
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
        if self._in_session():
            key, frame = self.image.sha256, self.image.frame_index
            if self._adding or self._nodule() is None:
                self._adding = False
                self.nodule_id = self.session.add_nodule(key, frame, roi, BoxSource(source))
                self.tirads.set_choices(None)
                self._refresh_nodules()
            else:
                self.session.set_box(self.nodule_id, roi, BoxSource(source), frame)
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
        image, service = self.image, self.service
        req = self._new_request()
        self.panel.show_state("Looking for the nodule…")
        self._run(
            lambda: None if self._stale(req) else service.analyse(image, None, Action.AUTO),
            lambda r: r is not None and self._auto_done(image, req, r.finding, r.detection),
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
        if (
            self.roi is not None
            and self._in_session()
            and not self.session.state.nodules_on(image.sha256)
        ):  # the first box on this file: the detector's, not an edit to undo
            self.nodule_id = self.session.add_nodule(
                image.sha256, image.frame_index, self.roi, BoxSource.AUTO, by_user=False
            )
            self._refresh_nodules()
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
        image, roi, service = self.image, self.roi, self.service
        source = self._roi_source if roi is not None else "full"
        req = self._new_request()
        self.panel.show_state("Analysing…")
        self._run(
            lambda: (
                None
                if self._stale(req)
                else service.analyse_box(image, roi, source, Action.ANALYSE)
            ),
            lambda r: r is not None and self._analysed(image, req, r.finding, r.audit_problem),
            lambda err: self._analysis_failed(req, err),
        )

    def _analysed(
        self, image: UltrasoundImage, req: int, finding: Finding, audit_problem: str = ""
    ) -> None:
        if self._stale(req) or image is not self.image:
            return  # the user moved on or changed the box; a newer analysis follows
        self._awaiting = False
        self.view.set_roi(finding.roi)
        if audit_problem:
            self.statusBar().showMessage(f"Audit log not written: {audit_problem}", 15000)
        nodule = self._nodule()
        if nodule is not None and nodule.frame == image.frame_index and nodule.box == finding.roi:
            self.session.set_estimate(nodule.id, Estimate.of(finding))
        if self.current is not None:
            entry = self.entries[self.current]
            entry.finding, entry.status = finding, "analysed"
            entry.frame = image.frame_index if image.n_frames > 1 else None
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
        self.statusBar().showMessage(
            f"Analysed in {finding.timings_ms['total']:.0f} ms{_frame_text(image, ' · ')}", 5000
        )
        self.device_label.setText(
            f"Device: {finding.device} · {finding.timings_ms['total']:.0f} ms"
        )
        self.findingShown.emit(finding)

    def _analysis_failed(self, req: int, err: Exception) -> None:
        if not self._stale(req):
            self._awaiting = False
            self.panel.show_state(f"Analysis failed: {err}")

    def _tirads_changed(self, choices) -> None:
        """The clinician changed a TI-RADS choice: it belongs to the nodule shown (one is
        made for the analysed area when there is none yet)."""
        if self.current is None or not self._in_session():
            return
        if self._nodule() is None:
            box = self.roi or (self.finding.roi if self.finding else None)
            if box is None:
                return
            source = BoxSource(self._roi_source) if self.roi is not None else BoxSource.FULL
            self.nodule_id = self.session.add_nodule(
                self.image.sha256, self.image.frame_index, box, source, by_user=False
            )
        self.session.set_tirads(self.nodule_id, choices)
        entry = self.entries[self.current]
        entry.tirads = choices.descriptors
        self.study_list.update_entry(self.current, entry)

    # -- scale -----------------------------------------------------------------------------
    def measurement(self):
        """Size of the analysed box: mm from DICOM or the user's scale, else pixels."""
        if self.finding is None or self.image is None:
            return None
        return measure(self.finding.roi, self.image.spacing_mm, self.user_mm_per_px)

    def calipers(self):
        """The shown nodule's caliper lines, measured (None when there are none)."""
        nodule = self._nodule()
        if nodule is None or not nodule.calipers_px or self.image is None:
            return None
        return measure_calipers(nodule.calipers_px, self.image.spacing_mm, self.user_mm_per_px)

    def _show_size(self) -> None:
        size, calipers = self.measurement(), self.calipers()
        text = size.text() if size else ""
        if calipers is not None:
            text = f"{text}; {calipers.text()}" if text else calipers.text()
        self.panel.show_measurement(text)
        largest = calipers.max_diameter_mm if calipers is not None else None
        self.tirads.set_size(largest or (size.max_diameter_mm if size else None))

    def measure_nodule(self) -> None:
        """Next left-drag draws a caliper line across the shown nodule (up to three)."""
        if self._nodule() is None:
            self.show_message("No nodule", "Analyse or draw a nodule's box first.")
            return
        self._line_purpose = "caliper"
        self.view.start_measuring()
        self.panel.show_state(
            "Measure: drag across the nodule (up to three diameters; the longest sets the "
            "TI-RADS size). Esc cancels."
        )

    def clear_calipers(self) -> None:
        nodule = self._nodule()
        if nodule is not None and nodule.calipers_px:
            self.session.clear_calipers(nodule.id)
            self._show_size()

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
            nodule = self._nodule()
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
        if mm_per_px is not None and not mm_per_px > 0:
            raise ValueError(f"a scale must be positive, got {mm_per_px}")
        self.user_mm_per_px = mm_per_px
        if self._in_session():
            self.session.set_user_scale(self.image.sha256, mm_per_px)
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
                entry.sha256, entry.spacing_mm = sha, analysed.image.spacing_mm
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
                    self.roi = finding.roi if finding.roi_source == "auto" else None
                    self.view.set_roi(finding.roi)
                    self._show_finding(shown, finding)
        self.study_list.update_entry(row, entry, thumb)

    def _batch_into_session(self, path: Path, analysed) -> None:
        """A batch result becomes the file's first nodule when nothing was done on it yet."""
        image, finding = analysed.image, analysed.finding
        self.session.add_image(image.sha256, path, image.n_frames)
        if finding.roi_source == "auto" and not self.session.state.nodules_on(image.sha256):
            self.session.set_frame(image.sha256, image.frame_index)
            nodule_id = self.session.add_nodule(
                image.sha256, image.frame_index, finding.roi, BoxSource.AUTO, by_user=False
            )
            self.session.set_estimate(nodule_id, Estimate.of(finding))

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
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export PDF report",
            str(self.reports_folder() / f"report_{stem}.pdf"),
            "PDF (*.pdf)",
        )
        if path:
            self.settings.setValue("report/folder", str(Path(path).parent))
            self.export_report(Path(path), study)

    def reports_folder(self) -> Path:
        """Where the report dialog opens: the folder of the last report, else "Thyroid
        reports" in the user's documents."""
        remembered = str(self.settings.value("report/folder", "") or "")
        if remembered and Path(remembered).is_dir():
            return Path(remembered)
        from platformdirs import user_documents_dir

        folder = Path(user_documents_dir()) / "Thyroid reports"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return Path.home()
        return folder

    def export_report(self, path: Path, study: StudyInfo | None = None) -> None:
        """Writes the PDF in the worker (atomically); reports success or failure."""
        image, finding, card = self.image, self.finding, self.classifier.card
        study = study or StudyInfo.from_metadata(image.metadata)
        size = self.measurement()
        tirads = self.tirads.descriptors()
        n = self._nodule()
        nodule = ", ".join(p for p in (n.id, n.location) if p) if n is not None else ""
        calipers = self.calipers()

        def done(out: Path) -> None:
            problem = self.service.record(Action.EXPORT, image, finding) if self.service else ""
            if problem:
                self.statusBar().showMessage(f"Audit log not written: {problem}", 15000)
            self.statusBar().showMessage(f"Report written to {out}", 10000)
            self.last_report = out

        self._run(
            lambda: write_report(
                path, image, finding, card, study, tirads, size, nodule=nodule, calipers=calipers
            ),
            done,
            lambda err: self.show_message("Report not written", f"{path}: {err}"),
        )

    def export_study_dialog(self) -> None:
        if not self.session.state.nodules or self.classifier is None:
            self.show_message("Nothing to report", "Mark at least one nodule first.")
            return
        first = self.image.metadata if self.image is not None else {}
        initial = StudyInfo.from_metadata(
            first, operator=str(self.settings.value("report/operator", ""))
        )
        dialog = ReportDialog(initial, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        study = dialog.study()
        self.settings.setValue("report/operator", study.operator)
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export study report",
            str(self.reports_folder() / "study_report.pdf"),
            "PDF (*.pdf)",
        )
        if path:
            self.settings.setValue("report/folder", str(Path(path).parent))
            self.export_study_report(Path(path), study)

    def export_study_report(self, path: Path, study: StudyInfo | None = None) -> None:
        """Every nodule of the session in one PDF: a summary table, then a page per nodule
        (made in the worker, written atomically)."""
        from thyroid_desktop.core.analysis import nodule_reports
        from thyroid_desktop.core.report import write_study_report

        state, service, card = self.session.state, self.service, self.classifier.card
        study = study or StudyInfo.from_metadata(self.image.metadata if self.image else {})

        def done(out: Path) -> None:
            self.statusBar().showMessage(f"Study report written to {out}", 10000)
            self.last_report = out

        self._run(
            lambda: write_study_report(path, nodule_reports(service, state), card, study),
            done,
            lambda err: self.show_message("Study report not written", f"{path}: {err}"),
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

    # -- session: undo/redo, save and open -------------------------------------------------
    def undo(self) -> None:
        if not self.session.undo():
            self.statusBar().showMessage("Nothing to undo.", 3000)

    def redo(self) -> None:
        if not self.session.redo():
            self.statusBar().showMessage("Nothing to redo.", 3000)

    def _update_undo_actions(self) -> None:
        for act, verb, what in (
            (self.undo_action, "&Undo", self.session.undo_text),
            (self.redo_action, "&Redo", self.session.redo_text),
        ):
            act.setText(f"{verb} {what}" if what else verb)
            act.setEnabled(bool(what))

    def _session_changed(self, what: str) -> None:
        """The session changed: update the edit menu and the nodule list; after undo/redo or
        opening a session, show what it now holds for the current image."""
        self._update_undo_actions()
        self._refresh_nodules()
        if self.session.save_problem:
            self.statusBar().showMessage(self.session.save_problem, 15000)
        if what.startswith(("undo ", "redo ", "open session")):
            self._show_session_state()

    def _show_session_state(self) -> None:
        """Box, TI-RADS choices and scale of the current image, as the session holds them;
        a box that changed is analysed again."""
        if not self._in_session():
            return
        state, image = self.session.state, self.image
        nodules = state.nodules_on(image.sha256)
        nodule = self._nodule() or (nodules[0] if nodules else None)
        self.nodule_id = nodule.id if nodule else None
        self.tirads.set_choices(nodule.tirads if nodule else None)
        record = state.image(image.sha256)
        self.user_mm_per_px = record.user_mm_per_px
        if self.current is not None:
            entry = self.entries[self.current]
            entry.user_mm_per_px = record.user_mm_per_px
            entry.tirads = nodule.tirads.descriptors if nodule else None
            self.study_list.update_entry(self.current, entry)
        self._show_size()
        if nodule is not None and nodule.frame == image.frame_index:
            if nodule.box != self.roi or nodule.source is BoxSource.FULL:
                self.roi, self._roi_source = nodule.box, str(nodule.source)
                self.view.set_roi(nodule.box)
                self._show_candidates()
                self.analyse_whole_image() if nodule.source is BoxSource.FULL else self.analyse()
        elif self.roi is not None and nodule is None:
            self.analyse_whole_image()  # the box was undone: back to the scan area

    def _refresh_nodules(self) -> None:
        state = self.session.state
        names = {i.key: Path(i.path).name for i in state.images}
        self.nodules.show_nodules(list(state.nodules), self.nodule_id, names)

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

    def save_session_dialog(self) -> None:
        if not self.session.state.images:
            self.show_message("Nothing to save", "Open some images first.")
            return
        folder = Path(str(self.settings.value("files/last_folder", "")) or ".")
        path, _ = QFileDialog.getSaveFileName(
            self, "Save session", str(folder / "session.thyroid.json"), "Session (*.json)"
        )
        if path:
            self.save_session(Path(path))

    def save_session(self, path: Path) -> bool:
        try:
            write_session(path, self.session.state)
        except OSError as err:
            self.show_message("Session not saved", f"{path}: {err}")
            return False
        self.statusBar().showMessage(f"Session saved to {path}", 10000)
        return True

    def open_session_dialog(self) -> None:
        folder = str(self.settings.value("files/last_folder", ""))
        path, _ = QFileDialog.getOpenFileName(self, "Open session", folder, "Session (*.json)")
        if path:
            self.open_session(Path(path))

    def open_session(self, path: Path) -> bool:
        """Replaces the session with a saved one and opens its images (those still there)."""
        try:
            state = read_session(path)
        except ValueError as err:
            self.show_message("Session not opened", str(err))
            return False
        self.session.load(state)
        present = [Path(i.path) for i in state.images if Path(i.path).exists()]
        missing = len(state.images) - len(present)
        if missing:
            self.statusBar().showMessage(f"{missing} image(s) of the session are not found.", 15000)
        return self.open_paths(present) if present else False

    def show_about(self) -> None:
        from thyroid_desktop.ui.about import about_text

        box = QMessageBox(
            QMessageBox.Icon.Information,
            "About Thyroid Review",
            about_text(self.classifier, self.segmenter),
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.last_message = box

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
        self.frame_bar.set_playing(False)
        self.thumb_pool.clear()
        self.pool.waitForDone(5000)
        self.thumb_pool.waitForDone(5000)
        self._closed = True
        super().closeEvent(event)
