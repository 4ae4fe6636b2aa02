"""The reading state without Qt: which box becomes which nodule, which result is the latest and
belongs to which nodule, what the list and the CSV say (no models: findings are made here)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from thyroid_desktop.core.analysis import Finding
from thyroid_desktop.core.io.images import ImageLoadError, from_array, open_image
from thyroid_desktop.core.pipeline.roi import ROI, BoxSource
from thyroid_desktop.core.review.reading import Review, Step, Tone
from thyroid_desktop.core.review.session import Session

SCAN = ROI(0, 0, 64, 48)


def finding(roi: ROI, source=BoxSource.AUTO, p=0.8, reason="", calibration="shipped") -> Finding:
    return Finding(
        p, 0.5, roi, source, roi, np.zeros((48, 64), np.float32), model_id="m",
        no_estimate_reason=reason, calibration=calibration,
    )  # fmt: skip


@dataclass
class Candidate:
    roi: ROI
    score: float = 0.9


@dataclass
class Detection:
    candidates: list


def png(tmp_path, name, seed=0):
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(tmp_path / name), rng.integers(0, 255, (48, 64), dtype=np.uint8))
    return tmp_path / name


@pytest.fixture
def review(tmp_path):
    r = Review(Session())
    r.add_files([png(tmp_path, "a.png"), png(tmp_path, "b.png", 1)])
    return r


def show(review, row):
    image = review.open_entry(row)
    review.show(image)
    return image


def test_the_detectors_first_box_becomes_n1_and_a_later_result_is_n1s(review):
    image = show(review, 0)
    assert review.first_step(image).step is Step.AUTO_DETECT
    req = review.begin_request()
    a, b = ROI(5, 5, 10, 10), ROI(30, 20, 10, 10)
    assert review.detected(image, req, finding(a), Detection([Candidate(a), Candidate(b)]))
    (n1,) = review.session.state.nodules
    assert n1.id == "N1" and n1.box == a and review.nodule_id == "N1"
    assert review.session.undo_text == ""  # the detector's box is no undo step
    assert n1.estimate.probability == 0.8 and review.finding.roi == a
    assert review.offered() == [b]  # the proposal not boxed, drawn dashed
    assert review.next_proposal() == b
    assert review.status(0) == "analysed" and review.status(1) == "not analysed"


def test_a_moved_box_is_the_same_nodule_and_its_old_result_is_dropped(review):
    image = show(review, 0)
    a = ROI(5, 5, 10, 10)
    review.detected(image, review.begin_request(), finding(a), Detection([Candidate(a)]))
    moved = ROI(6, 5, 10, 10)
    assert review.box_drawn(moved) is False  # not a new nodule
    assert review.session.state.nodule("N1").estimate is None
    assert review.status(0) == "not analysed"
    assert review.rows()[0].status == "not analysed"
    req = review.begin_request()
    assert review.analysed(image, req, finding(moved, BoxSource.MANUAL, p=0.3))
    assert review.session.state.nodule("N1").estimate.probability == 0.3


def test_only_the_latest_request_counts_and_another_image_makes_it_stale(review):
    image = show(review, 0)
    first = review.begin_request()
    second = review.begin_request()
    assert not review.analysed(image, first, finding(SCAN, BoxSource.FULL))
    assert review.awaiting and review.finding is None
    other = show(review, 1)
    assert not review.analysed(image, second, finding(SCAN, BoxSource.FULL))
    assert not review.failed(second)
    assert review.image is other and not review.awaiting


def test_new_nodule_on_request_and_the_next_box_is_n2(review):
    image = show(review, 0)
    a = ROI(5, 5, 10, 10)
    review.detected(image, review.begin_request(), finding(a), Detection([Candidate(a)]))
    assert review.start_new_nodule()
    assert review.box_drawn(ROI(30, 20, 10, 10)) is True
    assert [n.id for n in review.session.state.nodules] == ["N1", "N2"]
    assert review.nodule_id == "N2" and review.session.undo_text == "add N2"
    assert [n.id for n in review.others_shown()] == ["N1"]
    assert review.offered() == []  # N1's box is drawn as N1, not as a proposal


def test_a_scan_area_result_with_no_nodule_is_the_images_row(review):
    image = show(review, 1)
    review.analysed(image, review.begin_request(), finding(SCAN, BoxSource.FULL, reason="noise"))
    assert review.session.state.nodules == ()
    (row,) = [r for r in review.rows() if r.entry.name == "b.png"]
    assert row.status == "analysed" and row.nodule is None and not row.estimate.in_scope
    line = review.list_line(1)
    assert "no estimate" in line.text and line.tone is Tone.WARNING
    assert review.rows_to_analyse() == [0]


def test_coming_back_shows_the_stored_result_unless_the_calibration_changed(review):
    image = show(review, 0)
    a = ROI(5, 5, 10, 10)
    shown = finding(a)
    review.detected(image, review.begin_request(), shown, Detection([Candidate(a)]))
    show(review, 1)
    again = show(review, 0)
    step = review.present(again)
    assert step.step is Step.SHOW_RESULT and step.finding is shown
    review.calibration_changed("site-A")
    assert review.session.state.nodule("N1").estimate is None  # no old numbers anywhere
    assert review.present(again).step is Step.ANALYSE_BOX
    assert review.follow_nodule() == a and review.roi == a


def test_a_choice_on_the_scan_area_makes_a_nodule_and_the_list_shows_the_level(review):
    from thyroid_desktop.core.clinical.tirads import (
        Composition,
        Echogenicity,
        Margin,
        Shape,
        TiradsChoices,
    )

    image = show(review, 1)
    review.analysed(image, review.begin_request(), finding(SCAN, BoxSource.FULL))
    assert review.ensure_nodule()
    (n,) = review.session.state.nodules
    assert n.source is BoxSource.FULL and n.box == SCAN and n.estimate.probability == 0.8
    choices = TiradsChoices()
    for c in (Composition.SOLID, Echogenicity.HYPO, Shape.WIDER, Margin.SMOOTH):
        choices = choices.with_choice(c.__class__.__name__.lower(), c)
    review.session.set_tirads(n.id, choices)
    assert "TR4" in review.list_line(1).text


def test_an_unreadable_file_says_why_and_shows_nothing(tmp_path):
    review = Review(Session())
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    rows, new = review.add_files([bad, bad])
    assert rows == [0] and new == [0]  # once, however often named
    with pytest.raises(ImageLoadError):
        review.open_entry(0)
    review.show_unreadable(0)
    assert review.status(0) == "error" and review.image is None
    assert review.list_line(0).tone is Tone.ERROR and "bad.png" in review.list_line(0).text


def test_the_demo_image_is_shown_but_not_kept():
    review = Review(Session())
    demo = from_array(np.zeros((48, 64), np.uint8))
    review.show(demo)
    assert review.box_drawn(ROI(1, 1, 5, 5)) is False and not review.in_session()
    assert review.analysed(demo, review.begin_request(), finding(ROI(1, 1, 5, 5)))
    assert review.session.state.nodules == () and review.rows() == []
    with pytest.raises(ValueError):
        review.set_user_scale(0.0)


def test_a_batch_result_becomes_the_first_nodule_unless_the_user_was_first(review, tmp_path):
    from thyroid_desktop.core.analysis import AnalysisResult
    from thyroid_desktop.core.io.images import open_image

    image = show(review, 0)
    mine = ROI(2, 2, 8, 8)
    review.box_drawn(mine)
    review.analysed(image, review.begin_request(), finding(mine, BoxSource.MANUAL))
    other = open_image(tmp_path / "b.png")
    auto = ROI(20, 10, 12, 12)
    assert review.batch_result(0, AnalysisResult(image, finding(ROI(9, 9, 9, 9)))) is False
    assert review.batch_result(1, AnalysisResult(other, finding(auto))) is False  # not shown
    boxes = {n.id: n.box for n in review.session.state.nodules}
    assert boxes == {"N1": mine, "N2": auto}  # the user's box stands
    assert review.rows_to_analyse() == []


def test_a_restored_sessions_nodules_reach_the_csv_before_their_images_are_opened(tmp_path):
    """A session restored with several images: the files read in the background (the
    thumbnails) make their nodules rows of the CSV, as the study PDF lists them."""
    first = Review(Session())
    first.add_files([png(tmp_path, "a.png"), png(tmp_path, "b.png", 1)])
    for row, box in ((0, ROI(5, 5, 10, 10)), (1, ROI(20, 10, 12, 8))):
        image = show(first, row)
        first.detected(image, first.begin_request(), finding(box), Detection([Candidate(box)]))
    assert [r.nodule.id for r in first.rows()] == ["N1", "N2"]

    restored = Review(Session())
    restored.session.load(first.session.state)
    restored.add_files([tmp_path / "a.png", tmp_path / "b.png"])
    show(restored, 0)  # only the first image is opened
    assert [r.nodule.id for r in restored.rows() if r.nodule] == ["N1"]
    b = restored.entries[1]
    restored.entry_read(1, b.path, open_image(b.path))
    rows = restored.rows()
    assert [r.nodule.id for r in rows if r.nodule] == ["N1", "N2"]
    assert rows[1].estimate is not None and rows[1].estimate.box == ROI(20, 10, 12, 8)
    restored.entry_read(1, tmp_path / "other.png", open_image(b.path))  # not that row's file
    assert len(restored.rows()) == 2
