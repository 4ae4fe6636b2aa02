"""Proposals and nodules in the window (real models): what the detector finds is a proposal
until the clinician accepts it, with keys that work whatever widget has focus; browsing
makes no nodule; nothing found means no estimate; TI-RADS has no level until all five
groups are set, and the panel and the PDF say the same."""

from __future__ import annotations

import csv

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
from thyroid_desktop.core.review.reading import NOTHING_FOUND


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
    assert window.panel.state.text() == NOTHING_FOUND
    assert window.panel.probability.text() == "–" and window.view.roi() is None
    assert window.tirads.suggestion() is None
    assert "no nodule found" in window.study_list.item(0).text()
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


class _Outline:
    """What ``AnalysisService.analyse_point`` / ``analyse_stroke`` return beside the finding
    (``core.pipeline.click.PointSegmentation``): here a disc, its size flagged a guess."""

    def __init__(self, roi, shape):
        yy, xx = np.mgrid[: shape[0], : shape[1]]
        cx, cy, r = roi.x + roi.w / 2, roi.y + roi.h / 2, min(roi.w, roi.h) / 2
        self.mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        self.size_uncertain, self.reason = True, "the outline touches the search window"


def test_a_click_or_a_stroke_makes_an_outlined_nodule(window, qtbot, tmp_path, monkeypatch):
    """The window's side of click-to-outline: the service's answer (stood in for here, as
    it is another module's) becomes a nodule, its outline drawn, "size uncertain" said."""
    from types import SimpleNamespace

    from PySide6.QtCore import QPointF

    from thyroid_desktop.core.analysis import ROI, BoxSource

    window.open_paths([_png(tmp_path, "scan.png", make_phantom(seed=0).pixels)])
    _settled(window, qtbot)
    service, asked = window.service, []

    def outline(kind):
        def run(image, prompt):
            asked.append((kind, prompt))
            x, y = prompt[0], prompt[1]
            box = ROI(int(x) - 20, int(y) - 15, 40, 30)
            result = service.analyse_box(image, box, BoxSource.MANUAL)
            outline = _Outline(box, image.pixels.shape[:2])
            return SimpleNamespace(  # an AnalysisResult with its ``segmentation``
                finding=result.finding, audit_problem="", segmentation=outline
            )

        return run

    monkeypatch.setattr(service, "analyse_point", outline("point"), raising=False)
    monkeypatch.setattr(service, "analyse_stroke", outline("stroke"), raising=False)
    proposal = window.review.proposal
    spot = (proposal.x + proposal.w + 40.0, proposal.y + 10.0)  # outside the proposal
    vp = window.view.viewport()
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=window.view.mapFromScene(QPointF(*spot)))
    qtbot.waitUntil(lambda: window.session.state.nodules != (), timeout=60000)
    (n1,) = window.session.state.nodules
    ((kind, (x, y)),) = asked
    assert kind == "point" and abs(x - spot[0]) < 2 and abs(y - spot[1]) < 2
    assert n1.box == ROI(int(x) - 20, int(y) - 15, 40, 30)
    qtbot.waitUntil(lambda: not window.review.awaiting, timeout=60000)
    assert not window.view.contour().isEmpty() and not window.view.box_is_proposal()
    assert "size uncertain" in window.panel.state.text()
    a, b = (20.0, 20.0), (60.0, 30.0)
    qtbot.mousePress(
        vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
        window.view.mapFromScene(QPointF(*a)),
    )  # fmt: skip
    qtbot.mouseMove(vp, window.view.mapFromScene(QPointF(*b)))
    qtbot.mouseRelease(
        vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
        window.view.mapFromScene(QPointF(*b)),
    )  # fmt: skip
    qtbot.waitUntil(lambda: len(window.session.state.nodules) == 2, timeout=60000)
    assert asked[1][0] == "stroke" and window.review.nodule_id == "N2"
