"""The Qt-free review session: nodules, undo/redo, stale requests, autosave and restore."""

from __future__ import annotations

import dataclasses
import json

import pytest

from thyroid_desktop.core.clinical.measure import Caliper
from thyroid_desktop.core.clinical.tirads import (
    Composition,
    EchogenicFoci,
    Echogenicity,
    Margin,
    Shape,
    TiradsChoices,
)
from thyroid_desktop.core.pipeline.roi import ROI
from thyroid_desktop.core.report.dicom_out import SrVersion
from thyroid_desktop.core.review.session import (
    BoxSource,
    Estimate,
    Lobe,
    Pole,
    Session,
    SessionStore,
    read_session,
    write_session,
)

A, B = "a" * 64, "b" * 64


BOX = ROI(1, 2, 30, 40)
SR = SrVersion("1.2.3", "1.2.3.4", "1.2.3.4.5", 1, True, "2026-03-01T10:05:00+00:00")


def estimate(p=0.7, box=BOX):
    return Estimate(
        p,
        0.6,
        0.05,
        False,
        3.2,
        "",
        "suspicious",
        "model-x",
        "",
        box,
        None,
        ("dim",),
        BoxSource.AUTO,
    )


def test_nodules_are_numbered_located_and_deleted_with_undo_redo():
    s = Session()
    seen = []
    s.subscribe(seen.append)
    s.add_image(A, "/x/a.dcm", n_frames=20)
    n1 = s.add_nodule(A, 4, ROI(10, 10, 50, 40), BoxSource.AUTO)
    n2 = s.add_nodule(A, 9, ROI(100, 20, 30, 30))
    assert (n1, n2) == ("N1", "N2")
    s.set_location(n2, Lobe.LEFT, Pole.LOWER)
    assert s.state.nodule(n2).location == "left lobe, lower"
    s.delete_nodule(n1)
    (left,) = s.state.nodules
    assert left.id == "N1" and left.location == "left lobe, lower"  # renumbered, gapless
    assert s.undo_text == "delete N1" and s.undo()
    assert [(n.id, n.frame) for n in s.state.nodules] == [("N1", 4), ("N2", 9)]
    assert s.redo() and [n.id for n in s.state.nodules] == ["N1"]
    assert s.add_nodule(A, 0, ROI(0, 0, 5, 5)) == "N2"  # in the order confirmed
    assert "add N2" in seen and seen[-1] == "add N2"


def test_the_other_nodules_shown_are_those_on_the_frame_on_screen():
    s = Session()
    s.add_image(A, "/x/a.dcm", n_frames=20)
    s.add_image(B, "/x/b.png")
    n1 = s.add_nodule(A, 4, ROI(10, 10, 50, 40))
    n2 = s.add_nodule(A, 4, ROI(100, 20, 30, 30))
    n3 = s.add_nodule(A, 9, ROI(60, 60, 20, 20))
    s.add_nodule(B, 0, ROI(5, 5, 10, 10))
    assert [n.id for n in s.state.others_shown(A, 4, n1)] == [n2]
    assert [n.id for n in s.state.others_shown(A, 4, None)] == [n1, n2]
    assert [n.id for n in s.state.others_shown(A, 9, n1)] == [n3]
    assert s.state.others_shown(A, 9, n3) == []
    assert s.state.others_shown(A, 5, None) == []
    assert s.state.others_shown("c" * 64, 0, None) == []  # not in the session


def test_candidates_offered_are_neither_the_box_edited_nor_another_nodule():
    from thyroid_desktop.core.review.session import offered_candidates

    a, b, c = ROI(0, 0, 10, 10), ROI(20, 0, 10, 10), ROI(40, 0, 10, 10)
    assert offered_candidates([a, b, c], a, [c]) == [b]
    assert offered_candidates([a, b, c], None, []) == [a, b, c]


