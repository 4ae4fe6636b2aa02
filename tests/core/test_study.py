"""The study list's file expansion and its CSV export."""

import csv
from dataclasses import replace

import cv2
import numpy as np
import pytest

from thyroid_desktop.core.io.images import from_array
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.estimate import predict
from thyroid_desktop.core.pipeline.roi import BoxSource
from thyroid_desktop.core.review.session import Estimate, Nodule
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
        ResultRow(one, "analysed", est, nodule=_nodule(one.sha256, phantom.nodule, est)),
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
