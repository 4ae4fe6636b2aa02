"""The reading state without Qt: which box becomes which nodule, which result is the latest and
belongs to which nodule, what the list and the CSV say (no models: findings are made here)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import pytest

from thyroid_desktop.core.analysis import Finding
from thyroid_desktop.core.io.images import ImageLoadError, from_array, open_image
from thyroid_desktop.core.pipeline.roi import ROI, BoxSource
from thyroid_desktop.core.review.reading import Review, Step, Tone
from thyroid_desktop.core.review.session import Session
from thyroid_desktop.core.site.calibration import Calibration

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


def detect(review, image, best, *others, result=None):
    """The detector's answer for ``image``: ``best`` (None: nothing found) and ``others``."""
    found = finding(best) if best is not None else finding(SCAN, BoxSource.FULL)
    boxes = ([best] if best is not None else []) + list(others)
    return review.detected(
        image, review.begin_request(), result or found, Detection([Candidate(b) for b in boxes])
    )


def test_the_detectors_box_is_a_proposal_until_the_clinician_accepts_it(review):
    image = show(review, 0)
    assert review.first_step(image).step is Step.AUTO_DETECT
    a, b = ROI(5, 5, 10, 10), ROI(30, 20, 10, 10)
    assert detect(review, image, a, b)
    assert review.session.state.nodules == ()  # no nodule by itself
    assert review.proposal == a and review.roi == a and review.nodule() is None
    assert review.finding.roi == a and review.preliminary
    assert review.offered() == [b]  # the other candidate, dashed
    assert review.rows() == []  # nothing for the CSV
    assert "proposal" in review.list_line(0).text
    assert review.accept_proposal() == "N1"
    (n1,) = review.session.state.nodules
    assert n1.box == a and n1.estimate.probability == 0.8 and review.nodule_id == "N1"
    assert review.session.undo_text == "add N1" and not review.preliminary
    assert review.proposal is None and review.accept_proposal() is None
    assert [r.nodule.id for r in review.rows()] == ["N1"]
    assert review.next_proposal() == b


def test_browsing_makes_no_nodule(review, tmp_path):
    for row in (0, 1, 0, 1):
        image = show(review, row)
        detect(review, image, ROI(5, 5, 10, 10))
    assert review.session.state.nodules == () and review.rows() == []
    assert review.status(0) == review.status(1) == "analysed"  # looked at, preliminary


def test_nothing_found_gives_no_estimate_unless_the_scan_area_is_asked_for(review):
    image = show(review, 1)
    assert detect(review, image, None)
    assert review.nothing_found and review.finding is None and review.proposal is None
    assert review.roi is None and "no nodule found" in review.list_line(1).text
    review.use_scan_area()  # the user asks (Analysis > Analyse whole scan area)
    assert review.analysed(image, review.begin_request(), finding(SCAN, BoxSource.FULL))
    assert review.finding is not None and review.preliminary and not review.nothing_found
    assert review.session.state.nodules == () and review.rows() == []


def test_a_rejected_proposal_is_hidden_on_that_frame_and_the_next_one_is_proposed(review):
    image = show(review, 0)
    a, b = ROI(5, 5, 10, 10), ROI(30, 20, 10, 10)
    detect(review, image, a, b)
    assert review.reject_proposal()
    assert review.proposal == b and review.finding is None  # b is to be analysed
    assert review.offered() == []
    assert review.reject_proposal() and review.proposal is None and review.nothing_found
    assert not review.reject_proposal()
    again = show(review, 0)
    assert detect(review, again, a, b)  # detected again: both stay hidden
    assert review.proposal is None and review.nothing_found and review.finding is None
    assert review.session.state.nodules == ()


def test_an_adjusted_proposal_or_a_drawn_box_is_a_nodule_and_moving_it_keeps_it(review):
    image = show(review, 0)
    a = ROI(5, 5, 10, 10)
    detect(review, image, a)
    moved = ROI(6, 5, 10, 10)
    assert review.box_drawn(moved) is True  # the proposal adjusted: the clinician's nodule
    assert review.proposal is None and review.session.state.nodule("N1").box == moved
    assert review.box_drawn(ROI(7, 5, 10, 10)) is False  # N1 moved again
    assert review.session.state.nodule("N1").estimate is None
    assert review.status(0) == "not analysed"
    assert review.rows()[0].status == "not analysed"
    req = review.begin_request()
    assert review.analysed(image, req, finding(ROI(7, 5, 10, 10), BoxSource.MANUAL, p=0.3))
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


