"""The review session, without Qt: study -> images (frames) -> nodules, with undo/redo and
an atomic autosave.

The window observes a :class:`Session` and sends it the user's actions; it keeps no review
state of its own. Every state is an immutable :class:`SessionState`, so undo and redo are a
stack of states, and what is saved is exactly what was on screen.

What can be undone: box edits, adding and deleting nodules, TI-RADS choices, locations,
caliper lines (drawn, moved, deleted), linked views, notes, the report's text and a user's
scale. What cannot (it is not the user's edit): an analysis result arriving, moving to another
frame, or a proposal rejected (hidden, not a change to the study).

Everything is saved after every change (one JSON file per study, written atomically, in the
user data folder): after a crash or a kill the open study comes back whole
(:meth:`SessionStore.open_study`), without opening each image again.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from thyroid_desktop.core.clinical.measure import (
    Caliper,
    Plane,
    ViewMeasure,
    effective_scale,
)
from thyroid_desktop.core.clinical.tirads import GROUPS, TiradsChoices
from thyroid_desktop.core.io.files import user_data_dir, write_atomically
from thyroid_desktop.core.io.scale import Scale
from thyroid_desktop.core.pipeline.estimate import call_text, caveats_of, shown_numbers
from thyroid_desktop.core.pipeline.roi import ROI, BoxSource
from thyroid_desktop.core.pipeline.tirads_ai import TiradsSuggestion, accept_all
from thyroid_desktop.core.review.lifecycle import Identity
from thyroid_desktop.core.site.calibration import SHIPPED, Calibration

if TYPE_CHECKING:
    from thyroid_desktop.core.report.dicom_out import SrVersion

log = logging.getLogger(__name__)

#: Saved sessions live here, in the user data folder.
SESSIONS_FOLDER = "sessions"
#: 2 since issue 22: a nodule is only what the clinician confirmed (format 1 also saved the
#: detector's box of every image browsed; see :func:`confirmed_only`). 3 since issue 24: the
#: study (its id, patient, report text and signature), each image's patient and the proposals
#: rejected; formats 1 and 2 are still read.
SESSION_FORMAT = 3
#: The formats this version reads.
READABLE_FORMATS = (1, 2, 3)
#: The store's note of which study is open (restored at start).
OPEN_STUDY_FILE = "open.json"
#: At most this many undo steps are kept.
MAX_UNDO = 200
#: At most this many caliper lines per view of a nodule (the oldest goes first).
MAX_CALIPERS = 3


class LatestRequest:
    """Numbers the analyses asked for the shown image: only the latest one's result may be
    shown, so the box and the numbers always match. A newer analysis, or another image,
    makes the earlier ones stale (the worker thread reads this too, to skip work nobody will
    see, e.g. while paging through a study)."""

    def __init__(self) -> None:
        self._latest = 0

    def begin(self) -> int:
        """A new analysis starts; its number."""
        self._latest += 1
        return self._latest

    def supersede(self) -> None:
        """Another image is shown (or none): every analysis under way is stale."""
        self._latest += 1

    def is_stale(self, request: int) -> bool:
        return request != self._latest


class Lobe(enum.StrEnum):
    RIGHT = "right lobe"
    LEFT = "left lobe"
    ISTHMUS = "isthmus"


class Pole(enum.StrEnum):
    UPPER = "upper"
    MID = "mid"
    LOWER = "lower"


@dataclass(frozen=True)
class Estimate:
    """What the model said about a nodule's box (the numbers, not the heat map)."""

    probability: float | None  # None: no estimate (then ``no_estimate_reason``)
    threshold: float
    spread: float
    unstable: bool
    novelty: float | None
    no_estimate_reason: str
    call: str
    model_id: str
    #: The calibration that made the numbers: "shipped" or the site profile's name.
    calibration: str
    box: ROI
    #: The AI's TI-RADS descriptor suggestions for this box (never a choice).
    suggestion: TiradsSuggestion | None = None
    #: Why the frame may not be B-mode ultrasound (the scope check's reasons).
    warnings: tuple[str, ...] = ()
    roi_source: BoxSource = BoxSource.MANUAL
    #: The mean pre-calibration logit and each view's (None/empty in older sessions).
    logit: float | None = None
    view_logits: tuple[float, ...] = ()
    #: The out-of-scope refusal the clinician overrode ("Analyse anyway"; "" when none).
    overridden_reason: str = ""
    #: ``Finding.site_validated``: the calibration was validated at this site.
    site_validated: bool = False

    def shown(self, decimals: int = 2) -> tuple[str, str]:
        """The estimate and its threshold as printed together (``Finding.shown``; the
        estimate "" when there is none)."""
        if self.probability is None or not self.in_scope:
            return "", f"{self.threshold:.{decimals}f}"
        return shown_numbers(self.probability, self.threshold, decimals)

    @property
    def in_scope(self) -> bool:
        """The rule of ``Finding.in_scope``: a number only when nothing withholds it."""
        return not self.no_estimate_reason

    @property
    def caveats(self) -> tuple[str, ...]:
        """The rule of ``Finding.caveats``: outside the validated scope, not validated here."""
        return caveats_of(self.in_scope, self.overridden_reason, self.site_validated)

    def scored_under(self, calibration: Calibration) -> bool:
        """Whether these numbers are ``calibration``'s: its name, threshold and validation
        (a profile refitted under the same name is another calibration)."""
        return (
            calibration.name == self.calibration
            and calibration.validated == self.site_validated
            and calibration.threshold == self.threshold
        )

    def rescored(self, calibration: Calibration, spread_limit: float) -> Estimate | None:
        """The same analysis under another calibration (the model's logits do not depend on
        it, so this is what analysing the box again would give), or None for a result saved
        without its logits, which must be analysed again."""
        if self.scored_under(calibration):
            return self
        if not self.in_scope:  # no estimate (refused, nothing found): nothing to re-score
            return dataclasses.replace(
                self,
                threshold=calibration.threshold,
                calibration=calibration.name,
                site_validated=calibration.validated,
            )
        if self.logit is None or not self.view_logits:
            return None
        probability = float(calibration.apply(self.logit))
        views = np.asarray(calibration.apply(np.asarray(self.view_logits, dtype=np.float64)))
        spread = float(views.max() - views.min())
        return dataclasses.replace(
            self,
            probability=probability if self.in_scope else None,
            threshold=calibration.threshold,
            spread=spread,
            unstable=spread > spread_limit,
            call=call_text(probability, calibration.threshold, self.in_scope),
            calibration=calibration.name,
            site_validated=calibration.validated,
        )

    @classmethod
    def of(cls, finding) -> Estimate:
        """The numbers of a ``Finding`` (``core.analysis``), without its heat map."""
        return cls(
            finding.estimate,
            finding.threshold,
            finding.spread,
            finding.unstable,
            finding.novelty,
            finding.no_estimate_reason,
            finding.call_text,
            finding.model_id,
            finding.calibration,
            finding.roi,
            finding.tirads_suggestion,
            tuple(finding.warnings),
            BoxSource(finding.roi_source),
            finding.logit,
            tuple(finding.view_logits),
            finding.overridden_reason,
            finding.site_validated,
        )


