"""Proposals and nodules in the window (real models): what the detector finds is a proposal
until the clinician accepts it, with keys that work whatever widget has focus; browsing
makes no nodule; nothing found means no estimate; TI-RADS has no level until all five
groups are set, and the panel and the PDF say the same."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
from pypdf import PdfReader
from PySide6.QtCore import Qt

from thyroid_desktop.core.clinical.tirads import (
    Composition,
    EchogenicFoci,
    Echogenicity,
    Margin,
    Shape,
)
from thyroid_desktop.core.io.phantom import make_phantom


def _settled(window, qtbot):
    """The shown frame's analysis is over: a result, or nothing found."""
    review = window.review
    qtbot.waitUntil(
        lambda: (review.finding is not None or review.nothing_found) and not review.awaiting,
        timeout=120000,
    )


def _png(tmp_path, name, pixels):
    cv2.imwrite(str(tmp_path / name), np.asarray(pixels))
    return tmp_path / name


def test_proposals_are_accepted_and_rejected_with_keys_whatever_has_focus(window, qtbot, tmp_path):
    two = np.hstack([make_phantom(seed=0).pixels, make_phantom(seed=1).pixels])
    window.open_paths([_png(tmp_path, "two.png", two)])
    _settled(window, qtbot)
    review = window.review
    first = review.proposal
    assert first is not None and window.session.state.nodules == ()
    assert window.view.box_is_proposal() and window.view.roi() == first
    assert "preliminary" in window.panel.kind.text()
    assert window.panel.accept_button.isVisible() and window.panel.reject_button.isVisible()
    combo = window.tirads._combos["margin"]  # the keyboard is in the TI-RADS panel
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_X)  # reject: the next candidate is proposed
    assert review.proposal != first and review.proposal is not None
    second = review.proposal
    qtbot.waitUntil(lambda: review.finding is not None and review.finding.roi == second)
    assert [r.getRect() for r in (c.toRect() for c in window.view.candidate_rects())] == []
    window.study_list.setFocus()  # now the keyboard is in the study list
    qtbot.keyClick(window.study_list, Qt.Key.Key_Return)
    (n1,) = window.session.state.nodules
    assert (n1.id, n1.box) == ("N1", second) and n1.estimate is not None
    assert not window.view.box_is_proposal() and not window.panel.accept_button.isVisible()
    assert window.nodules.choice.currentData() == "N1"
    qtbot.keyClick(window.study_list, Qt.Key.Key_X)  # no proposal left: nothing happens
    assert [n.id for n in window.session.state.nodules] == ["N1"]
    window.undo()  # accepting is one undo step
    assert window.session.state.nodules == ()


def test_browsed_images_reach_neither_the_csv_nor_the_report(window, qtbot, tmp_path):
    paths = [_png(tmp_path, f"scan{i}.png", make_phantom(seed=i).pixels) for i in range(3)]
    window.open_paths(paths)
    for row in range(3):
        window.study_list.setCurrentRow(row)
        _settled(window, qtbot)
        assert window.review.proposal is not None
    assert window.session.state.nodules == ()
    out = tmp_path / "study.csv"
    assert window.export_csv(out)
    with open(out, newline="") as fh:
        assert list(csv.DictReader(fh)) == []
    window.export_study_dialog()
    assert "Nothing to report" in window.last_message.windowTitle()
    window.export_dialog()  # the proposal on screen is not reported either
    assert "proposal, not a nodule" in window.last_message.text()
    window.accept_proposal()  # the clinician confirms the third one
    assert window.export_csv(out)
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["nodule"], r["file"]) for r in rows] == [("N1", str(paths[2]))]


def test_nothing_found_gives_no_estimate_and_no_heat_map_unless_asked(window, qtbot, tmp_path):
    flat = np.full((300, 400, 3), 90, np.uint8)
    window.open_paths([_png(tmp_path, "flat.png", flat)])
    _settled(window, qtbot)
    review = window.review
    assert review.nothing_found and review.finding is None and review.proposal is None
    # Nothing found, and the panel says why first: a flat frame is not B-mode ultrasound.
    state = window.panel.state.text()
    assert state.startswith("No estimate: the image does not look like grey-scale ultrasound")
    assert window.panel.probability.text() == "–" and window.view.roi() is None
    assert window.tirads.suggestion() is None
    assert "no estimate: out of scope" in window.study_list.item(0).text()  # not B-mode
    window.analyse_whole_image()  # the user asks for the scan area (W)
    qtbot.waitUntil(lambda: review.finding is not None and not review.awaiting, timeout=120000)
    assert window.panel.kind.text().startswith("Preliminary")
    assert window.session.state.nodules == ()


