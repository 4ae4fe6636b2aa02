"""Caliper lines that stay (ends, frame, number), two views of a nodule, its three diameters
and ellipsoid volume: the size rule, the session (undo, save, old sessions) and the CSV."""

from __future__ import annotations

import csv
import json
import math

import pytest

from thyroid_desktop.core.clinical.measure import (
    Caliper,
    Plane,
    Scale,
    ScaleSource,
    SizeBasis,
    ViewMeasure,
    ellipsoid_volume_ml,
    nodule_size,
    three_diameters,
)
from thyroid_desktop.core.pipeline.roi import ROI, BoxSource
from thyroid_desktop.core.review.session import (
    Estimate,
    Session,
    SessionStore,
    View,
    read_session,
    state_from_json,
    state_to_json,
    write_session,
)
from thyroid_desktop.core.review.study import ResultRow, StudyEntry, write_csv

A, B = "a" * 64, "b" * 64
USER = Scale.user_line(0.1)


def test_a_caliper_has_two_ends_a_frame_and_a_length_per_axis():
    c = Caliper((10, 20), (40, 60), frame=3)
    assert (c.dx, c.dy, c.length_px, c.frame) == (30.0, 40.0, 50.0, 3)
    assert c.length_mm(Scale(0.2, 0.1, ScaleSource.DICOM_PIXEL_SPACING)) == pytest.approx(
        math.hypot(3.0, 8.0)
    )
    assert c.length_mm(Scale.none()) is None
    assert c.with_end(1, (10, 80)) == Caliper((10, 20), (10, 80), 3)
    assert not c.horizontal and Caliper((0, 0), (10, 2)).horizontal


def test_ellipsoid_volume_of_a_known_ellipsoid():
    # semi-axes 10, 5, 15 mm: 4/3 pi abc = 3141.59 mm3; diameters 20, 10, 30 mm
    assert ellipsoid_volume_ml(20.0, 10.0, 30.0) == pytest.approx(4 / 3 * math.pi * 750 / 1000)
    assert ellipsoid_volume_ml(20.0, 10.0, 30.0) == pytest.approx(3.1416, abs=1e-4)


def test_three_diameters_from_calipers_where_drawn_else_the_box():
    trans = ViewMeasure(
        Plane.TRANSVERSE,
        ROI(0, 0, 250, 150),
        USER,
        calipers=(Caliper((0, 0), (200, 0)), Caliper((50, 0), (50, 100))),
    )
    longi = ViewMeasure(Plane.LONGITUDINAL, ROI(0, 0, 300, 120), USER)
    d = three_diameters((trans, longi))
    assert (d.width, d.depth, d.length) == pytest.approx((20.0, 10.0, 30.0))
    assert d.bases == (SizeBasis.CALIPERS, SizeBasis.CALIPERS, SizeBasis.BOX)
    assert d.volume_ml == pytest.approx(ellipsoid_volume_ml(20, 10, 30))
    assert d.text() == (
        "diameters 20.0 x 10.0 x 30.0 mm (W x AP x L; L from the box), volume 3.14 ml"
    )  # a trial read a box's AP among caliper diameters as measured
    assert three_diameters((trans,)) is None  # one plane: no diameters
    uncal = three_diameters((trans, ViewMeasure(Plane.LONGITUDINAL, ROI(0, 0, 300, 1), Scale())))
    assert uncal.volume_ml is None and not uncal.mm  # never a volume without a scale


def test_nodule_size_with_two_views_gives_diameters_volume_and_the_largest_diameter():
    box = ROI(0, 0, 200, 100)
    longi = ViewMeasure(Plane.LONGITUDINAL, ROI(5, 5, 300, 90), USER)
    size = nodule_size(box, USER, None, (), Plane.TRANSVERSE, (longi,))
    assert size.diameters.values_text() == "20.0 x 10.0 x 30.0 mm"
    assert size.volume_ml == pytest.approx(3.1416, abs=1e-4)
    assert size.max_diameter_mm == pytest.approx(30.0) and size.basis is SizeBasis.DIAMETERS
    assert "volume 3.14 ml" in size.text() and size.summary() == (
        "30.0 mm (three diameters), 3.14 ml"
    )
    one = nodule_size(box, USER)
    assert one.diameters is None and one.volume_ml is None and one.max_diameter_mm == 20.0