@dataclass(frozen=True)
class View:
    """Another image of a nodule, linked by the clinician: the file (``image``, its sha256),
    the frame, the plane it shows the nodule in, the nodule's box there, the caliper lines
    drawn on it, and the file's own scale (a user's line comes from the image's record)."""

    image: str
    frame: int
    plane: Plane
    box: ROI
    calipers: tuple[Caliper, ...] = ()
    file_scale: Scale = field(default_factory=Scale.none)


@dataclass(frozen=True)
class NumberedCaliper:
    """A caliper line of a nodule with its number (1, 2, 3 ... over all its views) and the
    image it is on; ``view`` is the index in ``Nodule.views``, None for the nodule's own
    image."""

    number: int
    image: str
    view: int | None
    caliper: Caliper


@dataclass(frozen=True)
class Nodule:
    """One nodule: where it is seen (image, frame, box), where it is in the gland, and what
    the clinician and the model said about it. ``calipers`` are the lines drawn on its own
    image (each on its frame); ``plane`` is the plane of its own image, stated once another
    view is linked (``views``: the same nodule on another image or frame)."""

    id: str  # "N1", "N2", ...: its place in the order confirmed (renumbered after a delete)
    image: str  # the image's sha256
    frame: int
    box: ROI
    source: BoxSource
    lobe: Lobe | None = None
    pole: Pole | None = None
    tirads: TiradsChoices = field(default_factory=TiradsChoices)
    calipers: tuple[Caliper, ...] = ()
    notes: str = ""
    estimate: Estimate | None = None
    plane: Plane | None = None
    views: tuple[View, ...] = ()
    #: The outline of a nodule the clinician clicked or stroked (image pixels; empty when its
    #: box was a guess); every analysis of its box uses its mask. Dropped when the box moves.
    outline: tuple[tuple[float, float], ...] = ()
    #: Its DICOM tracking UID (TID 1500 "Tracking Unique Identifier"): made once, kept when
    #: it is renumbered, moved or reopened in another study, so that every report names the
    #: same nodule the same way (its id "N1" is only its place in the order).
    uid: str = ""

    @property
    def outline_or_none(self) -> tuple[tuple[float, float], ...] | None:
        """What ``AnalysisService.analyse_box`` takes as ``outline``: this nodule's for a
        clicked or stroked one (empty for a guessed box), None for any other (the
        segmenter's map inside the box)."""
        return self.outline if self.source in (BoxSource.POINT, BoxSource.STROKE) else None

    @property
    def location(self) -> str:
        """e.g. "right lobe, upper"; "" when not given."""
        return ", ".join(str(v) for v in (self.lobe, self.pole) if v is not None)

    def numbered_calipers(self) -> list[NumberedCaliper]:
        """Every caliper line of the nodule, numbered 1, 2, 3 ...: its own image's first,
        then each view's."""
        out = [NumberedCaliper(0, self.image, None, c) for c in self.calipers]
        for i, v in enumerate(self.views):
            out += [NumberedCaliper(0, v.image, i, c) for c in v.calipers]
        return [dataclasses.replace(c, number=k) for k, c in enumerate(out, 1)]

    def calipers_on(self, key: str, frame: int) -> list[NumberedCaliper]:
        """The numbered caliper lines drawn on frame ``frame`` of image ``key``."""
        return [c for c in self.numbered_calipers() if c.image == key and c.caliper.frame == frame]

    def stray_calipers(self) -> list[NumberedCaliper]:
        """The caliper lines that may not measure this nodule: their middle lies outside its
        box (a linked view's line: outside that view's box), typically because the box was
        moved or redrawn after they were drawn. A line on another frame of the same loop is
        judged by where the box is drawn too. They still count for its size, as the
        clinician drew them; what shows or reports the size names them
        (:meth:`stray_text`)."""
        out = []
        for c in self.numbered_calipers():
            box = self.box if c.view is None else self.views[c.view].box
            (x0, y0), (x1, y1) = c.caliper.start, c.caliper.end
            mx, my = (x0 + x1) / 2, (y0 + y1) / 2
            if not (box.x <= mx <= box.x + box.w and box.y <= my <= box.y + box.h):
                out.append(c)
        return out

    def stray_text(self) -> str:
        """e.g. "N1: caliper 2 lies outside its box: check that it measures this nodule"
        ("" when every line lies in its box)."""
        numbers = [str(c.number) for c in self.stray_calipers()]
        if not numbers:
            return ""
        if len(numbers) == 1:
            return (
                f"{self.id}: caliper {numbers[0]} lies outside its box: "
                "check that it measures this nodule"
            )
        listed = f"{', '.join(numbers[:-1])} and {numbers[-1]}"
        return (
            f"{self.id}: calipers {listed} lie outside its box: check that they measure this nodule"
        )

    def view_on(self, key: str, frame: int) -> int | None:
        """The index of the linked view on frame ``frame`` of image ``key``, if any."""
        return next(
            (i for i, v in enumerate(self.views) if (v.image, v.frame) == (key, frame)), None
        )


def offered_candidates(candidates: list[ROI], current: ROI | None, marked: list[ROI]) -> list[ROI]:
    """The detected candidates offered for picking (dashed): not the box being edited, nor a
    box already marked as another nodule (that one is drawn, labelled, as itself)."""
    return [r for r in candidates if r != current and r not in marked]