def image_name(review) -> str:
    return review.entries[0].name


def test_new_nodule_on_request_and_the_next_box_is_n2_renumbered_after_a_delete(review):
    image = show(review, 0)
    a = ROI(5, 5, 10, 10)
    detect(review, image, a)
    review.accept_proposal()
    assert "more nodule" not in review.list_line(0).text  # one nodule: its line only
    assert review.start_new_nodule()
    assert review.box_drawn(ROI(30, 20, 10, 10)) is True
    assert [n.id for n in review.session.state.nodules] == ["N1", "N2"]
    # two nodules on the image: the line shows the one shown and says there is another,
    # each other nodule's result in the tooltip
    line = review.list_line(0)
    assert line.text.startswith(f"{image_name(review)}\nN2 · ")
    assert line.text.endswith(" · +1 more nodule") and line.text.count("\n") == 1
    assert "\nN1: 0.80 · " in line.tooltip
    req = review.begin_request()  # N2 gets no estimate: the row is orange for it too
    no = finding(ROI(30, 20, 10, 10), BoxSource.MANUAL, reason="the frame is blank")
    assert review.analysed(image, req, no)
    review.pick_nodule("N1")
    line = review.list_line(0)
    assert line.text.startswith(f"{image_name(review)}\nN1 · 0.80")
    assert line.text.endswith(" · +1 more nodule ⚠") and line.tone is Tone.WARNING
    assert line.tooltip.endswith("\nN2: ⚠ no estimate")
    review.pick_nodule("N2")
    assert review.nodule_id == "N2" and review.session.undo_text == "add N2"
    assert [n.id for n in review.others_shown()] == ["N1"]
    assert review.offered() == []  # N1's box is drawn as N1, not as a proposal
    review.pick_nodule("N1")
    assert review.delete_nodule()
    (left,) = review.session.state.nodules
    assert left.id == "N1" and left.box == ROI(30, 20, 10, 10) and review.nodule_id == "N1"


def test_coming_back_shows_the_stored_result_unless_the_calibration_changed(review):
    image = show(review, 0)
    a = ROI(5, 5, 10, 10)
    shown = finding(a)
    detect(review, image, a, result=shown)
    review.accept_proposal()
    show(review, 1)
    again = show(review, 0)
    step = review.present(again)
    assert step.step is Step.SHOW_RESULT and step.finding is shown
    rescored = review.calibration_changed(SITE_A, 0.2)
    assert review.session.state.nodule("N1").estimate is None  # saved without its logits
    assert rescored.text() == "N1: result dropped, analysed again when shown."  # not "re-scored"
    (record,) = rescored.records(review.session.state)
    assert record.calibration == "site-A" and record.detail.endswith("to site-A dropped")
    assert review.present(again).step is Step.ANALYSE_BOX
    assert review.follow_nodule() == a and review.roi == a


SITE_A = Calibration("site-A", a=0.5, b=-1.0, threshold=0.3, source="test")


def test_a_calibration_switch_rescores_every_stored_result_at_once(review):
    """Every nodule's result (shown or not) and a scan-area result get the new calibration's
    numbers, as analysing them again would: the CSV and the reports agree at once."""
    image = show(review, 0)
    a = ROI(5, 5, 10, 10)
    logged = replace(finding(a), logit=1.2, view_logits=(1.0, 1.4, 1.2, 1.2))
    review.detected(image, review.begin_request(), logged, Detection([Candidate(a)]))
    review.accept_proposal()
    other = show(review, 1)
    review.use_scan_area()  # asked for: a preliminary result, no nodule
    area = replace(finding(SCAN, BoxSource.FULL), logit=-2.0, view_logits=(-2.0, -2.0))
    review.analysed(other, review.begin_request(), area)
    review.calibration_changed(SITE_A, 0.05)
    est = review.session.state.nodule("N1").estimate
    assert est.calibration == "site-A" and est.threshold == 0.3
    assert est.probability == pytest.approx(SITE_A.apply(1.2))
    assert est.spread == pytest.approx(SITE_A.apply(1.4) - SITE_A.apply(1.0))
    assert est.unstable == (est.spread > 0.05)
    assert est.call == "suspicious (TI-RADS 4-5 likely)"  # 0.40 >= 0.3
    assert [r.entry.name for r in review.rows()] == ["a.png"]  # b.png has no nodule
    assert f"{SITE_A.apply(-2.0):.2f}" in review.list_line(1).text
    assert review.session.undo_text == "add N1"  # the rescoring is no undo step


