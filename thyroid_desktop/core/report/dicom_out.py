"""The study report as DICOM, filed with the patient's images: a Comprehensive 3D SR following
TID 1500 (per nodule its diameters, volume, ACR TI-RADS categories and level, and the AI
estimate with the model's name, version and caveats), the PDF as Encapsulated PDF, and the
annotated key image of each nodule as Secondary Capture.

The objects join the study of the source images (the same Study Instance UID and patient
module). Images without a DICOM study get a new one (new UIDs, the patient as typed), and
:class:`DicomExport` says so. Written with ``highdicom`` (SR, SC) and ``pydicom`` (the
Encapsulated PDF, which highdicom does not build).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from thyroid_desktop.core.clinical.tirads import GROUPS, label
from thyroid_desktop.core.io.files import write_atomically
from thyroid_desktop.core.io.images import UltrasoundImage
from thyroid_desktop.core.models.shipped import ModelCard
from thyroid_desktop.core.pipeline.tirads_ai import review_of, review_text
from thyroid_desktop.core.report.pdf import NoduleReport, StudyInfo

log = logging.getLogger(__name__)

MANUFACTURER = "Thyroid Review"
#: The verifying organisation of a signed SR whose images name no institution (Type 1).
NO_INSTITUTION = "institution not recorded"
#: Our private coding scheme (PS3.16 8.2: "99" + a local name) for concepts that have no
#: standard code: ACR TI-RADS categories and level, the model's estimate.
SCHEME = "99THYROID"
SCHEME_NAME = "Thyroid Review local codes (ACR TI-RADS lexicon, AI estimate)"
#: Series numbers of what we add to a study: high, so they sort after the scanner's series.
SR_SERIES, PDF_SERIES, SC_SERIES = 9901, 9902, 9903
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"  # pydicom's Comprehensive3DSRStorage
#: Key image drawing: the nodule box (yellow) and caliper lines (cyan), as the PDF draws them.
BOX_RGB, CALIPER_RGB = (255, 212, 0), (0, 220, 255)
#: Groups of the ACR TI-RADS lexicon: short code values (SH: 16 characters at most).
_GROUP_CODES = {
    "composition": "TR-COMPOSITION",
    "echogenicity": "TR-ECHOGENICITY",
    "shape": "TR-SHAPE",
    "margin": "TR-MARGIN",
}


class DicomExportError(Exception):
    """The report cannot be written as DICOM (said for a clinician)."""


@dataclass(frozen=True)
class StudyIdentity:
    """The patient and study module the report objects carry: the source images' (DICOM
    values), or a new study's (``new_study``) for images without DICOM."""

    study_instance_uid: str
    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_date: str = ""
    study_time: str = ""
    accession_number: str = ""
    study_id: str = ""
    referring_physician_name: str = ""
    new_study: bool = False
    #: A study this app made for images without DICOM at an earlier export (reused).
    earlier_study: bool = False

    @classmethod
    def of_images(
        cls,
        images: Sequence[UltrasoundImage],
        typed: StudyInfo | None = None,
        earlier: SrVersion | None = None,
    ) -> StudyIdentity:
        """The study of the first image that has one. When none has: the study of the
        ``earlier`` SR of this study if it was made for the same patient (so that every
        version lands in one study, with one study date and time), else a new study
        (patient from ``typed``).

        Raises:
            DicomExportError: the images come from more than one patient.
        """
        metas = [i.metadata for i in images if i.metadata.get("StudyInstanceUID")]
        patients = sorted({m.get("PatientID", "") for m in metas})
        if len(patients) > 1:
            raise DicomExportError(
                "the nodules come from more than one patient (IDs "
                + ", ".join(p or "none" for p in patients)
                + "): export one patient's study at a time"
            )
        if not metas:
            new = cls._new(typed or StudyInfo())
            if earlier is not None and earlier.ours and earlier.patient_id == new.patient_id:
                return dataclasses.replace(
                    new,
                    study_instance_uid=earlier.study_instance_uid,
                    study_date=earlier.study_date or new.study_date,
                    study_time=earlier.study_time or new.study_time,
                    new_study=False,
                    earlier_study=True,
                )
            return new
        m = metas[0]
        return cls(
            study_instance_uid=m["StudyInstanceUID"],
            patient_name=m.get("PatientName", ""),
            patient_id=m.get("PatientID", ""),
            patient_birth_date=m.get("PatientBirthDate", ""),
            patient_sex=m.get("PatientSex", ""),
            study_date=m.get("StudyDate", ""),
            study_time=m.get("StudyTime", ""),
            accession_number=m.get("AccessionNumber", ""),
            study_id=m.get("StudyID", ""),
            referring_physician_name=m.get("ReferringPhysicianName", ""),
        )

    @classmethod
    def _new(cls, typed: StudyInfo) -> StudyIdentity:
        from pydicom.uid import generate_uid

        now = dt.datetime.now()
        return cls(
            study_instance_uid=generate_uid(),
            patient_name=_dicom_name(typed.patient_name),
            patient_id=typed.patient_id,
            patient_birth_date=_dicom_date(typed.birth_date),
            patient_sex={"male": "M", "female": "F", "other": "O"}.get(
                typed.sex.strip().lower(), typed.sex if typed.sex in ("M", "F", "O") else ""
            ),
            study_date=_dicom_date(typed.study_date) or now.strftime("%Y%m%d"),
            study_time=now.strftime("%H%M%S"),
            accession_number=typed.accession,
            new_study=True,
        )

    def patient_module(self) -> dict[str, str]:
        """The keyword arguments highdicom's constructors take for patient and study."""
        return {
            "patient_id": self.patient_id,
            "patient_name": self.patient_name,
            "patient_birth_date": self.patient_birth_date,
            "patient_sex": self.patient_sex,
            "accession_number": self.accession_number,
            "study_id": self.study_id,
            "study_date": self.study_date,
            "study_time": self.study_time,
            "referring_physician_name": self.referring_physician_name,
        }