@dataclass(frozen=True)
class ImageRecord:
    """One file of the study, by content (``key`` is its sha256), and the frame on screen."""

    key: str
    path: str
    n_frames: int = 1
    frame: int = 0
    user_mm_per_px: float | None = None
    #: Whose image it is (from DICOM; empty for a plain image).
    identity: Identity = field(default_factory=Identity)


@dataclass(frozen=True)
class Rejected:
    """A proposal the clinician rejected: hidden on that frame of that image from then on."""

    image: str
    frame: int
    box: ROI


@dataclass(frozen=True)
class ReportText:
    """What the clinician typed for the report (the patient and study fields, when not in
    DICOM, the operator and the impression) and who signed it, when (ISO time; "" unsigned).
    The field names are ``core.report.pdf.StudyInfo``'s."""

    patient_name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    sex: str = ""
    study_date: str = ""
    accession: str = ""
    operator: str = ""
    impression: str = ""
    signed_by: str = ""
    signed_at: str = ""

    @property
    def signed(self) -> bool:
        return bool(self.signed_by and self.signed_at)

    @property
    def text(self) -> dict[str, str]:
        """The typed fields (``StudyInfo``'s keyword arguments), without the signature."""
        out = dataclasses.asdict(self)
        del out["signed_by"], out["signed_at"]
        return out


@dataclass(frozen=True)
class StudyRecord:
    """The study itself: its id (its session file's name), whose it is (the first image
    that says so; empty for plain images), its report and the DICOM SRs written of it
    (oldest first; a new one names them as the versions it supersedes)."""

    id: str = ""
    identity: Identity = field(default_factory=Identity)
    report: ReportText = field(default_factory=ReportText)
    sr_versions: tuple[SrVersion, ...] = ()

    @property
    def dicom_studies(self) -> set[str]:
        """The DICOM StudyInstanceUIDs this study's reports went into: the images' own, and
        those of the SRs written of it (a new study for plain images)."""
        return {v.study_instance_uid for v in self.sr_versions} | (
            {self.identity.StudyInstanceUID} - {""}
        )


def new_study_id() -> str:
    return uuid.uuid4().hex


def new_uid() -> str:
    """A new DICOM UID (a nodule's tracking UID)."""
    from pydicom.uid import generate_uid

    return str(generate_uid())


def uid_of_saved(d: dict, index: int) -> str:
    """The tracking UID of a nodule as saved; for one saved before nodules had one (or with
    a damaged one), a UID made from what the file says of it (image, frame, box, source,
    its place in the list), so that it is the same at every reading."""
    from thyroid_desktop.core.report.dicom_out import valid_uid

    saved = str(d.get("uid") or "")
    if valid_uid(saved):
        return saved
    return tracking_uid(str(d["image"]), int(d["frame"]), ROI(*d["box"]), str(d["source"]), index)


def tracking_uid(image: str, frame: int, box: ROI, *more) -> str:
    """A tracking UID made from where a nodule is (image sha256, frame, box and ``more``):
    the same whenever it is made again (the command line, which keeps no session, and
    nodules saved before they had one)."""
    from pydicom.uid import generate_uid

    what = [image, str(frame), str(box.as_list()), *(str(m) for m in more)]
    return str(generate_uid(entropy_srcs=what))


def confirmed_only(nodules: Iterable[Nodule]) -> list[Nodule]:
    """The nodules of a session saved before issue 22 that a clinician confirmed: that
    format saved the detector's box (or the whole scan area) of every image browsed as a
    nodule. One the clinician never touched (detector's or scan-area box, no TI-RADS
    choice, caliper, note, location or view) is dropped, so it cannot reach a report."""

    def touched(n: Nodule) -> bool:
        choices = n.tirads
        chosen = any(getattr(choices, g) is not None for g in GROUPS) or choices.foci_set
        located = n.lobe is not None or n.pole is not None
        return chosen or located or bool(n.calipers or n.notes or n.views)

    auto = (BoxSource.AUTO, BoxSource.FULL)
    return [n for n in nodules if n.source not in auto or touched(n)]


def numbered(nodules: tuple[Nodule, ...]) -> tuple[Nodule, ...]:
    """The nodules named N1..Nn in their order (the order the clinician confirmed them)."""
    return tuple(
        n if n.id == f"N{i}" else dataclasses.replace(n, id=f"N{i}")
        for i, n in enumerate(nodules, 1)
    )


@dataclass(frozen=True)
class SessionState:
    """The study, its images, its nodules in the order confirmed (N1..Nn) and the proposals
    rejected."""

    images: tuple[ImageRecord, ...] = ()
    nodules: tuple[Nodule, ...] = ()
    rejected: tuple[Rejected, ...] = ()
    study: StudyRecord = field(default_factory=StudyRecord)

    def unscored(self) -> dict[str, list[str]]:
        """The nodules without a complete ACR TI-RADS score (the report says "not scored"
        for them) and the groups still open, e.g. {"N2": ["composition"]}: what signing
        should point out."""
        return {n.id: n.tirads.open_groups for n in self.nodules if n.tirads.open_groups}

    def caliper_checks(self) -> list[str]:
        """Per nodule with caliper lines outside its box (``Nodule.stray_text``), what signing
        should point out besides :meth:`unscored`."""
        return [t for t in (n.stray_text() for n in self.nodules) if t]

    def left_out_of_report(self, versions: Iterable[SrVersion]) -> list[str]:
        """The nodules an earlier report of the study (``versions``, its SRs) named that a
        new version would not, e.g. ["Nodule N2 of version 1"]: deleted since, or their
        image is not open (what sending a new version should point out: it supersedes the
        earlier one)."""
        from thyroid_desktop.core.report.dicom_out import left_out_text

        return list(left_out_text(tuple(versions), (n.uid for n in self.nodules)))

    def rejected_on(self, key: str, frame: int) -> set[ROI]:
        """The boxes rejected on frame ``frame`` of image ``key``."""
        return {r.box for r in self.rejected if (r.image, r.frame) == (key, frame)}

    @property
    def next_number(self) -> int:
        return len(self.nodules) + 1

    def image(self, key: str) -> ImageRecord | None:
        return next((i for i in self.images if i.key == key), None)

    def nodule(self, nodule_id: str) -> Nodule | None:
        return next((n for n in self.nodules if n.id == nodule_id), None)

    def nodules_on(self, key: str, frame: int | None = None) -> list[Nodule]:
        return [n for n in self.nodules if n.image == key and frame in (None, n.frame)]

    def marked_on(self, key: str) -> bool:
        """Whether image ``key`` holds a nodule or a linked view of one."""
        return any(n.image == key or any(v.image == key for v in n.views) for n in self.nodules)

    def linked_views(self, nodule: Nodule) -> tuple[ViewMeasure, ...]:
        """The nodule's linked views as the size rule reads them (``nodule_size``'s
        ``others``), each under its image's scale (the file's, else the user's line)."""
        out = []
        for v in nodule.views:
            record = self.image(v.image)
            user = record.user_mm_per_px if record is not None else None
            scale = effective_scale(v.file_scale, user)
            out.append(ViewMeasure(v.plane, v.box, scale, None, v.calipers))
        return tuple(out)

    def views_on(self, key: str, frame: int) -> list[tuple[Nodule, int]]:
        """(nodule, view index) of every linked view on frame ``frame`` of image ``key``."""
        out = []
        for n in self.nodules:
            i = n.view_on(key, frame)
            if i is not None:
                out.append((n, i))
        return out

    def others_shown(self, key: str, frame: int, nodule_id: str | None) -> list[Nodule]:
        """The nodules on ``frame`` of image ``key`` (the one on screen), except
        ``nodule_id`` (the one being edited): drawn beside it so that the reader sees every
        nodule marked there."""
        return [n for n in self.nodules_on(key, frame) if n.id != nodule_id]