def test_box_and_tirads_edits_undo_but_results_and_frames_do_not():
    s = Session()
    s.add_image(A, "a.png")
    n = s.add_nodule(A, 0, ROI(10, 10, 50, 40), BoxSource.AUTO)
    s.set_estimate(n, estimate())
    s.set_frame(A, 0)
    assert s.undo_text == "add N1"  # the result is not an undo step
    s.set_box(n, ROI(12, 10, 50, 40))
    assert s.state.nodule(n).estimate is None  # the old number was for the old box
    assert s.state.nodule(n).source is BoxSource.MANUAL
    choices = TiradsChoices().with_choice("composition", Composition.SOLID)
    s.set_tirads(n, choices)
    s.undo()
    assert s.state.nodule(n).tirads == TiradsChoices()
    s.undo()
    assert s.state.nodule(n).box == ROI(10, 10, 50, 40)
    assert s.state.nodule(n).source is BoxSource.AUTO
    s.redo()
    s.redo()
    assert s.state.nodule(n).tirads.composition is Composition.SOLID
    assert not s.redo()


def test_undo_keeps_the_frame_on_screen():
    s = Session()
    s.add_image(A, "cine.dcm", n_frames=10)
    n = s.add_nodule(A, 3, ROI(1, 1, 9, 9))
    s.set_frame(A, 7)
    s.undo()
    assert s.state.nodule(n) is None and s.state.image(A).frame == 7
    s.set_frame(A, 99)
    assert s.state.image(A).frame == 9


def test_a_moved_box_loses_its_old_estimate_and_undo_brings_both_back():
    s = Session()
    s.add_image(A, "a.png")
    n = s.add_nodule(A, 0, ROI(0, 0, 10, 10))
    est = estimate(box=ROI(0, 0, 10, 10))
    s.set_estimate(n, est)
    s.set_box(n, ROI(1, 0, 10, 10))  # moved: the old numbers no longer apply
    assert s.state.nodule(n).estimate is None
    s.undo()
    assert s.state.nodule(n).box == ROI(0, 0, 10, 10) and s.state.nodule(n).estimate == est


def test_only_the_latest_analysis_of_the_shown_image_counts():
    from thyroid_desktop.core.review.session import LatestRequest

    latest = LatestRequest()
    first = latest.begin()
    assert not latest.is_stale(first)
    second = latest.begin()  # the box moved while the first ran
    assert latest.is_stale(first) and not latest.is_stale(second)
    latest.supersede()  # another image is shown
    assert latest.is_stale(second)
    assert not latest.is_stale(latest.begin())


def test_echogenic_foci_none_excludes_the_others():
    c = TiradsChoices()
    assert c.foci == frozenset()  # nothing pre-selected
    c = c.with_focus(EchogenicFoci.PUNCTATE, True).with_focus(EchogenicFoci.MACRO, True)
    assert c.foci == {EchogenicFoci.PUNCTATE, EchogenicFoci.MACRO}
    assert c.with_focus(EchogenicFoci.NONE, True).foci == {EchogenicFoci.NONE}
    assert (
        c.with_focus(EchogenicFoci.PUNCTATE, False).with_focus(EchogenicFoci.MACRO, False).foci
        == frozenset()
    )  # open again
    assert c.descriptors is None
    full = (
        c.with_choice("composition", Composition.SOLID)
        .with_choice("echogenicity", Echogenicity.HYPO)
        .with_choice("shape", Shape.WIDER)
        .with_choice("margin", Margin.SMOOTH)
    )
    assert full.descriptors.points == 2 + 2 + 0 + 0 + 3 + 1
    assert TiradsChoices.from_json(json.loads(json.dumps(full.to_json()))) == full
    with pytest.raises(ValueError):
        c.with_choice("shape", Composition.SOLID)


def test_autosave_restores_everything_after_a_restart(tmp_path):
    store = SessionStore(tmp_path / "sessions")
    s = Session(store)
    s.add_image(A, "/old/place/a.dcm", n_frames=5)
    s.add_image(B, "b.png")
    n1 = s.add_nodule(A, 2, ROI(10, 10, 50, 40), BoxSource.AUTO)
    s.set_estimate(n1, estimate())
    s.set_tirads(n1, TiradsChoices().with_choice("margin", Margin.LOBULATED))
    s.add_caliper(n1, Caliper((10.0, 20.0), (130.0, 55.0), frame=2))
    s.set_notes(n1, "compare with 2025")
    n2 = s.add_nodule(B, 0, ROI(5, 5, 20, 20))
    s.set_location(n2, Lobe.ISTHMUS, None)
    s.set_user_scale(B, 0.08)
    s.set_frame(A, 2)
    saved = s.state

    again = Session(store)  # a new process: nothing in memory
    assert again.add_image(A, "/new/place/a.dcm") and again.add_image(B, "b.png")
    assert again.state.nodules == saved.nodules  # opened in the same order: the same N1, N2
    assert again.state.image(A).frame == 2 and again.state.image(A).path == "/new/place/a.dcm"
    assert again.state.image(B).user_mm_per_px == 0.08
    assert again.add_nodule(A, 0, ROI(0, 0, 9, 9)) == "N3"
    fresh = Session(SessionStore(tmp_path / "elsewhere"))
    assert not fresh.add_image(A, "a.dcm") and fresh.state.nodules == ()


