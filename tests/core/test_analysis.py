"""The one analysis service: cine loops (best frame, a chosen frame, every frame) and the
audit log it writes for every caller."""

from __future__ import annotations

import numpy as np
import pytest

from thyroid_desktop.core.analysis import Action, AnalysisService, FrameScores, searched_frames
from thyroid_desktop.core.io.images import open_image
from thyroid_desktop.core.io.phantom import make_cine_phantom
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
    assert first.finding.roi_source == "full"  # nothing to find on frame 0
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