class Session:
    """The review state, its undo/redo history, and who to tell when it changes.

    Args:
        store: where it autosaves after every change (None: not saved).
    """

    def __init__(self, store: SessionStore | None = None) -> None:
        self.state = SessionState(study=StudyRecord(new_study_id()))
        self.store = store
        self._undo: list[tuple[str, SessionState]] = []
        self._redo: list[tuple[str, SessionState]] = []
        self._observers: list[Callable[[str], None]] = []
        self.save_problem = ""
        #: While observers hear of a change that took the report's signature away: (the
        #: step, whether it is an undo step), e.g. ("box N1", True); None otherwise (also
        #: for undo, redo and opening a session, which bring back a state as it was).
        self.unsigned_by: tuple[str, bool] | None = None

    # ---------------------------------------------------------------- observing
    def subscribe(self, observer: Callable[[str], None]) -> None:
        """``observer(what)`` after every change (``what`` says which, e.g. "box N1")."""
        self._observers.append(observer)

    def _set(self, state: SessionState, what: str, undoable: bool, unsigns: bool = True) -> None:
        if state == self.state:
            return
        before = {i.key: i.user_mm_per_px for i in self.state.images}
        rescaled = any(
            before.get(i.key, i.user_mm_per_px) != i.user_mm_per_px for i in state.images
        )
        changed = state.nodules != self.state.nodules and unsigns
        if (changed or rescaled) and state.study.report.signed:
            # what was signed changed (a nodule, a choice, a caliper, a re-scored estimate,
            # the scale its sizes are in): the signature no longer holds
            report = dataclasses.replace(state.study.report, signed_by="", signed_at="")
            state = dataclasses.replace(
                state, study=dataclasses.replace(state.study, report=report)
            )
        if self.state.study.report.signed and not state.study.report.signed:
            # an edit took the signature away (this rule, or other words in the report)
            self.unsigned_by = (what, undoable)
        if undoable:
            self._undo.append((what, self.state))
            del self._undo[:-MAX_UNDO]
            self._redo.clear()
        self.state = state
        self._changed(what)

    def _changed(self, what: str) -> None:
        self.autosave()
        for observer in list(self._observers):
            observer(what)
        self.unsigned_by = None  # said to the observers of this change only

    # ---------------------------------------------------------------- undo / redo
    @property
    def undo_text(self) -> str:
        return self._undo[-1][0] if self._undo else ""

    @property
    def redo_text(self) -> str:
        return self._redo[-1][0] if self._redo else ""

    def undo(self) -> bool:
        if not self._undo:
            return False
        what, previous = self._undo.pop()
        self._redo.append((what, self.state))
        self.state = _keep_navigation(previous, self.state)
        self._changed(f"undo {what}")
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        what, following = self._redo.pop()
        self._undo.append((what, self.state))
        self.state = _keep_navigation(following, self.state)
        self._changed(f"redo {what}")
        return True

    # ---------------------------------------------------------------- images
    def add_image(
        self,
        key: str,
        path: str | os.PathLike[str],
        n_frames: int = 1,
        identity: Identity | None = None,
    ) -> bool:
        """Adds a file (once, by content) of patient ``identity`` (the study takes it when
        it has none yet). If it was reviewed before, what was saved for it comes back
        (nodules, choices, frame, scale, proposals rejected). Returns True when something
        came back."""
        if self.state.image(key) is not None:
            return False
        identity = identity or Identity()
        restored = self.store.restore(key) if self.store is not None else None
        rejected = self.state.rejected
        study = self.state.study
        if restored is not None:
            image, nodules, gone, srs = restored
            # the SRs of the study these images were reported in: a new report supersedes them
            study = dataclasses.replace(study, sr_versions=_merged(study.sr_versions, srs))
            image = dataclasses.replace(image, path=str(path))
            if identity.known:
                image = dataclasses.replace(image, identity=identity)
            nodules = numbered(self.state.nodules + tuple(nodules))  # after this study's
            rejected += tuple(gone)
        else:
            image = ImageRecord(key, str(path), max(int(n_frames), 1), identity=identity)
            nodules = self.state.nodules
        if not study.identity.known and image.identity.known:
            study = dataclasses.replace(study, identity=image.identity)
        state = dataclasses.replace(
            self.state,
            images=self.state.images + (image,),
            nodules=nodules,
            rejected=rejected,
            study=study,
        )
        self._set(state, f"open {Path(path).name}", undoable=False)
        return restored is not None

    def reject(self, key: str, frame: int, box: ROI) -> None:
        """A proposal rejected on frame ``frame`` of image ``key`` (kept, not an undo step)."""
        if box in self.state.rejected_on(key, frame):
            return
        rejected = self.state.rejected + (Rejected(key, int(frame), box),)
        self._set(dataclasses.replace(self.state, rejected=rejected), "reject", undoable=False)

    # ---------------------------------------------------------------- the study
    def set_report(self, report: ReportText) -> None:
        """The report's typed text (one undo step). Changing the text of a signed report
        takes the signature away: it signed other words. The same text again is no step."""
        old = self.state.study.report
        if report == old:
            return
        if old.signed and report.text != old.text:
            report = dataclasses.replace(report, signed_by="", signed_at="")
        self._set_study(dataclasses.replace(self.state.study, report=report), "report text")

    def sign(self, by: str, at: str) -> None:
        """The report is signed by ``by`` at ``at`` (ISO time; one undo step)."""
        if not by.strip() or not at:
            raise ValueError("a signature needs a name and a time")
        report = dataclasses.replace(self.state.study.report, signed_by=by.strip(), signed_at=at)
        self._set_study(dataclasses.replace(self.state.study, report=report), "signature")

    def record_sr(self, study_id: str, version: SrVersion) -> bool:
        """A DICOM SR of study ``study_id`` was written (not an undo step: it was written,
        and undo never forgets it). A study closed while the export ran gets it in its saved
        file. False when it could not be recorded."""
        study = self.state.study
        if study.id != study_id:
            return self.store is not None and self.store.add_sr(study_id, version)
        study = dataclasses.replace(study, sr_versions=_merged(study.sr_versions, [version]))
        self._set(dataclasses.replace(self.state, study=study), "DICOM report", False)
        return True

    def _set_study(self, study: StudyRecord, what: str) -> None:
        self._set(dataclasses.replace(self.state, study=study), what, undoable=True)

    def close_study(self) -> None:
        """Closes the study (it stays in its session file, found again by its images) and
        starts a new, empty one; nothing to undo across it."""
        self.autosave()
        if self.store is not None:
            self.store.forget_open()
        self._undo.clear()
        self._redo.clear()
        self.state = SessionState(study=StudyRecord(new_study_id()))
        self._changed("new study")

    def set_frame(self, key: str, frame: int) -> None:
        image = self._image(key)
        frame = min(max(int(frame), 0), image.n_frames - 1)
        self._replace_image(dataclasses.replace(image, frame=frame), "frame", undoable=False)

    def set_user_scale(self, key: str, mm_per_px: float | None) -> None:
        image = self._image(key)
        self._replace_image(
            dataclasses.replace(image, user_mm_per_px=mm_per_px), "scale", undoable=True
        )

    # ---------------------------------------------------------------- nodules
    def add_nodule(
        self,
        key: str,
        frame: int,
        box: ROI,
        source: BoxSource = BoxSource.MANUAL,
        by_user: bool = True,
        outline: tuple[tuple[float, float], ...] = (),
    ) -> str:
        """A new nodule (N1, N2, ...) on ``key``'s ``frame`` (with the ``outline`` of a click
        or a stroke). Returns its id. One the detector proposed when the image was first
        opened (``by_user`` False) is not an undo step."""
        self._image(key)
        nodule_id = f"N{len(self.state.nodules) + 1}"
        outline = tuple((float(x), float(y)) for x, y in outline)
        nodule = Nodule(
            nodule_id, key, int(frame), box, BoxSource(source), outline=outline, uid=new_uid()
        )
        state = dataclasses.replace(self.state, nodules=numbered(self.state.nodules + (nodule,)))
        self._set(state, f"add {nodule_id}", undoable=by_user)
        return nodule_id

    def delete_nodule(self, nodule_id: str) -> None:
        """Deletes a nodule; the ones after it are renumbered (N1..Nn stay gapless)."""
        self._nodule(nodule_id)
        nodules = numbered(tuple(n for n in self.state.nodules if n.id != nodule_id))
        self._set(
            dataclasses.replace(self.state, nodules=nodules), f"delete {nodule_id}", undoable=True
        )

    def set_box(
        self,
        nodule_id: str,
        box: ROI,
        source: BoxSource = BoxSource.MANUAL,
        frame: int | None = None,
    ) -> None:
        """A moved or redrawn box, on ``frame`` (default: the nodule's); its old estimate
        no longer applies."""
        n = self._nodule(nodule_id)
        frame = n.frame if frame is None else int(frame)
        if n.box == box and n.source == source and n.frame == frame:
            return
        self._replace(
            dataclasses.replace(
                n, box=box, source=BoxSource(source), frame=frame, estimate=None, outline=()
            ),
            f"box {nodule_id}",
        )

    def set_tirads(self, nodule_id: str, choices: TiradsChoices) -> None:
        n = self._nodule(nodule_id)
        self._replace(dataclasses.replace(n, tirads=choices), f"TI-RADS {nodule_id}")

    def accept_suggestions(
        self, nodule_id: str, suggestion: TiradsSuggestion | None = None
    ) -> TiradsChoices | None:
        """The clinician's one click: every open group takes the AI's suggestion (``suggestion``,
        else the one of the nodule's last estimate); choices already made stay. Returns the
        new choices, or None when there is no suggestion to accept."""
        n = self._nodule(nodule_id)
        if suggestion is None and n.estimate is not None:
            suggestion = n.estimate.suggestion
        if suggestion is None:
            return None
        choices = accept_all(n.tirads, suggestion)
        self._replace(dataclasses.replace(n, tirads=choices), f"accept AI TI-RADS {nodule_id}")
        return choices

    def set_location(self, nodule_id: str, lobe: Lobe | None, pole: Pole | None) -> None:
        n = self._nodule(nodule_id)
        lobe = Lobe(lobe) if lobe else None  # also from a widget's plain string
        pole = Pole(pole) if pole else None
        self._replace(dataclasses.replace(n, lobe=lobe, pole=pole), f"location {nodule_id}")

    def add_caliper(self, nodule_id: str, caliper: Caliper, view: int | None = None) -> int:
        """One more caliper line on the nodule's own image (``view`` None) or on its linked
        view ``view`` (the oldest there goes when it already has ``MAX_CALIPERS``). Returns
        its number."""
        n = self._nodule(nodule_id)
        if view is None:
            n = dataclasses.replace(n, calipers=(n.calipers + (caliper,))[-MAX_CALIPERS:])
        else:
            v = n.views[view]
            v = dataclasses.replace(v, calipers=(v.calipers + (caliper,))[-MAX_CALIPERS:])
            n = _with_view(n, view, v)
        self._replace(n, f"caliper {nodule_id}")
        return next(c.number for c in n.numbered_calipers()[::-1] if c.caliper == caliper)

    def move_caliper(self, nodule_id: str, number: int, caliper: Caliper) -> None:
        """Caliper ``number`` of the nodule now runs as ``caliper`` (an end dragged)."""
        self._edit_caliper(nodule_id, number, caliper, f"move caliper {number} of {nodule_id}")

    def delete_caliper(self, nodule_id: str, number: int) -> None:
        """Deletes caliper ``number`` of the nodule (the later ones are renumbered)."""
        self._edit_caliper(nodule_id, number, None, f"delete caliper {number} of {nodule_id}")

    def _edit_caliper(self, nodule_id: str, number: int, caliper: Caliper | None, what: str):
        n = self._nodule(nodule_id)
        found = next((c for c in n.numbered_calipers() if c.number == number), None)
        if found is None:
            raise KeyError(f"{nodule_id} has no caliper {number}")
        keep = () if caliper is None else (caliper,)

        def edit(lines: tuple[Caliper, ...]) -> tuple[Caliper, ...]:
            i = lines.index(found.caliper)
            return lines[:i] + keep + lines[i + 1 :]

        if found.view is None:
            n = dataclasses.replace(n, calipers=edit(n.calipers))
        else:
            v = n.views[found.view]
            n = _with_view(n, found.view, dataclasses.replace(v, calipers=edit(v.calipers)))
        self._replace(n, what)

    def clear_calipers(self, nodule_id: str) -> None:
        """Deletes every caliper line of the nodule, on all its views."""
        n = self._nodule(nodule_id)
        views = tuple(dataclasses.replace(v, calipers=()) for v in n.views)
        self._replace(dataclasses.replace(n, calipers=(), views=views), f"calipers {nodule_id}")

    def link_view(self, nodule_id: str, view: View, absorb: str | None = None) -> None:
        """Links ``view`` (another image, or another frame of the nodule's cine loop) to the
        nodule; the nodule's own image takes the other plane. Two planes, so one linked view:
        linking another replaces it. ``absorb``: a nodule that was this same view, marked
        before it was linked: it goes (its caliper lines come along), in the same undo
        step.

        Raises:
            ValueError: ``view`` is the nodule's own frame.
        """
        n = self._nodule(nodule_id)
        if (view.image, view.frame) == (n.image, n.frame):
            raise ValueError(f"this frame is already {nodule_id}'s own image")
        state = self.state
        if absorb is not None and absorb != nodule_id:
            gone = self._nodule(absorb)
            view = dataclasses.replace(
                view, calipers=(view.calipers + gone.calipers)[-MAX_CALIPERS:]
            )
            state = dataclasses.replace(
                state, nodules=tuple(x for x in state.nodules if x.id != absorb)
            )
        n = dataclasses.replace(n, plane=view.plane.other, views=(view,))
        # numbered: the absorbed one's place closes up (N1..Nn stay gapless)
        nodules = numbered(tuple(n if x.id == n.id else x for x in state.nodules))
        self._set(
            dataclasses.replace(state, nodules=nodules),
            f"link {view.plane} view to {nodule_id}",
            undoable=True,
        )

    def set_view_box(self, nodule_id: str, index: int, box: ROI) -> None:
        """The box of linked view ``index`` of the nodule, moved or resized (an undo step)."""
        n = self._nodule(nodule_id)
        view = n.views[index]
        if view.box == box:
            return
        views = n.views[:index] + (dataclasses.replace(view, box=box),) + n.views[index + 1 :]
        self._replace(dataclasses.replace(n, views=views), f"box of {nodule_id}'s view")

    def unlink_view(self, nodule_id: str, index: int) -> None:
        """Removes linked view ``index`` (with its caliper lines) from the nodule."""
        n = self._nodule(nodule_id)
        views = n.views[:index] + n.views[index + 1 :]
        n = dataclasses.replace(n, views=views, plane=n.plane if views else None)
        self._replace(n, f"unlink view of {nodule_id}")

    def set_notes(self, nodule_id: str, notes: str) -> None:
        n = self._nodule(nodule_id)
        self._replace(dataclasses.replace(n, notes=notes), f"notes {nodule_id}")

    def set_estimate(self, nodule_id: str, estimate: Estimate | None) -> None:
        """The model's result for the nodule's current box (not an edit: no undo step).

        The same result as the one held, as the session file keeps it (a restored result has
        its suggestion's confidences rounded), changes nothing; a result for a nodule that
        had none is not a change of what was signed (the signed report computed that same
        result for its box), unless it was forced past the scope check. Any other new
        result takes the signature away."""
        n = self.state.nodule(nodule_id)
        if n is None:
            return
        same = estimate is not None and n.estimate is not None
        if same and _estimate_json(estimate) == _estimate_json(n.estimate):
            return
        self._replace(
            dataclasses.replace(n, estimate=estimate),
            "estimate",
            undoable=False,
            # a forced analysis ("Analyse anyway") is a number the signed report did not have
            unsigns=n.estimate is not None or bool(estimate and estimate.overridden_reason),
        )

    # ---------------------------------------------------------------- helpers
    def _image(self, key: str) -> ImageRecord:
        image = self.state.image(key)
        if image is None:
            raise KeyError(f"no image {key[:12]} in the session")
        return image

    def _nodule(self, nodule_id: str) -> Nodule:
        n = self.state.nodule(nodule_id)
        if n is None:
            raise KeyError(f"no nodule {nodule_id} in the session")
        return n

    def _replace(
        self, nodule: Nodule, what: str, undoable: bool = True, unsigns: bool = True
    ) -> None:
        nodules = tuple(nodule if n.id == nodule.id else n for n in self.state.nodules)
        self._set(dataclasses.replace(self.state, nodules=nodules), what, undoable, unsigns)

    def _replace_image(self, image: ImageRecord, what: str, undoable: bool) -> None:
        images = tuple(image if i.key == image.key else i for i in self.state.images)
        self._set(dataclasses.replace(self.state, images=images), what, undoable)

    # ---------------------------------------------------------------- saving
    def autosave(self) -> None:
        """Writes the session (atomically); a failure is kept in ``save_problem``."""
        if self.store is None or not self.state.images:
            return
        try:
            self.store.save(self.state)
            self.save_problem = ""
        except OSError as err:
            self.save_problem = f"the session could not be saved: {err}"
            log.warning(self.save_problem)

    def load(self, state: SessionState) -> None:
        """Replaces everything (File > Open session, or the open study at start); not
        undoable. A session without a study id (format 1 or 2) gets one."""
        if not state.study.id:
            state = dataclasses.replace(
                state, study=dataclasses.replace(state.study, id=new_study_id())
            )
        self._undo.clear()
        self._redo.clear()
        self.state = state
        self._changed("open session")