def test_no_tirads_level_until_five_groups_and_the_pdf_says_what_the_panel_says(
    window, qtbot, tmp_path
):
    window.open_paths([_png(tmp_path, "scan.png", make_phantom(seed=0).pixels)])
    _settled(window, qtbot)
    window.accept_proposal()
    panel = window.tirads
    assert not any(box.isChecked() for box in panel._foci.values())  # nothing pre-ticked
    for choice in (Composition.SOLID, Echogenicity.HYPO, Shape.WIDER, Margin.SMOOTH):
        panel.select(choice)
    assert panel.descriptors() is None
    assert panel.result.text() == "Not scored; open: echogenic foci"
    assert "TR" not in window.study_list.item(0).text()

    def pdf_text(name):
        out = tmp_path / name
        window.export_report(out)
        qtbot.waitUntil(lambda: out.exists(), timeout=60000)
        return " ".join(" ".join(p.extract_text().split()) for p in PdfReader(out).pages)

    assert f"ACR TI-RADS {panel.text()}" in pdf_text("open.pdf")
    panel.set_focus(EchogenicFoci.NONE, True)
    assert panel.result.text().startswith("TR4 (moderately suspicious), 4 points")
    text = pdf_text("scored.pdf")
    assert f"ACR TI-RADS {panel.text()}" in " ".join(text.split()) and "open:" not in text


INSCOPE = Path(__file__).resolve().parents[1] / "assets" / "inscope_bmode.png"


def _inside(box, x, y) -> bool:
    return box.x <= x < box.x + box.w and box.y <= y < box.y + box.h


def test_a_click_or_a_stroke_makes_an_outlined_nodule(window, qtbot, tmp_path):
    """A click on the image (outside every box) and a Shift+drag along a nodule go to the
    real AnalysisService.analyse_point / analyse_stroke: each gives a nodule (the click is
    the clinician's confirmation), its outline drawn, "size uncertain" said when the
    segmenter found nothing at the click and the box is a guess."""
    from PySide6.QtCore import QPointF

    from thyroid_desktop.core.analysis import BoxSource

    path = tmp_path / "inscope.png"
    path.write_bytes(INSCOPE.read_bytes())
    window.open_paths([path])
    _settled(window, qtbot)
    vp = window.view.viewport()

    def click(x, y):
        qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=window.view.mapFromScene(QPointF(x, y)))

    def count(n):
        qtbot.waitUntil(lambda: len(window.session.state.nodules) == n, timeout=60000)
        qtbot.waitUntil(lambda: not window.review.awaiting, timeout=60000)

    if window.review.proposal is not None:  # the detector's box covers the nodule: reject it
        qtbot.keyClick(window.study_list, Qt.Key.Key_X)
        qtbot.waitUntil(lambda: window.review.proposal is None or not window.review.awaiting)
    on_nodule = (280.0, 334.0)  # inside the synthetic nodule the detector proposed
    proposal = window.review.proposal
    assert proposal is None or not _inside(proposal, *on_nodule)
    click(*on_nodule)
    count(1)
    (n1,) = window.session.state.nodules
    assert n1.id == "N1" and n1.source is BoxSource.POINT and _inside(n1.box, *on_nodule)
    assert window.review.finding is not None and window.review.finding.roi == n1.box
    assert not window.view.contour().isEmpty() and not window.view.box_is_proposal()
    assert "outlined from your click" in window.panel.state.text()
    click(60.0, 60.0)  # plain speckle: nothing to outline, a box of default size
    count(2)
    assert _inside(window.session.state.nodule("N2").box, 60.0, 60.0)
    assert "size uncertain" in window.panel.state.text()
    assert window.view.contour().isEmpty()  # no outline drawn for a guessed box
    n1_box = window.session.state.nodule("N1").box
    click(n1_box.x + n1_box.w / 2, n1_box.y + n1_box.h / 2)  # inside N1's box: pick it
    qtbot.waitUntil(lambda: window.review.nodule_id == "N1", timeout=60000)
    qtbot.waitUntil(lambda: not window.review.awaiting, timeout=60000)
    assert len(window.session.state.nodules) == 2  # no new nodule from that click
    a, b = (225.0, 170.0), (345.0, 170.0)  # along the synthetic nodule's long axis
    qtbot.mousePress(
        vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
        window.view.mapFromScene(QPointF(*a)),
    )  # fmt: skip
    qtbot.mouseMove(vp, window.view.mapFromScene(QPointF(*b)))
    qtbot.mouseRelease(
        vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
        window.view.mapFromScene(QPointF(*b)),
    )  # fmt: skip
    count(3)
    n3 = window.session.state.nodule("N3")
    assert n3.source is BoxSource.STROKE and window.review.nodule_id == "N3"
    # the box spans the stroke, as it arrived: the viewport's whole pixels, mapped back (at
    # a zoom below 1 an earlier test's window size left, that is a pixel or two off a, b)
    view = window.view
    left, right = (view.mapToScene(view.mapFromScene(QPointF(*p))).x() for p in (a, b))
    assert n3.box.x <= left + 0.5 and n3.box.x + n3.box.w >= right - 0.5
