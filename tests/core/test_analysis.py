"""The one analysis service: cine loops (best frame, a chosen frame, every frame) and the
audit log it writes for every caller."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from thyroid_desktop.core.analysis import (
    NO_NODULE,
    Action,
    AnalysisService,
    FrameScores,
    searched_frames,
)
from thyroid_desktop.core.io.images import from_array, open_image
from thyroid_desktop.core.io.phantom import make_cine_phantom, make_phantom
from thyroid_desktop.core.pipeline.roi import ROI, BoxSource
from thyroid_desktop.core.report.audit import AuditLog


def test_frame_scores_pick_the_most_confident_frame_and_ignore_unsearched():
    assert FrameScores((0.0, 0.2, 0.9, 0.9, 0.1)).best == 2
    assert FrameScores((float("nan"), 0.3, float("nan"))).best == 1
    assert searched_frames(5) == [0, 1, 2, 3, 4]
    long = searched_frames(1000, limit=10)
    assert long[0] == 0 and long[-1] == 999 and len(long) == 10


def test_cine_phantom_has_no_nodule_before_it_appears():
    frames = make_cine_phantom(8, appears_at=3)
    assert frames[0].nodule.w <= 1 and frames[3].nodule.w > 40
    assert not np.array_equal(frames[4].pixels, frames[5].pixels)  # fresh speckle


@pytest.fixture
def service(classifier, segmenter, tmp_path):
    return AnalysisService(classifier, segmenter, AuditLog(tmp_path / "audit.jsonl"))


def test_cine_opens_on_the_best_frame_and_is_logged_with_it(service, cine_dicom):
    result = service.analyse_file(cine_dicom)
    assert result.n_frames == 12
    scores = result.frame_scores.scores
    assert scores[0] == 0.0 and scores[1] == 0.0  # no nodule yet: no candidate
    assert result.frame == result.frame_scores.best >= 2
    assert result.finding.roi_source == "auto"
    truth = make_cine_phantom(12, 2)[result.frame].nodule
    assert result.finding.roi.iou(truth) > 0.5
    (record,) = service.audit.read()
    assert record["frame"] == result.frame and record["action"] == "analyse"
    assert record["calibration"] == "shipped" and record["image_sha256"] == result.image.sha256


def test_a_chosen_frame_and_every_frame(service, cine_dicom):
    first = service.analyse_file(cine_dicom, frame=0, action=Action.CLI)
    assert first.frame == 0 and first.frame_scores is None
    assert first.finding.roi_source == "none"  # nothing to find on frame 0: no estimate
    assert first.finding.estimate is None and first.finding.no_estimate_reason == NO_NODULE
    asked = service.analyse_file(cine_dicom, frame=0, action=None, scan_area_fallback=True)
    assert asked.finding.roi_source == "full"  # the scan area, when asked for
    every = service.analyse_all_frames(cine_dicom)
    assert [r.frame for r in every] == list(range(12))
    assert {r.finding.roi_source for r in every[5:9]} == {"auto"}  # the nodule at its largest
    again = service.analyse(open_image(cine_dicom, frame=5), every[5].finding.roi)
    assert again.finding.roi_source == "manual"
    assert again.finding.probability == pytest.approx(every[5].finding.probability, abs=1e-6)


def test_no_audit_and_an_unwritable_log(classifier, segmenter, tmp_path, cine_dicom):
    quiet = AnalysisService(classifier, segmenter, None)
    assert quiet.analyse_file(cine_dicom, frame=3).audit_problem == ""
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the log's folder should be")
    broken = AnalysisService(classifier, segmenter, AuditLog(blocked / "audit.jsonl"))
    result = broken.analyse_file(cine_dicom, frame=3)
    assert result.finding.probability is not None  # the analysis stands
    assert "audit log not written" in result.audit_problem


# ---------------------------------------------------------------- click, stroke, nothing found

INSCOPE = Path(__file__).resolve().parents[1] / "assets" / "inscope_bmode.png"
#: The nodule drawn into the in-scope image (tests/assets/make_inscope_image.py, NODULE).
INSCOPE_NODULE = ROI(220, 120, 130, 100)


class NothingSeen:
    """A nodule segmenter that finds nothing anywhere."""

    size = 64
    threshold = 0.5

    def __call__(self, batch):
        return np.zeros((len(batch), self.size, self.size), np.float32)


def test_a_click_gives_the_outlined_box_analysed_with_its_own_mask(service, tmp_path, monkeypatch):
    from thyroid_desktop.core import analysis
    from thyroid_desktop.core.pipeline.click import outline_mask

    ph = make_phantom()
    image = from_array(ph.pixels)
    n = ph.nodule
    seen = {}

    def predict(image, classifier, roi, source, fov=None, mask=None):  # what is analysed
        seen.update(roi=roi, source=source, mask=mask)
        return real(image, classifier, roi, source, fov, mask)

    real = analysis.predict
    monkeypatch.setattr(analysis, "predict", predict)
    result = service.analyse_point(image, (n.x + n.w / 2, n.y + n.h / 2), Action.ANALYSE)
    seg, f = result.segmentation, result.finding
    assert seg is not None and f.roi == seg.roi and f.roi_source == BoxSource.POINT
    assert f.roi.iou(n) >= 0.5 and not result.size_uncertain and not result.preliminary
    own = outline_mask(seg.contour, image.width, image.height)  # as the nodule stores it
    assert seen["roi"] == seg.roi and np.array_equal(seen["mask"], own)
    assert (own & seg.mask).sum() >= 0.9 * seg.mask.sum()  # the click's outline, filled
    (record,) = AuditLog(tmp_path / "audit.jsonl").read()
    assert record["roi_source"] == "point" and record["roi"] == f.roi.as_list()


@pytest.mark.realdata
def test_a_click_on_a_real_nodule_gives_an_estimate_and_shape_from_its_outline(
    service, shared_data
):
    import csv

    import cv2

    with open(shared_data / "ddti" / "metadata.csv", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["mask"])
    image = open_image(shared_data / "ddti" / row["file"])
    mask = cv2.imread(str(shared_data / "ddti" / row["mask"]), cv2.IMREAD_GRAYSCALE) > 0
    inner = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(inner)), inner.shape)
    f = service.analyse_point(image, (float(x), float(y)), None).finding
    assert f.roi_source == BoxSource.POINT and f.estimate is not None
    assert f.tirads_suggestion is not None
    assert f.tirads_suggestion.groups["shape"].method == "mask geometry"


def test_a_stroke_gives_a_box_spanning_it(service):
    ph = make_phantom()
    n = ph.nodule
    stroke = (n.x + 3.0, n.y + n.h / 2, n.x + n.w - 3.0, n.y + n.h / 2)
    result = service.analyse_stroke(from_array(ph.pixels), stroke, None)
    f = result.finding
    assert f.roi_source == BoxSource.STROKE and f.roi.iou(n) >= 0.5
    assert f.roi.x <= stroke[0] and f.roi.x + f.roi.w >= stroke[2]


def test_nothing_found_gives_no_estimate_unless_the_scan_area_is_asked_for(classifier, tmp_path):
    service = AnalysisService(classifier, NothingSeen(), AuditLog(tmp_path / "audit.jsonl"))
    image = open_image(INSCOPE)
    result = service.analyse(image, None, Action.CLI)
    f = result.finding
    assert f.roi_source == BoxSource.NONE and f.estimate is None and not f.in_scope
    assert f.no_estimate_reason == NO_NODULE and f.call_text == "no estimate"
    assert not f.heatmap.any() and f.tirads_suggestion is None  # no heat map, nothing else
    assert result.detection is not None and result.detection.best is None
    fallback = service.analyse(image, None, None, scan_area_fallback=True).finding
    assert fallback.roi_source == BoxSource.FULL and fallback.estimate is not None
    (record,) = AuditLog(tmp_path / "audit.jsonl").read()  # the fallback was not logged
    assert record["roi"] is None and record["roi_source"] == "none"
    assert record["probability"] is None and record["no_estimate_reason"] == NO_NODULE


def test_a_click_where_nothing_is_seen_is_a_default_box_marked_uncertain(classifier):
    service = AnalysisService(classifier, NothingSeen(), None)
    image = open_image(INSCOPE)
    result = service.analyse_point(image, (285.0, 170.0))
    assert result.size_uncertain and result.segmentation.mask is None
    assert result.finding.roi_source == BoxSource.POINT
    cx = result.finding.roi.x + result.finding.roi.w / 2
    assert abs(cx - 285) <= 1


def test_analyse_file_takes_one_prompt_only(service):
    with pytest.raises(ValueError, match="one of"):
        service.analyse_file(INSCOPE, roi=INSCOPE_NODULE, point=(1.0, 1.0))
