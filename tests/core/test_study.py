"""The study list's file expansion and its CSV export."""

import csv
from dataclasses import replace

import cv2
import numpy as np
import pytest

from thyroid_desktop.core.clinical.tirads import (
    Composition,
    EchogenicFoci,
    Echogenicity,
    Margin,
    Shape,
    TiradsChoices,
)
from thyroid_desktop.core.io.images import from_array
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.estimate import predict
from thyroid_desktop.core.pipeline.roi import BoxSource
from thyroid_desktop.core.review.session import Estimate, Lobe, Nodule
from thyroid_desktop.core.review.study import (
    CSV_COLUMNS,
    ResultRow,
    StudyEntry,
    expand_paths,
    write_csv,
)


def _png(path):
    cv2.imwrite(str(path), np.full((20, 20), 128, np.uint8))
    return path


def test_expand_paths_finds_images_in_folders_and_keeps_files_as_given(tmp_path):
    a = _png(tmp_path / "b.png")
    _png(tmp_path / "a.PNG")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    sub = tmp_path / "series"
    sub.mkdir()
    dicom_like = sub / "IM0001"
    dicom_like.write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 10)
    (sub / "README").write_bytes(b"plain text, no DICOM preamble")
    odd = tmp_path / "scan.dat"  # a wrongly named file given by hand is kept: opening says why
    odd.write_bytes(b"x")
    found = expand_paths([tmp_path, a, odd])
    assert found == [tmp_path / "a.PNG", a, dicom_like, odd]


def test_expand_paths_of_an_empty_folder_is_empty(tmp_path):
    assert expand_paths([tmp_path]) == []


TR4 = TiradsChoices(
    composition=Composition.SOLID,
    echogenicity=Echogenicity.HYPO,
    shape=Shape.WIDER,
    margin=Margin.SMOOTH,
    foci=frozenset({EchogenicFoci.NONE}),
)


def _nodule(image_key, box, estimate, **kw):
    return Nodule("N1", image_key, 0, box, BoxSource.MANUAL, estimate=estimate, **kw)


def test_csv_export_has_one_row_per_nodule_and_its_one_result(tmp_path, classifier):
    phantom = make_phantom()
    image = from_array(phantom.pixels)
    # The synthetic phantom gets no estimate (novelty); the row of an estimate is checked here.
    finding = replace(predict(image, classifier, phantom.nodule, "manual"), no_estimate_reason="")
    est = Estimate.of(finding)
    one = StudyEntry(tmp_path / "one.png", sha256=image.sha256)
    two = StudyEntry(tmp_path / "two.png", sha256="x")
    rows = [
        ResultRow(
            one,
            "analysed",
            est,
            nodule=_nodule(one.sha256, phantom.nodule, est, lobe=Lobe.RIGHT, tirads=TR4),
        ),
        ResultRow(two, "analysed", est, user_mm_per_px=0.1),
        ResultRow(StudyEntry(tmp_path / "bad.png", error="not an image"), "error"),
        ResultRow(StudyEntry(tmp_path / "later.png"), "not analysed"),
    ]
    out = write_csv(tmp_path / "study.csv", rows)
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(CSV_COLUMNS) and len(rows) == 4
    assert float(rows[0]["probability"]) == pytest.approx(finding.probability, abs=1e-4)
    assert rows[0]["model_estimate"] == finding.call_text and rows[0]["roi_source"] == "manual"
    assert rows[0]["roi_w"] == str(phantom.nodule.w) and rows[0]["image_sha256"] == image.sha256
    assert rows[0]["nodule"] == "N1" and rows[1]["nodule"] == ""
    assert rows[0]["location"] == "right lobe" and rows[1]["location"] == ""
    assert rows[0]["calibration"] == finding.calibration == "shipped"  # which numbers these are
    # uncalibrated: the advice says what the thresholds are, as the panel does
    assert (
        rows[0]["tirads_advice"].startswith("TR4 (")
        and "Size not calibrated" in (rows[0]["tirads_advice"])
    )
    assert rows[1]["tirads_advice"] == ""
    assert "uncalibrated" in rows[0]["size"] and rows[0]["max_diameter_mm"] == ""
    assert rows[1]["max_diameter_mm"] == f"{max(phantom.nodule.w, phantom.nodule.h) * 0.1:.1f}"
    assert rows[2]["status"] == "error" and rows[2]["error"] == "not an image"
    assert rows[3]["status"] == "not analysed" and rows[3]["probability"] == ""


def test_csv_export_to_a_missing_folder_fails_without_leaving_a_file(tmp_path):
    with pytest.raises(OSError):
        row = ResultRow(StudyEntry(tmp_path / "a.png"), "not analysed")
        write_csv(tmp_path / "missing" / "study.csv", [row])
    assert not (tmp_path / "missing").exists()


def test_csv_gives_no_number_for_an_out_of_scope_frame(tmp_path, classifier):
    noise = np.random.default_rng(0).integers(0, 256, (300, 400), dtype=np.uint8)
    image = from_array(noise)
    finding = predict(image, classifier, None, "full")
    assert finding.warnings and not finding.in_scope
    est = Estimate.of(finding)
    assert not est.in_scope and est.warnings == finding.warnings
    out = write_csv(
        tmp_path / "s.csv", [ResultRow(StudyEntry(tmp_path / "n.png"), "analysed", est)]
    )
    with open(out, newline="") as fh:
        row = next(csv.DictReader(fh))
    assert row["probability"] == "" and row["model_estimate"] == "no estimate"
    assert row["warnings"] == "; ".join(finding.warnings) and row["roi_source"] == "full"


