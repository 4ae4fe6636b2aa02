"""Caliper lines that stay on the image (numbered, with their lengths), moved by an end,
deleted and undone; a second frame of a cine loop linked as a nodule's longitudinal view,
giving three diameters and a volume in the panel and in the study report."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pypdf import PdfReader
from PySide6.QtCore import QPointF, Qt

from thyroid_desktop.core.clinical.measure import Plane
from thyroid_desktop.core.io.phantom import make_phantom


def _analysed(window, qtbot):
    qtbot.waitUntil(
        lambda: window.review.finding is not None and not window.review.awaiting, timeout=120000
    )


def _drag(qtbot, view, a, b):
    """A left-drag on the image from scene point ``a`` to ``b``."""
    vp = view.viewport()
    pa, pb = view.mapFromScene(QPointF(*a)), view.mapFromScene(QPointF(*b))
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=pa)
    qtbot.mouseMove(vp, pos=pb)
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=pb)


def _labels(window):
    return [item.label_text for item in window.view.calipers()]


def test_a_caliper_stays_drawn_moves_is_deleted_and_undone(window, qtbot, tmp_path):
    path = tmp_path / "scan.png"
    cv2.imwrite(str(path), np.asarray(make_phantom(seed=0).pixels))
    window.open_paths([path])
    _analysed(window, qtbot)
    window.accept_proposal()  # the detector's proposal, confirmed: N1
    window.set_user_scale(0.1)
    box = window.review.roi
    y = box.y + box.h / 2
    a, b = (box.x + 5.0, y), (box.x + box.w - 5.0, y)

    window.measure_nodule()
    assert window.panel.state.text().startswith("Measure: drag across")
    _drag(qtbot, window.view, a, b)
    (nodule,) = window.session.state.nodules
    (c,) = nodule.calipers
    assert window.panel.state.text().startswith("Caliper 1 drawn")  # not the instruction
    assert c.length_px == pytest.approx(box.w - 10, abs=2)
    assert not window.view.measuring and window.view.calipers()  # it stays after the release
    assert _labels(window) == [f"1: {c.length_px * 0.1:.1f} mm"]
    assert f"calipers {c.length_px * 0.1:.1f} mm" in window.panel.size.text()
    assert window.panel.size.wordWrap()

    _drag(qtbot, window.view, b, (b[0], b[1] + 30))  # an end dragged down
    (moved,) = window.session.state.nodules[0].calipers
    assert moved.start == c.start and moved.end[1] == pytest.approx(b[1] + 30, abs=2)
    assert _labels(window) == [f"1: {moved.length_px * 0.1:.1f} mm"]
    assert window.undo_action.text() == "&Undo move caliper 1 of N1"

    middle = ((moved.start[0] + moved.end[0]) / 2, (moved.start[1] + moved.end[1]) / 2)
    qtbot.mouseClick(
        window.view.viewport(),
        Qt.MouseButton.LeftButton,
        pos=window.view.mapFromScene(QPointF(*middle)),
    )
    assert window.view.selected_caliper() == ("N1", 1)
    menu = window.view.caliper_menu(window.view.calipers()[0])
    assert menu.actions()[0].text().startswith("Delete caliper 1")
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key.Key_Delete)
    assert window.session.state.nodules[0].calipers == () and window.view.calipers() == []
    assert "calipers" not in window.panel.size.text()
    window.undo()
    assert window.session.state.nodules[0].calipers == (moved,)
    assert _labels(window) == [f"1: {moved.length_px * 0.1:.1f} mm"]  # drawn again
    # the panel's line no longer tells of an earlier step (a trial: "Caliper 1 drawn: …")
    assert window.panel.state.text() == "Undone: delete caliper 1 of N1."


def test_a_second_frame_linked_as_longitudinal_view_gives_three_diameters_and_volume(
    window, qtbot, cine_dicom, tmp_path
):
    assert window.open_paths([cine_dicom])
    qtbot.waitUntil(lambda: window.review.image.frame_index >= 2, timeout=120000)
    _analysed(window, qtbot)
    window.accept_proposal()
    (n1,) = window.session.state.nodules
    box = window.review.roi
    window.measure_nodule()
    y = box.y + box.h / 2
    _drag(qtbot, window.view, (box.x + 4.0, y), (box.x + box.w - 4.0, y))
    other = n1.frame - 1 if n1.frame > 3 else n1.frame + 1
    window.show_frame(other)
    qtbot.waitUntil(
        lambda: (
            window.review.image.frame_index == other
            and window.review.finding is not None
            and not window.review.awaiting
        ),
        timeout=120000,
    )
    assert window.review.roi is not None  # the detector's box on this frame
    assert window.link_view("N1", Plane.LONGITUDINAL)
    assert window.review.proposal is None and not window.view.box_is_proposal()
    state = window.panel.state.text()  # not the proposal's "Enter accepts it" any more
    assert "Enter accepts" not in state and state.startswith("This frame is N1's longitudinal")
    assert not window.panel.accept_button.isVisible()
    nodule = window.session.state.nodule("N1")
    assert nodule.plane is Plane.TRANSVERSE and nodule.views[0].frame == other
    text = window.panel.size.text()
    assert "diameters" in text and "(W x AP x L" in text and "), volume" in text and " ml" in text
    assert "longitudinal" in window.nodules.views.text()
    assert window.view.view_labels() == ["N1 longitudinal"]
    assert window.undo_action.text() == "&Undo link longitudinal view to N1"

    out = tmp_path / "study.pdf"
    window.export_study_report(out)
    qtbot.waitUntil(lambda: getattr(window, "last_report", None) == out, timeout=120000)
    pdf = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(out).pages)
    size = window.measurement()
    assert size.diameters.values_text() in pdf
    assert f"volume {size.volume_ml:.2f} ml" in pdf
    (line,) = nodule.calipers
    assert f"1: {line.length_px * 0.1:.1f} mm" in pdf  # the caliper's length, drawn and listed

    # away and back to the view's frame: the view again, not the detector's proposal of the
    # same nodule, which Enter made into a duplicate N2 (a GUI trial)
    view_box = nodule.views[0].box
    window.show_frame(n1.frame)
    _analysed(window, qtbot)
    window.show_frame(other)
    qtbot.waitUntil(
        lambda: window.review.image.frame_index == other and not window.review.awaiting,
        timeout=120000,
    )
    # The view's box may have been the detector's only candidate here: then nothing is found.
    assert window.review.proposal != view_box  # the view's box is not proposed again
    assert window.view.view_labels() == ["N1 longitudinal"]  # it is drawn as the view
    if window.review.proposal is None:
        window.accept_proposal()  # Enter: nothing to accept
        assert [n.id for n in window.session.state.nodules] == ["N1"]


def test_a_box_dragged_off_its_calipers_says_which_to_check_and_signing_asks(
    window, qtbot, tmp_path, monkeypatch
):
    """The GUI trial's slip: a drag inside the confirmed box (meant to measure) moved it away
    from the caliper line; the size was still quoted from that line without a word."""
    from PySide6.QtWidgets import QInputDialog, QMessageBox

    path = tmp_path / "scan.png"
    cv2.imwrite(str(path), np.asarray(make_phantom(seed=0).pixels))
    window.open_paths([path])
    _analysed(window, qtbot)
    window.accept_proposal()
    box = window.review.roi
    y = box.y + box.h / 2
    window.measure_nodule()
    _drag(qtbot, window.view, (box.x + 5.0, y), (box.x + box.w - 5.0, y))
    assert not window.panel.size_check.isVisible()

    centre = (box.x + box.w / 2, box.y + box.h / 4)  # inside the box, off the line
    _drag(qtbot, window.view, centre, (centre[0] + box.w + 10, centre[1]))  # moves the box
    _analysed(window, qtbot)
    assert window.review.roi.x > box.x + box.w  # the box no longer holds the line
    check = "N1: caliper 1 lies outside its box: check that it measures this nodule"
    assert window.panel.size_check.isVisible() and check in window.panel.size_check.text()
    assert "calipers" in window.panel.size.text()  # the clinician's line still sizes it

    asked = []

    def question(_parent, _title, text, *_args):
        asked.append(text)
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", question)
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Dr Test", True))
    window.sign_report_dialog()
    assert len(asked) == 1 and check in asked[0] and "Sign anyway?" in asked[0]
    assert not window.session.state.study.report.signed

    window.undo()  # the box back over the line
    qtbot.waitUntil(lambda: not window.panel.size_check.isVisible(), timeout=10000)
    window.redo()
    qtbot.waitUntil(lambda: window.panel.size_check.isVisible(), timeout=10000)
    (line,) = _labels(window)
    assert line.startswith("1: ")  # N1's line, N1 on screen

    window.start_new_nodule()  # a new nodule drawn where N1's line is
    _drag(qtbot, window.view, (box.x - 4.0, box.y - 4.0), (box.x + box.w + 4, box.y + box.h + 4))
    _analysed(window, qtbot)
    assert window.review.nodule_id == "N2"
    assert _labels(window) == [f"N1 · {line}"]  # not read as N2's own line
    window.new_study()  # nothing on screen: no warning left over
    assert not window.panel.size_check.isVisible() and window.panel.size_check.text() == ""
