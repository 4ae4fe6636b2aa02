"""The main window: open an image, draw the nodule box, see the model's estimate."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QSettings, Qt, QThreadPool, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from thyroid_desktop.core.analysis import AnalysisService
from thyroid_desktop.core.io.images import ImageLoadError, UltrasoundImage, open_image
from thyroid_desktop.core.models.shipped import (
    Classifier,
    ModelError,
    Segmenter,
    load_classifier,
    load_segmenter,
)
from thyroid_desktop.core.report.audit import AuditLog
from thyroid_desktop.core.review.lifecycle import Answer, answer_record
from thyroid_desktop.core.review.reading import (
    Next,
    Review,
    Step,
    loop_fps,
)
from thyroid_desktop.core.review.session import Session, SessionStore
from thyroid_desktop.core.site.profile import use_active_profile
from thyroid_desktop.ui.analysis_actions import AnalysisMixin
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
from thyroid_desktop.ui.session_actions import SessionMixin
from thyroid_desktop.ui.side_column import SideColumn
from thyroid_desktop.ui.site_actions import SiteCalibrationMixin
from thyroid_desktop.ui.study_list import StudyList, make_thumbnail
from thyroid_desktop.ui.tirads_panel import TiradsPanel
from thyroid_desktop.ui.validation_dialog import ValidationRunner
from thyroid_desktop.ui.workers import Task

log = logging.getLogger(__name__)

FIRST_RUN_HINT = (
    "To start: drop images, cine loops or a folder on the window, or File > Open (Ctrl+O). "
    "F1 lists every shortcut."
)


class MainWindow(
    MenusMixin,
    BatchMixin,
    MeasureMixin,
    ExportsMixin,
    SiteCalibrationMixin,
    NodulesMixin,
    AnalysisMixin,
    SessionMixin,
    QMainWindow,
):
    """Shows the study list, the current image, box and finding. The reading state and its
    rules are ``self.review`` (``core.review.reading.Review``, over the undoable session);
    the window shows it and sends it the user's actions. All analysis runs through
    ``core.analysis`` in a one-thread pool so the GUI never blocks and the model is never
    called twice at once. Menus, analysis, batch, sizes, exports, site calibration and
    nodule/cine actions are mixins, one module each.

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
        self.service: AnalysisService | None = None
        self._closed = False
        self.last_message: QMessageBox | None = None
        #: The status line about the image shown (say_about_image), if it is still up.
        self._image_message = ""
        self._notice_until = 0.0  # say_notice's line lasts until then (time.monotonic)
        #: The workstation's calibration when it is not this window's (site_actions).
        self._outside = None
        #: The window's own calibration switch has written the pointer and is under way.
        self._switch_pending = False
        self.audit = AuditLog()
        #: The reading state (study list, image, box, nodules, results), over the autosaved
        #: session of undoable edits.
        self.review = Review(Session(SessionStore()))
        self.session = self.review.session
        self._line_purpose = "scale"  # what the next measuring line is for: scale or caliper
        self.study_list = StudyList()
        self.view = ImageView()
        self.panel = ResultPanel()
        self.tirads = TiradsPanel()
        self.nodules = NodulePanel()
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
        self._wire_boxes()  # the view and the result panel: boxes, proposals, heat map
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
        self._split = split
        self._build_menus()
        self._restore_layout()
        self._image_controls()  # nothing on screen yet
        if not self.settings.value("hints/first_run_shown", False, type=bool):
            self.statusBar().showMessage(FIRST_RUN_HINT, 60000)
            self.settings.setValue("hints/first_run_shown", True)

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
        chosen = use_active_profile(classifier)
        if chosen.worth_saying:
            self.statusBar().showMessage(f"Calibration: {chosen.message}", 20000)
        if self.review.calibration_stale(classifier.calibration):  # a restored study
            self.rescore_study(f"Calibration: {chosen.message}.")
        else:
            self.review.calibration_changed(classifier.calibration, classifier.card.spread_limit)
        self.calibration_menu.classifier = classifier
        self._show_calibration()
        self.panel.set_output_name(classifier.card.output_name)
        self.panel.show_state("Model ready. Click on the nodule or draw a box around it.")
        self.device_label.setText(f"Device: {classifier.device} ({classifier.runtime})")
        review = self.review
        if review.pending:
            review.pending = False
            if review.wants_best_frame():  # as first_step decided before the model was ready
                self._find_best_frame()
            else:
                self.analyse() if review.roi is not None else self.auto_detect()

    def _model_failed(self, err: Exception) -> None:
        message = (
            str(err) if isinstance(err, ModelError) else f"The model could not be loaded: {err}"
        )
        self.show_message("Model unavailable", message, QMessageBox.Icon.Critical)

    # -- study list and images -------------------------------------------------------------
    def open_path(self, path: Path) -> bool:
        return self.open_paths([path])

    def open_paths(self, paths) -> bool:
        """Adds files and folders to the study list and shows the first new image that can
        be read. Files that cannot are marked in the list; the current image stays. Images
        of another patient or study than the open study's are only added when the clinician
        says so (``Review.admit`` decides what to ask; the answer is in the audit log)."""
        admission = self.review.admit(paths)
        if not (admission.fits or admission.others or admission.later):
            self.show_message("Nothing to open", "No image files found there.")
            return False
        answer = self.ask_other_patient(admission) if admission.others else None
        if answer is not None:
            self._log_answer(admission, answer)
        fits = list(admission.fits)
        if answer is Answer.ADD_ANYWAY:
            fits += admission.others
        opened = bool(fits) and self._add_and_show(fits)
        if answer is Answer.NEW_STUDY:
            self.new_study()
            opened = self._add_and_show(list(admission.others))
        if admission.later:  # a third patient's: asked about in turn
            opened = self.open_paths(list(admission.later)) or opened
        return opened

    def ask_other_patient(self, admission) -> Answer:
        """Asks whether images of another patient start a new study or join this one."""
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Thyroid Review — another patient",
            admission.question,
            QMessageBox.StandardButton.NoButton,
            self,
        )
        buttons = {
            box.addButton("New study", QMessageBox.ButtonRole.AcceptRole): Answer.NEW_STUDY,
            box.addButton("Add anyway", QMessageBox.ButtonRole.DestructiveRole): (
                Answer.ADD_ANYWAY
            ),
            box.addButton(QMessageBox.StandardButton.Cancel): Answer.CANCEL,
        }
        box.exec()
        return buttons.get(box.clickedButton(), Answer.CANCEL)

    def _log_answer(self, admission, answer: Answer) -> None:
        try:
            self.audit.append(answer_record(admission, answer))
        except OSError as err:
            self.statusBar().showMessage(f"Audit log not written: {err}", 15000)

    def _add_and_show(self, paths) -> bool:
        rows, new = self.review.add_files(paths)
        if not rows:
            self.show_message("Nothing to open", "No image files found there.")
            return False
        for row in new:
            self.study_list.add_line(self.review.list_line(row))
            self._make_thumbnail(row)
        for row in rows:
            if self.select(row):
                return True
        bad = self.review.entries[rows[0]]
        more = f" (and {len(rows) - 1} more)" if len(rows) > 1 else ""
        self.show_message("Cannot open", f"{bad.error}{more}")
        return False

    def new_study(self) -> None:
        """File > New study / Close study: the study closes (everything stays in its session
        file: reopening any of its images brings its work back) and the window is empty."""
        if self.batch.running:
            self.cancel_batch()
        self.frame_bar.set_playing(False)
        before = self.review.closing_text if self.review.entries else ""
        self.review.new_study()
        self._image_controls()
        self.study_list.clear()
        self.view.clear()
        self.panel.clear()
        self.tirads.set_choices(None)
        self.tirads.set_descriptors(None)
        self.tirads.set_size(None)
        self.tirads.set_suggestion(None)
        self.frame_bar.set_loop(1)
        self._refresh_nodules()
        self.panel.show_state(FIRST_RUN_HINT)
        self.setWindowTitle(self.review.title())
        if before:
            self.statusBar().showMessage(
                f"Study of {before} closed; it is kept (reopen any of its images to go on).",
                15000,
            )

    def restore_open_study(self) -> bool:
        """At start: the study open when the app last stopped (even killed) comes back
        whole, its list and nodules at once; its first image that can be read is shown.
        False when no study was open."""
        if not self.review.restore_open_study():
            return False
        for row in range(len(self.review.entries)):
            self.study_list.add_line(self.review.list_line(row))
            self._make_thumbnail(row)
        self.setWindowTitle(self.review.title())
        self.statusBar().showMessage(
            f"The open study was restored: {len(self.review.entries)} image(s), "
            f"{len(self.session.state.nodules)} nodule(s).",
            15000,
        )
        if not any(self.select(row) for row in range(len(self.review.entries))):
            self._show_unreadable(0)  # its files are gone: the list says so, the work stays
        return True

    def _show_row(self, row: int | None, thumbnail=None) -> None:
        if row is not None and row < self.study_list.count():
            self.study_list.show_line(row, self.review.list_line(row), thumbnail)

    def _make_thumbnail(self, row: int) -> None:
        """Reads the file in the background and shows its thumbnail in the list (a file
        that cannot be read says why when it is selected)."""
        entries = self.review.entries
        entry = entries[row]

        def read():
            image = open_image(entry.path)
            return image, make_thumbnail(image.pixels)

        task = Task(read)

        def done(result) -> None:
            self._tasks.discard(task)
            current = entries is self.review.entries  # not a study closed meanwhile
            if not self._closed and current and row < len(entries) and entries[row] is entry:
                image, thumb = result
                self.review.entry_read(row, entry.path, image)
                self._show_row(row, thumb)

        def failed(err) -> None:
            self._tasks.discard(task)
            current = entries is self.review.entries
            if not self._closed and current and row < len(entries) and entries[row] is entry:
                self.review.entry_failed(row, entry.path, err)
                self._show_row(row)

        task.signals.finished.connect(done)
        task.signals.failed.connect(failed)
        self._tasks.add(task)
        self.thumb_pool.start(task)

    def _row_changed(self, row: int) -> None:
        """The user moved in the list (click or arrow keys)."""
        # not a row of the study (the list being emptied as a study closes moves its row)
        if not 0 <= row < len(self.review.entries) or row == self.review.current:
            return
        if not self.select(row):
            self._show_unreadable(row)

    def step(self, delta: int) -> None:
        """Previous (-1) or next (+1) image of the study list."""
        row = self.review.step_row(delta)
        if row is not None:
            self.study_list.setCurrentRow(row)

    def select(self, row: int) -> bool:
        """Shows row ``row``'s file with what the session holds for it (``Review.open_entry``
        and ``first_step`` decide what)."""
        try:
            image = self.review.open_entry(row)
        except ImageLoadError:
            self._show_row(row)
            return False
        self.study_list.setCurrentRow(row)
        self._show_row(row, make_thumbnail(image.pixels))
        nodule = self.review.nodule(image)
        self.tirads.set_choices(nodule.tirads if nodule else None)
        self._refresh_nodules()
        self.frame_bar.set_loop(image.n_frames, image.frame_index, loop_fps(image))
        if image.sha256 in self.review.frame_scores:
            self.frame_bar.set_scores(self.review.frame_scores[image.sha256])
        self._remember(self.review.entries[row].path)
        self._present(image, self.review.first_step(image))
        return True

    def _present(self, image: UltrasoundImage, step: Next | None = None) -> None:
        """Shows a frame of the current file and does what ``Review.present`` says."""
        step = step or self.review.present(image)
        if step.step is Step.SHOW_RESULT:
            self.show_image(image, finding=step.finding)
        elif step.step in (Step.ANALYSE_BOX, Step.FIND_BEST_FRAME):
            self.show_image(image, analyse=False)
            if step.step is Step.FIND_BEST_FRAME:
                self._find_best_frame()
                return
            self.review.follow_nodule()
            self._show_box()
            self._show_candidates()
            self.analyse()
        else:
            self.show_image(image)

    def _show_unreadable(self, row: int) -> None:
        """A list entry whose file cannot be read is selected: show no image, say why."""
        entry = self.review.entries[row]
        self._forget_image_message()
        self.review.show_unreadable(row)
        self.view.clear()
        self.panel.clear()
        self.tirads.set_descriptors(None)
        self.tirads.set_size(None)
        self.tirads.set_suggestion(None)
        self.panel.show_state(entry.error)
        self.setWindowTitle(f"Thyroid Review — {entry.name} (unreadable)")
        self._image_controls()

    def _image_controls(self) -> None:
        """What acts on the image on screen (its TI-RADS choices, the heat map, adding a
        nodule) works only while one is shown (``Review.image_shown``): not beside an
        unreadable file's message, nor in an empty window."""
        on = self.review.image_shown
        for w in (self.tirads, self.panel.overlay, self.panel.opacity, self.nodules.add_button):
            w.setEnabled(on)

    def show_image(self, image: UltrasoundImage, roi=None, finding=None, analyse=True) -> None:
        """Shows ``image``; analyses ``roi``, or shows an earlier ``finding``, or auto-detects
        (nothing when ``analyse`` is False: a cine loop playing, or a box to follow)."""
        self._forget_image_message()
        self.review.show(image)
        self._image_controls()
        if image.source is None:  # the demo or an in-memory image: not in the study list
            self.study_list.setCurrentRow(-1)
            self.tirads.set_choices(None)
            self.frame_bar.set_loop(image.n_frames)
        self.view.set_image(image.pixels)
        if image.source is not None:  # the panel describes this frame's nodule, or none
            nodule = self.review.nodule()
            self.tirads.set_choices(nodule.tirads if nodule else None)
        self._refresh_nodules()  # the other nodules marked on this frame
        self.panel.clear()
        self.tirads.set_suggestion(None)
        self._show_size()  # a nodule's size (its calipers) before any analysis
        self.setWindowTitle(self.review.title(image))
        if not analyse:
            self.view.set_roi(None)
            self.view.set_candidates([])
        elif finding is not None:
            self.review.reshow(finding)
            self._show_finding(image, finding)
        elif roi is not None:
            self.set_roi(roi)
        else:
            self.auto_detect()

    # -- plumbing --------------------------------------------------------------------------
    def say_about_image(self, text: str, ms: int) -> None:
        """A status line about the image or frame shown (its nodule, proposal, analysis):
        taken away when another image or frame is shown, so it never seems to say
        something about that one. It waits while a notice (`say_notice`) lasts."""
        self._image_message = text
        if time.monotonic() < self._notice_until:
            return
        self.statusBar().showMessage(text, ms)

    def say_notice(self, text: str, ms: int) -> None:
        """A status line the routine ones (an analysis's time) do not replace while it
        lasts: a study re-scored, a calibration changed outside the window (a GUI trial
        never saw either: the re-analysis that followed replaced them at once)."""
        self._notice_until = time.monotonic() + ms / 1000
        self.statusBar().showMessage(text, ms)

    def _forget_image_message(self) -> None:
        if self._image_message and self.statusBar().currentMessage() == self._image_message:
            self.statusBar().clearMessage()
        self._image_message = ""

    def ask_yes_no(self, title: str, text: str) -> bool:
        """A question whose safe answer, No, is the default; True for Yes."""
        answer = QMessageBox.question(
            self,
            title,
            text,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def show_message(
        self, title: str, text: str, icon=QMessageBox.Icon.Warning, details: str = ""
    ) -> None:
        """Says what went wrong without blocking: panel, status bar and a window-modal box
        (``details``, e.g. one line per object, behind the box's Show Details…)."""
        self.panel.show_state(text)
        self.statusBar().showMessage(text, 15000)
        box = QMessageBox(
            icon, f"Thyroid Review — {title}", text, QMessageBox.StandardButton.Ok, self
        )
        if details:
            box.setDetailedText(details)
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

    def changeEvent(self, event) -> None:  # noqa: N802
        super().changeEvent(event)
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            try:  # a profile put in use from the command line
                self.check_calibration_outside()
            except Exception as err:  # a damaged profile file must not break the window
                log.warning("calibration check on activation: %s", err)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/split3", self._split.saveState())
        self.batch.cancel()
        self.validation.cancel()
        self.frame_bar.set_playing(False)
        self.thumb_pool.clear()
        self.pool.waitForDone(5000)
        self.thumb_pool.waitForDone(5000)
        self.record_written_srs()  # an export that finished now delivers no result
        self._closed = True
        super().closeEvent(event)
