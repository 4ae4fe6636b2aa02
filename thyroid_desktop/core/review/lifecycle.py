"""A study belongs to one patient: who an image is of, whether it fits the open study, and
what the window's title says, without Qt.

The window asks the clinician only what :func:`sort_new_files` leaves open ("these images
are of another patient: new study, add anyway, or cancel?"); the rules are here.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from thyroid_desktop.core.io.dicom import read_header

if TYPE_CHECKING:
    from thyroid_desktop.core.review.session import Estimate

#: What the window title says for a study whose images carry no patient data (plain images).
NO_PATIENT_DATA = "no patient data"


@dataclass(frozen=True)
class Identity:
    """Whose images these are and which study they belong to, as DICOM says (keywords as
    in the DICOM header); all empty for a plain image."""

    PatientID: str = ""
    PatientName: str = ""
    StudyInstanceUID: str = ""
    StudyDate: str = ""

    @classmethod
    def of(cls, metadata: Mapping[str, str]) -> Identity:
        """From an image's ``metadata`` (``UltrasoundImage.metadata``)."""
        return cls(**{k: str(metadata.get(k, "")).strip() for k in cls.__dataclass_fields__})

    @classmethod
    def from_json(cls, data: Mapping[str, str] | None) -> Identity:
        return cls.of(data or {})

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}

    @property
    def known(self) -> bool:
        """The image says whose it is (a patient ID or a study UID)."""
        return bool(self.PatientID or self.StudyInstanceUID)

    def differs(self, other: Identity) -> bool:
        """Another patient, or another study: a patient ID, else a study UID, that both
        state and that differ. An image without them fits any study (nothing to compare)."""
        if self.PatientID and other.PatientID and self.PatientID != other.PatientID:
            return True
        if self.StudyInstanceUID and other.StudyInstanceUID:
            return self.StudyInstanceUID != other.StudyInstanceUID
        return False

    @property
    def text(self) -> str:
        """ "Testperson, Anna (ID CINE-0001), study 4 Mar 2024", or "no patient data"."""
        if not (self.PatientID or self.PatientName or self.StudyDate):
            return NO_PATIENT_DATA
        from thyroid_desktop.core.report.pdf import human_date, person_name

        who = person_name(self.PatientName) or "unnamed patient"
        who += f" (ID {self.PatientID})" if self.PatientID else ""
        return f"{who}, study {human_date(self.StudyDate)}" if self.StudyDate else who


def read_identity(path: str | os.PathLike[str]) -> Identity:
    """Whose image the file is, from its header only (no pixels decoded; empty for a plain
    image or a file that cannot be read: opening it says why)."""
    return Identity.of(read_header(path))


class Answer(enum.StrEnum):
    """The clinician's answer when images of another patient or study are opened."""

    NEW_STUDY = "new study"
    ADD_ANYWAY = "add anyway"
    CANCEL = "cancel"


@dataclass(frozen=True)
class Admission:
    """Files being opened, sorted against the open study: ``fits`` join it at once; ``others``
    (of patient ``other``, not the study's ``study``) wait for the clinician's answer; ``later``
    (of a third patient or study) are sorted again once it is given."""

    fits: tuple[Path, ...]
    others: tuple[Path, ...] = ()
    later: tuple[Path, ...] = ()
    study: Identity = Identity()
    other: Identity = Identity()

    @property
    def question(self) -> str:
        """What the window asks (empty when nothing is to be asked)."""
        if not self.others:
            return ""
        n = len(self.others)
        what = "image is" if n == 1 else f"{n} images are"
        whose = (
            "another patient"
            if self.study.PatientID != self.other.PatientID
            else "another study of the same patient"
        )
        return (
            f"The {what} of {whose}: {self.other.text}.\n"
            f"The open study is of {self.study.text}.\n\n"
            "Start a new study for them (the open one is kept in its session), add them to "
            "this study anyway, or cancel?"
        )


def sort_new_files(
    study: Identity, files: Iterable[tuple[Path, Identity]]
) -> tuple[Identity, Admission]:
    """Sorts files being opened against the study's identity ``study`` (empty: the study
    has no image saying whose it is yet; the first file that does sets it). Files of the
    first other patient or study found wait (``others``); a third one's come ``later``.

    Returns:
        The study's identity after the files that fit, and the admission.
    """
    fits: list[Path] = []
    others: list[Path] = []
    later: list[Path] = []
    other = Identity()
    for path, identity in files:
        if not study.known and identity.known:
            study = identity
        if not identity.differs(study):
            fits.append(path)
        elif not others or not identity.differs(other):
            other = other if others else identity
            others.append(path)
        else:
            later.append(path)
    return study, Admission(tuple(fits), tuple(others), tuple(later), study, other)


#: The audit log's action for the clinician's answer to :attr:`Admission.question`.
AUDIT_ACTION = "other-patient-images"