def test_closing_a_study_of_plain_images_names_the_patient_typed_in_the_report(review):
    from thyroid_desktop.core.review.session import ReportText

    assert review.closing_text == "no patient data"
    review.session.set_report(ReportText(patient_name="Doe, Jo", patient_id="P-7"))
    assert review.closing_text == "Doe, Jo ID P-7 (typed in the report)"


def test_a_calibration_switch_on_a_signed_report_is_asked_said_and_audited(review):
    """A GUI trial: switching the calibration of a signed study re-scored its nodules, flipped
    N3's call and took the signature away, saying only "Analysed in 73 ms"."""
    image = show(review, 0)
    a = ROI(5, 5, 10, 10)
    logged = replace(finding(a, p=0.6), logit=-0.4, view_logits=(-0.4, -0.4))
    review.detected(image, review.begin_request(), logged, Detection([Candidate(a)]))
    review.accept_proposal()
    assert not review.switch_unsigns(SITE_A)  # not signed: nothing to ask
    review.session.sign("Dr. A", "2026-03-01T10:00:00")
    shipped = Calibration("shipped", a=1.0, b=0.0, threshold=0.5, source="test")
    assert review.switch_unsigns(SITE_A) and not review.switch_unsigns(shipped)
    assert review.calibration_stale(SITE_A) and not review.calibration_stale(shipped)
    # a profile refitted under its name is another calibration (a review)
    assert review.calibration_stale(replace(shipped, threshold=0.45))
    rescored = review.calibration_changed(SITE_A, 0.05)
    assert not review.calibration_stale(SITE_A) and rescored.notable
    assert rescored.flipped == ["N1"]
    assert rescored.unsigned and not review.session.state.study.report.signed
    after = review.session.state.nodule("N1").estimate  # SITE_A.apply(-0.4) = 0.23 < 0.3
    assert after.call == "not suspicious"
    assert rescored.text() == (
        "Re-scored N1; call changed: N1 suspicious (TI-RADS 4-5 likely) -> not suspicious "
        f"(0.60 -> {after.shown()[0]}). The signature was removed: check the report and sign "
        "it again."
    )
    (record,) = rescored.records(review.session.state)
    assert record.action == "rescore-calibration" and record.calibration == "site-A"
    assert record.probability == after.probability and record.roi == a.as_list()
    assert record.detail.startswith("N1 re-scored from shipped 0.60 (suspicious")
    assert record.detail.endswith("; the report's signature removed")
    assert review.calibration_changed(SITE_A, 0.05).text() == ""  # nothing left to re-score
    review.session.undo()  # back to before the signature: the shipped numbers again
    assert review.calibration_stale(SITE_A)  # the window re-scores them (rescore_if_stale)


def test_a_tirads_choice_on_a_proposal_accepts_it_and_the_list_shows_the_level(review):
    from thyroid_desktop.core.clinical.tirads import (
        Composition,
        EchogenicFoci,
        Echogenicity,
        Margin,
        Shape,
        TiradsChoices,
    )

    image = show(review, 1)
    detect(review, image, None)
    assert not review.ensure_nodule()  # nothing to describe
    image = show(review, 0)
    detect(review, image, ROI(5, 5, 10, 10))
    assert review.ensure_nodule()
    (n,) = review.session.state.nodules
    assert n.source is BoxSource.AUTO and n.estimate.probability == 0.8
    choices = TiradsChoices()
    for c in (Composition.SOLID, Echogenicity.HYPO, Shape.WIDER, Margin.SMOOTH):
        choices = choices.with_choice(c.__class__.__name__.lower(), c)
    review.session.set_tirads(n.id, choices)
    assert "TR" not in review.list_line(0).text  # echogenic foci still open
    review.session.set_tirads(n.id, choices.with_focus(EchogenicFoci.NONE, True))
    assert "TR4" in review.list_line(0).text


