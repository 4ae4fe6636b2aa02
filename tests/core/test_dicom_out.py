"""The study report as DICOM (SR TID 1500, Encapsulated PDF, Secondary Capture), the PACS
settings and the outbox, without a PACS (tests/test_pacs_orthanc.py sends to a real one)."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from thyroid_desktop.core.clinical.measure import Caliper, finding_size
from thyroid_desktop.core.clinical.tirads import (
    Composition,
    EchogenicFoci,
    Echogenicity,
    Margin,
    Shape,
    TiradsChoices,
    TiradsDescriptors,
)
from thyroid_desktop.core.io.images import from_array, open_image
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.estimate import predict
from thyroid_desktop.core.report.dicom_out import (
    ENCAPSULATED_PDF,
    DicomExportError,
    export_study_dicom,
)
from thyroid_desktop.core.report.pacs import (
    Outbox,
    PacsError,
    PacsSettings,
    load_settings,
    save_settings,
)
from thyroid_desktop.core.report.pdf import NoduleReport, StudyInfo

TIRADS = TiradsDescriptors(
    Composition.SOLID,
    Echogenicity.HYPO,
    Shape.WIDER,
    Margin.SMOOTH,
    frozenset({EchogenicFoci.PUNCTATE}),
)
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
#: A signature (who, when) for export_study_dicom.
SIGNED = {"signed_by": "Example, Ada", "signed_at": "2026-12-05T09:14:03+01:00"}
#: A minimal PDF (what the study report writes is tested in test_report.py).
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def phantom_dicom(path: Path, patient_id: str = "P-042", study_uid: str | None = None) -> Path:
    """The phantom as an ultrasound DICOM file of a known patient and study (0.1 mm/px)."""
    from tests.core.test_dicom import make_dataset, save, us_region

    pixels = make_phantom().pixels[:, :, 0].copy()
    h, w = pixels.shape
    ds = make_dataset(pixels, regions=[us_region(0.01, 0.01, box=(0, 0, w - 1, h - 1))])
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.PatientName = "Testperson^Anna"
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19610304"
    ds.PatientSex = "F"
    ds.StudyTime = "101500"
    ds.AccessionNumber = "ACC-7"
    ds.ReferringPhysicianName = "Referrer^Rita"
    return save(ds, path)


def nodule_item(image, classifier, nodule_id: str = "N1", location: str = "right lobe, upper"):
    """A confirmed nodule with the clinician's TI-RADS and one caliper line."""
    box = make_phantom().nodule
    # The synthetic phantom is unlike the training images (no estimate): the estimate's
    # place in the SR is what is checked here, so the rule's answer is set aside.
    finding = replace(predict(image, classifier, box, "manual"), no_estimate_reason="")
    caliper = Caliper((box.x, box.y + box.h / 2), (box.x + box.w, box.y + box.h / 2))
    return NoduleReport(
        nodule_id=nodule_id,
        location=location,
        image=image,
        finding=finding,
        size=finding_size(finding, image.scale, calipers=[caliper]),
        tirads=TIRADS,
        choices=TiradsChoices.of(TIRADS),
        calipers=((1, caliper),),
    )


def study_of(image) -> StudyInfo:
    return StudyInfo.from_metadata(image.metadata, operator="Dr Example", impression="Solid.")


def sr_texts(ds) -> list[str]:
    """Every TEXT value anywhere in an SR's content tree."""
    out = []

    def walk(items):
        for it in items:
            if it.get("ValueType") == "TEXT":
                out.append(str(it.TextValue))
            walk(it.get("ContentSequence", []))

    walk(ds.ContentSequence)
    return out