def answer_record(admission: Admission, answer: Answer):
    """The audit record of the clinician's answer (``core.report.audit.AuditRecord``)."""
    from thyroid_desktop.core.report.audit import record_for

    detail = (
        f"{answer}: {len(admission.others)} image(s) of {admission.other.text} "
        f"(StudyInstanceUID {admission.other.StudyInstanceUID or '-'}) opened while the study "
        f"is of {admission.study.text} "
        f"(StudyInstanceUID {admission.study.StudyInstanceUID or '-'})"
    )
    return record_for(
        AUDIT_ACTION,
        "",
        None,
        roi_source=None,
        model_id="",
        probability=None,
        file="; ".join(str(p) for p in admission.others),
        detail=detail,
    )


#: The audit log's action for a report signed in the window: one record per nodule signed.
SIGN_ACTION = "sign-report"


def sign_records(state) -> list:
    """The audit records of signing the study's report (``SessionState`` just signed): one
    per nodule, with the box, the estimate and the calibration that were signed, who signed
    and when (``detail``). A report with no nodule is not signed (:func:`sign_blocker`)."""
    report = state.study.report
    return [
        _nodule_record(
            SIGN_ACTION,
            state,
            n,
            n.estimate,
            f"{n.id} signed by {report.signed_by} at {report.signed_at}",
        )
        for n in state.nodules
    ]


def _nodule_record(action: str, state, nodule, est, detail: str):
    """An audit record of a nodule (its file, a cine loop's frame, box and ``est``), as the
    analysis records give them."""
    from thyroid_desktop.core.report.audit import record_for

    image = state.image(nodule.image)
    return record_for(
        action,
        nodule.image,
        nodule.box,
        roi_source=str(nodule.source),
        model_id=est.model_id if est is not None else "",
        probability=est.probability if est is not None and est.in_scope else None,
        file=str(image.path) if image is not None else None,
        frame=nodule.frame if image is not None and image.n_frames > 1 else None,
        no_estimate_reason=(est.no_estimate_reason or None) if est is not None else None,
        calibration=est.calibration if est is not None else None,
        detail=detail,
    )


def sign_blocker(state) -> str:
    """Why the study's report cannot be signed now ("" when it can): a report lists
    confirmed nodules, and one without any cannot be exported either."""
    if not state.nodules:
        return "The report lists no nodule: mark at least one nodule first."
    return ""


#: The audit log's action for a nodule's estimate re-scored under another calibration.
RESCORE_ACTION = "rescore-calibration"


@dataclass(frozen=True)
class Rescore:
    """One nodule's estimate before and after a re-score (``Estimate``; after None: saved
    without its logits, dropped, analysed again when shown)."""

    nodule_id: str
    before: Estimate
    after: Estimate | None

    @property
    def flipped(self) -> bool:
        return self.after is not None and self.before.call != self.after.call


@dataclass(frozen=True)
class Rescored:
    """What a switch of the calibration did to the study's nodules (:class:`Rescore` each)
    and whether the report's signature went."""

    calibration: str
    changes: tuple[Rescore, ...] = ()
    unsigned: bool = False

    @property
    def flipped(self) -> list[str]:
        """The nodules whose call changed."""
        return [c.nodule_id for c in self.changes if c.flipped]

    @property
    def notable(self) -> bool:
        """A call changed or the signature went: said in a box, not only the status bar
        (a GUI trial: the status line was overwritten at once by the re-analysis's)."""
        return self.unsigned or bool(self.flipped)

    def text(self) -> str:
        """e.g. "Re-scored N1, N2; call changed: N2 suspicious (TI-RADS 4-5 likely) ->
        not suspicious (0.77 -> 0.70). The signature was removed: check the report and sign
        it again." ("" when nothing was re-scored)."""
        if not self.changes:
            return ""
        done = [c.nodule_id for c in self.changes if c.after is not None]
        dropped = [c.nodule_id for c in self.changes if c.after is None]
        parts = [f"Re-scored {', '.join(done)}"] if done else []
        if dropped:  # saved without the model's logits: no numbers to re-score
            parts.append(f"{', '.join(dropped)}: result dropped, analysed again when shown")
        out = "; ".join(parts)
        flipped = [
            f"{c.nodule_id} {c.before.call} -> {c.after.call} "
            f"({c.before.shown()[0]} -> {c.after.shown()[0]})"
            for c in self.changes
            if c.flipped
        ]
        if flipped:
            out += "; call changed: " + "; ".join(flipped)
        if self.unsigned:
            out += ". The signature was removed: check the report and sign it again"
        return out + "."

    def records(self, state) -> list:
        """One audit record per nodule re-scored: the new numbers, the old in ``detail``."""
        out = []
        for c in self.changes:
            nodule = state.nodule(c.nodule_id)
            if nodule is None:
                continue
            before, after = c.before, c.after
            now = f"{after.shown()[0] or 'no estimate'} ({after.call})" if after else "dropped"
            detail = (
                f"{c.nodule_id} re-scored from {before.calibration} "
                f"{before.shown()[0] or 'no estimate'} ({before.call}) to {self.calibration} {now}"
                + ("; the report's signature removed" if self.unsigned else "")
            )
            record = _nodule_record(RESCORE_ACTION, state, nodule, after, detail)
            out.append(dataclasses.replace(record, calibration=self.calibration))
        return out
