"""Thyroid only (issue 23): the image-level scope check, run inside the one analysis path
before any estimate, refuses other organs completely; "analyse anyway" overrides it, marked
and audited; the DICOM header's body part is used. Real models throughout."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from thyroid_desktop.core.analysis import Action, AnalysisService
from thyroid_desktop.core.io.images import from_array, open_image
from thyroid_desktop.core.pipeline.fov import FieldOfView, detect_fov
from thyroid_desktop.core.pipeline.roi import ROI
from thyroid_desktop.core.pipeline.scope import (
    ANATOMY_FEATURES,
    NOT_THYROID,
    ScopeModel,
    anatomy_features,
    header_scope,
    inner_box,
)
from thyroid_desktop.core.report.audit import AuditLog

ASSET = Path(__file__).resolve().parents[1] / "assets" / "inscope_bmode.png"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def service(classifier, segmenter):
    return AnalysisService(classifier, segmenter, None)


def _with_meta(image, sha256: str | None = None, **meta):
    """The image with more header fields (and another hash: the service remembers verdicts
    per file and frame)."""
    return dataclasses.replace(
        image, metadata={**image.metadata, **meta}, sha256=sha256 or image.sha256
    )


# ------------------------------------------------------------------ pure rules
@pytest.mark.parametrize(
    ("meta", "refused", "evidence"),
    [
        ({}, False, False),
        ({"BodyPartExamined": "BREAST"}, True, False),
        ({"StudyDescription": "US ABDOMEN COMPLETE"}, True, False),
        ({"AnatomicRegion": "Kidney"}, True, False),
        ({"BodyPartExamined": "THYROID"}, False, True),
        ({"StudyDescription": "US Schilddrüse"}, False, True),
        ({"BodyPartExamined": "NECK", "SeriesDescription": "breast"}, False, True),
        ({"ProtocolName": "SMALL PARTS"}, False, False),
    ],
)
def test_header_body_part(meta, refused, evidence):
    image = _with_meta(from_array(np.zeros((40, 40, 3), np.uint8)), **meta)
    refusal, found = header_scope(image)
    assert bool(refusal) is refused and bool(found) is evidence
    if refused:
        assert "another body part" in refusal and next(iter(meta.values())) in refusal


def test_anatomy_features_read_the_gland_not_the_scan_area_shape():
    grid = 64
    inside = np.ones((grid, grid), bool)
    gland = np.zeros((grid, grid), np.float32)
    gland[20:36, 10:30] = 0.9  # one lobe, left of centre, upper half
    f = dict(
        zip(ANATOMY_FEATURES, anatomy_features(gland, np.zeros_like(gland), inside), strict=True)
    )
    assert len(f) == len(ANATOMY_FEATURES)
    assert f["gland_share"] == pytest.approx(16 * 20 / grid**2, rel=0.01)
    assert f["gland_cx"] == pytest.approx(20 / grid, abs=0.02)
    assert f["gland_cy"] == pytest.approx(28 / grid, abs=0.02)
    assert f["gland_solidity"] == pytest.approx(1.0, abs=0.1)
    # a fan-shaped scan area with the same anatomy gives the same gland figures
    fan = inside.copy()
    fan[:20, :8] = fan[:20, -8:] = False
    g = dict(zip(ANATOMY_FEATURES, anatomy_features(gland, np.zeros_like(gland), fan), strict=True))
    assert g["gland_cx"] == f["gland_cx"] and g["gland_largest_share"] > f["gland_largest_share"]
    empty = anatomy_features(np.zeros_like(gland), np.zeros_like(gland), inside)
    assert empty[ANATOMY_FEATURES.index("gland_share")] == 0.0


def test_inner_box_is_the_box_for_a_rectangle_and_the_middle_of_a_fan():
    rect = np.zeros((200, 300), bool)
    rect[20:180, 40:260] = True
    box = ROI(40, 20, 220, 160)
    assert inner_box(FieldOfView(rect, box)) == box
    fan = np.zeros((200, 300), bool)
    cv2.ellipse(fan.view(np.uint8), (150, 0), (140, 190), 0, 30, 150, 1, -1)
    fov = FieldOfView(fan, ROI(*cv2.boundingRect(fan.astype(np.uint8))))
    inner = inner_box(fov)
    part = fan[inner.y : inner.y + inner.h, inner.x : inner.x + inner.w]
    assert part.mean() >= 0.98 and inner.w < fov.box.w


def test_scope_model_probability():
    model = ScopeModel(
        np.zeros(3), np.ones(3), np.array([1.0, 0.0, 2.0]), -1.0, 0.5, n_anatomy=1, n_scan=2
    )
    assert model.probability(np.array([1.0]), np.array([0.0, 0.5])) == pytest.approx(
        1 / (1 + np.exp(-1.0))
    )
    with pytest.raises(ValueError):
        model.probability(np.array([1.0]), None)


def test_a_scope_score_just_under_its_threshold_is_printed_under_it():
    """As the estimate against its threshold (``shown_numbers``): never "0.73, below 0.73"."""
    from thyroid_desktop.core.pipeline.scope import assess

    model = ScopeModel(
        np.zeros(3), np.ones(3), np.array([1.0, 0.0, 2.0]), -1.0, 0.7312, n_anatomy=1, n_scan=2
    )  # its score is sigmoid(1) = 0.73106
    image = open_image(ASSET)
    verdict = assess(image, detect_fov(image.gray), np.array([1.0]), np.array([0.0, 0.5]), model)
    assert verdict.reason.endswith("(scope score 0.7311, below 0.7312)"), verdict.reason


# ------------------------------------------------------------------ the shipped check
def test_the_shipped_classifier_carries_the_scope_model(classifier):
    card = classifier.card.raw["scope"]
    assert classifier.scope is not None and classifier.scope.threshold == card["threshold"]
    assert 0.0 < card["threshold"] < 1.0


def test_thyroid_like_images_pass(service):
    for image in (open_image(ASSET),):
        verdict = service.scope(image)
        assert verdict.in_scope and verdict.score > verdict.threshold
        result = service.analyse(image, None, None)
        assert result.finding.in_scope and not result.finding.overridden_reason
        assert "not validated at this site" in result.finding.caveats


def _organs(shared_data, per_organ=3):
    base = shared_data / "nonthyroid"
    if not base.exists():
        pytest.skip("../shared/data/nonthyroid is absent")
    return [
        p
        for organ in ("breast", "lung", "fetal_head", "muscle")
        for p in sorted((base / organ).glob("*.png"))[:per_organ]
    ]


def test_other_organs_are_refused_completely(service, shared_data):
    refused = 0
    paths = _organs(shared_data)
    for path in paths:
        result = service.analyse(open_image(path), None, None)
        f = result.finding
        if result.refused:
            refused += 1
            assert f.estimate is None and NOT_THYROID in f.no_estimate_reason
            assert not f.heatmap.any()  # no heat map
            assert f.tirads_suggestion is None  # no AI TI-RADS
            assert result.detection is None  # no proposal, no gland outline
            assert result.can_force and f.caveats == ()
    assert refused >= len(paths) - 1  # these organs were in its training data


def test_analyse_anyway_marks_and_audits_the_estimate(classifier, segmenter, shared_data, tmp_path):
    path = _organs(shared_data, 1)[0]  # a breast image
    audit = AuditLog(tmp_path / "audit.jsonl")
    service = AnalysisService(classifier, segmenter, audit)
    image = open_image(path)
    assert service.analyse(image, None, Action.AUTO, scan_area_fallback=True).refused
    forced = service.analyse(image, None, Action.FORCE, scan_area_fallback=True, force=True)
    f = forced.finding
    assert f.estimate is not None and f.overridden_reason.startswith(NOT_THYROID)
    assert f.caveats[0].startswith("outside the validated scope")
    drawn = service.analyse_box(image, ROI(40, 40, 80, 60), forced.finding.roi_source, force=True)
    assert drawn.finding.overridden_reason
    records = audit.read()
    assert records[0]["probability"] is None and records[0]["scope_override"] is None
    assert records[1]["action"] == "analyse-anyway" and records[1]["scope_override"]


def test_a_dicom_of_another_body_part_is_refused_and_a_thyroid_one_is_evidence(service):
    image = open_image(ASSET)
    breast = _with_meta(image, BodyPartExamined="BREAST", sha256="b" * 64)
    verdict = service.scope(breast)
    assert not verdict.in_scope and "BREAST" in verdict.reason and verdict.overridable
    assert service.analyse(breast, None, None).finding.estimate is None
    thyroid = _with_meta(image, BodyPartExamined="THYROID", sha256="t" * 64)
    verdict = service.scope(thyroid)
    assert verdict.in_scope and "THYROID" in verdict.evidence


def test_ct_is_never_analysed_even_when_forced(service):
    image = _with_meta(open_image(ASSET), Modality="CT", sha256="c" * 64)
    result = service.analyse(image, None, None, force=True, scan_area_fallback=True)
    assert result.finding.estimate is None and not result.can_force


def test_predict_prints_null_and_force_overrides(shared_data, tmp_path):
    path = _organs(shared_data, 1)[0]

    def predict(*extra):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "thyroid_desktop",
                "predict",
                str(path),
                "--json",
                "--no-audit",
                *extra,
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.splitlines()[-1])

    refused = predict()
    assert refused["probability"] is None and NOT_THYROID in refused["no_estimate_reason"]
    assert refused["scope"]["can_force"] and not refused["scope"]["in_scope"]
    forced = predict("--force", "--scan-area")
    assert forced["probability"] is not None and forced["scope_override"]
    assert any(c.startswith("outside the validated scope") for c in forced["caveats"])


def test_empty_frame_fov_is_not_thyroid_shaped():
    # a uniform grey frame is refused by the B-mode check before any model runs
    image = from_array(np.full((240, 320, 3), 90, np.uint8))
    verdict = AnalysisService(None, None, None).scope(image)
    assert not verdict.in_scope and not verdict.overridable
    assert detect_fov(image.gray).box.w > 0


def test_a_refused_image_keeps_the_box_or_click_asked_for(service, shared_data):
    """No estimate, but the clinician's box stays the finding's box (a nodule keeps it, the
    report sizes it); after a calibration switch the stored refusal keeps its reason."""
    from thyroid_desktop.core.pipeline.roi import BoxSource
    from thyroid_desktop.core.review.session import Estimate
    from thyroid_desktop.core.site.calibration import Calibration

    image = open_image(_organs(shared_data, 1)[0])
    box = ROI(60, 50, 80, 60)
    drawn = service.analyse_box(image, box, BoxSource.MANUAL, None)
    assert drawn.refused and drawn.finding.estimate is None
    assert (drawn.finding.roi, drawn.finding.roi_source) == (box, BoxSource.MANUAL)
    assert drawn.size is not None  # the box is sized, as for any nodule
    clicked = service.analyse_point(image, (100.0, 80.0), None)
    assert clicked.refused and clicked.finding.roi_source is BoxSource.POINT
    assert clicked.finding.roi == clicked.segmentation.roi
    stored = Estimate.of(drawn.finding)
    other = Calibration("site-x", 1.0, 0.0, 0.5)
    rescored = stored.rescored(other, 0.5)
    assert rescored is not None and rescored.no_estimate_reason == stored.no_estimate_reason
    assert rescored.calibration == "site-x" and rescored.probability is None