def test_restoring_two_sessions_that_both_had_an_n1_keeps_both(tmp_path):
    store = SessionStore(tmp_path)
    first = Session(store)
    first.add_image(A, "a.png")
    first.add_nodule(A, 0, ROI(0, 0, 10, 10))
    second = Session(store)
    second.add_image(B, "b.png")
    second.add_nodule(B, 0, ROI(5, 5, 10, 10))
    both = Session(store)
    both.add_image(A, "a.png")
    both.add_image(B, "b.png")
    assert sorted((n.id, n.image) for n in both.state.nodules) == [("N1", A), ("N2", B)]


def test_save_and_open_a_session_file_and_refuse_a_broken_one(tmp_path):
    s = Session()
    s.add_image(A, "a.png")
    s.add_nodule(A, 0, ROI(0, 0, 10, 10))
    path = write_session(tmp_path / "study.json", s.state)
    assert read_session(path) == s.state
    other = Session()
    other.load(read_session(path))
    assert other.state == s.state and not other.undo()
    bad = tmp_path / "bad.json"
    for text in ("{", "[]", '{"format": 99}', '{"format": 1, "images": [{"x": 1}]}'):
        bad.write_text(text)
        with pytest.raises(ValueError):
            read_session(bad)


def test_a_failed_autosave_is_reported_not_raised(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    s = Session(SessionStore(blocker / "sessions"))
    s.add_image(A, "a.png")
    assert "could not be saved" in s.save_problem


def test_accepting_ai_suggestions_is_one_undo_step_and_the_suggestion_is_saved(tmp_path):
    from thyroid_desktop.core.pipeline.tirads_ai import Suggestion, TiradsSuggestion, review_of

    sug = TiradsSuggestion(
        {
            "composition": Suggestion(Composition.SOLID, 0.81, "image features"),
            "shape": Suggestion(Shape.TALLER, None, "mask geometry"),
            "echogenic_foci": Suggestion(EchogenicFoci.MACRO, 0.6, "image features"),
        },
        size_px=42.0,
    )
    s = Session()
    s.add_image(A, "a.png")
    n = s.add_nodule(A, 0, BOX)
    assert s.accept_suggestions(n) is None  # no estimate yet: nothing to accept
    s.set_estimate(n, dataclasses.replace(estimate(), suggestion=sug))
    s.set_tirads(n, TiradsChoices().with_choice("shape", Shape.WIDER))
    choices = s.accept_suggestions(n)
    assert choices.composition is Composition.SOLID and choices.shape is Shape.WIDER
    assert choices.foci == {EchogenicFoci.MACRO} and choices.echogenicity is None
    assert review_of(choices, sug)["shape"] == "changed"
    assert s.undo_text == f"accept AI TI-RADS {n}" and s.undo()
    assert s.state.nodule(n).tirads.composition is None
    path = write_session(tmp_path / "s.json", s.state)
    back = read_session(path).nodule(n).estimate.suggestion
    assert back.value("shape") is Shape.TALLER and back.size_px == 42.0
    assert back.groups["composition"].confidence == pytest.approx(0.81)


def test_a_session_saved_before_issue_22_keeps_only_the_confirmed_nodules():
    """Format 1 saved the detector's box of every image browsed as a nodule: reading it,
    those the clinician never touched are dropped (they must not reach a report); a drawn
    box and a described detector box stay, renumbered N1, N2."""
    from thyroid_desktop.core.review.session import state_from_json

    def nodule(i, source, tirads=None, **extra):
        return {
            "id": f"N{i}", "image": "a" * 64, "frame": 0, "box": [10, 10, 20, 20],
            "source": source, "lobe": None, "pole": None, "tirads": tirads or {},
            "calipers_px": [], "notes": "", "estimate": None, **extra,
        }  # fmt: skip

    data = {
        "format": 1,
        "images": [{"key": "a" * 64, "path": "/x/a.png", "n_frames": 1}],
        "nodules": [
            nodule(1, "auto"),  # browsed only
            nodule(2, "full"),  # scan area, browsed only
            nodule(3, "manual"),  # drawn by the clinician
            nodule(4, "auto", notes="seen"),  # a detector box the clinician described
        ],
    }
    state = state_from_json(data)
    assert [(n.id, str(n.source), n.notes) for n in state.nodules] == [
        ("N1", "manual", ""),
        ("N2", "auto", "seen"),
    ]


def _every_field_session(store=None) -> Session:
    """A session with every kind of thing a reading keeps, each set to a non-default value."""
    from thyroid_desktop.core.clinical.measure import Plane
    from thyroid_desktop.core.review.lifecycle import Identity
    from thyroid_desktop.core.review.session import ReportText, View

    who = Identity("P-1", "Doe^Jane", "1.2.3", "20260301")
    s = Session(store)
    s.add_image(A, "/data/a.dcm", n_frames=5, identity=who)
    s.add_image(B, "/data/b.png")
    n1 = s.add_nodule(A, 2, BOX, BoxSource.AUTO)
    s.set_estimate(n1, estimate())
    s.set_tirads(
        n1,
        TiradsChoices()
        .with_choice("composition", Composition.SOLID)
        .with_choice("margin", Margin.LOBULATED),
    )
    s.set_location(n1, Lobe.RIGHT, Pole.UPPER)
    s.add_caliper(n1, Caliper((10.0, 20.0), (130.0, 55.0), frame=2))
    s.set_notes(n1, "compare with 2025")
    view = View(B, 0, Plane.LONGITUDINAL, ROI(3, 4, 50, 60))
    s.link_view(n1, view)
    s.add_caliper(n1, Caliper((5.0, 6.0), (40.0, 6.0), frame=0), view=0)
    outline = ((1.0, 2.0), (30.0, 2.5), (15.5, 40.0))
    s.add_nodule(A, 3, ROI(20, 20, 30, 30), BoxSource.POINT, outline=outline)
    s.set_frame(A, 3)
    s.set_user_scale(B, 0.08)
    s.reject(A, 3, ROI(100, 100, 40, 40))
    s.set_report(ReportText(operator="Dr. Who", impression="Two nodules.\nTR4 on the right."))
    s.sign("Dr. Who", "2026-03-01T10:00:00+00:00")
    s.record_sr(s.state.study.id, SR)
    return s


def test_the_session_file_round_trips_every_field(tmp_path):
    """Images (paths, hashes, frames, scales, patients), nodules (boxes, sources, outlines,
    locations, TI-RADS, calipers on both views, notes, estimates), proposals rejected, the
    study's patient, the report's text and its signature: all come back equal."""
    s = _every_field_session()
    state = s.state
    assert state.study.identity.PatientID == "P-1" and state.study.report.signed
    assert state.study.sr_versions == (SR,)
    back = read_session(write_session(tmp_path / "s.json", state))
    assert back == state
    for field in dataclasses.fields(state):  # nothing is left at its default by accident
        assert getattr(state, field.name), field.name
    n1, n2 = back.nodules
    assert n1.views[0].calipers and n1.lobe is Lobe.RIGHT and n2.outline
    assert back.rejected_on(A, 3) == {ROI(100, 100, 40, 40)}


def test_editing_a_signed_report_takes_the_signature_away():
    from thyroid_desktop.core.review.session import ReportText

    s = Session()
    s.set_report(ReportText(impression="benign"))
    s.sign("Dr. A", "2026-03-01T10:00:00")
    report = s.state.study.report
    assert report.signed and s.undo_text == "signature"
    s.set_report(dataclasses.replace(report, impression="suspicious"))
    assert not s.state.study.report.signed and s.state.study.report.impression == "suspicious"
    s.undo()
    assert s.state.study.report.signed and s.state.study.report.impression == "benign"
    with pytest.raises(ValueError):
        s.sign(" ", "2026")


def test_signing_needs_a_nodule_and_is_audited_per_nodule():
    from thyroid_desktop.core.review.lifecycle import sign_blocker, sign_records

    s = Session()
    # a GUI trial signed an empty study, which no export could then write
    assert sign_blocker(s.state) == "The report lists no nodule: mark at least one nodule first."
    s.add_image(A, "/x/a.png")
    s.add_image(B, "/x/b.dcm", n_frames=20)
    s.add_nodule(A, 0, BOX, BoxSource.AUTO)
    s.add_nodule(B, 7, BOX, BoxSource.MANUAL)
    assert sign_blocker(s.state) == ""
    s.sign("Dr. A", "2026-03-01T10:05:00")
    records = sign_records(s.state)
    assert [r.image_sha256 for r in records] == [A, B] and records[0].roi == BOX.as_list()
    assert records[1].detail == "N2 signed by Dr. A at 2026-03-01T10:05:00"
    # where it is, as the analysis records say it: the file; a frame only for a loop
    assert [(r.file, r.frame) for r in records] == [("/x/a.png", None), ("/x/b.dcm", 7)]


def test_the_open_study_comes_back_whole_after_a_restart_without_opening_its_images(tmp_path):
    """Each change is written at once: a new process (nothing in memory) finds the open
    study and all of it, every image's nodules included; a closed study is not reopened
    at start but stays in its file (reopening one of its images brings its work back)."""
    store = SessionStore(tmp_path)
    s = _every_field_session(store)
    again = SessionStore(tmp_path).open_study()
    assert again == s.state
    study_id = s.state.study.id
    s.close_study()
    assert SessionStore(tmp_path).open_study() is None
    assert s.state.images == () and s.state.study.id != study_id and not s.undo()
    assert (tmp_path / f"{study_id}.json").exists()
    later = Session(SessionStore(tmp_path))
    assert later.add_image(A, "/data/a.dcm")
    assert [n.image for n in later.state.nodules] == [A, A]
    assert later.state.rejected_on(A, 3) == {ROI(100, 100, 40, 40)}
    assert later.state.study.identity.PatientID == "P-1"  # from the image's saved record


def test_a_study_keeps_one_file_as_it_grows(tmp_path):
    """Adding images does not start another file (format 2 named the file by its images,
    so a restart found only a part of a grown study)."""
    store = SessionStore(tmp_path)
    s = Session(store)
    for key in (A, B, "c" * 64):
        s.add_image(key, f"/x/{key[0]}.png")
        s.add_nodule(key, 0, BOX)
    assert len(list(tmp_path.glob("[0-9a-f]*.json"))) == 1
    assert len(store.open_study().nodules) == 3


def test_undo_keeps_the_proposals_rejected_and_the_study(tmp_path):
    s = Session()
    s.add_image(A, "a.png")
    s.add_nodule(A, 0, BOX)
    s.reject(A, 0, ROI(0, 0, 5, 5))
    s.undo()
    assert s.state.nodules == () and s.state.rejected_on(A, 0) == {ROI(0, 0, 5, 5)}


def test_a_format_2_session_is_still_read(tmp_path):
    from thyroid_desktop.core.review.session import state_from_json, state_to_json

    s = Session()
    s.add_image(A, "a.png")
    s.add_nodule(A, 0, BOX)
    data = state_to_json(s.state)
    data["format"] = 2
    for key in ("study", "rejected"):
        del data[key]
    for image in data["images"]:
        del image["identity"]
    state = state_from_json(data)
    assert state.nodules == s.state.nodules and state.study.id == ""
    loaded = Session()
    loaded.load(state)
    assert loaded.state.study.id  # a study id is given on opening


def test_changing_what_was_signed_takes_the_signature_away():
    """A signature holds for the findings as signed: adding a nodule (or changing one)
    after signing removes it; undo brings the signed state back."""
    s = _every_field_session()
    assert s.state.study.report.signed
    s.set_report(dataclasses.replace(s.state.study.report))  # the same text: still signed
    assert s.state.study.report.signed
    heard = []
    s.subscribe(lambda what: heard.append((what, s.unsigned_by)))
    s.add_nodule(A, 3, ROI(10, 10, 20, 20), BoxSource.MANUAL)
    assert not s.state.study.report.signed
    s.undo()
    assert s.state.study.report.signed
    # what the window says: which step took it away, and whether Ctrl+Z brings it back
    assert heard == [("add N3", ("add N3", True)), ("undo add N3", None)]
    s.set_report(dataclasses.replace(s.state.study.report, impression="Other words."))
    assert heard[-1] == ("report text", ("report text", True)) and s.unsigned_by is None
    s.undo()
    s.load(s.state)  # a session opened: a state as it was, not an edit
    assert heard[-1] == ("open session", None)


def test_the_srs_written_stay_with_their_study(tmp_path):
    """A DICOM SR written is recorded with its study (a later one names it as superseded):
    no undo step and undo never forgets it, it survives a restart, an SR of a study closed
    while it was written goes to that study's file (not the next study), opening the
    study's images again brings its SRs back, and a damaged entry costs only that entry."""
    from thyroid_desktop.core.review.session import state_from_json, state_to_json

    store = SessionStore(tmp_path)
    s = Session(store)
    s.add_image(A, "a.png")
    s.add_nodule(A, 0, BOX)
    study_id = s.state.study.id
    assert s.record_sr(study_id, SR) and s.undo_text == "add N1"
    assert s.record_sr(study_id, SR) and s.state.study.sr_versions == (SR,)  # once
    s.undo()
    assert s.state.nodules == () and s.state.study.sr_versions == (SR,)
    assert SessionStore(tmp_path).open_study().study.sr_versions == (SR,)
    s.close_study()
    late = dataclasses.replace(SR, sop_instance_uid="1.2.3.4.6", instance_number=2)
    # written while the study was being closed: into its own file, not the next study
    assert s.record_sr(study_id, late) and s.state.study.sr_versions == ()
    assert read_session(tmp_path / f"{study_id}.json").study.sr_versions == (SR, late)
    assert not s.record_sr("no-such-study", late)
    # its images opened again (a new study): a new report supersedes those SRs
    s.add_image(A, "a.png")
    assert s.state.study.id != study_id and s.state.study.sr_versions == (SR, late)
    data = state_to_json(read_session(tmp_path / f"{study_id}.json"))
    data["study"]["sr_versions"].insert(0, {"series_instance_uid": "9"})
    assert state_from_json(data).study.sr_versions == (SR, late)
    data["study"]["sr_versions"] = 7
    assert state_from_json(data).study.sr_versions == ()


def test_a_nodule_keeps_its_tracking_uid_through_renumbering_saving_and_reopening(tmp_path):
    """The DICOM tracking UID is made once: a delete renumbers N2 to N1 but keeps its UID,
    the file keeps it, a nodule saved before UIDs gets one made from what the file says
    (the same at every reading), and reopening its image in a new study keeps it."""
    from pydicom.uid import UID

    from thyroid_desktop.core.review.session import state_from_json, state_to_json

    store = SessionStore(tmp_path)
    s = Session(store)
    s.add_image(A, "a.png")
    s.add_nodule(A, 0, BOX)
    s.add_nodule(A, 0, ROI(50, 50, 20, 20))
    first, second = s.state.nodules
    assert UID(first.uid).is_valid and first.uid != second.uid
    s.delete_nodule("N1")
    (kept,) = s.state.nodules
    assert kept.id == "N1" and kept.uid == second.uid
    assert read_session(write_session(tmp_path / "s.json", s.state)).nodules[0].uid == kept.uid
    data = state_to_json(s.state)
    del data["nodules"][0]["uid"]  # a file written before nodules had one
    made = state_from_json(data).nodules[0].uid
    assert UID(made).is_valid and made == state_from_json(data).nodules[0].uid != kept.uid
    s.close_study()
    s.add_image(A, "a.png")
    assert [n.uid for n in s.state.nodules] == [kept.uid]


def test_review_mends_undo_absorb_scale_and_damaged_uids(tmp_path):
    """Undo does not take away nodules that came back with an image opened after the step
    undone; a nodule absorbed as another's view closes the numbering; a new scale takes the
    signature away (the signed sizes change); a damaged saved UID is replaced, and two
    identical nodules saved without one get different UIDs."""
    from thyroid_desktop.core.clinical.measure import Plane
    from thyroid_desktop.core.review.session import ReportText, View, state_from_json, state_to_json

    store = SessionStore(tmp_path)
    s = Session(store)
    s.add_image(B, "b.png")
    s.add_nodule(B, 0, BOX)  # saved with B
    s.close_study()
    s.add_image(A, "a.png")
    s.add_nodule(A, 0, BOX)  # an undo step
    assert s.add_image(B, "b.png")  # B's nodule comes back (not an undo step)
    kept = s.state.nodules[1]
    s.undo()
    assert [(n.id, n.uid) for n in s.state.nodules] == [("N1", kept.uid)]
    s.redo()
    assert len(s.state.nodules) == 2

    t = Session()
    t.add_image(A, "a.png")
    t.add_image(B, "b.png")
    t.add_nodule(B, 0, BOX)  # N1: marked on B before it was linked
    t.add_nodule(A, 0, ROI(5, 5, 30, 30))  # N2
    t.link_view("N2", View(B, 0, Plane.LONGITUDINAL, BOX), absorb="N1")
    assert [n.id for n in t.state.nodules] == ["N1"] and t.state.nodule("N1").views

    t.set_report(ReportText(impression="x"))
    t.sign("Dr. A", "2026-03-01T10:00:00")
    t.set_user_scale(A, 0.1)
    assert not t.state.study.report.signed
    t.undo()
    assert t.state.study.report.signed

    data = state_to_json(t.state)
    data["nodules"][0]["uid"] = "not a uid"
    made = state_from_json(data).nodules[0].uid
    assert made != "not a uid" and made == state_from_json(data).nodules[0].uid
    twin = dict(data["nodules"][0], uid="")
    data["nodules"] = [twin, dict(twin)]
    first, second = state_from_json(data).nodules
    assert first.uid != second.uid


def test_the_same_result_again_keeps_the_signature(tmp_path):
    """A signed study restored from its file and analysed again gives the same result as the
    file holds, up to the file's rounding of the AI suggestion's confidences (0.793 against
    0.7931746...): that is no change and the signature stays (a clinician trial lost it at
    every restart). A result for a nodule that had none keeps it too (the signed report
    computed that result); another result takes it away."""
    from thyroid_desktop.core.pipeline.tirads_ai import Suggestion, TiradsSuggestion

    suggestion = TiradsSuggestion(
        {"composition": Suggestion(Composition.SOLID, 0.7931746123, "image features")},
        size_px=41.23456,
        aspect=0.812345,
    )
    fresh = dataclasses.replace(estimate(0.71234567891), suggestion=suggestion)
    store = SessionStore(tmp_path)
    s = Session(store)
    s.add_image(A, "a.png")
    s.add_nodule(A, 0, BOX)
    n2 = s.add_nodule(A, 0, ROI(50, 50, 20, 20))
    s.set_estimate("N1", fresh)
    s.sign("Dr. Who", "2026-03-01T10:00:00+00:00")
    restored = Session(SessionStore(tmp_path))
    restored.load(SessionStore(tmp_path).open_study())
    assert restored.state.study.report.signed
    assert restored.state.nodule("N1").estimate != fresh  # rounded in the file
    restored.set_estimate("N1", fresh)  # analysed again after the restart
    assert restored.state.study.report.signed
    restored.set_estimate(n2, estimate(0.4, ROI(50, 50, 20, 20)))  # had none
    assert restored.state.study.report.signed
    restored.set_estimate("N1", estimate(0.2))  # another result
    assert not restored.state.study.report.signed
    # a forced ("Analyse anyway") result filling a nodule is a number the signer never saw
    restored.sign("Dr. Who", "2026-03-01T11:00:00+00:00")
    n3 = restored.add_nodule(A, 0, ROI(80, 80, 20, 20))
    restored.sign("Dr. Who", "2026-03-01T11:05:00+00:00")
    forced = dataclasses.replace(estimate(0.9, ROI(80, 80, 20, 20)), overridden_reason="lung")
    restored.set_estimate(n3, forced)
    assert not restored.state.study.report.signed