def test_a_frame_change_shows_only_that_frames_nodule(tmp_path):
    from tests.conftest import write_cine_dicom

    review = Review(Session())
    review.add_files([write_cine_dicom(tmp_path / "loop.dcm", n_frames=3)])
    image = show(review, 0)
    review.box_drawn(ROI(5, 5, 10, 10))  # N1 on frame 1
    review.show(review.open_frame(2))
    assert review.nodule() is None  # frame 3 has none: the panel shows none, not N1
    assert review.present(review.image).step is Step.AUTO_DETECT
    review.box_drawn(ROI(20, 20, 10, 10))
    assert [(n.id, n.frame) for n in review.session.state.nodules] == [("N1", 0), ("N2", 2)]
    review.show(review.open_frame(1))
    assert review.nodule() is None
    review.show(review.open_frame(0))
    assert review.nodule().id == "N1" and image.sha256 == review.image.sha256
    assert review.present(review.image).step is Step.ANALYSE_BOX
    assert review.follow_nodule() == ROI(5, 5, 10, 10)


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


def test_a_batch_result_is_a_proposal_and_the_users_box_stands(review, tmp_path):
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
    assert [(n.id, n.box) for n in review.session.state.nodules] == [("N1", mine)]
    assert review.rows_to_analyse() == []
    assert [r.nodule.id for r in review.rows()] == ["N1"]  # b.png's proposal: not in the CSV
    assert "proposal" in review.list_line(1).text


def test_a_restored_sessions_nodules_reach_the_csv_before_their_images_are_opened(tmp_path):
    """A session restored with several images: the files read in the background (the
    thumbnails) make their nodules rows of the CSV, as the study PDF lists them."""
    first = Review(Session())
    first.add_files([png(tmp_path, "a.png"), png(tmp_path, "b.png", 1)])
    for row, box in ((0, ROI(5, 5, 10, 10)), (1, ROI(20, 10, 12, 8))):
        image = show(first, row)
        first.detected(image, first.begin_request(), finding(box), Detection([Candidate(box)]))
        first.accept_proposal()
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
    restored.session.delete_nodule("N1")
    assert [(r.nodule.id, r.entry.name) for r in restored.rows()] == [("N1", "b.png")]


def test_adjusting_a_linked_views_box_edits_that_view_not_a_new_nodule(review):
    """Issue 22 review: nudging the box of a linked view (another image) made a duplicate N2;
    it is now the view's box, one undo step."""
    from thyroid_desktop.core.clinical.measure import Plane

    show(review, 0)
    review.start_new_nodule()
    review.box_drawn(ROI(5, 5, 10, 10))  # N1 on a.png
    show(review, 1)
    review.show_proposal(ROI(20, 10, 12, 8))  # the nodule's box on b.png
    assert review.link_view("N1", Plane.LONGITUDINAL) == ""
    assert review.box_drawn(ROI(21, 10, 12, 9)) is False  # the view's box, nudged
    (n1,) = review.session.state.nodules
    assert n1.views[0].box == ROI(21, 10, 12, 9) and n1.box == ROI(5, 5, 10, 10)
    assert review.session.undo_text == "box of N1's view"
    review.session.undo()
    assert review.session.state.nodules[0].views[0].box == ROI(20, 10, 12, 8)