def _with_view(n: Nodule, index: int, view: View) -> Nodule:
    return dataclasses.replace(n, views=n.views[:index] + (view,) + n.views[index + 1 :])


def _keep_navigation(target: SessionState, current: SessionState) -> SessionState:
    """Undo/redo restores edits, not which frame is on screen, and never forgets an image,
    a proposal rejected or whose study it is."""
    images = []
    for image in current.images:
        old = target.image(image.key)
        images.append(
            image if old is None else dataclasses.replace(old, frame=image.frame, path=image.path)
        )
    study = dataclasses.replace(current.study, report=target.study.report)
    # nodules that came back with an image opened after the target state (restored, not
    # an edit): undo does not take them away
    restored = tuple(n for n in current.nodules if target.image(n.image) is None)
    return dataclasses.replace(
        target,
        images=tuple(images),
        nodules=numbered(target.nodules + restored),
        rejected=current.rejected,
        study=study,
    )


# ------------------------------------------------------------------------- serialisation
def _roi_json(roi: ROI) -> list[int]:
    return roi.as_list()


def _estimate_json(estimate: Estimate) -> dict:
    """An estimate as the session file keeps it."""
    sug = estimate.suggestion
    return {
        **dataclasses.asdict(estimate),
        "box": _roi_json(estimate.box),
        "warnings": list(estimate.warnings),
        "roi_source": str(estimate.roi_source),
        "suggestion": sug.to_json() if sug is not None else None,
    }