def test_calipers_are_added_moved_deleted_numbered_and_undone():
    s = Session()
    s.add_image(A, "a.dcm", n_frames=10)
    n1 = s.add_nodule(A, 2, ROI(10, 10, 100, 80))
    assert s.add_caliper(n1, Caliper((10, 10), (110, 10), 2)) == 1
    assert s.add_caliper(n1, Caliper((50, 10), (50, 90), 2)) == 2
    assert s.add_caliper(n1, Caliper((0, 0), (5, 5), 7)) == 3  # another frame of the loop
    n = s.state.nodule(n1)
    assert [c.number for c in n.calipers_on(A, 2)] == [1, 2]
    assert [c.number for c in n.calipers_on(A, 7)] == [3]
    s.move_caliper(n1, 2, Caliper((50, 10), (50, 70), 2))
    assert s.state.nodule(n1).calipers[1].length_px == 60.0
    assert s.undo_text == "move caliper 2 of N1"
    s.delete_caliper(n1, 1)
    lines = s.state.nodule(n1).numbered_calipers()
    assert [(c.number, c.caliper.length_px) for c in lines] == [(1, 60.0), (2, 5 * math.sqrt(2))]
    s.undo()
    assert s.state.nodule(n1).calipers[0] == Caliper((10, 10), (110, 10), 2)
    s.undo()
    assert s.state.nodule(n1).calipers[1].length_px == 80.0
    s.redo()
    s.redo()
    assert len(s.state.nodule(n1).calipers) == 2
    with pytest.raises(KeyError):
        s.delete_caliper(n1, 9)


def _two_view_session(store=None) -> tuple[Session, str]:
    s = Session(store)
    s.add_image(A, "a.dcm", n_frames=10)
    s.add_image(B, "b.png")
    n1 = s.add_nodule(A, 2, ROI(10, 10, 200, 100))
    s.add_caliper(n1, Caliper((10, 10), (210, 10), 2))
    dicom = Scale(0.1, 0.1, ScaleSource.DICOM_PIXEL_SPACING)
    s.link_view(n1, View(B, 0, Plane.LONGITUDINAL, ROI(0, 0, 300, 90), file_scale=dicom))
    s.add_caliper(n1, Caliper((0, 40), (290, 40), 0), view=0)
    return s, n1


def test_a_second_view_is_linked_undone_and_sized():
    s, n1 = _two_view_session()
    n = s.state.nodule(n1)
    assert n.plane is Plane.TRANSVERSE and n.views[0].plane is Plane.LONGITUDINAL
    assert [(c.number, c.view) for c in n.numbered_calipers()] == [(1, None), (2, 0)]
    (view,) = s.state.linked_views(n)
    assert view.scale.source is ScaleSource.DICOM_PIXEL_SPACING
    size = nodule_size(n.box, USER, None, n.calipers, n.plane, s.state.linked_views(n))
    assert size.diameters.values_text() == "20.0 x 10.0 x 29.0 mm"
    s.undo()  # the view's caliper
    s.undo()  # the link
    assert s.state.nodule(n1).views == () and s.state.nodule(n1).plane is None
    with pytest.raises(ValueError):
        s.link_view(n1, View(A, 2, Plane.LONGITUDINAL, ROI(0, 0, 5, 5)))


def test_linking_absorbs_the_nodule_marked_on_that_frame():
    s = Session()
    s.add_image(A, "a.dcm", n_frames=10)
    n1 = s.add_nodule(A, 2, ROI(10, 10, 200, 100))
    n2 = s.add_nodule(A, 6, ROI(0, 0, 300, 90))
    s.add_caliper(n2, Caliper((0, 0), (300, 0), 6))
    s.link_view(n1, View(A, 6, Plane.LONGITUDINAL, ROI(0, 0, 300, 90)), absorb=n2)
    assert [n.id for n in s.state.nodules] == [n1]
    assert s.state.nodule(n1).views[0].calipers == (Caliper((0, 0), (300, 0), 6),)
    s.undo()
    assert [n.id for n in s.state.nodules] == [n1, n2]


def test_calipers_and_views_are_saved_and_restored(tmp_path):
    store = SessionStore(tmp_path / "sessions")
    s, n1 = _two_view_session(store)
    saved = s.state.nodule(n1)
    again = Session(store)
    assert again.add_image(A, "a.dcm") and again.add_image(B, "b.png")
    assert again.state.nodule(n1) == saved
    path = write_session(tmp_path / "s.json", s.state)
    assert read_session(path).nodule(n1) == saved


def test_an_old_session_with_caliper_extents_still_opens():
    s = Session()
    s.add_image(A, "a.dcm")
    s.add_nodule(A, 0, ROI(100, 100, 40, 20))
    data = state_to_json(s.state)
    node = data["nodules"][0]
    del node["calipers"], node["views"], node["plane"]
    node["calipers_px"] = [[30.0, 40.0]]
    old = state_from_json(json.loads(json.dumps(data)))
    (c,) = old.nodules[0].calipers
    assert c.length_px == 50.0 and c.frame == 0
    assert ((c.start[0] + c.end[0]) / 2, (c.start[1] + c.end[1]) / 2) == (120.0, 110.0)