def test_a_linked_views_box_is_never_proposed_again(tmp_path):
    """A GUI trial linked frame 15 of a loop as N1's longitudinal view, stepped away and back:
    the detector proposed the same box again, and Enter made it a second nodule N2. A view's
    box is never offered as a proposal now (another candidate still is)."""
    from tests.conftest import write_cine_dicom
    from thyroid_desktop.core.clinical.measure import Plane

    review = Review(Session())
    review.add_files([write_cine_dicom(tmp_path / "loop.dcm", n_frames=3)])
    show(review, 0)
    review.box_drawn(ROI(5, 5, 10, 10))  # N1 on frame 1
    review.show(review.open_frame(2))
    view_box = ROI(6, 5, 10, 10)
    review.show_proposal(view_box)  # the detector's box of the same nodule on frame 3
    assert review.link_view("N1", Plane.LONGITUDINAL) == ""
    review.show(review.open_frame(1))
    review.show(review.open_frame(2))  # back to the view's frame: the detector runs
    assert detect(review, review.image, view_box)
    assert review.proposal is None and review.accept_proposal() is None  # no duplicate
    assert detect(review, review.image, view_box, ROI(30, 30, 8, 8))
    assert review.proposal == ROI(30, 30, 8, 8)  # another box: a proposal, as before
    assert review.accept_proposal() == "N2"
    assert [n.box for n in review.session.state.nodules] == [ROI(5, 5, 10, 10), ROI(30, 30, 8, 8)]


def test_a_loop_holding_only_a_linked_view_opens_on_its_frame_not_the_best_one(tmp_path):
    """A review: a loop holding a view of a nodule on another image was searched for its
    best frame when opened again, leaving the view's frame for another proposal."""
    from tests.conftest import write_cine_dicom
    from thyroid_desktop.core.clinical.measure import Plane

    session = Session()
    review = Review(session)
    review.add_files([png(tmp_path, "a.png"), write_cine_dicom(tmp_path / "loop.dcm", n_frames=3)])
    show(review, 0)
    review.box_drawn(ROI(5, 5, 10, 10))  # N1 on a.png
    show(review, 1)
    assert review.first_step(review.image).step is Step.FIND_BEST_FRAME  # nothing marked yet
    review.show(review.open_frame(2))
    review.show_proposal(ROI(6, 5, 10, 10))
    assert review.link_view("N1", Plane.LONGITUDINAL) == ""

    again = Review(session)  # the study opened again: no frame scores yet
    again.add_files([tmp_path / "a.png", tmp_path / "loop.dcm"])
    loop = again.open_entry(1)
    assert loop.frame_index == 2 and session.state.marked_on(loop.sha256)
    assert again.first_step(loop).step is Step.AUTO_DETECT  # on the view's frame


def test_a_view_on_another_image_comes_back_as_that_view_not_a_proposal(review):
    """The same on a view on another (single-frame) image: its stored result is shown again
    on coming back, and its box is not a proposal (a review found Enter made N2 there)."""
    from thyroid_desktop.core.clinical.measure import Plane

    show(review, 0)
    review.start_new_nodule()
    review.box_drawn(ROI(5, 5, 10, 10))  # N1 on a.png
    b = show(review, 1)
    view_box = ROI(20, 10, 12, 8)
    assert detect(review, b, view_box)  # the detector proposes b.png's box, analysed
    assert review.proposal == view_box
    assert review.link_view("N1", Plane.LONGITUDINAL) == ""
    show(review, 0)
    b = show(review, 1)
    step = review.present(b)
    assert step.step is Step.SHOW_RESULT  # the view box's result, shown again
    review.reshow(step.finding)
    assert review.proposal is None and review.accept_proposal() is None
    assert [n.id for n in review.session.state.nodules] == ["N1"]


# ------------------------------------------------------------------- the study's lifecycle
def _dicom(path, patient_id, study_uid="1.2.3", seed=0):
    from tests.core.test_dicom import make_dataset, save

    rng = np.random.default_rng(seed)
    ds = make_dataset(rng.integers(0, 255, (48, 64), dtype=np.uint8))
    ds.PatientID, ds.PatientName, ds.StudyDate = patient_id, "Doe^Jo", "20260102"
    ds.StudyInstanceUID = study_uid
    return save(ds, path)