def state_to_json(state: SessionState) -> dict:
    def nodule(n: Nodule) -> dict:
        d = {
            "id": n.id,
            "image": n.image,
            "frame": n.frame,
            "box": _roi_json(n.box),
            "source": str(n.source),
            "lobe": n.lobe.name if n.lobe else None,
            "pole": n.pole.name if n.pole else None,
            "tirads": n.tirads.to_json(),
            "calipers": [_caliper_json(c) for c in n.calipers],
            "notes": n.notes,
            "estimate": None,
            "plane": str(n.plane) if n.plane else None,
            "views": [_view_json(v) for v in n.views],
            "outline": [list(p) for p in n.outline],
            "uid": n.uid,
        }
        if n.estimate is not None:
            d["estimate"] = _estimate_json(n.estimate)
        return d

    def image(i: ImageRecord) -> dict:
        return {**dataclasses.asdict(i), "identity": i.identity.to_json()}

    study = state.study
    return {
        "format": SESSION_FORMAT,
        "app": "Thyroid Review",
        "study": {
            "id": study.id,
            "identity": study.identity.to_json(),
            "report": dataclasses.asdict(study.report),
            "sr_versions": [v.to_json() for v in study.sr_versions],
        },
        "next_number": state.next_number,
        "images": [image(i) for i in state.images],
        "nodules": [nodule(n) for n in state.nodules],
        "rejected": [
            {"image": r.image, "frame": r.frame, "box": _roi_json(r.box)} for r in state.rejected
        ],
    }