def check_sr(path: Path, item: NoduleReport, card) -> None:
    """The SR reads back with highdicom: the nodule's measurements, TI-RADS and AI estimate."""
    import highdicom as hd

    sr = hd.sr.srread(path)
    assert sr.SOPClassUID == COMPREHENSIVE_3D_SR
    (group,) = sr.content.get_planar_roi_measurement_groups()
    assert group.tracking_identifier == f"Nodule {item.nodule_id}"
    assert group.finding_type.meaning == "Thyroid Nodule"
    assert group.finding_sites[0].value.meaning == "Right lobe of thyroid"
    values = {m.name.meaning: (m.value, m.unit.value) for m in group.get_measurements()}
    assert values["Diameter"] == (pytest.approx(item.size.max_diameter_mm, abs=0.01), "mm")
    assert values["ACR TI-RADS points"][0] == TIRADS.points == 7
    ai = next(m for m in group.get_measurements() if m.name.value == "AI-TR45")
    assert ai.value == pytest.approx(item.finding.probability, abs=1e-4)
    algorithm = {
        c.ConceptNameCodeSequence[0].CodeMeaning: str(c.TextValue)
        for c in ai[0].ContentSequence
        if c.ValueType == "TEXT"
    }
    assert algorithm["Algorithm Name"] == card.id
    assert algorithm["Algorithm Version"] == card.version
    evals = {q.name.meaning: q.value for q in group.get_qualitative_evaluations()}
    assert evals["ACR TI-RADS level"].value == "TR5"
    assert evals["ACR TI-RADS composition"].meaning == "solid or almost completely solid"
    assert evals["ACR TI-RADS echogenicity"].value == "HYPO"
    assert evals["ACR TI-RADS echogenic foci"].value == "PUNCTATE"
    texts = sr_texts(sr)
    assert "AI estimate caveat: not validated at this site" in texts
    assert any(t.startswith("Impression: Solid.") for t in texts)