def test_a_restart_lists_every_image_and_nodule_of_the_open_study_before_opening_any(tmp_path):
    """The bug of issue 24: after a restart only the images opened again had their nodules
    in the list, the CSV and the report. Now the whole study comes back from its file."""
    from thyroid_desktop.core.review.session import SessionStore

    store = SessionStore(tmp_path / "sessions")
    first = Review(Session(store))
    first.add_files([png(tmp_path, f"{n}.png", i) for i, n in enumerate("abc")])
    for row in range(3):
        image = show(first, row)
        detect(first, image, ROI(5, 5, 10, 10), ROI(30, 20, 10, 10))
        if row != 1:
            first.accept_proposal()
        else:
            first.reject_proposal()  # hidden, and kept so
            first.box_drawn(ROI(1, 1, 20, 20))
    assert [r.nodule.id for r in first.rows()] == ["N1", "N2", "N3"]
    before = first.to_json()

    again = Review(Session(SessionStore(tmp_path / "sessions")))  # a new process
    assert again.restore_open_study()
    assert again.image is None  # nothing opened
    assert again.to_json() == before
    assert [again.status(r) for r in range(3)] == [first.status(r) for r in range(3)]
    lines = [again.list_line(r).text.split("\n")[1] for r in range(3)]
    assert lines[0].startswith("N1 · ") and lines[2].startswith("N3 · ")
    image = show(again, 1)
    detect(again, image, ROI(5, 5, 10, 10), ROI(30, 20, 10, 10))
    assert again.proposal == ROI(30, 20, 10, 10)  # the rejected one stays hidden


def test_new_study_empties_the_reading_and_the_closed_one_is_not_restored(tmp_path):
    from thyroid_desktop.core.review.session import SessionStore

    store = SessionStore(tmp_path)
    r = Review(Session(store))
    r.add_files([png(tmp_path, "a.png")])
    image = show(r, 0)
    r.box_drawn(ROI(1, 1, 20, 20))
    assert "no patient data" in r.title() and "a.png" in r.title()
    r.new_study()
    assert r.entries == [] and r.image is None and r.session.state.nodules == ()
    assert r.title() == "Thyroid Review — no patient data"
    assert not Review(Session(SessionStore(tmp_path))).restore_open_study()
    r.add_files([tmp_path / "a.png"])
    show(r, 0)  # reopening its image brings its nodule back
    assert [n.box for n in r.session.state.nodules] == [ROI(1, 1, 20, 20)]
    assert image.sha256 == r.image.sha256


def test_images_of_another_patient_are_not_admitted_without_asking(tmp_path):
    r = Review(Session())
    a1, a2 = _dicom(tmp_path / "a1.dcm", "P-1"), _dicom(tmp_path / "a2.dcm", "P-1", seed=1)
    b1 = _dicom(tmp_path / "b1.dcm", "P-2", "9.9", seed=2)
    plain = png(tmp_path, "plain.png")
    adm = r.admit([a1, b1, plain])
    assert adm.fits == (a1, plain) and adm.others == (b1,)
    r.add_files(adm.fits)
    show(r, 0)
    assert "Doe, Jo (ID P-1), study 2 Jan 2026" in r.title()
    adm = r.admit([a2, b1])
    assert adm.fits == (a2,) and adm.others == (b1,) and "P-2" in adm.question
    r.add_files([b1])  # added anyway
    show(r, 2)
    assert "(+ images of another patient)" in r.title()
    r.new_study()
    assert r.admit([b1]).others == ()  # a new study takes whoever comes first


def test_a_list_of_two_patients_says_so_although_one_file_cannot_be_read(tmp_path):
    """Patient A's file is damaged (its header is read, its image never opens), a plain
    image and patient B's file are added anyway: the title warns of two patients whichever
    entry is shown (it named one patient, then the other, without a warning; found in a
    trial)."""
    r = Review(Session())
    a = _dicom(tmp_path / "a.dcm", "P-1")
    a.write_bytes(a.read_bytes()[:-200])  # cut inside its pixel data
    b = _dicom(tmp_path / "b.dcm", "P-2", "9.9", seed=2)
    plain = png(tmp_path, "plain.png")
    adm = r.admit([a, plain, b])
    assert adm.others == (b,)
    r.add_files([*adm.fits, *adm.others])  # added anyway
    for row in (1, 2):
        show(r, row)
        assert "(+ images of another patient)" in r.title(), r.title()
