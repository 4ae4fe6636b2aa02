"""The main window: open an image, draw the nodule box, see the model's estimate."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QThreadPool, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from thyroid_desktop.core.analysis import (
    Action,
    AnalysisService,
    Finding,
    gland_contours,
    heatmap_rgba,
)
from thyroid_desktop.core.io.images import ImageLoadError, UltrasoundImage, open_image
from thyroid_desktop.core.models.shipped import (
    Classifier,
    ModelError,
    Segmenter,
    load_classifier,
    load_segmenter,
)
from thyroid_desktop.core.pipeline.roi import ROI
from thyroid_desktop.core.report.audit import AuditLog
from thyroid_desktop.core.review.session import (
    BoxSource,
    Estimate,
    LatestRequest,
    Nodule,
    Session,
    SessionStore,
    offered_candidates,
)
from thyroid_desktop.core.review.study import StudyEntry, expand_paths
from thyroid_desktop.core.site.profile import (
    same_calibration,
    use_active_profile,
)
from thyroid_desktop.ui.batch import BatchRunner
from thyroid_desktop.ui.batch_actions import BatchMixin
from thyroid_desktop.ui.exports import ExportsMixin
from thyroid_desktop.ui.frame_bar import FrameBar
from thyroid_desktop.ui.image_view import ImageView
from thyroid_desktop.ui.measure_actions import MeasureMixin
from thyroid_desktop.ui.menus import MenusMixin
from thyroid_desktop.ui.nodule_actions import NodulesMixin
from thyroid_desktop.ui.nodule_panel import NodulePanel
from thyroid_desktop.ui.result_panel import ResultPanel
from thyroid_desktop.ui.side_column import SideColumn
from thyroid_desktop.ui.site_actions import SiteCalibrationMixin
from thyroid_desktop.ui.study_list import StudyList, make_thumbnail
from thyroid_desktop.ui.tirads_panel import TiradsPanel
from thyroid_desktop.ui.validation_dialog import ValidationRunner
from thyroid_desktop.ui.workers import Task

log = logging.getLogger(__name__)

FILE_FILTER = (
    "Ultrasound images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.dcm *.dicom);;All files (*)"
)


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


class MainWindow(
    MenusMixin,
    BatchMixin,
    MeasureMixin,
    ExportsMixin,
    SiteCalibrationMixin,
    NodulesMixin,
    QMainWindow,
):
    """Shows the study list, the current image, box and finding, and sends the user's edits
    to the session (``core.session``); all analysis runs through ``core.analysis`` in a
    one-thread pool so the GUI never blocks and the model is never called twice at once.
    The menus, batch, sizes, exports, site calibration and nodule/cine actions are mixins,
    one module each.

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
        self._roi_source = BoxSource.MANUAL
        self.user_mm_per_px: float | None = None
        self._pending = False
        self._closed = False
        #: The latest analysis asked for the shown image; results of older ones, or of
        #: another image, are dropped so the box and the numbers always match.
        self._requests = LatestRequest()
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
        side = SideColumn([self.panel, self.nodules, self.tirads], min_width=380)
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
        self.tirads.acceptRequested.connect(self.accept_ai_tirads)
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

    # -- settings, recent files, help ------------------------------------------------------

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
        self.device_label.setText(f"Device: {classifier.device} ({classifier.runtime})")
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
                entry.choices = None
            self.session.add_image(image.sha256, entry.path, image.n_frames)
            record = self.session.state.image(image.sha256)
            if record.frame:
                image = open_image(entry.path, frame=record.frame)
        except ImageLoadError as err:
            entry.status, entry.error = "error", str(err)
            self.study_list.update_entry(row, entry)
            return False
        entry.sha256, entry.scale = image.sha256, image.scale
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
            self.roi, self._roi_source = nodule.box, nodule.source
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

    def _show_unreadable(self, row: int) -> None:
        """A list entry whose file cannot be read is selected: show no image, say why."""
        entry = self.entries[row]
        self.current, self.image, self.roi, self.finding = row, None, None, None
        self.candidates = []
        self._requests.supersede()
        self._awaiting = False
        self.view.clear()
        self.panel.clear()
        self.tirads.set_descriptors(None)
        self.tirads.set_size(None)
        self.tirads.set_suggestion(None)
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
        self._requests.supersede()  # results still coming for the previous image are dropped
        self._awaiting = False
        self.view.set_image(image.pixels)
        self._refresh_nodules()  # the other nodules marked on this frame
        self.panel.clear()
        self.tirads.set_size(None)
        self.tirads.set_suggestion(None)
        name = image.source.name if image.source else "demo phantom (synthetic)"
        self.setWindowTitle(f"Thyroid Review — {name}{_frame_text(image, ', ')}")
        if not analyse:
            self.roi = None
            self.view.set_roi(None)
            self.view.set_candidates([])
        elif finding is not None:
            self.roi = finding.roi if finding.roi_source is not BoxSource.FULL else None
            self.view.set_roi(finding.roi)
            self._show_finding(image, finding)
        elif roi is not None:
            self.set_roi(roi)
        else:
            self.roi = None
            self.auto_detect()

    def set_roi(self, roi: ROI, source: BoxSource = BoxSource.MANUAL) -> None:
        """Analyses ``roi``; ``source`` is manual (drawn, moved, resized) or auto (a detected
        candidate the user picked)."""
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

    def _others_shown(self) -> list[Nodule]:
        """The other nodules on the frame on screen (not the one being edited)."""
        if not self._in_session():
            return []
        image = self.image
        return self.session.state.others_shown(image.sha256, image.frame_index, self.nodule_id)

    def _marked(self) -> list[ROI]:
        """Boxes of the other nodules on the frame on screen."""
        return [n.box for n in self._others_shown()]

    def _offered(self) -> list[ROI]:
        """The candidates drawn dashed, in rank order."""
        if self.image is None:
            return []
        return offered_candidates([c.roi for c in self.candidates], self.roi, self._marked())

    def _show_candidates(self) -> None:
        self.view.set_candidates(self._offered())

    def pick_candidate(self, index: int) -> None:
        """Analyses another detected candidate (a click in its dashed box)."""
        offered = self._offered()
        if 0 <= index < len(offered):
            self.set_roi(offered[index], BoxSource.AUTO)

    def next_candidate(self) -> None:
        """Moves the box to the next detected candidate, in rank order (N)."""
        if not self.candidates:
            self.statusBar().showMessage("No other candidate: press A to auto-detect.", 5000)
            return
        rois = offered_candidates([c.roi for c in self.candidates], None, self._marked())
        if not rois:
            self.statusBar().showMessage("Every candidate is marked as a nodule already.", 5000)
            return
        i = rois.index(self.roi) + 1 if self.roi in rois else 0
        self.set_roi(rois[i % len(rois)], BoxSource.AUTO)

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
        self._awaiting = True
        self.tirads.set_suggestion(None)  # the shown suggestion was for the previous box
        return self._requests.begin()

    def _stale(self, req: int) -> bool:
        """True when a newer analysis (or another image) superseded request ``req``."""
        return self._requests.is_stale(req)

    def _auto_done(self, image: UltrasoundImage, req: int, finding: Finding, detection) -> None:
        if self._stale(req) or image is not self.image:
            return
        n = len(detection.candidates)
        self.roi = finding.roi if finding.roi_source is BoxSource.AUTO else None
        self.candidates = list(detection.candidates)
        self.view.set_gland(gland_contours(detection.gland))
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
        reason = "" if finding.in_scope else "No estimate for this image: the reason is below.\n"
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
        source = self._roi_source if roi is not None else BoxSource.FULL
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
        self.tirads.set_suggestion(finding.tirads_suggestion if finding.in_scope else None)
        self._show_size()
        self.view.set_overlay(heatmap_rgba(finding.heatmap))
        self.panel.show_state(
            "No estimate for this image: the reason is below." if not finding.in_scope else "Done."
        )
        self.statusBar().showMessage(
            f"Analysed in {finding.timings_ms['total']:.0f} ms{_frame_text(image, ' · ')}", 5000
        )
        runtime = f" ({self.classifier.runtime})" if self.classifier is not None else ""
        self.device_label.setText(
            f"Device: {finding.device}{runtime} · {finding.timings_ms['total']:.0f} ms"
        )
        self.findingShown.emit(finding)

    def _analysis_failed(self, req: int, err: Exception) -> None:
        if not self._stale(req):
            self._awaiting = False
            self.panel.show_state(f"Analysis failed: {err}")

    def _ensure_nodule(self) -> bool:
        """The nodule shown; one is made for the analysed area when there is none yet.
        False when there is nothing to attach a choice to."""
        if self.current is None or not self._in_session():
            return False
        if self._nodule() is None:
            box = self.roi or (self.finding.roi if self.finding else None)
            if box is None:
                return False
            source = self._roi_source if self.roi is not None else BoxSource.FULL
            self.nodule_id = self.session.add_nodule(
                self.image.sha256, self.image.frame_index, box, source, by_user=False
            )
            self._refresh_nodules()
        return True

    def _tirads_changed(self, choices) -> None:
        """The clinician changed a TI-RADS choice: it belongs to the nodule shown."""
        if not self._ensure_nodule():
            return
        self.session.set_tirads(self.nodule_id, choices)
        self._tirads_to_entry(choices)

    def _tirads_to_entry(self, choices) -> None:
        entry = self.entries[self.current]
        entry.tirads, entry.choices = choices.descriptors, choices
        self.study_list.update_entry(self.current, entry)

    def accept_ai_tirads(self) -> None:
        """The clinician accepts the AI's TI-RADS suggestions for the groups still open
        (one undo step; written to the audit log)."""
        finding = self.finding
        suggestion = finding.tirads_suggestion if finding is not None else None
        if suggestion is None or self._awaiting or not self._ensure_nodule():
            return
        nodule = self._nodule()
        if nodule.box != finding.roi or nodule.frame != self.image.frame_index:
            self.statusBar().showMessage("The suggestions are for another box: not accepted.", 8000)
            return
        choices = self.session.accept_suggestions(self.nodule_id, suggestion)
        if choices is None:
            return
        self.tirads.set_choices(choices)
        self._tirads_to_entry(choices)
        if self.service is not None:
            problem = self.service.record(Action.ACCEPT_TIRADS, self.image, finding, choices)
            if problem:
                self.statusBar().showMessage(f"Audit log not written: {problem}", 15000)
        self.statusBar().showMessage(
            "AI suggestions accepted for the open groups: check each one before signing.", 8000
        )

    # -- scale -----------------------------------------------------------------------------

    # -- batch -----------------------------------------------------------------------------

    # -- site calibration and validation on local cases -----------------------------------

    # -- report and records ----------------------------------------------------------------

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
        if self.session.save_problem:
            self.statusBar().showMessage(self.session.save_problem, 15000)
        if what.startswith(("undo ", "redo ", "open session")):
            self._show_session_state()
        self._refresh_nodules()

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
            entry.choices = nodule.tirads if nodule else None
            self.study_list.update_entry(self.current, entry)
        self._show_size()
        if nodule is not None and nodule.frame == image.frame_index:
            if nodule.box != self.roi or nodule.source is BoxSource.FULL:
                self.roi, self._roi_source = nodule.box, nodule.source
                self.view.set_roi(nodule.box)
                self._show_candidates()
                self.analyse_whole_image() if nodule.source is BoxSource.FULL else self.analyse()
        elif self.roi is not None and nodule is None:
            self.analyse_whole_image()  # the box was undone: back to the scan area

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