def test_the_csv_has_diameters_volume_and_caliper_lengths(tmp_path):
    s, n1 = _two_view_session()
    n = s.state.nodule(n1)
    est = Estimate(
        0.7,
        0.6,
        0.01,
        False,
        None,
        "",
        "suspicious",
        "m",
        "shipped",
        n.box,
        None,
        (),
        BoxSource.MANUAL,
    )
    entry = StudyEntry(tmp_path / "a.dcm", sha256=A, scale=Scale.none())
    row = ResultRow(entry, "analysed", est, 2, 0.1, n, s.state.linked_views(n))
    out = write_csv(tmp_path / "study.csv", [row])
    (line,) = list(csv.DictReader(out.open()))
    assert line["diameters"] == "20.0 x 10.0 x 29.0 mm"
    assert line["volume_ml"] == f"{ellipsoid_volume_ml(20, 10, 29):.2f}"
    assert line["calipers"] == "1: 20.0 mm; 2: 29.0 mm (longitudinal view)"  # as the PDF
    assert (line["frame"], line["frame_number"]) == ("2", "3")  # index; "frame 3 of 10"
    assert line["max_diameter_mm"] == "29.0" and line["size_basis"] == "three diameters"


def test_a_caliper_left_outside_a_moved_box_is_named_kept_and_reported(tmp_path):
    """A box moved or redrawn after the calipers were drawn (a drag inside a confirmed box
    moves it): the lines are the clinician's and stay, and still size the nodule, but the
    panel, the CSV, the report and signing say which ones to check."""
    s = Session()
    s.add_image(A, "a.dcm", n_frames=10)
    n1 = s.add_nodule(A, 2, ROI(10, 10, 100, 80))
    s.add_caliper(n1, Caliper((20, 50), (100, 50), 2))  # across the nodule, in its box
    assert s.state.nodule(n1).stray_calipers() == [] and s.state.caliper_checks() == []

    s.set_box(n1, ROI(150, 10, 100, 80))  # the box dragged off the line
    n = s.state.nodule(n1)
    assert [c.number for c in n.stray_calipers()] == [1]
    assert n.stray_text() == (
        "N1: caliper 1 lies outside its box: check that it measures this nodule"
    )
    assert s.state.caliper_checks() == [n.stray_text()]
    assert n.calipers == (Caliper((20, 50), (100, 50), 2),)  # kept
    size = nodule_size(n.box, USER, None, n.calipers)
    assert size.basis is SizeBasis.CALIPERS and size.max_diameter_mm == pytest.approx(8.0)
    entry = StudyEntry(tmp_path / "a.dcm", sha256=A, scale=Scale.none())
    est = Estimate(
        0.7, 0.6, 0.01, False, None, "", "suspicious", "m", "shipped", n.box, None, (),
        BoxSource.MANUAL,
    )  # fmt: skip
    row = ResultRow(entry, "analysed", est, 2, 0.1, n, ())
    (line,) = list(csv.DictReader(write_csv(tmp_path / "study.csv", [row]).open()))
    assert line["calipers"] == "1: 8.0 mm (outside the box)"
    assert line["size_check"] == n.stray_text()

    s.add_caliper(n1, Caliper((170, 30), (230, 60), 7))  # another frame, where the box is
    s.add_caliper(n1, Caliper((0, 0), (9, 9), 7))  # another frame, far from it
    n = s.state.nodule(n1)
    assert [c.number for c in n.stray_calipers()] == [1, 3]
    assert n.stray_text() == (
        "N1: calipers 1 and 3 lie outside its box: check that they measure this nodule"
    )
    for _ in range(3):
        s.undo()  # the lines, then the box back where the first line was drawn
    assert s.state.nodule(n1).stray_calipers() == [] and s.state.caliper_checks() == []


def test_a_linked_views_calipers_are_checked_against_that_views_box():
    s, n1 = _two_view_session()
    assert s.state.nodule(n1).stray_calipers() == []
    s.set_view_box(n1, 0, ROI(0, 200, 300, 90))  # the longitudinal view's box moved down
    n = s.state.nodule(n1)
    assert [(c.number, c.view) for c in n.stray_calipers()] == [(2, 0)]
    assert n.stray_text().startswith("N1: caliper 2 lies outside its box")
