"""What the reader sees while reading a study, and the rules that change it, without Qt.

:class:`Review` holds the study list, the image and frame on screen, the detector's
proposals, the box being edited and the nodule it belongs to, and which analysis result is
the latest; the window only shows it and sends it the user's actions. Edits that must be
undoable go to the :class:`~thyroid_desktop.core.review.session.Session` beneath it.

Words (DESIGN.md): a *proposal* is a candidate box the detector found (drawn dashed, its
estimate preliminary, never in a report); a *nodule* is in the session (N1, N2, ... in the
order confirmed) and is what the CSV, the PDF, the saved session and the audit log's findings
hold. A proposal becomes a nodule only by the clinician: accepted (:meth:`Review.accept_proposal`),
adjusted (its box moved or resized) or replaced by a box they draw; a rejected one is hidden for
that frame. When the detector finds nothing there is no estimate (the whole scan area is
analysed only when the user asks for it). Each nodule has one result, ``Nodule.estimate``,
written when the analysis of its current box arrives and cleared when the box changes: the
panel, the study list, the CSV and the study report all read that one. A proposal's (or an
asked-for scan area's) result is kept here, preliminary, for the study list only.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from thyroid_desktop.core.analysis import AnalysisResult, Detection, Finding
from thyroid_desktop.core.clinical.measure import (
    Caliper,
    NoduleSize,
    Plane,
    box_size,
    caliper_length_text,
    effective_scale,
    finding_size,
)
from thyroid_desktop.core.clinical.tirads import TiradsChoices
from thyroid_desktop.core.io.images import ImageLoadError, UltrasoundImage, open_image
from thyroid_desktop.core.io.scale import Scale
from thyroid_desktop.core.pipeline.estimate import shown_numbers
from thyroid_desktop.core.pipeline.roi import ROI, BoxSource
from thyroid_desktop.core.review.lifecycle import (
    Admission,
    Identity,
    Rescore,
    Rescored,
    read_identity,
    sort_new_files,
)
from thyroid_desktop.core.review.session import (
    Estimate,
    LatestRequest,
    Nodule,
    Session,
    View,
    offered_candidates,
    state_to_json,
)
from thyroid_desktop.core.review.study import ResultRow, StudyEntry, expand_paths
from thyroid_desktop.core.site.calibration import SHIPPED, Calibration, calibration_text


class Step(enum.Enum):
    """What the window does with a frame it is about to show."""

    FIND_BEST_FRAME = "score every frame of a cine loop first"
    SHOW_RESULT = "show the result already there (``Next.finding``)"
    ANALYSE_BOX = "analyse the shown nodule's box"
    AUTO_DETECT = "let the detector propose the box"
    ANALYSE_AREA = "analyse the whole scan area"


@dataclass(frozen=True)
class Next:
    step: Step
    finding: Finding | None = None


class Tone(enum.Enum):
    """How a study-list line is coloured."""

    NORMAL = "normal"
    WARNING = "no estimate"
    ERROR = "unreadable"


@dataclass(frozen=True)
class ListLine:
    """One line of the study list, as text."""

    text: str
    tooltip: str
    tone: Tone


@dataclass(frozen=True)
class CaliperShown:
    """A caliper line on the frame on screen: whose (``nodule_id``), its number there, its
    ends and its length as text ("12.3 mm", or "123 px" uncalibrated)."""

    nodule_id: str
    number: int
    caliper: Caliper
    length_text: str
    #: Whether it is a line of the nodule the panel describes; another nodule's line is
    #: labelled with that nodule's id ("N1 · 1: 14.8 mm"), so it is not read as this one's.
    own: bool = True

    @property
    def label(self) -> str:
        whose = "" if self.own else f"{self.nodule_id} · "
        return f"{whose}{self.number}: {self.length_text}"


@dataclass(frozen=True)
class Preliminary:
    """An image's result that is no nodule's: a proposal's, or the whole scan area's when the
    user asked for it; ``estimate`` None: the detector found nothing. For the study list."""

    frame: int
    estimate: Estimate | None


#: What the window says when the detector finds nothing on a frame.
NOTHING_FOUND = "No nodule found: click on the nodule or draw a box."


class Review:
    """The reading state over a session: see the module docstring.

    Args:
        session: the undoable, autosaved review state (nodules, choices, scales, frames).
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.entries: list[StudyEntry] = []
        self.current: int | None = None  # row of the shown image in the study list
        self.image: UltrasoundImage | None = None
        self.roi: ROI | None = None  # the box on screen (None: the whole scan area)
        self.roi_source = BoxSource.MANUAL
        self.finding: Finding | None = None  # the result on screen (with its heat map)
        self.proposals: list = []  # the detector's candidates on this frame, best first
        #: The proposal on screen (the box being looked at, not a nodule yet), or None.
        self.proposal: ROI | None = None
        #: The detector found nothing on this frame (no estimate, no heat map).
        self.nothing_found = False
        #: Proposals rejected on an image that is no file of the study (the demo): hidden
        #: there; a study's are kept in the session (``SessionState.rejected``).
        self._rejected_here: dict[tuple[str, int], set[ROI]] = {}
        self.nodule_id: str | None = None  # the session's nodule shown (on the frame shown)
        self.adding = False  # the next box drawn is a new nodule
        self.user_mm_per_px: float | None = None  # the user's scale of the shown image
        self.frame_scores: dict[str, tuple[float, ...]] = {}  # image sha256 -> per frame
        self.calibration = SHIPPED  # the calibration in use, as ``Finding.calibration`` names it
        #: Only the latest analysis asked for the shown image may be shown.
        self.requests = LatestRequest()
        self.awaiting = False  # an analysis of the shown image is under way
        self.pending = False  # an analysis waits for the model to load
        self._prelim: dict[str, Preliminary] = {}
        #: The last finding shown per image: its heat map is shown again on coming back,
        #: but only while it is still the stored result (``_reusable``).
        self._seen: dict[str, Finding] = {}
        #: Images (sha256) refused as out of scope that the clinician analyses anyway.
        self._forced: set[str] = set()
        #: Whose each file of the list is, read from its header when it was opened.
        self._identities: dict[Path, Identity] = {}
        #: The proposal last accepted (by the button, or by describing it) and its result
        #: if the one on screen was for its box: (nodule id, finding or None), until
        #: :meth:`take_accepted` hands it to whoever records and shows it.
        self._accepted: tuple[str, Finding | None] | None = None

    # ------------------------------------------------------------------ the study
    @property
    def identity(self) -> Identity:
        """Whose the study is: the session's (its first image that says), else the first
        file of the list that says (not opened yet)."""
        known = self.session.state.study.identity
        if known.known:
            return known
        return next((i for i in self._identities.values() if i.known), Identity())

    def admit(self, paths: Iterable[str | os.PathLike[str]]) -> Admission:
        """Sorts files (and folders' images) being opened against the study's patient (from
        their headers, no pixels read): those that fit may join it; those of another
        patient or study wait for the clinician (``Admission.question``)."""
        known = {e.path for e in self.entries}
        files = []
        for f in expand_paths(paths):
            if f not in known and f not in self._identities:
                self._identities[f] = read_identity(f)
            files.append((f, Identity() if f in known else self._identities[f]))
        return sort_new_files(self.identity, files)[1]

    def new_study(self) -> None:
        """Closes the study (it stays in its session file) and starts an empty one."""
        self.session.close_study()
        self._forget_study()

    def _forget_study(self) -> None:
        self.entries = []  # a new list: thumbnails under way belong to the old one
        self.current, self.image, self.roi, self.finding = None, None, None, None
        self.proposals, self.proposal, self.nothing_found = [], None, False
        self.nodule_id, self.adding, self.user_mm_per_px = None, False, None
        self.frame_scores, self._prelim, self._seen = {}, {}, {}
        self._rejected_here, self._identities = {}, {}
        self._forced = set()
        self.requests.supersede()
        self.awaiting = self.pending = False

    def restore_open_study(self) -> bool:
        """Brings back the study open when the app last stopped (even killed): its list,
        nodules, choices, measurements, report text and decisions, without reading each
        image (their keys are saved; thumbnails and scales follow as the files are read).
        False when there was none."""
        store = self.session.store
        state = store.open_study() if store is not None else None
        if state is None or not state.images:
            return False
        self._forget_study()
        self.session.load(state)
        self.entries = [StudyEntry(Path(i.path), sha256=i.key) for i in state.images]
        self._identities = {Path(i.path): i.identity for i in state.images}
        return True

    def title(self, image: UltrasoundImage | None = None) -> str:
        """The window title: the study's patient and date ("no patient data" for plain
        images, with a warning when images of another patient were added anyway), and the
        image on screen."""
        image = image or self.image
        shown = f" — {display_name(image)}{frame_text(image, ', ')}" if image is not None else ""
        return f"Thyroid Review — {self.patient_text}{shown}"

    @property
    def patient_text(self) -> str:
        """Whose the study is, for people (see :meth:`title`)."""
        study = self.identity
        listed = [self._identities.get(e.path, Identity()) for e in self.entries]
        held = [i.identity for i in self.session.state.images]
        # the list's files too: one whose image cannot be opened is still another patient's
        if any(i.known and i.differs(study) for i in (*held, *listed)):
            return study.text + " (+ images of another patient)"
        return study.text

    @property
    def closing_text(self) -> str:
        """Whose study closes (File > New study): the images' patient, else the patient typed
        in the report's details (a GUI trial read "Study of no patient data closed" after
        typing one), else "no patient data"."""
        if self.identity.known:
            return self.patient_text
        report = self.session.state.study.report
        typed = [report.patient_name] + ([f"ID {report.patient_id}"] if report.patient_id else [])
        who = " ".join(t for t in typed if t)
        return f"{who} (typed in the report)" if who else self.patient_text

    def to_json(self) -> dict:
        """Everything the reading holds that is kept (the session, the list, the rows the
        CSV and the report list, whose study it is), as JSON: what a restart must bring
        back."""
        state = self.session.state
        return {
            "session": state_to_json(state),
            "entries": [[str(e.path), e.sha256] for e in self.entries],
            "rows": [r.nodule.id for r in self.rows() if r.nodule is not None],
            "patient": self.patient_text,
        }

    # ------------------------------------------------------------------ study list
    def add_files(self, paths: Iterable[str | os.PathLike[str]]) -> tuple[list[int], list[int]]:
        """Adds files and folders' images once each. Returns the rows of the files named
        (in order) and the rows that are new."""
        known = {e.path: i for i, e in enumerate(self.entries)}
        rows, new = [], []
        for f in expand_paths(paths):
            if f not in known:
                known[f] = len(self.entries)
                self.entries.append(StudyEntry(f))
                self._identities.setdefault(f, Identity())
                new.append(known[f])
            rows.append(known[f])
        return rows, new

    def entry_read(self, row: int, path: Path, image: UltrasoundImage) -> None:
        """A file of the list was read in the background (its thumbnail): its key and scale
        are known from now on, and it joins the session, bringing back what was saved for
        it, so the CSV, the list, the report and the batch see its nodules before it is
        opened."""
        if row < len(self.entries) and self.entries[row].path == path:
            entry = self.entries[row]
            entry.sha256, entry.scale = image.sha256, image.scale
            self.session.add_image(image.sha256, path, image.n_frames, Identity.of(image.metadata))

    def entry_failed(self, row: int, path: Path, err: Exception) -> None:
        """A file of the list could not be read in the background (its thumbnail): the list
        says why at once, not "not analysed" until it is selected. Only a file that cannot
        be read (``ImageLoadError``); any other failure is left to opening it."""
        if not isinstance(err, ImageLoadError):
            return
        if row < len(self.entries) and self.entries[row].path == path:
            entry = self.entries[row]
            if not entry.sha256:  # not read meanwhile (opened, or a batch read it)
                entry.error = str(err)

    @property
    def image_shown(self) -> bool:
        """An image is on screen to describe, measure or add a nodule to (not an unreadable
        file's message, nor an empty window)."""
        return self.image is not None

    def open_entry(self, row: int) -> UltrasoundImage:
        """Reads row ``row``'s file at the frame last shown and makes it current, with the
        nodule to show (the one shown before if it is on this image, else its first).

        Raises:
            ImageLoadError: the file cannot be read (the entry then says why).
        """
        entry = self.entries[row]
        try:
            image = open_image(entry.path)
            identity = Identity.of(image.metadata)
            self.session.add_image(image.sha256, entry.path, image.n_frames, identity)
            record = self.session.state.image(image.sha256)
            if record.frame:
                image = open_image(entry.path, frame=record.frame)
        except ImageLoadError as err:
            entry.error = str(err)
            raise
        entry.sha256, entry.scale, entry.error = image.sha256, image.scale, ""
        self.current = row
        self.user_mm_per_px = record.user_mm_per_px
        self._show_nodule_of(image.sha256, image.frame_index)
        self.adding = False
        return image

    def _show_nodule_of(self, key: str, frame: int) -> None:
        """The nodule shown is one on this frame (the one shown before if it is there, else
        the first): never another frame's, so the panel always describes the box drawn."""
        nodules = self.session.state.nodules_on(key, frame)
        keep = next((n for n in nodules if n.id == self.nodule_id), None)
        shown = keep or (nodules[0] if nodules else None)
        self.nodule_id = shown.id if shown else None

    def show_unreadable(self, row: int) -> None:
        """Row ``row``, whose file cannot be read, is selected: nothing is on screen."""
        self.current, self.image, self.roi, self.finding = row, None, None, None
        self.proposals, self.proposal, self.nothing_found = [], None, False
        self.requests.supersede()
        self.awaiting = False

    def step_row(self, delta: int) -> int | None:
        """The row ``delta`` away from the current one, if there is one."""
        if not self.entries:
            return None
        row = 0 if self.current is None else self.current + delta
        return row if 0 <= row < len(self.entries) else None

    def row_of(self, key: str) -> int | None:
        return next((i for i, e in enumerate(self.entries) if e.sha256 == key), None)

    # ------------------------------------------------------------------ what is shown
    def show(self, image: UltrasoundImage) -> None:
        """``image`` is on screen; results still coming for the previous one are dropped.
        An image that is no file (the demo) has no study-list row, nodule or scale."""
        if image.source is None:
            self.current, self.user_mm_per_px, self.nodule_id = None, None, None
        self.image, self.finding, self.proposals = image, None, []
        self.roi, self.proposal, self.nothing_found = None, None, False
        self.requests.supersede()
        self.awaiting = False

    def in_session(self) -> bool:
        """The image on screen is a file of the study (the demo is not)."""
        image = self.image
        return (
            image is not None
            and image.source is not None
            and self.session.state.image(image.sha256) is not None
        )

    def nodule(self, image: UltrasoundImage | None = None) -> Nodule | None:
        """The session's nodule shown on ``image`` (default: the one on screen), or None."""
        image = image or self.image
        n = self.session.state.nodule(self.nodule_id) if self.nodule_id else None
        return n if n is not None and image is not None and n.image == image.sha256 else None

    def needs_best_frame(self, image: UltrasoundImage | None = None) -> bool:
        """A cine loop not scored yet."""
        image = image or self.image
        return image is not None and image.n_frames > 1 and image.sha256 not in self.frame_scores

    def wants_best_frame(self, image: UltrasoundImage | None = None) -> bool:
        """A cine loop not scored yet and without nodules or linked views: searched for its
        best frame first (one holding them opens on the frame last shown, as marked)."""
        image = image or self.image
        return self.needs_best_frame(image) and not self.session.state.marked_on(image.sha256)

    def first_step(self, image: UltrasoundImage) -> Next:
        """What to do with a file just selected: :meth:`wants_best_frame`, else as
        :meth:`present`."""
        if self.wants_best_frame(image):
            return Next(Step.FIND_BEST_FRAME)
        return self.present(image)

    def present(self, image: UltrasoundImage) -> Next:
        """What to do with a frame of the current file: show its result when it is still
        the stored one, else analyse its nodule's box when the nodule is on this frame, else
        let the detector propose one."""
        cached = self._reusable(image)
        if cached is not None:
            return Next(Step.SHOW_RESULT, cached)
        nodule = self.nodule(image)
        on_frame = nodule is not None and nodule.frame == image.frame_index
        if on_frame and nodule.source is not BoxSource.FULL:
            return Next(Step.ANALYSE_BOX)
        return Next(Step.AUTO_DETECT)

    def follow_nodule(self) -> ROI | None:
        """The box becomes the shown nodule's (when it is on this frame and not the whole
        scan area); returns it."""
        nodule = self.nodule()
        if nodule is None or self.image is None or nodule.frame != self.image.frame_index:
            return None
        if nodule.source is BoxSource.FULL:
            return None
        self.roi, self.roi_source = nodule.box, nodule.source
        return nodule.box

    def reshow(self, finding: Finding) -> None:
        """A result already there is shown again (its box, unless it is the scan area): the
        shown nodule's, else a proposal's (preliminary again)."""
        self.roi = finding.roi if finding.roi_source is not BoxSource.FULL else None
        self.roi_source, self.finding = BoxSource(finding.roi_source), finding
        nodule = self.nodule()
        marked = self.roi is not None and self.roi in self._marked()  # e.g. a linked view's
        if self.roi is not None and (nodule is None or nodule.box != self.roi) and not marked:
            self.proposal = self.roi

    @property
    def preliminary(self) -> bool:
        """The result on screen is no nodule's (a proposal's, or the scan area's)."""
        return self.finding is not None and not self.shown_result_matches()

    def use_scan_area(self) -> None:
        """The next analysis is of the whole scan area (no box): the user asked for it."""
        self.roi, self.proposal, self.nothing_found = None, None, False

    def open_frame(self, frame: int) -> UltrasoundImage:
        """Frame ``frame`` of the current file, which becomes the file's frame on screen.

        Raises:
            ImageLoadError: the frame cannot be decoded.
        """
        image = open_image(self.entries[self.current].path, frame=frame)
        self.session.set_frame(image.sha256, frame)
        self._show_nodule_of(image.sha256, image.frame_index)
        self.adding = False
        return image

    def _reusable(self, image: UltrasoundImage) -> Finding | None:
        """The finding last shown for ``image`` when it is still the stored result (same
        box, same calibration; a cine loop's frames are analysed anew)."""
        seen = self._seen.get(image.sha256)
        if seen is None or image.n_frames > 1 or seen.calibration != self.calibration:
            return None
        nodule = self.nodule(image)
        if nodule is not None:
            stored = nodule.estimate
        else:
            prelim = self._prelim.get(image.sha256)
            stored = prelim.estimate if prelim is not None else None
        return seen if stored == Estimate.of(seen) else None

    # ------------------------------------------------------------------ requests
    def begin_request(self) -> int:
        """An analysis of the shown image starts: its number (older ones become stale)."""
        self.awaiting = True
        return self.requests.begin()

    def stale(self, request: int) -> bool:
        return self.requests.is_stale(request)

    def ready(self, model_loaded: bool) -> bool:
        """True when there is an image and a model; else remembers to analyse once loaded."""
        if self.image is None:
            return False
        self.pending = not model_loaded
        return not self.pending

    def failed(self, request: int) -> bool:
        """An analysis failed: True when it was the latest one (then say so)."""
        if self.stale(request):
            return False
        self.awaiting = False
        return True

    # ------------------------------------------------------------------ boxes and nodules
    def box_drawn(self, roi: ROI, source: BoxSource = BoxSource.MANUAL) -> bool:
        """The clinician drew a box, or moved or resized the one on screen: it is the shown
        nodule's new box, else (a proposal adjusted, or a box of their own) a new nodule, as
        when they asked for one (Ctrl+N). Returns True when a nodule was added."""
        before = self.roi
        self.roi, self.roi_source = roi, BoxSource(source)
        self.proposal, self.nothing_found = None, False
        if not self.in_session():
            return False
        frame = self.image.frame_index
        view = None if self.adding else self._view_with_box(before)
        if view is not None:  # a linked view's box adjusted: that view, not a new nodule
            self.session.set_view_box(*view, roi)
            return False
        nodule = self.nodule()
        if self.adding or nodule is None or nodule.frame != frame:
            self.adding = False
            self._add_nodule(roi, BoxSource(source))
            return True
        self.session.set_box(self.nodule_id, roi, BoxSource(source), frame)
        return False

    def _view_with_box(self, box: ROI | None) -> tuple[str, int] | None:
        """(nodule id, view index) of the linked view on the frame on screen whose box is
        ``box``, or None."""
        if box is None:
            return None
        for n, i in self.session.state.views_on(self.image.sha256, self.image.frame_index):
            if n.views[i].box == box:
                return n.id, i
        return None

    def _add_nodule(self, box: ROI, source: BoxSource, outline=()) -> str:
        """The one place a nodule is made: the clinician confirmed this box (an undo step)."""
        image = self.image
        self.nodule_id = self.session.add_nodule(
            image.sha256, image.frame_index, box, source, outline=tuple(outline)
        )
        return self.nodule_id

    def outlined(
        self,
        image: UltrasoundImage,
        request: int,
        finding: Finding,
        outline: tuple[tuple[float, float], ...] = (),
    ) -> bool:
        """The nodule the clinician clicked on, or drew a stroke along, outlined by the
        segmenter (``outline``, empty when its box is a guess): a new nodule (the click
        confirms it; one undo step) with this result; its outline is kept, so every later
        analysis of it (coming back, the report) uses the same mask. False when it is
        stale (the user moved on meanwhile)."""
        if self.stale(request) or image is not self.image:
            return False
        self.roi, self.roi_source = finding.roi, BoxSource(finding.roi_source)
        self.proposal, self.nothing_found, self.adding = None, False, False
        if not self.in_session():
            return False
        self._add_nodule(finding.roi, BoxSource(finding.roi_source), outline)
        return self.analysed(image, request, finding)

    def outline(self) -> tuple[tuple[float, float], ...] | None:
        """What the box on screen is analysed with (``AnalysisService.analyse_box``'s
        ``outline``): the shown nodule's click or stroke outline, else None."""
        nodule = self.nodule()
        if nodule is None or nodule.box != self.roi:
            return None
        return nodule.outline_or_none

    def contour_shown(self) -> tuple[tuple[float, float], ...] | None:
        """The nodule outline drawn on the image, as the report draws it: the shown nodule's
        click or stroke outline, else the segmenter's mask outline of the result on screen
        when it is for the box on screen (the mask whose longest axis the size may quote;
        a trial saw that size with no outline drawn); None when there is none."""
        outline = self.outline()
        if outline:
            return outline
        f = self.finding
        if f is None or self.roi is None or f.roi != self.roi or not f.in_scope:
            return None
        sug = f.tirads_suggestion
        return tuple(sug.outline) if sug is not None and sug.outline else None

    def show_proposal(self, roi: ROI) -> None:
        """A detected candidate is looked at (picked, or the next one): it is the proposal
        on screen, to analyse; no nodule is shown on this frame meanwhile."""
        self.roi, self.roi_source, self.proposal = roi, BoxSource.AUTO, roi
        self.nothing_found, self.adding, self.nodule_id = False, False, None

    def accept_proposal(self) -> str | None:
        """The clinician accepts the proposal on screen: it becomes a nodule (one undo step)
        with the preliminary result shown for its box. Returns its id, None when no proposal
        of a file of the study is on screen."""
        box = self.proposal
        if box is None or not self.in_session():
            return None
        nodule_id = self._add_nodule(box, BoxSource.AUTO)
        self.proposal, self.roi, self.roi_source = None, box, BoxSource.AUTO
        finding = None
        if self.finding is not None and self.finding.roi == box and not self.awaiting:
            finding = self.finding
            self.session.set_estimate(nodule_id, Estimate.of(finding))
        self._accepted = (nodule_id, finding)
        return nodule_id

    def take_accepted(self) -> tuple[str, Finding | None] | None:
        """The proposal accepted since the last call, however it was accepted (the Accept
        button or key, a TI-RADS choice, accepting the AI's suggestions): its nodule id and
        the result for its box, if that was on screen (what the audit log's
        ``accept-proposal`` line records); None when none was."""
        accepted, self._accepted = self._accepted, None
        return accepted

    def reject_proposal(self) -> bool:
        """The clinician rejects the proposal on screen: hidden on this frame from now on;
        its preliminary result goes. The next candidate (if any) becomes the proposal, to
        analyse; else nothing is found. False when no proposal is on screen."""
        box, image = self.proposal, self.image
        if box is None or image is None:
            return False
        if self.in_session():
            self.session.reject(image.sha256, image.frame_index, box)
        else:
            self._rejected_here.setdefault((image.sha256, image.frame_index), set()).add(box)
        self.proposals = [c for c in self.proposals if c.roi != box]
        prelim = self._prelim.get(image.sha256)
        if prelim is not None and prelim.estimate is not None and prelim.estimate.box == box:
            del self._prelim[image.sha256]
        self.requests.supersede()  # its analysis, if under way, is no longer wanted
        self.awaiting = False
        self.proposal, self.roi, self.finding = None, None, None
        offered = self.offered()
        if offered:
            self.show_proposal(offered[0])
        else:
            self.nothing_found = True
        return True

    def ensure_nodule(self) -> bool:
        """The shown nodule; a proposal on screen is accepted first (the clinician describing
        it confirms it). False when there is nothing to attach a choice to."""
        if self.current is None or not self.in_session():
            return False
        return self.nodule() is not None or self.accept_proposal() is not None

    def start_new_nodule(self) -> bool:
        """The next box drawn is a new nodule; False when no file is on screen."""
        if not self.in_session():
            return False
        self.adding = True
        return True

    def delete_nodule(self) -> bool:
        """Deletes the shown nodule (the others are renumbered); another one on this frame
        (if any) is shown."""
        nodule = self.nodule()
        if nodule is None:
            return False
        self.session.delete_nodule(nodule.id)
        self.nodule_id = None
        self._show_nodule_of(nodule.image, nodule.frame)
        return True

    def pick_nodule(self, nodule_id: str) -> Nodule | None:
        """The nodule to show next (its frame becomes the image's frame); None if unknown."""
        nodule = self.session.state.nodule(nodule_id)
        if nodule is None:
            return None
        self.nodule_id, self.adding = nodule_id, False
        self.session.set_frame(nodule.image, nodule.frame)
        return nodule

    def others_shown(self) -> list[Nodule]:
        """The other nodules on the frame on screen (not the one being edited)."""
        if not self.in_session():
            return []
        image = self.image
        return self.session.state.others_shown(image.sha256, image.frame_index, self.nodule_id)

    def rejected_on(self, key: str, frame: int) -> set[ROI]:
        """The proposals the clinician rejected on frame ``frame`` of image ``key``."""
        here = self._rejected_here.get((key, frame), set())
        return self.session.state.rejected_on(key, frame) | here

    def offered(self) -> list[ROI]:
        """The other candidates drawn dashed (click one to look at it), in rank order: not
        the box on screen, nor one marked as a nodule, nor one rejected on this frame."""
        if self.image is None:
            return []
        return offered_candidates([c.roi for c in self.proposals], self.roi, self._marked())

    def _marked(self, key: str | None = None, frame: int | None = None) -> list[ROI]:
        """Boxes of a frame (default: the one on screen) never offered as candidates: the
        nodules' and the linked views' marked on it (a view's box proposed again became a
        duplicate nodule in a GUI trial), and those rejected."""
        if key is None:
            key, frame = self.image.sha256, self.image.frame_index
        state = self.session.state
        marked = [n.box for n in state.nodules_on(key, frame)]
        marked += [n.views[i].box for n, i in state.views_on(key, frame)]
        return marked + list(self.rejected_on(key, frame))

    def next_proposal(self) -> ROI | str:
        """The box after the shown one in rank order (N), or why there is none."""
        if not self.proposals:
            return "No other candidate: press A to auto-detect."
        rois = offered_candidates([c.roi for c in self.proposals], None, self._marked())
        if not rois:
            return "Every candidate is a nodule already or rejected."
        i = rois.index(self.roi) + 1 if self.roi in rois else 0
        return rois[i % len(rois)]

    # ------------------------------------------------------------------ calipers and views
    def file_scale(self, key: str) -> Scale:
        """The scale file ``key`` states itself (none when it is not read yet)."""
        if self.image is not None and self.image.sha256 == key:
            return self.image.scale
        row = self.row_of(key)
        return self.entries[row].scale if row is not None else Scale.none()

    def scale_of(self, key: str) -> Scale:
        """The scale sizes on image ``key`` use: the file's, else the user's line."""
        record = self.session.state.image(key)
        user = record.user_mm_per_px if record is not None else None
        return effective_scale(self.file_scale(key), user)

    def measured_nodule(self) -> Nodule | None:
        """The nodule whose size the panel shows: the shown nodule, else the one a linked
        view of which is on screen."""
        nodule = self.nodule()
        if nodule is not None or self.image is None:
            return nodule
        views = self.session.state.views_on(self.image.sha256, self.image.frame_index)
        return views[0][0] if views else None

    def caliper_target(self) -> tuple[str, int | None] | None:
        """Where a caliper line drawn on the frame on screen goes: (nodule id, index of its
        linked view, or None for its own image); None when no nodule is shown here."""
        if not self.in_session():
            return None
        key, frame = self.image.sha256, self.image.frame_index
        nodule = self.nodule()
        if nodule is not None and nodule.frame == frame:
            return nodule.id, None
        views = self.session.state.views_on(key, frame)
        mine = [v for v in views if v[0].id == self.nodule_id] or views
        if mine:
            return mine[0][0].id, mine[0][1]
        return (nodule.id, None) if nodule is not None else None

    def add_caliper(self, start: tuple[float, float], end: tuple[float, float]) -> int | None:
        """A caliper line drawn from ``start`` to ``end`` (image pixels) on the frame on
        screen, for :meth:`caliper_target` (one undo step). Returns its number, or None
        when there is no nodule to measure here."""
        target = self.caliper_target()
        if target is None:
            return None
        nodule_id, view = target
        caliper = Caliper(start, end, self.image.frame_index)
        return self.session.add_caliper(nodule_id, caliper, view)

    def move_caliper(self, nodule_id: str, number: int, start, end) -> None:
        """Caliper ``number`` of ``nodule_id`` now runs from ``start`` to ``end``."""
        n = self.session.state.nodule(nodule_id)
        old = next(c for c in n.numbered_calipers() if c.number == number).caliper
        self.session.move_caliper(nodule_id, number, Caliper(start, end, old.frame))

    def calipers_shown(self) -> list[CaliperShown]:
        """Every caliper line on the frame on screen (of any nodule), numbered per nodule,
        with its length under its image's scale."""
        if not self.in_session():
            return []
        key, frame = self.image.sha256, self.image.frame_index
        scale = self.scale_of(key)
        measured = self.measured_nodule()
        out = []
        for n in self.session.state.nodules:
            own = measured is not None and n.id == measured.id
            for c in n.calipers_on(key, frame):
                length = caliper_length_text(c.caliper, scale)
                out.append(CaliperShown(n.id, c.number, c.caliper, length, own))
        return out

    def views_shown(self) -> list[tuple[str, View]]:
        """(nodule id, view) of the linked views on the frame on screen: their boxes are
        drawn labelled, e.g. "N1 longitudinal"."""
        if not self.in_session():
            return []
        views = self.session.state.views_on(self.image.sha256, self.image.frame_index)
        return [(n.id, n.views[i]) for n, i in views]

    def link_view(self, nodule_id: str, plane: Plane) -> str:
        """Links the frame on screen, with its box, to nodule ``nodule_id`` as its view in
        ``plane`` (one undo step). A nodule marked on this frame with that same box is the
        same nodule: it is absorbed (with its calipers) unless the clinician has already
        scored or annotated it. Returns "" when linked, else why not."""
        if not self.in_session():
            return "Open an image of the study first."
        target = self.session.state.nodule(nodule_id)
        if target is None:
            return f"There is no nodule {nodule_id}."
        image, box = self.image, self.roi
        key, frame = image.sha256, image.frame_index
        if (target.image, target.frame) == (key, frame):
            return f"This frame is {nodule_id}'s own image: link another image or frame."
        if box is None:
            return "Draw the nodule's box on this frame first."
        same = [n for n in self.session.state.nodules_on(key, frame) if n.box == box]
        absorb = same[0] if same and same[0].id != nodule_id else None
        if absorb is not None and (
            absorb.tirads != TiradsChoices() or absorb.notes or absorb.views
        ):
            return (
                f"{absorb.id} on this frame has its own TI-RADS choices, notes or views: "
                "delete it first, or link another frame."
            )
        view = View(key, frame, Plane(plane), box, file_scale=image.scale)
        self.session.link_view(nodule_id, view, absorb.id if absorb is not None else None)
        self.nodule_id = nodule_id
        self.proposal = None  # the box on screen is now that nodule's view
        return ""

    def caliper_check(self) -> str:
        """What the panel says under the size when caliper lines of the measured nodule lie
        outside its box or on another frame (``Nodule.stray_text``); "" otherwise."""
        nodule = self.measured_nodule()
        return nodule.stray_text() if nodule is not None else ""

    def size_shown(self) -> NoduleSize | None:
        """The size the panel shows (as the CSV and the PDF give it): the measured nodule's
        (its calipers, else the segmenter's mask, else the box; with its three diameters
        and volume when it has two views; a nodule's also before its frame is analysed
        again, e.g. restored while the model loads), else the box on screen's; None before
        an analysis."""
        if self.image is None:
            return None
        nodule = self.measured_nodule()
        if nodule is None:
            if self.finding is None:
                return None
            return finding_size(self.finding, self.image.scale, self.user_mm_per_px)
        state = self.session.state
        record = state.image(nodule.image)
        finding = self.finding
        shown = finding if finding is not None and finding.roi == nodule.box else None
        if nodule.estimate is not None:
            suggestion = nodule.estimate.suggestion
        else:
            suggestion = shown.tirads_suggestion if shown is not None else None
        return box_size(
            nodule.box,
            suggestion,
            self.file_scale(nodule.image),
            record.user_mm_per_px if record is not None else None,
            nodule.calipers,
            nodule.plane,
            state.linked_views(nodule),
        )

    # ------------------------------------------------------------------ results
    def force_scope(self) -> bool:
        """The clinician asks for an estimate on the shown image although it was refused
        as out of scope ("Analyse anyway"): every analysis of it is forced from now on, and
        each estimate says it lies outside the validated scope. False without an image."""
        if self.image is None:
            return False
        self._forced.add(self.image.sha256)
        return True

    def forced(self, image: UltrasoundImage | None = None) -> bool:
        """True when analyses of ``image`` (default: the shown one) override the scope
        check: asked for in this reading, or a nodule of it was analysed so before."""
        image = image or self.image
        if image is None:
            return False
        key = image.sha256
        return key in self._forced or any(
            n.image == key and n.estimate is not None and n.estimate.overridden_reason
            for n in self.session.state.nodules
        )

    def detected(
        self, image: UltrasoundImage, request: int, finding: Finding, detection: Detection | None
    ) -> bool:
        """The detector's result for the shown frame: its best box not rejected nor marked
        is the proposal (never a nodule by itself). When the result is not for that box (the
        best was rejected: the next one is the proposal, to analyse) or the detector found
        nothing (``nothing_found``), no result is shown. False when it is stale."""
        if self.stale(request) or image is not self.image:
            return False
        self.proposals = list(detection.candidates) if detection is not None else []
        self.roi, self.proposal = None, None
        self.roi_source = BoxSource.AUTO
        found = finding.roi if finding.roi_source is BoxSource.AUTO else None
        offered = self.offered()
        if found is not None and found in offered:
            self.show_proposal(found)
            return self.analysed(image, request, finding)
        self.awaiting, self.finding = False, None
        if offered:
            self.show_proposal(offered[0])  # the window analyses it
        else:
            self.nothing_found = True
            if detection is None and finding.roi_source is BoxSource.NONE:
                # refused as out of scope: kept with its reason for the list
                self._prelim[image.sha256] = Preliminary(image.frame_index, Estimate.of(finding))
            elif self.in_session():
                self._prelim.setdefault(image.sha256, Preliminary(image.frame_index, None))
        return True

    def analysed(self, image: UltrasoundImage, request: int, finding: Finding) -> bool:
        """The result for the shown frame arrived: it becomes the result of the nodule whose
        box it is (or the image's, for the scan area with no nodule) and is shown. False
        when it is stale: the user moved on or changed the box, a newer analysis follows."""
        if self.stale(request) or image is not self.image:
            self._store_late(image, finding)
            return False
        self.awaiting = False
        self._store(image, finding)
        self.finding = finding
        return True

    def still_wanted(self, request: int, image: UltrasoundImage, roi: ROI | None) -> bool:
        """Whether an analysis of ``roi`` on ``image`` is still worth running when the worker
        gets to it: it is the latest request, or its box is a nodule's that has no result
        for it yet (kept by ``_store_late``: no nodule stays "not analysed")."""
        if not self.stale(request):
            return True
        return any(
            n.box == roi and _lacks_result(n)
            for n in self.session.state.nodules_on(image.sha256, image.frame_index)
        )

    def _store_late(self, image: UltrasoundImage, finding: Finding) -> None:
        """A result that arrived after the user moved on is still the result of the nodule
        whose box and frame it is, when that nodule has none for its box yet: kept, so that
        no nodule stays without an estimate in the list and the CSV while the report computes
        one (found in a clinician trial). Not shown; a result under another calibration than
        the one in use now is dropped (its box is analysed again when shown)."""
        if image.source is None or finding.calibration != self.calibration:
            return
        for n in self.session.state.nodules_on(image.sha256, image.frame_index):
            fits = n.box == finding.roi and finding.roi_source is n.source  # its outline too
            if fits and _lacks_result(n):
                self.session.set_estimate(n.id, Estimate.of(finding))

    def _store(self, image: UltrasoundImage, finding: Finding) -> None:
        if image.source is None or self.session.state.image(image.sha256) is None:
            return  # the demo: shown, not kept
        self._seen[image.sha256] = finding
        nodule = self.nodule(image)
        if nodule is not None and nodule.frame == image.frame_index and nodule.box == finding.roi:
            self.session.set_estimate(nodule.id, Estimate.of(finding))
        else:  # a proposal's or the scan area's: preliminary, for the list only
            self._prelim[image.sha256] = Preliminary(image.frame_index, Estimate.of(finding))
            if finding.roi_source is BoxSource.FULL:
                self.nothing_found = False

    def shown_result_matches(self) -> bool:
        """The result on screen is for the shown nodule's current box and frame."""
        nodule, finding = self.nodule(), self.finding
        return (
            nodule is not None
            and finding is not None
            and nodule.box == finding.roi
            and nodule.frame == self.image.frame_index
        )

    def accept_suggestions(self) -> TiradsChoices | str | None:
        """The clinician accepts the AI's TI-RADS suggestions shown, for the groups still
        open (one undo step). Returns the new choices, a reason when they are for another
        box, or None when there is nothing to accept."""
        finding = self.finding
        suggestion = finding.tirads_suggestion if finding is not None else None
        if suggestion is None or self.awaiting or not self.ensure_nodule():
            return None
        if not self.shown_result_matches():
            return "The suggestions are for another box: not accepted."
        return self.session.accept_suggestions(self.nodule_id, suggestion)

    def frames_scored(self, image: UltrasoundImage, request: int, scores) -> int | None:
        """Every frame of a cine loop was scored: the best frame to show, or None when the
        user moved meanwhile (or another image is shown)."""
        self.frame_scores[image.sha256] = tuple(scores.scores)
        if self.image is None or self.image.sha256 != image.sha256 or self.stale(request):
            return None
        self.awaiting = False
        return scores.best

    def batch_result(self, row: int, analysed: AnalysisResult) -> bool:
        """A batch analysis of row ``row``: its detected box is the image's proposal, its
        result preliminary (no nodule is made); nothing found is kept as such. Returns True
        when it should be shown now (it is the shown frame, nothing is shown yet and the
        user asked for nothing): then it is the proposal on screen."""
        image, finding = analysed.image, analysed.finding
        if not self._batch_row_is(row, image):
            return False  # the study was closed (or its list changed) under the batch
        entry = self.entries[row]
        entry.sha256, entry.scale, entry.error = image.sha256, image.scale, ""
        self.session.add_image(
            image.sha256, entry.path, image.n_frames, Identity.of(image.metadata)
        )
        on_screen = self.image is not None and (self.image.sha256, self.image.frame_index) == (
            image.sha256,
            image.frame_index,
        )
        if self.has_result(row):
            return False  # the user analysed it meanwhile: theirs stands
        rejected = self._marked(image.sha256, image.frame_index)
        found = finding.roi_source is BoxSource.AUTO and finding.roi not in rejected
        # a refusal is kept with its reason (the list says "out of scope", not "nothing found")
        estimate = Estimate.of(finding) if found or analysed.refused else None
        self._prelim[image.sha256] = Preliminary(image.frame_index, estimate)
        if found and image.n_frames <= 1:
            self._seen[image.sha256] = finding
        idle = self.finding is None and not self.awaiting and self.nodule() is None
        if not (row == self.current and on_screen and idle and self.proposal is None):
            return False
        if not found:
            self.nothing_found = True
            return False
        self.show_proposal(finding.roi)
        self.finding = finding
        return True

    def batch_failed(self, row: int, reason: str) -> None:
        """A batch analysis of row ``row`` failed; an earlier result of the user's stands."""
        if row < len(self.entries) and not self.has_result(row):
            self.entries[row].error = reason

    def _batch_row_is(self, row: int, image: UltrasoundImage) -> bool:
        """True when ``row`` of the list is still the file the batch analysed."""
        if not 0 <= row < len(self.entries) or image.source is None:
            return False
        return Path(self.entries[row].path) == Path(image.source)

    def rows_to_analyse(self) -> list[int]:
        """The rows with no result yet (the batch's work)."""
        return [i for i in range(len(self.entries)) if not self.has_result(i)]

    def switch_unsigns(self, calibration: Calibration) -> bool:
        """Whether switching to ``calibration`` would re-score nodules of a signed report
        (and so take its signature away): ask first."""
        state = self.session.state
        return state.study.report.signed and any(
            n.estimate is not None and not n.estimate.scored_under(calibration)
            for n in state.nodules
        )

    def calibration_stale(self, calibration: Calibration) -> bool:
        """Whether a stored result was scored under another calibration than
        ``calibration`` (a study reopened, restored or undone to numbers of before a switch,
        a profile refitted under its name): the list and the CSV would mix calibrations
        until re-scored."""
        held = [n.estimate for n in self.session.state.nodules]
        held += [p.estimate for p in self._prelim.values()]
        return any(e is not None and not e.scored_under(calibration) for e in held)

    def calibration_changed(self, calibration: Calibration, spread_limit: float) -> Rescored:
        """Another calibration is in use: every stored result is re-scored under it at once
        from its logits (not an undo step), so the list, the CSV and the reports all give
        the new numbers; a result saved without logits is dropped and analysed again.
        Returns what changed (to say and to audit)."""
        self.calibration = calibration.name
        was_signed = self.session.state.study.report.signed
        changes = []
        for n in self.session.state.nodules:
            if n.estimate is not None and not n.estimate.scored_under(calibration):
                after = n.estimate.rescored(calibration, spread_limit)
                self.session.set_estimate(n.id, after)
                changes.append(Rescore(n.id, n.estimate, after))

        prelim = {
            k: (a, a.estimate and a.estimate.rescored(calibration, spread_limit))
            for k, a in self._prelim.items()
        }  # (``rescored`` keeps a result already under ``calibration``)
        self._prelim = {
            k: Preliminary(a.frame, e)
            for k, (a, e) in prelim.items()
            if a.estimate is None or e is not None
        }
        unsigned = was_signed and not self.session.state.study.report.signed
        return Rescored(calibration.name, tuple(changes), unsigned)

    def session_shown(self) -> None:
        """After undo, redo or opening a session: the nodule and scale shown are what the
        session now holds for the image on screen."""
        if not self.in_session():
            return
        state, image = self.session.state, self.image
        self._show_nodule_of(image.sha256, image.frame_index)
        self.user_mm_per_px = state.image(image.sha256).user_mm_per_px

    def box_to_reanalyse(self) -> Step | None:
        """After :meth:`session_shown`: whether the box on screen must be analysed again
        (the nodule's box changed: ``ANALYSE_BOX``, its box now the one on screen; the
        nodule on screen was undone: ``AUTO_DETECT``, its box a proposal again), else None."""
        nodule, image = self.nodule(), self.image
        if image is None:
            return None
        if nodule is not None:
            if nodule.box != self.roi or nodule.source is BoxSource.FULL:
                self.roi, self.roi_source = nodule.box, nodule.source
                self.proposal = None
                return Step.ANALYSE_AREA if nodule.source is BoxSource.FULL else Step.ANALYSE_BOX
            self.proposal = None
        elif self.roi is not None and self.proposal is None:
            return Step.AUTO_DETECT  # the nodule was undone: the detector proposes again
        return None

    def set_user_scale(self, mm_per_px: float | None) -> None:
        """The user's scale for the shown image (None removes it)."""
        if mm_per_px is not None and not mm_per_px > 0:
            raise ValueError(f"a scale must be positive, got {mm_per_px}")
        self.user_mm_per_px = mm_per_px
        if self.in_session():
            self.session.set_user_scale(self.image.sha256, mm_per_px)

    # ------------------------------------------------------------------ what each row says
    def has_result(self, row: int) -> bool:
        key = self.entries[row].sha256
        if not key:
            return False
        nodules = self.session.state.nodules_on(key)
        if nodules:
            return any(n.estimate is not None for n in nodules)
        return key in self._prelim

    def status(self, row: int) -> str:
        """ "analysed", "not analysed" or "error" (the entry's ``error`` says why)."""
        if self.entries[row].error:
            return "error"
        return "analysed" if self.has_result(row) else "not analysed"

    def rows(self) -> list[ResultRow]:
        """The study as the CSV writes it: one row per nodule, in the order confirmed (an
        image only looked at, with proposals, has none)."""
        state = self.session.state
        entries = {e.sha256: e for e in self.entries if e.sha256}
        out = []
        for n in state.nodules:
            entry, record = entries.get(n.image), state.image(n.image)
            if entry is None or record is None:
                continue
            cine = record.n_frames > 1
            status = "error" if entry.error else ("analysed" if n.estimate else "not analysed")
            frame = n.frame if cine else None
            views = state.linked_views(n)
            out.append(ResultRow(entry, status, n.estimate, frame, record.user_mm_per_px, n, views))
        return out

    def list_line(self, row: int) -> ListLine:
        """The study list's line of row ``row``: its shown (else first) nodule's result and
        the clinician's TI-RADS level; with more nodules on the image, how many more (each
        with its result in the tooltip)."""
        line = self._list_line(row)
        entry = self.entries[row]
        nodules = self.session.state.nodules_on(entry.sha256) if entry.sha256 else []
        if len(nodules) < 2 or entry.error:
            return line
        shown = self._shown_of(nodules)
        others = [n for n in nodules if n is not shown]
        record = self.session.state.image(entry.sha256)
        frames = record.n_frames if record is not None else 1
        tips, warn = [], False
        for n in others:
            where = f" (frame {n.frame + 1} of {frames})" if frames > 1 else ""
            est = n.estimate
            if est is None:
                said = "not analysed"
            elif not est.in_scope:
                said, warn = "⚠ no estimate", True
            else:
                said = f"{shown_numbers(est.probability, est.threshold)[0]} · {est.call}"
                if est.overridden_reason:  # analysed anyway: said wherever the estimate is
                    said, warn = f"{said} · ⚠ outside scope", True
            tips.append(f"{n.id}{where}: {said}")
        more = f" · +{len(others)} more nodule{'s' if len(others) > 1 else ''}"
        more += " ⚠" if warn else ""  # the row is orange when any of its nodules is
        tone = Tone.WARNING if warn and line.tone is Tone.NORMAL else line.tone
        return ListLine(line.text + more, line.tooltip + "\n" + "\n".join(tips), tone)

    def _shown_of(self, nodules: Sequence[Nodule]) -> Nodule | None:
        """The nodule a study-list row shows: the one shown, else the image's first."""
        return next((n for n in nodules if n.id == self.nodule_id), nodules[0] if nodules else None)

    def _list_line(self, row: int) -> ListLine:
        entry = self.entries[row]
        tooltip = f"{entry.path}\n{entry.error}" if entry.error else str(entry.path)
        if entry.error:
            why = entry.error.removeprefix(entry.name + ": ")
            return ListLine(f"{entry.name}\n{why}", tooltip, Tone.ERROR)
        nodules = self.session.state.nodules_on(entry.sha256) if entry.sha256 else []
        nodule = self._shown_of(nodules)
        prelim = self._prelim.get(entry.sha256)
        if nodule is not None:
            est, what = nodule.estimate, f"{nodule.id} · "
        elif prelim is not None and prelim.estimate is None:
            return ListLine(f"{entry.name}\nno nodule found", tooltip, Tone.NORMAL)
        elif prelim is not None and prelim.estimate.roi_source is BoxSource.NONE:
            why = prelim.estimate.no_estimate_reason  # refused as out of scope
            return ListLine(
                f"{entry.name}\n⚠ no estimate: out of scope", f"{tooltip}\n{why}", Tone.WARNING
            )
        else:
            est, what = (prelim.estimate if prelim else None), "proposal · "
        if est is None:  # a nodule's box not analysed yet says whose it is
            whose = what if nodule is not None else ""
            return ListLine(f"{entry.name}\n{whose}not analysed", tooltip, Tone.NORMAL)
        tooltip += f"\n{calibration_text(est.calibration)}"  # which numbers these are
        scored = nodule.tirads.descriptors if nodule is not None else None
        tr = f" · TR{scored.level.tr}" if scored else ""  # the clinician's score
        if not est.in_scope:
            return ListLine(f"{entry.name}\n{what}⚠ no estimate{tr}", tooltip, Tone.WARNING)
        shaky = " · unstable" if est.unstable else ""
        shown, _ = shown_numbers(est.probability, est.threshold)
        text = f"{entry.name}\n{what}{shown} · {est.call}{tr}{shaky}"
        if est.overridden_reason:  # analysed anyway: said wherever the estimate is
            return ListLine(f"{text} · ⚠ outside scope", tooltip, Tone.WARNING)
        return ListLine(text, tooltip, Tone.NORMAL)


def frame_text(image: UltrasoundImage, prefix: str) -> str:
    """ ", frame 3 of 20" for a cine loop (1-based, for people), "" for a single frame."""
    if image.n_frames <= 1:
        return ""
    return f"{prefix}frame {image.frame_index + 1} of {image.n_frames}"


def loop_fps(image: UltrasoundImage) -> float | None:
    """The loop's frame rate from DICOM (CineRate, else 1000 / FrameTime in ms), if given."""
    try:
        if image.metadata.get("CineRate"):
            return float(image.metadata["CineRate"])
        if image.metadata.get("FrameTime"):
            return 1000.0 / float(image.metadata["FrameTime"])
    except (TypeError, ValueError, ZeroDivisionError):
        pass
    return None


def display_name(image: UltrasoundImage) -> str:
    """The window title's name of an image (the demo has no file)."""
    return Path(image.source).name if image.source else "demo phantom (synthetic)"


def _lacks_result(nodule: Nodule) -> bool:
    """The nodule has no result for its current box (not analysed yet, or its box moved)."""
    return nodule.estimate is None or nodule.estimate.box != nodule.box