def state_from_json(data: dict) -> SessionState:
    """Raises ValueError on anything that is not a session this version can read."""
    try:
        version = data.get("format")
        if version not in READABLE_FORMATS:
            raise ValueError(f"session format {version!r} is not {SESSION_FORMAT}")
        images = tuple(
            ImageRecord(**{**i, "identity": Identity.from_json(i.get("identity"))})
            for i in data["images"]
        )
        nodules = []
        for index, d in enumerate(data["nodules"]):
            est = d.get("estimate")
            nodules.append(
                Nodule(
                    id=str(d["id"]),
                    image=str(d["image"]),
                    frame=int(d["frame"]),
                    box=ROI(*d["box"]),
                    source=BoxSource(d["source"]),
                    lobe=Lobe[d["lobe"]] if d.get("lobe") else None,
                    pole=Pole[d["pole"]] if d.get("pole") else None,
                    tirads=TiradsChoices.from_json(d.get("tirads") or {}),
                    calipers=_calipers_from_json(d),
                    notes=str(d.get("notes", "")),
                    estimate=_estimate_from_json(est) if est else None,
                    plane=Plane(d["plane"]) if d.get("plane") else None,
                    views=tuple(_view_from_json(v) for v in d.get("views", ())),
                    outline=tuple((float(x), float(y)) for x, y in d.get("outline", ())),
                    uid=uid_of_saved(d, index),
                )
            )
        if version == 1:
            nodules = confirmed_only(nodules)
        rejected = tuple(
            Rejected(str(r["image"]), int(r["frame"]), ROI(*r["box"]))
            for r in data.get("rejected", ())
        )
        study = data.get("study") or {}
        record = StudyRecord(
            str(study.get("id", "")),
            Identity.from_json(study.get("identity")),
            ReportText(**{k: str(v) for k, v in (study.get("report") or {}).items()}),
            _sr_versions_from_json(study.get("sr_versions") or ()),
        )
        return SessionState(images, numbered(tuple(nodules)), rejected, record)
    except (KeyError, TypeError, IndexError) as err:
        raise ValueError(f"not a Thyroid Review session ({type(err).__name__}: {err})") from err


def _sr_versions_from_json(entries) -> tuple[SrVersion, ...]:
    """The study's SR versions; a damaged entry is left out (logged), not the session: it
    only costs a later SR the name of that predecessor."""
    from thyroid_desktop.core.report.dicom_out import SrVersion

    out: list[SrVersion] = []
    if not isinstance(entries, list | tuple):
        log.warning("session: sr_versions %r left out", entries)
        entries = ()
    for entry in entries:
        try:
            out.append(SrVersion.from_json(entry))
        except ValueError as err:
            log.warning("session: %s left out", err)
    return tuple(out)


def _merged(first: tuple[SrVersion, ...], more: Iterable[SrVersion]) -> tuple[SrVersion, ...]:
    """``first``, then those of ``more`` not in it (by SOP Instance UID)."""
    from thyroid_desktop.core.report.dicom_out import unique_versions

    return unique_versions([*first, *more])