def test_report_joins_the_patients_study(tmp_path, classifier):
    source = phantom_dicom(tmp_path / "us.dcm")
    image = open_image(source)
    item = nodule_item(image, classifier)
    out = export_study_dicom(tmp_path / "out", [item], classifier.card, study_of(image), PDF)
    src = pydicom.dcmread(source)
    assert not out.identity.new_study and "the patient's study" in out.message
    assert len(out.files) == 3 and not list((tmp_path / "out").glob(".*tmp*"))
    for f in out.files:
        ds = pydicom.dcmread(f)
        for keyword in (
            "StudyInstanceUID",
            "PatientName",
            "PatientID",
            "PatientBirthDate",
            "PatientSex",
            "AccessionNumber",
            "StudyDate",
            "ReferringPhysicianName",
        ):
            assert ds.get(keyword) == src.get(keyword), (f.name, keyword)
        assert ds.SeriesInstanceUID != src.SeriesInstanceUID
    check_sr(out.sr, item, classifier.card)
    sr = pydicom.dcmread(out.sr)
    referenced = {
        i.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for i in series.ReferencedSOPSequence
    }
    assert src.SOPInstanceUID in referenced  # the source image is the SR's evidence
    pdf = pydicom.dcmread(out.pdf)
    assert pdf.SOPClassUID == ENCAPSULATED_PDF and pdf.Modality == "DOC"
    assert pdf.EncapsulatedDocument[: len(PDF)] == PDF
    assert pdf.EncapsulatedDocumentLength == len(PDF)
    key = pydicom.dcmread(out.key_images[0])
    assert key.SOPClassUID == SECONDARY_CAPTURE and key.BurnedInAnnotation == "YES"
    assert key.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    # The key image is the frame with the box drawn on it (yellow), same size as the source.
    shown = key.pixel_array
    assert shown.shape == (*image.pixels.shape[:2], 3)
    box = item.finding.roi
    assert tuple(shown[box.y, box.x + box.w // 2]) == (255, 212, 0)
    assert not np.array_equal(shown, image.pixels)


def test_images_without_dicom_get_a_new_study_and_say_so(tmp_path, classifier):
    image = from_array(make_phantom().pixels, spacing_mm=(0.1, 0.1))
    check = "N1: caliper 1 lies outside its box: check that it measures this nodule"
    item = replace(nodule_item(image, classifier, location=""), caliper_check=check)
    study = StudyInfo(patient_name="Testperson, Bo", patient_id="P-9", birth_date="4 Mar 1961")
    out = export_study_dicom(tmp_path, [item], classifier.card, study, PDF)
    assert f"Size check: {check}" in sr_texts(pydicom.dcmread(out.sr))
    assert out.identity.new_study and "NEW study" in out.message
    uids = {pydicom.dcmread(f).StudyInstanceUID for f in out.files}
    assert uids == {out.identity.study_instance_uid}
    sr = pydicom.dcmread(out.sr)
    assert (str(sr.PatientName), sr.PatientID, sr.PatientBirthDate) == (
        "Testperson^Bo",
        "P-9",
        "19610304",
    )


def test_two_patients_are_not_reported_together(tmp_path, classifier):
    a = open_image(phantom_dicom(tmp_path / "a.dcm", "P-1"))
    b = open_image(phantom_dicom(tmp_path / "b.dcm", "P-2"))
    items = [nodule_item(a, classifier), nodule_item(b, classifier, "N2")]
    with pytest.raises(DicomExportError, match="more than one patient"):
        export_study_dicom(tmp_path / "out", items, classifier.card, study_of(a), PDF)
    with pytest.raises(DicomExportError, match="not a PDF"):
        export_study_dicom(tmp_path / "out", items[:1], classifier.card, study_of(a), b"no")


def test_pacs_settings_round_trip_and_refuse_bad_values(tmp_path):
    settings = PacsSettings.parse("ORTHANC@pacs.example:4242", calling_ae="US-ROOM-2")
    assert (settings.ae_title, settings.host, settings.port) == ("ORTHANC", "pacs.example", 4242)
    assert load_settings() is None
    save_settings(settings)
    assert load_settings() == settings
    for bad in ("ORTHANC@pacs", "@pacs:4242", "ORTHANC@pacs:70000", "A" * 17 + "@h:1"):
        with pytest.raises(PacsError):
            PacsSettings.parse(bad)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_outbox_keeps_everything_when_the_pacs_is_down(tmp_path, classifier):
    image = open_image(phantom_dicom(tmp_path / "us.dcm"))
    out = export_study_dicom(
        tmp_path / "out", [nodule_item(image, classifier)], classifier.card, study_of(image), PDF
    )
    outbox = Outbox(tmp_path / "outbox")
    outbox.add(out.files)
    outbox.add(out.files[:1])  # added twice: kept once
    seen = []
    down = PacsSettings("NOBODY", "127.0.0.1", free_port(), timeout_s=2)
    result = outbox.send(down, lambda done, total, name: seen.append((done, total)))
    assert not result.ok and result.sent == 0 and len(result.failed) == 3
    assert all("cannot be reached" in o.error for o in result.failed)
    assert "0 of 3 object(s) stored" in result.message
    assert len(outbox.pending()) == 3 and seen[-1] == (3, 3)


def test_a_report_sent_later_is_audited_when_its_last_object_arrives(tmp_path, classifier):
    """A report left in the outbox and stored by a later send ("Send waiting only",
    ``outbox --send``) got no ``send-pacs`` line. The records travel with its objects and
    are written by the send that stores the last of them, once."""
    from thyroid_desktop.core.report.audit import AuditLog, record_for
    from thyroid_desktop.core.report.pacs import SendResult, StoreOutcome

    image = open_image(phantom_dicom(tmp_path / "us.dcm"))
    out = export_study_dicom(
        tmp_path / "out", [nodule_item(image, classifier)], classifier.card, study_of(image), PDF
    )
    outbox = Outbox(tmp_path / "outbox")
    record = record_for("send-pacs", "abc", None, roi_source="auto", model_id="m",
                        probability=0.5, detail="version 1")  # fmt: skip
    copies = outbox.add(out.files, [record])
    assert len(outbox.pending()) == 3  # the note is not an object to send
    log = AuditLog(tmp_path / "audit.jsonl")

    def stored(*paths):  # what a send that stored ``paths`` returns (they leave the outbox)
        for p in paths:
            p.unlink()
        return SendResult("PACS", tuple(StoreOutcome(p, p.name, True) for p in paths))

    down = PacsSettings("NOBODY", "127.0.0.1", free_port(), timeout_s=2)
    assert not outbox.send(down, audit=log).ok and log.read() == []  # nothing arrived
    assert outbox._settle(stored(*copies[:2]), log) == "" and log.read() == []  # one waits
    assert outbox._settle(stored(copies[2]), log) == ""
    (line,) = log.read()
    assert line["action"] == "send-pacs" and line["image_sha256"] == "abc"
    assert line["detail"] == "version 1; all 3 object(s) stored on PACS"
    assert line["time"] != record.time and notes(outbox) == []
    # written once: a later send does not repeat it
    assert outbox._settle(stored(*outbox.add(out.files[:1])), log) == "" and len(log.read()) == 1
    # objects that left the outbox without being stored (deleted by hand): nothing written,
    # the note dropped
    outbox.add(out.files, [record])
    for p in outbox.pending():
        p.unlink()
    assert outbox._settle(stored(), log) == "" and len(log.read()) == 1 and notes(outbox) == []


def notes(outbox):
    return sorted(p.name for p in outbox.folder.glob(".audit-*"))


def test_a_report_s_audit_waits_while_the_log_cannot_take_it(tmp_path, classifier):
    """Sent without a log (``--no-audit``) or while it cannot be written: the records stay
    beside the outbox until a send with a log writes them (a review: they were lost)."""
    from thyroid_desktop.core.report.audit import AuditLog, record_for
    from thyroid_desktop.core.report.pacs import SendResult, StoreOutcome

    image = open_image(phantom_dicom(tmp_path / "us.dcm"))
    out = export_study_dicom(
        tmp_path / "out", [nodule_item(image, classifier)], classifier.card, study_of(image), PDF
    )
    outbox = Outbox(tmp_path / "outbox")
    records = [record_for("send-pacs", sha, None, roi_source="auto", model_id="m",
                          probability=0.5) for sha in ("a", "b")]  # fmt: skip
    copies = outbox.add(out.files, records)
    for p in copies:
        p.unlink()
    sent = SendResult("PACS", tuple(StoreOutcome(p, p.name, True) for p in copies))
    assert outbox._settle(sent, None) == "" and len(notes(outbox)) == 1  # no log: kept
    (tmp_path / "blocked").mkdir()
    blocked = AuditLog(tmp_path / "blocked")  # a folder: it cannot be appended to
    assert "audit log not written" in outbox._settle(SendResult("PACS", ()), blocked)
    assert len(notes(outbox)) == 1
    # a stray temporary file and a note of another version do not break or repeat anything
    (outbox.folder / ".audit-1.2.json.tmp9.json").write_text("{half")
    note = outbox.folder / notes(outbox)[0]
    data = json.loads(note.read_text())
    data["records"][0]["added_later"] = "a field of a newer version"
    note.write_text(json.dumps(data))
    log = AuditLog(tmp_path / "audit.jsonl")
    assert outbox._settle(SendResult("PACS", ()), log) == ""  # any later send writes them
    assert [r["image_sha256"] for r in log.read()] == ["a", "b"]
    assert notes(outbox) == [".audit-1.2.json.tmp9.json"]
    # a mangled note is said, never raised: the send has happened
    (outbox.folder / ".audit-3.4.json").write_text(json.dumps({"waiting": [], "records": [1]}))
    assert "audit log not written" in outbox._settle(SendResult("PACS", ()), log)


def test_a_signed_study_is_sent_final_and_verified_by_its_signer(tmp_path, classifier):
    """Unsigned: the SR is complete but preliminary and unverified. Signed: final, verified
    by the clinician who signed, at the time they signed (not when the file was written)."""
    import highdicom as hd

    image = from_array(make_phantom().pixels, spacing_mm=(0.1, 0.1))
    item = nodule_item(image, classifier)
    study = StudyInfo(patient_name="Testperson, Bo", patient_id="P-9")
    draft = pydicom.dcmread(
        export_study_dicom(tmp_path / "a", [item], classifier.card, study, PDF).sr
    )
    assert (draft.CompletionFlag, draft.VerificationFlag) == ("COMPLETE", "UNVERIFIED")
    assert draft.PreliminaryFlag == "PRELIMINARY" and "VerifyingObserverSequence" not in draft
    out = export_study_dicom(
        tmp_path / "b",
        [item],
        classifier.card,
        study,
        PDF,
        **SIGNED,
    )
    sr = hd.sr.srread(out.sr)
    assert (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag) == (
        "COMPLETE",
        "VERIFIED",
        "FINAL",
    )
    observer = sr.VerifyingObserverSequence[0]
    assert str(observer.VerifyingObserverName) == "Example^Ada"
    assert observer.VerificationDateTime == "20261205091403+0100"
    assert observer.VerifyingOrganization == "institution not recorded"  # a PNG names none
    with pytest.raises(DicomExportError, match="sign the report again"):
        export_study_dicom(
            tmp_path / "c", [item], classifier.card, study, PDF, signed_by="A", signed_at="today"
        )
    assert sr.content.get_planar_roi_measurement_groups()  # reads back with highdicom


def export_scanned(folder: Path, image, classifier, previous):
    """The DICOM image's nodule exported with its DICOM study's details, after ``previous``."""
    item = nodule_item(image, classifier)
    return export_study_dicom(
        folder, [item], classifier.card, study_of(image), PDF, previous=previous
    )


def test_a_later_sr_names_the_versions_it_supersedes(tmp_path, classifier):
    """Exported again (e.g. signed after a preliminary send), the SR names the study's earlier
    SRs in its Predecessor Documents Sequence and is their series' next instance; images
    without DICOM reuse the earlier export's study (same patient) instead of making another."""
    import highdicom as hd

    from thyroid_desktop.core.report.dicom_out import SrVersion

    image = from_array(make_phantom().pixels, spacing_mm=(0.1, 0.1))
    item = nodule_item(image, classifier)
    study = StudyInfo(patient_name="Testperson, Bo", patient_id="P-9")
    first = export_study_dicom(tmp_path / "a", [item], classifier.card, study, PDF)
    assert first.version.instance_number == 1 and not first.version.final
    assert first.supersedes == () and "Predecessor" not in str(pydicom.dcmread(first.sr))
    second = export_study_dicom(
        tmp_path / "b",
        [item],
        classifier.card,
        study,
        PDF,
        **SIGNED,
        previous=(first.version,),
    )
    assert second.identity.study_instance_uid == first.identity.study_instance_uid
    assert second.supersedes == (first.version,)
    assert second.message.startswith("Report version 2, superseding 1 earlier: 3 DICOM")
    assert not second.identity.new_study and "study of the earlier report" in second.message
    old, new = pydicom.dcmread(first.sr), pydicom.dcmread(second.sr)
    assert (new.StudyDate, new.StudyTime) == (old.StudyDate, old.StudyTime)
    sr = hd.sr.srread(second.sr)
    assert sr.PreliminaryFlag == "FINAL" and second.version.final
    assert pydicom.dcmread(second.pdf).DocumentTitle == "Thyroid ultrasound report P-9 (version 2)"
    assert pydicom.dcmread(first.pdf).DocumentTitle == "Thyroid ultrasound report P-9"
    assert (sr.SeriesInstanceUID, sr.InstanceNumber) == (first.version.series_instance_uid, 2)
    (pre,) = sr.PredecessorDocumentsSequence
    assert pre.StudyInstanceUID == first.identity.study_instance_uid
    (series,) = pre.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == first.version.series_instance_uid
    (ref,) = series.ReferencedSOPSequence
    assert ref.ReferencedSOPInstanceUID == pydicom.dcmread(first.sr).SOPInstanceUID
    assert ref.ReferencedSOPClassUID == COMPREHENSIVE_3D_SR
    tracked = replace(item, uid="1.2.826.0.1.3680043.9.7")  # the session's nodule UID
    third = export_study_dicom(
        tmp_path / "c",
        [tracked],
        classifier.card,
        study,
        PDF,
        previous=(first.version, second.version),
    )
    (group,) = hd.sr.srread(third.sr).content.get_planar_roi_measurement_groups()
    assert group.tracking_uid == "1.2.826.0.1.3680043.9.7"  # not a new one per report
    refs = pydicom.dcmread(third.sr).PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0]
    assert [r.ReferencedSOPInstanceUID for r in refs.ReferencedSOPSequence] == [
        first.version.sop_instance_uid,
        second.version.sop_instance_uid,
    ]
    assert third.version.instance_number == 3
    assert third.unsigned_over_signed and not second.unsigned_over_signed
    assert "It is not signed and supersedes a signed report" in third.message
    # versions 1 and 2 were written without the session's UID: no nodule in common with
    # version 2, so nothing can be matched and nothing is claimed left out
    assert third.left_out == ()
    assert "1.2." not in third.message  # no UIDs
    # a version of another study (the images now have DICOM) is not named
    dicom_image = open_image(phantom_dicom(tmp_path / "us.dcm", "P-9"))
    other = export_scanned(tmp_path / "d", dicom_image, classifier, (first.version,))
    assert other.supersedes == () and other.version.instance_number == 1
    assert "PredecessorDocumentsSequence" not in pydicom.dcmread(other.sr)
    # the same SR twice is named once; another patient typed: a study of its own
    twice = export_study_dicom(
        tmp_path / "e", [item], classifier.card, study, PDF, previous=(first.version,) * 2
    )
    assert twice.supersedes == (first.version,)
    moved = export_study_dicom(
        tmp_path / "f",
        [item],
        classifier.card,
        replace(study, patient_id="P-10"),
        PDF,
        previous=(first.version, second.version),
    )
    assert moved.identity.new_study and moved.supersedes == ()
    assert moved.identity.study_instance_uid != first.identity.study_instance_uid
    with pytest.raises(DicomExportError, match="another study or patient"):
        export_study_dicom(
            tmp_path / "g",
            [item],
            classifier.card,
            replace(study, patient_id="P-10"),
            PDF,
            previous=(first.version,),
            all_of_study=True,
        )
    assert not (tmp_path / "g").exists()
    assert SrVersion.from_json(second.version.to_json()) == second.version
    assert SrVersion.read(second.sr) == replace(second.version, written_at="")


def test_sr_versions_are_numbered_in_our_series_and_read_back_strictly(tmp_path, classifier):
    """The next version follows the highest instance of our last series (a version left out
    of the record does not give its number again); another program's SR is named but its
    series is not ours to add to; a damaged record entry is refused, not guessed."""
    from thyroid_desktop.core.report.dicom_out import SrLedger, SrVersion

    image = from_array(make_phantom().pixels, spacing_mm=(0.1, 0.1))
    item = nodule_item(image, classifier)
    study = StudyInfo(patient_id="P-9")
    first = export_study_dicom(tmp_path / "a", [item], classifier.card, study, PDF).version
    third = replace(first, sop_instance_uid=generate_uid(), instance_number=3)
    out = export_study_dicom(
        tmp_path / "b", [item], classifier.card, study, PDF, previous=(third, first)
    )
    assert out.version.instance_number == 4
    assert out.version.series_instance_uid == first.series_instance_uid
    theirs = replace(
        first, series_instance_uid="1.2.3.4", sop_instance_uid="1.2.3.4.7", instance_number=7
    )
    theirs = replace(theirs, ours=False)
    out = export_study_dicom(
        tmp_path / "c", [item], classifier.card, study, PDF, previous=(first, theirs)
    )
    assert out.version.series_instance_uid == first.series_instance_uid  # our last one's
    # only another program's SR, in the images' DICOM study: named, in a series of our own
    scanned = open_image(phantom_dicom(tmp_path / "us.dcm", "P-9", theirs.study_instance_uid))
    out = export_scanned(tmp_path / "d", scanned, classifier, (theirs,))
    assert out.version.instance_number == 1 and out.supersedes == (theirs,)
    assert out.version.series_instance_uid not in (first.series_instance_uid, "1.2.3.4")
    # PNG images do not join another program's study
    alone = export_study_dicom(
        tmp_path / "e", [item], classifier.card, study, PDF, previous=(theirs,)
    )
    assert alone.identity.new_study and alone.supersedes == ()
    good = first.to_json()
    for bad in (
        {**good, "study_instance_uid": "not a uid"},
        {**good, "final": "false"},
        {**good, "instance_number": 0},
        {**good, "instance_number": "2"},
        {"study_instance_uid": "1.2"},
        "text",
    ):
        with pytest.raises(ValueError, match="not an SR version"):
            SrVersion.from_json(bad)
    ledger = SrLedger()
    ledger.add("study-1", out.version)
    assert ledger.versions("study-1", (first, first)) == (first, out.version)
    assert ledger.versions("study-2", (first,)) == (first,)
    assert ledger.written() == {"study-1": (out.version,)}


def test_a_later_version_says_which_nodules_it_leaves_out_and_renames(tmp_path, classifier):
    """Version 1 reports N1 and N2; version 2 is written with only the second nodule, now
    called N1 (its image was reopened in another reading). Version 2 must not drop N1
    silently nor let "N1" seem the same nodule: its SR says what it leaves out and what the
    nodule was called, its message says it, and the version record keeps the nodules each
    SR reported (read back from the file, and through the session file's JSON)."""
    from pydicom.uid import generate_uid

    from thyroid_desktop.core.report.dicom_out import SrVersion

    image = from_array(make_phantom().pixels, spacing_mm=(0.1, 0.1))
    uid1, uid2 = generate_uid(), generate_uid()
    n1 = replace(nodule_item(image, classifier, "N1"), uid=uid1)
    n2 = replace(nodule_item(image, classifier, "N2", "left lobe"), uid=uid2)
    study = StudyInfo(patient_name="Testperson, Bo", patient_id="P-9")
    first = export_study_dicom(tmp_path / "a", [n1, n2], classifier.card, study, PDF)
    expected = ((uid1, "Nodule N1"), (uid2, "Nodule N2"))
    assert first.version.nodules == expected
    assert SrVersion.read(first.sr).nodules == expected
    assert first.left_out == () and "does not report" not in first.message
    again = SrVersion.from_json(json.loads(json.dumps(first.version.to_json())))
    assert again == first.version

    renumbered = replace(n2, nodule_id="N1")
    second = export_study_dicom(
        tmp_path / "b", [renumbered], classifier.card, study, PDF, previous=(first.version,)
    )
    assert second.version.nodules == ((uid2, "Nodule N1"),)
    assert second.left_out == ("Nodule N1 of version 1",)
    assert second.message.endswith("It does not report Nodule N1 of version 1")
    texts = sr_texts(pydicom.dcmread(second.sr))
    assert any(t.startswith("Not in this version: Nodule N1, reported in version 1") for t in texts)
    assert "Reported as Nodule N2 in report version 1" in texts
    assert not any(t.startswith("Reported as") for t in sr_texts(pydicom.dcmread(first.sr)))

    old = {k: v for k, v in first.version.to_json().items() if k != "nodules"}
    assert SrVersion.from_json(old).nodules == ()  # a session saved before reads as before
    for damaged in ([["not a uid", "x"]], [["1.2.3"]], 5, [["1.2.3", 7]]):
        # the version still counts (superseded, numbered); only its nodule list is lost
        kept = SrVersion.from_json({**first.version.to_json(), "nodules": damaged})
        assert kept == replace(first.version, nodules=())

    # a third version, after the second left N1 out: that was said once, not again
    third = export_study_dicom(
        tmp_path / "c",
        [renumbered],
        classifier.card,
        study,
        PDF,
        previous=(first.version, second.version),
    )
    assert third.left_out == () and not any(
        t.startswith("Not in this version") for t in sr_texts(pydicom.dcmread(third.sr))
    )
    # deleted since (its image open): the words do not claim the image is not open
    assert "deleted since, or its image was not open" in next(
        t for t in texts if t.startswith("Not in this version")
    )