def _dicom_name(text: str) -> str:
    """ "Testperson, Anna" (as the report prints it) -> "Testperson^Anna"."""
    text = text.strip()
    if "^" in text or not text:
        return text
    if "," not in text:
        return f"{text}^"  # one component: the family name (PS3.5 6.2.1.2)
    family, given = text.split(",", 1)
    return f"{family.strip()}^{given.strip()}"


def _dicom_date(text: str) -> str:
    """ "20 Nov 2026" or "20261120" -> "20261120"; "" for anything else."""
    for fmt in ("%Y%m%d", "%d %b %Y", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text.strip(), fmt).strftime("%Y%m%d")
        except ValueError:
            continue
    return ""


@dataclass(frozen=True)
class SrVersion:
    """One SR written for a study, by its UIDs: a later SR of the study names it in its
    Predecessor Documents Sequence (PS3.3 C.17.2.1), so that a reader (or a PACS that follows
    it) can tell which version supersedes which (e.g. the signed, final SR after a
    preliminary one). ``ours``: this app wrote it (its series can take the next version);
    the patient ID and study date and time are those the SR was written with."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    instance_number: int = 1
    final: bool = False
    #: When it was written (ISO 8601).
    written_at: str = ""
    patient_id: str = ""
    study_date: str = ""
    study_time: str = ""
    ours: bool = True
    #: The nodules it reports: (tracking UID, tracking identifier such as "Nodule N2").
    nodules: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of_dataset(cls, ds, written_at: str = "") -> SrVersion:
        """The version an SR dataset is (read or just written)."""
        return cls(
            str(ds.StudyInstanceUID),
            str(ds.SeriesInstanceUID),
            str(ds.SOPInstanceUID),
            int(ds.get("InstanceNumber") or 1),
            ds.get("PreliminaryFlag") == "FINAL",
            written_at,
            str(ds.get("PatientID", "")),
            str(ds.get("StudyDate", "")),
            str(ds.get("StudyTime", "")),
            ds.get("Manufacturer") == MANUFACTURER and ds.get("SeriesNumber") == SR_SERIES,
            tracked_nodules(ds),
        )

    def as_dataset(self):
        """The identifying attributes highdicom reads from a previous version."""
        from pydicom.dataset import Dataset

        ds = Dataset()
        ds.SOPClassUID = COMPREHENSIVE_3D_SR
        ds.SOPInstanceUID = self.sop_instance_uid
        ds.StudyInstanceUID = self.study_instance_uid
        ds.SeriesInstanceUID = self.series_instance_uid
        return ds

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> SrVersion:
        """The version an SR file is (one this app or another wrote), e.g. to supersede it.

        Raises:
            DicomExportError: the file is not a readable Comprehensive 3D SR.
        """
        import pydicom
        from pydicom.errors import InvalidDicomError

        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            sop_class = str(ds.SOPClassUID)
            version = cls.of_dataset(ds)
        except (OSError, InvalidDicomError, AttributeError, ValueError, TypeError) as err:
            raise DicomExportError(f"{path} is not a readable DICOM SR ({err})") from err
        if sop_class != COMPREHENSIVE_3D_SR:
            raise DicomExportError(
                f"{path} is not a Comprehensive 3D SR (SOP class {sop_class}): only the SR a "
                "report was sent as can be superseded"
            )
        return version

    @classmethod
    def from_json(cls, data: dict) -> SrVersion:
        """Raises ValueError for an entry that is not one (a damaged session file)."""
        try:
            uids = [str(data[k]) for k in _SR_UIDS]
            flags = [data.get("final", False), data.get("ours", True)]
            number = data.get("instance_number", 1)
            texts = [str(data.get(k, "")) for k in ("written_at", "patient_id")]
            when = [str(data.get(k, "")) for k in ("study_date", "study_time")]
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"not an SR version: {data!r}") from err
        if (
            not all(valid_uid(u) for u in uids)
            or not all(isinstance(f, bool) for f in flags)
            or not isinstance(number, int)
            or isinstance(number, bool)
            or number < 1
        ):
            raise ValueError(f"not an SR version: {data!r}")
        return cls(*uids, number, flags[0], *texts, *when, flags[1], _nodules(data.get("nodules")))


def _nodules(entries) -> tuple[tuple[str, str], ...]:
    """A saved version's nodules; () when the entry is damaged (the version itself still
    counts: it is superseded and numbered all the same)."""
    try:
        out = tuple((u, name) for u, name in entries or ())
    except (TypeError, ValueError):
        return ()
    ok = all(isinstance(u, str) and valid_uid(u) and isinstance(n, str) for u, n in out)
    return out if ok else ()


#: SR concept codes (DCM): Tracking Identifier, Tracking Unique Identifier.
_TRACKING_ID, _TRACKING_UID = "112039", "112040"


def tracked_nodules(ds) -> tuple[tuple[str, str], ...]:
    """(tracking UID, tracking identifier) of each measurement group of an SR dataset (TID
    1500 names each nodule so), in order; () when it has none."""
    found: dict[str, str] = {}

    def walk(items) -> None:
        uid = name = None
        for item in items:
            code = item.get("ConceptNameCodeSequence")
            value = code[0].get("CodeValue") if code else None
            if value == _TRACKING_UID:
                uid = str(item.get("UID", ""))
            elif value == _TRACKING_ID:
                name = str(item.get("TextValue", ""))
            if "ContentSequence" in item:
                walk(item.ContentSequence)
        if uid and valid_uid(uid):
            found.setdefault(uid, name or "")

    walk(ds.get("ContentSequence") or ())
    return tuple(found.items())


def carried_over(previous: Sequence[SrVersion], uids) -> tuple[dict, dict]:
    """What the latest earlier version this app wrote said of the nodules a new version
    reports (tracking ``uids``) and of those it does not: (renamed, left_out), each tracking
    UID -> (the identifier it had there, that version's instance number). Renamed: its
    identifier changed (e.g. "Nodule N2" is N1 now: its image was reopened in another
    reading); left out: that version reported it and this one does not (deleted since, or
    its image is not open). Earlier versions' omissions were said by the version that
    made them; with no nodule in common nothing is said (they cannot be matched)."""
    uids = set(uids)
    latest = _last_ours(previous)
    last = (
        {u: (name or "a nodule", latest.instance_number) for u, name in latest.nodules}
        if latest
        else {}
    )
    if not uids & set(last):
        # nothing in common: another reading's nodules (e.g. the command line's, whose
        # tracking UIDs come from the box) cannot be told apart from new ones; say nothing
        return {}, {}
    left_out = {u: seen for u, seen in last.items() if u not in uids}
    return {u: seen for u, seen in last.items() if u in uids}, left_out


def left_out_text(previous: Sequence[SrVersion], uids) -> tuple[str, ...]:
    """The nodules earlier versions reported that a new one with tracking ``uids`` does
    not, e.g. ("Nodule N2 of version 1",)."""
    return _left_out_words(carried_over(previous, uids)[1])


def _left_out_words(left_out: dict) -> tuple[str, ...]:
    return tuple(f"{name} of version {number}" for name, number in left_out.values())


_SR_UIDS = ("study_instance_uid", "series_instance_uid", "sop_instance_uid")


def valid_uid(text: str) -> bool:
    """A DICOM UID (PS3.5 9.1: digits and dots, at most 64 characters)."""
    from pydicom.uid import RE_VALID_UID

    return 0 < len(text) <= 64 and RE_VALID_UID.match(text) is not None


class SrLedger:
    """The SRs written per study (by the study record's id) during this run, for export jobs
    on worker threads: a job queued before the one ahead of it has been recorded in the
    study still names that one as its predecessor (and does not take its instance number).
    Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._written: dict[str, list[SrVersion]] = {}

    def versions(self, study_id: str, recorded: Sequence[SrVersion] = ()) -> tuple[SrVersion, ...]:
        """``recorded`` (the study record's), then those written since, each once."""
        with self._lock:
            written = list(self._written.get(study_id, ()))
        return unique_versions([*recorded, *written])

    def add(self, study_id: str, version: SrVersion) -> None:
        with self._lock:
            self._written.setdefault(study_id, []).append(version)

    def written(self) -> dict[str, tuple[SrVersion, ...]]:
        """Every SR written, per study id (e.g. to record those whose result was not
        delivered: the window closed while the export ran)."""
        with self._lock:
            return {k: tuple(v) for k, v in self._written.items()}


@dataclass(frozen=True)
class DicomExport:
    """What was written: the SR, the Encapsulated PDF and one key image per nodule; the SR's
    ``version`` (for the study's record) and the earlier versions it names as predecessors."""

    sr: Path
    pdf: Path
    key_images: tuple[Path, ...]
    identity: StudyIdentity
    version: SrVersion | None = None
    supersedes: tuple[SrVersion, ...] = ()
    #: Nodules an earlier version reported that this one does not ("Nodule N2 of version 1").
    left_out: tuple[str, ...] = ()

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.sr, self.pdf, *self.key_images)

    @property
    def message(self) -> str:
        # No UIDs: a 64-digit number cannot wrap in a panel and tells a clinician nothing
        # (the log has it).
        if self.identity.new_study:
            where = "a NEW study (the images have no DICOM study)"
        elif self.identity.earlier_study:
            where = "the study of the earlier report (the images have no DICOM study)"
        else:
            where = "the patient's study"
        text = f"{len(self.files)} DICOM objects (SR, PDF, key images) written for {where}"
        if self.supersedes:  # first: a status bar cuts the end of a long message
            text = (
                f"Report version {self.version.instance_number}, superseding "
                f"{len(self.supersedes)} earlier: {text}"
            )
            if self.unsigned_over_signed:
                text += ". It is not signed and supersedes a signed report"
            if self.left_out:
                text += f". It does not report {', '.join(self.left_out)}"
        return text

    @property
    def unsigned_over_signed(self) -> bool:
        """This SR is preliminary and supersedes a final (signed) one."""
        return (
            self.version is not None
            and not self.version.final
            and any(v.final for v in self.supersedes)
        )


# ------------------------------------------------------------------------- key images
def key_image(item: NoduleReport) -> np.ndarray:
    """The nodule's frame with its box, its caliper lines with their numbers and its id drawn
    on it (H x W x 3 RGB uint8), as the report's first panel shows them."""
    rgb = np.array(item.image.pixels, dtype=np.uint8, copy=True)
    r = item.finding.roi
    thick = max(1, round(max(rgb.shape[:2]) / 400))
    cv2.rectangle(rgb, (r.x, r.y), (r.x + r.w - 1, r.y + r.h - 1), BOX_RGB, thick)
    for number, c in item.calipers:
        a = tuple(int(round(v)) for v in c.start)
        b = tuple(int(round(v)) for v in c.end)
        cv2.line(rgb, a, b, CALIPER_RGB, thick, cv2.LINE_AA)
        cv2.drawMarker(rgb, a, CALIPER_RGB, cv2.MARKER_CROSS, 6 * thick, thick)
        cv2.drawMarker(rgb, b, CALIPER_RGB, cv2.MARKER_CROSS, 6 * thick, thick)
        cv2.putText(rgb, str(number), b, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, CALIPER_RGB)
    cv2.putText(
        rgb,
        item.nodule_id,
        (r.x, max(12 * thick, r.y - 4)),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5 * thick,
        BOX_RGB,
        thick,
    )
    return rgb


def _source_header(image: UltrasoundImage):
    """The source file's DICOM header (no pixels), or None for a file without DICOM."""
    if image.source is None or not image.metadata.get("SOPInstanceUID"):
        return None
    import pydicom

    try:
        ds = pydicom.dcmread(image.source, stop_before_pixels=True, force=True)
    except Exception as err:  # the report still goes out; only the reference is missing
        log.warning("source header of %s not read: %s", image.source, err)
        return None
    needed = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
    return ds if all(ds.get(k) for k in needed) else None


def _secondary_capture(
    item: NoduleReport, identity: StudyIdentity, series_uid: str, number: int, created
):
    import highdicom as hd
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    scale = item.image.scale
    sc = hd.sc.SCImage(
        pixel_array=key_image(item),
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        study_instance_uid=identity.study_instance_uid,
        series_instance_uid=series_uid,
        series_number=SC_SERIES,
        sop_instance_uid=generate_uid(),
        instance_number=number,
        manufacturer=MANUFACTURER,
        pixel_spacing=(scale.row_mm, scale.col_mm) if scale.calibrated else None,
        patient_orientation=("L", "F"),  # replaced below: an ultrasound frame has none
        series_description="Thyroid Review key images",
        **identity.patient_module(),
    )
    sc.PatientOrientation = ""  # Type 2: unknown for a freehand ultrasound frame
    sc.BurnedInAnnotation = "YES"
    sc.ContentDate, sc.ContentTime = created.strftime("%Y%m%d"), created.strftime("%H%M%S")
    sc.ImageComments = (
        f"{item.nodule_id}{', ' + item.location if item.location else ''}: nodule box and "
        f"calipers drawn by {MANUFACTURER} on {item.image_text}"
    )[:10240]
    source = _source_header(item.image)
    if source is not None and "SOPClassUID" in source:
        ref = Dataset()
        ref.ReferencedSOPClassUID = source.SOPClassUID
        ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
        if item.image.n_frames > 1:
            ref.ReferencedFrameNumber = item.image.frame_index + 1
        sc.SourceImageSequence = [ref]
    return sc, source


# ------------------------------------------------------------------------- the SR
def _code(value: str, meaning: str):
    import highdicom as hd

    return hd.sr.CodedConcept(value[:16], SCHEME, meaning[:64])


def _finding_site(location: str):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    text = location.lower()
    site = (
        codes.SCT.RightLobeOfThyroid
        if "right" in text
        else codes.SCT.LeftLobeOfThyroid
        if "left" in text
        else codes.SCT.ThyroidIsthmus
        if "isthmus" in text
        else codes.SCT.Thyroid
    )
    return hd.sr.FindingSite(anatomic_location=site)


def _measurements(item: NoduleReport, card: ModelCard) -> list:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    size = item.size
    mm = size.max_diameter_mm is not None
    unit = codes.UCUM.Millimeter if mm else hd.sr.CodedConcept("{pixels}", "UCUM", "pixels")
    out = [
        hd.sr.Measurement(
            name=codes.SCT.Diameter,
            value=round(size.max_diameter_mm if mm else size.max_diameter_px, 2),
            unit=unit,
            derivation=codes.SCT.Maximum,
        )
    ]
    d = size.diameters
    if d is not None:
        d_unit = codes.UCUM.Millimeter if d.mm else unit
        for name, value in (
            (codes.SCT.Width, d.width),
            (codes.DCM.Height, d.depth),  # the anteroposterior depth of the transverse view
            (codes.SCT.Length, d.length),
        ):
            out.append(hd.sr.Measurement(name=name, value=round(value, 2), unit=d_unit))
    if size.volume_ml is not None:
        out.append(
            hd.sr.Measurement(
                name=codes.SCT.Volume,
                value=round(size.volume_ml, 3),
                unit=hd.sr.CodedConcept("ml", "UCUM", "milliliter"),
            )
        )
    if item.tirads is not None:
        out.append(
            hd.sr.Measurement(
                name=_code("TR-POINTS", "ACR TI-RADS points"),
                value=item.tirads.points,
                unit=hd.sr.CodedConcept("{points}", "UCUM", "points"),
            )
        )
    f = item.finding
    if f.in_scope:
        out.append(
            hd.sr.Measurement(
                name=_code("AI-TR45", "AI estimate: likelihood of TI-RADS 4-5"),
                value=float(f.shown(4)[0]),  # in the threshold's order (parameters)
                unit=codes.UCUM.NoUnits,
                algorithm_id=hd.sr.AlgorithmIdentification(
                    name=card.id or f.model_id,
                    version=card.version or f.model_version or "unknown",
                    parameters=[
                        f"calibration {f.calibration}",
                        f"threshold {f.shown(4)[1]}",  # as precise as the value above
                    ],
                ),
            )
        )
    return out


def _qualitative(item: NoduleReport) -> list:
    import highdicom as hd

    out = []
    d = item.tirads
    if d is not None:
        level = d.level
        out.append(
            hd.sr.QualitativeEvaluation(
                _code("TR-LEVEL", "ACR TI-RADS level"),
                _code(f"TR{level.tr}", f"TR{level.tr} {level.name}"),
            )
        )
        for group in GROUPS:
            choice = getattr(d, group)
            out.append(
                hd.sr.QualitativeEvaluation(
                    _code(_GROUP_CODES[group], f"ACR TI-RADS {group}"),
                    _code(choice.name, label(choice)),
                )
            )
        for focus in sorted(d.foci, key=lambda e: e.name):
            out.append(
                hd.sr.QualitativeEvaluation(
                    _code("TR-FOCI", "ACR TI-RADS echogenic foci"),
                    _code(focus.name, label(focus)),
                )
            )
    f = item.finding
    if f.in_scope:
        suspicious = f.probability >= f.threshold
        out.append(
            hd.sr.QualitativeEvaluation(
                _code("AI-CALL", "AI call at its threshold"),
                _code(
                    "SUSPICIOUS" if suspicious else "NOT-SUSPICIOUS",
                    f.call_text,
                ),
            )
        )
        sug = f.tirads_suggestion
        if sug is not None:
            out.append(
                hd.sr.QualitativeEvaluation(
                    _code("AI-TR-LEVEL", "AI-suggested TI-RADS level (not a reading)"),
                    _code(f"TR{sug.level.tr}", f"TR{sug.level.tr} {sug.level.name}"),
                )
            )
    return out


def _comments(item: NoduleReport) -> list[str]:
    """Free-text properties of a nodule: what the codes cannot say."""
    from thyroid_desktop.core.clinical.tirads import TiradsChoices, tirads_text

    f = item.finding
    choices = item.choices if item.choices is not None else TiradsChoices.of(item.tirads)
    out = [
        f"Location: {item.location or 'not given'}",
        f"Image: {item.image_text}",
        f"Size: {item.size.text()}",
        f"ACR TI-RADS (clinician): {tirads_text(choices)}",
    ]
    out += [f"Size check: {item.caliper_check}"] if item.caliper_check else []
    if f.in_scope:
        out.append(
            f"AI estimate: {f.shown()[0]} likelihood of TI-RADS 4-5 -> {f.call_text} "
            f"(threshold {f.shown()[1]}, calibration {f.calibration}, model "
            f"{f.model_id} v{f.model_version}); trained on TI-RADS-derived labels, not pathology"
        )
        out += [f"AI estimate caveat: {c}" for c in f.caveats]
        if f.tirads_suggestion is not None:
            out.append(
                f"AI TI-RADS suggestions: {f.tirads_suggestion.text()}. Clinician: "
                f"{review_text(review_of(choices, f.tirads_suggestion))}"
            )
    else:
        out.append(f"AI estimate: none ({f.no_estimate_reason})")
    out += [f"Image note: {n}" for n in f.notes]
    out += [f"Notes: {item.notes}"] if item.notes else []
    return out


def _qualitative_concept():
    """TID 1500/1501 "Qualitative Evaluations" (UMLS C0034375): the name of free-text items."""
    import highdicom as hd

    return hd.sr.CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")


def _text_item(text: str, relationship):
    import highdicom as hd

    return hd.sr.TextContentItem(
        name=_qualitative_concept(), value=text[:1024], relationship_type=relationship
    )


def _nodule_group(item: NoduleReport, card: ModelCard, sc, called: tuple[str, int] | None = None):
    """The nodule's TID 1500 measurement group; ``called``: the identifier and version of the
    latest earlier report that named it otherwise (said in a text item)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    r = item.finding.roi
    corners = np.array(
        [[r.x, r.y], [r.x + r.w, r.y], [r.x + r.w, r.y + r.h], [r.x, r.y + r.h], [r.x, r.y]],
        dtype=float,
    )
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=item.uid or generate_uid(), identifier=f"Nodule {item.nodule_id}"
        ),
        referenced_region=hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=corners,
            source_image=hd.sr.SourceImageForRegion.from_source_image(sc),
        ),
        finding_type=codes.SCT.ThyroidNodule,
        finding_sites=[_finding_site(item.location)],
        measurements=_measurements(item, card),
        qualitative_evaluations=_qualitative(item) or None,
    )
    container = group[0]
    comments = _comments(item)
    if called is not None and called[0] != f"Nodule {item.nodule_id}":
        comments.append(f"Reported as {called[0]} in report version {called[1]}")
    for text in comments:
        container.ContentSequence.append(
            _text_item(text, hd.sr.RelationshipTypeValues.HAS_PROPERTIES)
        )
    return group


def _structured_report(
    items: Sequence[NoduleReport],
    card: ModelCard,
    study: StudyInfo,
    identity: StudyIdentity,
    key_images: list,
    sources: list,
    created: dt.datetime,
    signature: tuple[str, dt.datetime] | None = None,
    previous: Sequence[SrVersion] = (),
    carried: tuple[dict, dict] = ({}, {}),
):
    """The SR, naming ``previous`` (earlier versions in this study) as its predecessors; the
    next instance of the series of the last of them this app wrote, else a new series.
    ``carried``: ``carried_over``'s (renamed, left out) nodules, said in the SR."""
    import highdicom as hd
    from highdicom.coding_schemes import CodingSchemeIdentificationItem
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    person = (
        hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name=_dicom_name(study.operator)
            ),
        )
        if study.operator
        else None
    )
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(),
            name=MANUFACTURER,
            manufacturer_name=MANUFACTURER,
            model_name=f"{card.id} v{card.version}",
        ),
    )
    renamed, left_out = carried
    groups = [
        _nodule_group(it, card, sc, renamed.get(it.uid))
        for it, sc in zip(items, key_images, strict=True)
    ]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(
            observer_person_context=person, observer_device_context=device
        ),
        procedure_reported=codes.SCT.Ultrasonography,
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport,
    )
    root = report[0]
    root.ContentSequence.append(
        _text_item(f"Impression: {study.impression or '-'}", hd.sr.RelationshipTypeValues.CONTAINS)
    )
    root.ContentSequence.append(
        _text_item(
            f"Model: {card.id} v{card.version}; {card.performance_text()}",
            hd.sr.RelationshipTypeValues.CONTAINS,
        )
    )
    for name, number in left_out.values():  # a later version must not drop one silently
        root.ContentSequence.append(
            _text_item(
                f"Not in this version: {name}, reported in version {number} (deleted since, "
                "or its image was not open when this version was written)",
                hd.sr.RelationshipTypeValues.CONTAINS,
            )
        )
    evidence = [*key_images, *(s for s in sources if s is not None)]
    # The organisation the signer is accountable to: the images' institution (Type 1).
    institution = next(
        (str(it.image.metadata.get("InstitutionName", "")) for it in items),
        "",
    ).strip()
    # Signed: final and verified by the signer (PS3.3 C.17.2); else preliminary, unverified.
    verification = (
        {
            "is_final": True,
            "is_verified": True,
            "verifying_observer_name": _dicom_name(signature[0]),
            "verifying_organization": institution or NO_INSTITUTION,
        }
        if signature
        else {}
    )
    series, number = _next_in_series(previous)
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=series or generate_uid(),
        series_number=SR_SERIES,
        sop_instance_uid=generate_uid(),
        instance_number=number,
        previous_versions=[v.as_dataset() for v in previous] or None,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description="Thyroid Review measurement report",
        coding_schemes=[CodingSchemeIdentificationItem(SCHEME, name=SCHEME_NAME)],
        **verification,
        **({"institution_name": institution} if institution else {}),
    )
    sr.ContentDate, sr.ContentTime = created.strftime("%Y%m%d"), created.strftime("%H%M%S")
    if signature:  # when the clinician signed, not when the file was written
        when = signature[1]
        sr.VerifyingObserverSequence[0].VerificationDateTime = when.strftime(
            "%Y%m%d%H%M%S" + ("%z" if when.tzinfo else "")
        )
    return sr