def _caliper_json(c: Caliper) -> dict:
    return {"start": list(c.start), "end": list(c.end), "frame": c.frame}


def _caliper_from_json(d: dict) -> Caliper:
    return Caliper(tuple(d["start"]), tuple(d["end"]), int(d.get("frame", 0)))


def _calipers_from_json(d: dict) -> tuple[Caliper, ...]:
    """A nodule's caliper lines; a session saved before they kept their ends had only each
    line's extent (``calipers_px``: [dx, dy]): drawn centred on the nodule's box, on its
    frame, their lengths as measured."""
    if "calipers" in d:
        return tuple(_caliper_from_json(c) for c in d["calipers"])
    box = ROI(*d["box"])
    centre = (box.x + box.w / 2, box.y + box.h / 2)
    frame = int(d["frame"])
    return tuple(
        Caliper.of_extent(float(dx), float(dy), centre, frame)
        for dx, dy in d.get("calipers_px", ())
    )


def _view_json(v: View) -> dict:
    scale = v.file_scale
    return {
        "image": v.image,
        "frame": v.frame,
        "plane": str(v.plane),
        "box": _roi_json(v.box),
        "calipers": [_caliper_json(c) for c in v.calipers],
        "file_scale": [scale.row_mm, scale.col_mm, str(scale.source)],
    }


def _view_from_json(d: dict) -> View:
    row, col, source = d.get("file_scale") or (None, None, "uncalibrated")
    return View(
        image=str(d["image"]),
        frame=int(d["frame"]),
        plane=Plane(d["plane"]),
        box=ROI(*d["box"]),
        calipers=tuple(_caliper_from_json(c) for c in d.get("calipers", ())),
        file_scale=Scale(row, col, source),
    )


def _estimate_from_json(est: dict) -> Estimate:
    sug = est.get("suggestion")
    est = dict(est)
    if "profile" in est:  # sessions saved before the Calibration value: "" was the shipped one
        est["calibration"] = est.pop("profile") or SHIPPED
    return Estimate(
        **{
            **est,
            "box": ROI(*est["box"]),
            "suggestion": TiradsSuggestion.from_json(sug) if sug else None,
            "warnings": tuple(est.get("warnings", ())),
            "view_logits": tuple(est.get("view_logits", ())),
            "roi_source": BoxSource(est.get("roi_source", BoxSource.MANUAL)),
        }
    )


def read_session(path: str | os.PathLike[str]) -> SessionState:
    """Reads a saved session (File > Open session). Raises ValueError with the reason."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{Path(path).name} could not be read as a session: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{Path(path).name} is not a Thyroid Review session")
    return state_from_json(data)


def write_session(path: str | os.PathLike[str], state: SessionState) -> Path:
    """Writes ``state`` as JSON, atomically (File > Save session, and the autosave)."""
    text = json.dumps(state_to_json(state), indent=1)
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


class SessionStore:
    """Autosaved studies in the user data folder, found again by the images' sha256.

    Each study is one file named by its id (``StudyRecord.id``; sessions saved before issue 24
    were named by the sha256 of their sorted image keys); ``index.json`` says, for every
    image, which session last held it, so that reopening a file (alone or with others)
    brings back what was done on it; ``open.json`` names the study open now, restored at
    start (File > Close study forgets it).
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder or user_data_dir() / SESSIONS_FOLDER)

    @staticmethod
    def session_key(keys: Iterable[str]) -> str:
        return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:32]

    @property
    def index_path(self) -> Path:
        return self.folder / "index.json"

    def _index(self) -> dict[str, str]:
        try:
            data = json.loads(self.index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def file_name(self, state: SessionState) -> str:
        """The study's file name: its id (else, as before issue 24, its images' keys)."""
        return (state.study.id or self.session_key(i.key for i in state.images)) + ".json"

    def save(self, state: SessionState) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = self.file_name(state)
        path = write_session(self.folder / name, state)
        index = self._index()
        if any(index.get(i.key) != name for i in state.images):
            index.update({i.key: name for i in state.images})
            _write_json(self.index_path, index)
        if self._open_name() != name:
            _write_json(self.folder / OPEN_STUDY_FILE, {"study": name})
        return path

    def _open_name(self) -> str:
        try:
            data = json.loads((self.folder / OPEN_STUDY_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return ""
        name = data.get("study") if isinstance(data, dict) else None
        return name if isinstance(name, str) else ""

    def forget_open(self) -> None:
        """No study is open (File > Close study): the next start begins with none."""
        if self._open_name():
            _write_json(self.folder / OPEN_STUDY_FILE, {"study": None})

    def open_study(self) -> SessionState | None:
        """The study that was open when the app last stopped (closed, crashed or killed),
        or None (none open, or its file unreadable: logged)."""
        name = self._open_name()
        if not name or "/" in name or "\\" in name:
            return None
        try:
            return read_session(self.folder / name)
        except ValueError as err:
            log.warning("the open study %s was not restored: %s", name, err)
            return None

    def restore(
        self, key: str
    ) -> tuple[ImageRecord, list[Nodule], list[Rejected], tuple[SrVersion, ...]] | None:
        """What the last session holding image ``key`` saved for it (its record, nodules and
        proposals rejected) and the DICOM SRs written of that study, or None."""
        name = self._index().get(key)
        if not name:
            return None
        try:
            state = read_session(self.folder / name)
        except ValueError as err:
            log.warning("saved session %s not restored: %s", name, err)
            return None
        image = state.image(key)
        if image is None:
            return None
        rejected = [r for r in state.rejected if r.image == key]
        return image, state.nodules_on(key), rejected, state.study.sr_versions

    def add_sr(self, study_id: str, version: SrVersion) -> bool:
        """Records an SR in the saved file of study ``study_id`` (one not open now); False
        when there is no such file or it cannot be read or written."""
        path = self.folder / f"{study_id}.json"
        try:
            state = read_session(path)
            versions = _merged(state.study.sr_versions, [version])
            if versions != state.study.sr_versions:
                study = dataclasses.replace(state.study, sr_versions=versions)
                write_session(path, dataclasses.replace(state, study=study))
        except (OSError, ValueError) as err:
            log.warning("SR %s not recorded in %s: %s", version.sop_instance_uid, path, err)
            return False
        return True


def _write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=1)
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