def test_folders_are_listed_in_natural_order(tmp_path):
    from thyroid_desktop.core.review.study import expand_paths

    for name in ("179_1.png", "17_1.png", "IM10.png", "IM2.png", "2.png"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in expand_paths([tmp_path])] == [
        "2.png",
        "17_1.png",
        "179_1.png",
        "IM2.png",
        "IM10.png",
    ]


# ------------------------------------------------------------------- one patient per study
def test_an_image_fits_a_study_unless_its_patient_or_study_differs():
    from thyroid_desktop.core.review.lifecycle import NO_PATIENT_DATA, Identity

    anna = Identity("P-1", "Doe^Anna", "1.2.1", "20260301")
    assert not Identity("P-1", "", "1.2.1").differs(anna)
    assert Identity("P-2", "Roe^Ben", "1.2.9").differs(anna)  # another patient
    assert Identity("P-1", "", "1.2.2").differs(anna)  # the same patient's other study
    assert Identity("", "", "1.2.2").differs(anna)  # a study UID alone
    assert not Identity().differs(anna) and not anna.differs(Identity())  # a plain image
    assert Identity().text == NO_PATIENT_DATA
    assert anna.text == "Doe, Anna (ID P-1), study 1 Mar 2026"
    meta = {"PatientID": " P-1 ", "PatientName": "Doe^Anna", "Modality": "US"}
    assert Identity.of(meta) == Identity("P-1", "Doe^Anna")
    assert Identity.from_json(anna.to_json()) == anna


def test_files_of_another_patient_wait_for_the_clinicians_answer(tmp_path):
    from thyroid_desktop.core.review.lifecycle import Identity, sort_new_files

    anna, ben, cleo = Identity("P-1"), Identity("P-2", "Roe^Ben"), Identity("P-3")
    a1, a2, b1, b2, c1, png = (tmp_path / n for n in ("a1", "a2", "b1", "b2", "c1", "x.png"))
    files = [(a1, anna), (png, Identity()), (b1, ben), (a2, anna), (c1, cleo), (b2, ben)]
    study, adm = sort_new_files(Identity(), files)  # an empty study: the first file's patient
    assert study == anna and adm.study == anna and adm.other == ben
    assert adm.fits == (a1, png, a2) and adm.others == (b1, b2) and adm.later == (c1,)
    assert "another patient: Roe, Ben (ID P-2)" in adm.question
    _, same = sort_new_files(anna, [(a1, anna), (png, Identity())])
    assert same.others == () and same.question == ""
    _, later_study = sort_new_files(anna, [(a1, Identity("P-1", "", "9.9"))])
    assert (
        "another study of the same patient"
        in sort_new_files(Identity("P-1", "", "1.1"), [(a1, Identity("P-1", "", "9.9"))])[
            1
        ].question
    )
    assert later_study.fits == (a1,)  # the study states no UID: nothing to compare


def test_a_dicom_header_is_read_without_its_pixels_and_a_plain_image_has_none(tmp_path):
    from tests.core.test_dicom import make_dataset, save
    from thyroid_desktop.core.review.lifecycle import Identity, read_identity

    ds = make_dataset(np.zeros((8, 8), np.uint8))
    ds.PatientID, ds.PatientName, ds.StudyDate = "P-7", "Doe^Jo", "20260102"
    ds.StudyInstanceUID = "1.2.840.99"
    path = save(ds, tmp_path / "IM1")
    assert read_identity(path) == Identity("P-7", "Doe^Jo", "1.2.840.99", "20260102")
    assert read_identity(_png(tmp_path / "plain.png")) == Identity()
    (tmp_path / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 7)
    assert read_identity(tmp_path / "broken.dcm") == Identity()
    assert read_identity(tmp_path / "missing.dcm") == Identity()


def test_the_answer_is_an_audit_record_naming_both_patients(tmp_path):
    from thyroid_desktop.core.report.audit import AuditLog
    from thyroid_desktop.core.review.lifecycle import (
        Answer,
        Identity,
        answer_record,
        sort_new_files,
    )

    _, adm = sort_new_files(Identity("P-1"), [(tmp_path / "b.dcm", Identity("P-2"))])
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append(answer_record(adm, Answer.ADD_ANYWAY))
    (rec,) = log.read()
    assert rec["action"] == "other-patient-images" and rec["file"].endswith("b.dcm")
    assert rec["detail"].startswith("add anyway: 1 image(s) of unnamed patient (ID P-2)")
    assert "the study is of unnamed patient (ID P-1)" in rec["detail"]


def test_a_confirmed_nodule_not_analysed_yet_is_sized_and_advised_in_the_csv(tmp_path):
    """A nodule restored before the model has analysed it (no result yet): the CSV gives its
    caliper size and the advice on it, as the panel does, not "Size not calibrated"."""
    from thyroid_desktop.core.clinical.measure import Caliper
    from thyroid_desktop.core.pipeline.roi import ROI

    line = Caliper((10, 50), (170, 50))  # 160 px = 16.0 mm at the user's 0.1 mm/px
    nodule = _nodule("k", ROI(0, 0, 200, 100), None, tirads=TR4, calipers=(line,))
    row = ResultRow(StudyEntry(tmp_path / "a.png", sha256="k"), "not analysed", None, None, 0.1,
                    nodule)  # fmt: skip
    (out,) = list(csv.DictReader(write_csv(tmp_path / "s.csv", [row]).open()))
    assert out["probability"] == "" and out["max_diameter_mm"] == "16.0"
    assert out["size_basis"] == "calipers" and out["calipers"] == "1: 16.0 mm"
    assert out["tirads_advice"].startswith("TR4, 16.0 mm: FNA recommended")