def _next_in_series(previous: Sequence[SrVersion]) -> tuple[str, int]:
    """(series UID, instance number) of a new version: after the highest instance of the
    series of the last version this app wrote; ("", 1) for a new series when there is none
    (another program's series is not ours to add to)."""
    ours = [v for v in previous if v.ours]
    if not ours:
        return "", 1
    series = ours[-1].series_instance_uid
    return series, 1 + max(v.instance_number for v in ours if v.series_instance_uid == series)


# ------------------------------------------------------------------------- Encapsulated PDF
def encapsulated_pdf(pdf: bytes, identity: StudyIdentity, created: dt.datetime, title: str):
    """The PDF as an Encapsulated PDF instance (PS3.3 A.45.1) in ``identity``'s study."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    if not pdf.startswith(b"%PDF"):
        raise DicomExportError("the report to encapsulate is not a PDF")
    uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = ENCAPSULATED_PDF, uid
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = identity.patient_birth_date
    ds.PatientSex = identity.patient_sex
    ds.StudyInstanceUID = identity.study_instance_uid
    ds.StudyDate, ds.StudyTime = identity.study_date, identity.study_time
    ds.StudyID = identity.study_id
    ds.AccessionNumber = identity.accession_number
    ds.ReferringPhysicianName = identity.referring_physician_name
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = PDF_SERIES
    ds.SeriesDescription = "Thyroid Review report (PDF)"
    ds.Manufacturer = MANUFACTURER
    ds.ConversionType = "WSD"  # workstation
    ds.InstanceNumber = 1
    day, time = created.strftime("%Y%m%d"), created.strftime("%H%M%S")
    ds.ContentDate, ds.ContentTime = day, time
    ds.AcquisitionDateTime = day + time
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = title[:64]
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    data = pdf + (b"\0" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocument = data
    ds.EncapsulatedDocumentLength = len(pdf)
    return ds


# ------------------------------------------------------------------------- export
def _signature(signed_by: str, signed_at: str) -> tuple[str, dt.datetime] | None:
    """(who, when) of a signed study, None unsigned; a time that is not one is an error."""
    if not (signed_by and signed_at):
        return None
    try:
        return signed_by, dt.datetime.fromisoformat(signed_at)
    except ValueError as err:
        raise DicomExportError(
            f"the signature's time {signed_at!r} is not a date and time: sign the report again"
        ) from err


def _save(ds, path: Path) -> Path:
    return write_atomically(path, lambda tmp: ds.save_as(tmp, enforce_file_format=True))


def export_study_dicom(
    folder: str | os.PathLike[str],
    items: Sequence[NoduleReport],
    card: ModelCard,
    study: StudyInfo,
    pdf: bytes | str | os.PathLike[str],
    created: dt.datetime | None = None,
    signed_by: str = "",
    signed_at: str = "",
    previous: Sequence[SrVersion] = (),
    all_of_study: bool = False,
) -> DicomExport:
    """Writes the study report's DICOM objects into ``folder`` (each atomically): the SR
    (``report_sr.dcm``), the PDF (``report_pdf.dcm``) and a key image per nodule
    (``key_N1.dcm``, ...), all in the source images' study (or a new one).

    Args:
        items: the confirmed nodules, as the study report shows them
            (``core.analysis.nodule_reports``).
        pdf: the study report's PDF (its bytes or its file).
        signed_by, signed_at: who signed the study and when (ISO 8601); the SR is then
            final and verified by them (else preliminary and unverified).
        previous: the SRs written for this study before (``DicomExport.version`` of each,
            oldest first). Those in the study the new SR joins are named as its predecessors
            and it is the next instance of the series of the last one this app wrote; images
            without DICOM reuse the last one's study (same patient ID) instead of making
            another.
        all_of_study: refuse (nothing written) when one of ``previous`` is of another study
            (the command line's ``--supersedes``; the app leaves those out silently: the
            study's images changed).

    Raises:
        DicomExportError: no nodule, nodules from two patients, the PDF is not one, the
            signature's time is not a date and time, or (``all_of_study``) an earlier SR of
            another study (nothing is written then).
        OSError: the folder cannot be written.
    """
    if not items:
        raise DicomExportError("the study has no nodule to report")
    signature = _signature(signed_by, signed_at)
    created = created or dt.datetime.now().astimezone()
    pdf_bytes = pdf if isinstance(pdf, bytes) else Path(pdf).read_bytes()
    identity = StudyIdentity.of_images([it.image for it in items], study, _last_ours(previous))
    earlier = unique_versions(
        v for v in previous if v.study_instance_uid == identity.study_instance_uid
    )
    if all_of_study and len(earlier) < len(unique_versions(previous)):
        raise DicomExportError(
            "an earlier SR given to supersede is of another study or patient than this "
            f"report's ({identity.study_instance_uid}): nothing written"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    from pydicom.uid import generate_uid

    series = generate_uid()
    key_images, sources, key_paths = [], [], []
    for number, it in enumerate(items, start=1):
        sc, source = _secondary_capture(it, identity, series, number, created)
        key_images.append(sc)
        if source is not None and all(s.SOPInstanceUID != source.SOPInstanceUID for s in sources):
            sources.append(source)
        key_paths.append(_save(sc, folder / f"key_{_safe(it.nodule_id)}.dcm"))
    carried = carried_over(earlier, (it.uid for it in items if it.uid))
    sr = _structured_report(
        items, card, study, identity, key_images, sources, created, signature, earlier, carried
    )
    sr_path = _save(sr, folder / "report_sr.dcm")
    version = SrVersion.of_dataset(sr, created.isoformat(timespec="seconds"))
    title = "Thyroid ultrasound report" + (f" {identity.patient_id}" if identity.patient_id else "")
    if earlier:  # which PDF is current, in the PACS's list of the study's documents
        title += f" (version {version.instance_number})"
    doc = encapsulated_pdf(pdf_bytes, identity, created, title)
    pdf_path = _save(doc, folder / "report_pdf.dcm")
    left_out = _left_out_words(carried[1])
    result = DicomExport(sr_path, pdf_path, tuple(key_paths), identity, version, earlier, left_out)
    log.info("%s in %s (study %s)", result.message, folder, identity.study_instance_uid)
    return result


def _last_ours(versions: Sequence[SrVersion]) -> SrVersion | None:
    """The last version this app wrote (whose study images without DICOM can join)."""
    return next((v for v in reversed(versions) if v.ours), None)


def unique_versions(versions) -> tuple[SrVersion, ...]:
    """Each SR once (by SOP Instance UID), in order."""
    seen: dict[str, SrVersion] = {}
    for v in versions:
        seen.setdefault(v.sop_instance_uid, v)
    return tuple(seen.values())


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text) or "nodule"
