"""The reading session in the real window: cine loops, undo/redo, restore after a restart
(even a killed one), and TI-RADS choices that only change on purpose."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from thyroid_desktop.core.clinical.tirads import Composition, EchogenicFoci, Margin
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.roi import ROI, BoxSource
from thyroid_desktop.core.report.names import report_file_name
from thyroid_desktop.ui.main_window import MainWindow


def _png(tmp_path, name="scan.png", seed=0):
    path = tmp_path / name
    cv2.imwrite(str(path), np.asarray(make_phantom(seed=seed).pixels))
    return path


def _analysed(window, qtbot):
    qtbot.waitUntil(
        lambda: window.review.finding is not None and not window.review.awaiting, timeout=120000
    )


def _accepted(window, qtbot):
    """The detector's proposal, analysed, accepted by the clinician (a nodule)."""
    _analysed(window, qtbot)
    assert window.review.proposal is not None and window.view.box_is_proposal()
    window.accept_proposal()
    assert window.review.nodule() is not None and not window.view.box_is_proposal()


def test_cine_opens_on_the_best_frame_and_steps_with_keys(window, qtbot, cine_dicom):
    assert window.open_paths([cine_dicom])
    bar = window.frame_bar
    assert bar.isVisible() and bar.n_frames == 12
    qtbot.waitUntil(lambda: window.review.image.frame_index >= 2, timeout=120000)
    _analysed(window, qtbot)
    scores = window.review.frame_scores[window.review.image.sha256]
    best = window.review.image.frame_index
    assert best == int(np.nanargmax(scores)) and scores[0] == 0.0
    assert window.review.finding.roi_source == "auto" and bar.frame == best
    assert f"frame {best + 1} of 12" in window.windowTitle()
    assert window.session.state.nodules == ()  # a proposal until accepted
    keys = window.study_list  # the keys are the window's, whatever widget has focus
    keys.setFocus()
    qtbot.keyClick(keys, Qt.Key.Key_Return)
    (nodule,) = window.session.state.nodules
    assert nodule.frame == best and nodule.box == window.review.finding.roi
    assert window.nodules.choice.currentData() == "N1"
    assert window.export_csv(cine_dicom.with_name("study.csv"))
    assert f"{cine_dicom},{best}," in cine_dicom.with_name("study.csv").read_text()
    qtbot.keyClick(keys, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: window.review.image.frame_index == best + 1, timeout=10000)
    _analysed(window, qtbot)
    # another frame: the panel shows no nodule, and the box drawn is not N1's
    assert window.review.nodule() is None and window.nodules.choice.currentData() is None
    assert window.view.roi() is None or window.view.box_is_proposal()
    qtbot.keyClick(keys, Qt.Key.Key_Left)
    qtbot.waitUntil(lambda: window.review.image.frame_index == best, timeout=10000)
    assert window.nodules.choice.currentData() == "N1" and window.view.roi() == nodule.box
    assert not window.view.box_is_proposal()
    qtbot.keyClick(keys, Qt.Key.Key_Left)
    qtbot.waitUntil(lambda: window.review.image.frame_index == best - 1, timeout=10000)
    assert window.session.state.image(window.review.image.sha256).frame == best - 1
    combo = next(iter(window.tirads._combos.values()))
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Space)
    assert bar.playing
    qtbot.waitUntil(lambda: window.review.image.frame_index not in (best - 1,), timeout=10000)
    qtbot.keyClick(keys, Qt.Key.Key_Space)
    assert not bar.playing
    _analysed(window, qtbot)  # the frame it stopped on is analysed


def test_box_and_tirads_edits_undo_and_redo(window, qtbot, tmp_path):
    window.open_paths([_png(tmp_path)])
    _analysed(window, qtbot)
    auto_box = window.review.roi
    assert auto_box is not None and window.session.undo_text == ""  # detection: no undo step
    moved = ROI(auto_box.x + 15, auto_box.y, auto_box.w, auto_box.h)
    window.set_roi(moved)
    _analysed(window, qtbot)
    window.tirads.select(Composition.SOLID)
    assert window.session.state.nodules[0].tirads.composition is Composition.SOLID
    assert window.undo_action.text() == "&Undo TI-RADS N1"
    qtbot.keyClick(window.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.tirads.choices().composition is None
    assert window.statusBar().currentMessage() == "Undone: TI-RADS N1."
    window.undo()
    qtbot.waitUntil(lambda: window.view.roi() == auto_box, timeout=10000)
    _analysed(window, qtbot)
    assert window.review.finding.roi == auto_box
    window.redo()
    window.redo()
    assert window.statusBar().currentMessage() == "Redone: TI-RADS N1."
    _analysed(window, qtbot)
    assert window.review.roi == moved and window.tirads.choices().composition is Composition.SOLID


def test_reopening_the_same_file_restores_the_work(qtbot, tmp_path):
    path = _png(tmp_path, seed=2)
    first = MainWindow()
    qtbot.addWidget(first)
    first.start_model_loading()
    first.open_paths([path])
    _analysed(first, qtbot)
    box = ROI(
        first.review.roi.x + 10, first.review.roi.y + 5, first.review.roi.w, first.review.roi.h
    )
    first.set_roi(box)
    _analysed(first, qtbot)
    first.tirads.select(Margin.LOBULATED)
    first.set_user_scale(0.1)
    first.close()
    second = MainWindow()
    qtbot.addWidget(second)
    second.start_model_loading()
    second.open_paths([path])
    _analysed(second, qtbot)
    assert second.review.roi == box and second.review.finding.roi == box
    assert second.tirads.choices().margin is Margin.LOBULATED
    assert second.review.user_mm_per_px == 0.1


KILLED_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from thyroid_desktop.core.pipeline.roi import ROI
    from thyroid_desktop.core.clinical.tirads import Composition
    from thyroid_desktop.ui.main_window import MainWindow

    app = QApplication([])
    w = MainWindow()
    w.show()
    w.start_model_loading()
    w.open_paths([sys.argv[1]])
    shown = []

    def edit():
        w.set_roi(ROI(200, 100, 140, 120))
        w.tirads.select(Composition.MIXED)

    def on_result(_finding):
        shown.append(_finding)
        if len(shown) == 1:
            QTimer.singleShot(0, edit)
        elif len(shown) == 2:
            box, choice = w.view.roi().as_list(), w.tirads.choices().composition.name
            print("on screen", box, choice, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)  # no closeEvent, no clean exit

    w.findingShown.connect(on_result)
    app.exec()
    """
)


def test_killing_the_app_mid_session_loses_nothing_on_screen(qtbot, tmp_path):
    path = _png(tmp_path, seed=3)
    child = subprocess.run(
        [sys.executable, "-c", KILLED_CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert child.returncode == -9, child.stderr[-2000:]
    assert "on screen [200, 100, 140, 120] MIXED" in child.stdout
    window = MainWindow()
    qtbot.addWidget(window)
    window.start_model_loading()
    window.open_paths([path])
    _analysed(window, qtbot)
    assert window.review.roi == ROI(200, 100, 140, 120)
    assert window.tirads.choices().composition is Composition.MIXED
    saved = json.loads(
        next((tmp_path / "user-data" / "sessions").glob("[0-9a-f]*.json")).read_text()
    )
    assert saved["nodules"][0]["tirads"]["composition"] == "MIXED"


def test_wheel_and_image_keys_never_change_a_tirads_choice(window, qtbot, tmp_path):
    a, b = _png(tmp_path, "a.png", 0), _png(tmp_path, "b.png", 1)
    window.open_paths([a, b])
    window.study_list.setCurrentRow(0)
    _analysed(window, qtbot)
    combo = window.tirads._combos["composition"]
    before = combo.currentIndex()
    wheel = QWheelEvent(
        QPointF(5, 5),
        QPointF(combo.mapToGlobal(QPoint(5, 5))),
        QPoint(0, 0),
        QPoint(0, -120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(combo, wheel)
    assert combo.currentIndex() == before  # the wheel scrolls the panel, not the choice
    combo.setCurrentIndex(combo.findData(Composition.SOLID))
    combo.activated.emit(combo.currentIndex())  # chosen with the mouse: keys go back
    assert window.view.hasFocus() or QApplication.focusWidget() is window.view
    qtbot.keyClick(window.view, Qt.Key.Key_Down)
    qtbot.waitUntil(lambda: window.review.current == 1, timeout=10000)
    window.study_list.setCurrentRow(0)
    qtbot.waitUntil(lambda: window.review.current == 0, timeout=10000)
    assert window.tirads.choices().composition is Composition.SOLID  # unchanged by the keys


def test_none_echogenic_foci_excludes_the_others(window, qtbot, tmp_path):
    window.open_paths([_png(tmp_path)])
    _analysed(window, qtbot)
    boxes = window.tirads._foci
    boxes[EchogenicFoci.PUNCTATE].click()
    assert not boxes[EchogenicFoci.NONE].isChecked()
    boxes[EchogenicFoci.MACRO].click()
    assert window.tirads.choices().foci == {EchogenicFoci.PUNCTATE, EchogenicFoci.MACRO}
    boxes[EchogenicFoci.NONE].click()
    assert window.tirads.choices().foci == {EchogenicFoci.NONE}
    assert not boxes[EchogenicFoci.PUNCTATE].isChecked()


def test_several_nodules_named_located_and_in_one_study_report(window, qtbot, tmp_path):
    from pypdf import PdfReader

    from thyroid_desktop.core.clinical.tirads import Echogenicity, Shape
    from thyroid_desktop.core.review.session import Lobe, Pole

    a, b = _png(tmp_path, "a.png", 0), _png(tmp_path, "b.png", 1)
    window.open_paths([a, b])
    window.study_list.setCurrentRow(0)
    _accepted(window, qtbot)
    assert [n.id for n in window.session.state.nodules] == ["N1"]
    window.start_new_nodule()
    window.set_roi(ROI(60, 40, 80, 70))
    _analysed(window, qtbot)
    assert [n.id for n in window.session.state.nodules] == ["N1", "N2"]
    assert window.nodules.choice.currentData() == "N2"
    n1_box = window.session.state.nodule("N1").box
    assert n1_box in [c.roi for c in window.review.proposals]  # N1 is the detector's box
    # N1 stays marked, thin and labelled, while N2 is the box being edited
    assert [(name, r.toRect().getRect()) for name, r in window.view.other_nodules()] == [
        ("N1", (n1_box.x, n1_box.y, n1_box.w, n1_box.h))
    ]
    # the detector's candidate that became N1 is not offered again as a dashed box
    dashed = [r.toRect().getRect() for r in window.view.candidate_rects()]
    assert (n1_box.x, n1_box.y, n1_box.w, n1_box.h) not in dashed
    window.nodules.lobe.setCurrentIndex(window.nodules.lobe.findData(Lobe.RIGHT))
    window.nodules.lobe.activated.emit(window.nodules.lobe.currentIndex())
    window.nodules.pole.setCurrentIndex(window.nodules.pole.findData(Pole.UPPER))
    window.nodules.pole.activated.emit(window.nodules.pole.currentIndex())
    for choice in (Composition.SOLID, Echogenicity.HYPO, Shape.WIDER, Margin.LOBULATED):
        window.tirads.select(choice)
    window.tirads.set_focus(EchogenicFoci.NONE, True)  # all five set: a level
    assert window.session.state.nodule("N2").location == "right lobe, upper"
    window.pick_nodule("N1")
    _analysed(window, qtbot)
    assert window.review.roi == window.session.state.nodule("N1").box
    assert [name for name, _ in window.view.other_nodules()] == ["N2"]
    assert window.tirads.choices().composition is None  # N1's own (empty) choices
    window.study_list.setCurrentRow(1)
    _analysed(window, qtbot)
    assert [n.id for n in window.session.state.nodules] == ["N1", "N2"]  # b.png: a proposal
    window.nodules.choice.setFocus()
    qtbot.keyClick(window.nodules.choice, Qt.Key.Key_Y)  # accepted, focus elsewhere
    assert [n.id for n in window.session.state.nodules] == ["N1", "N2", "N3"]
    assert window.view.other_nodules() == []  # b.png has only its own N3
    b_key = window.session.state.nodule("N3").image
    window.pick_nodule("N2")
    qtbot.waitUntil(lambda: window.review.current == 0, timeout=10000)
    _analysed(window, qtbot)
    assert window.review.roi == ROI(60, 40, 80, 70)
    assert window.tirads.choices().margin is Margin.LOBULATED
    out = tmp_path / "study.pdf"
    window.export_study_report(out)
    qtbot.waitUntil(lambda: out.exists(), timeout=120000)
    pages = PdfReader(out).pages
    assert len(pages) == 4  # the summary, then one page per nodule
    summary = " ".join(pages[0].extract_text().split())
    for expected in ("study report", "N1", "N2", "N3", "right lobe, upper", "TR4", "not scored"):
        assert expected in summary, expected
    assert "a.png" in pages[2].extract_text() and "b.png" in pages[3].extract_text()
    from thyroid_desktop.core.report.audit import AuditLog

    def exported():
        return [r["roi"] for r in AuditLog().read() if r["action"] == "export-report"]

    qtbot.waitUntil(lambda: len(exported()) == 3, timeout=10000)  # one line per nodule
    assert exported() == [n.box.as_list() for n in window.session.state.nodules]
    details = {r["detail"] for r in AuditLog().read() if r["action"] == "export-report"}
    assert details == {f"study PDF {out}"}  # which report, not the one-nodule PDF
    window.pick_nodule("N2")
    window.delete_nodule()
    nodules = window.session.state.nodules
    assert [(n.id, n.image) for n in nodules] == [("N1", nodules[0].image), ("N2", b_key)]
    assert window.view.other_nodules() == []  # N1 is now the box being edited
    names = [window.nodules.choice.itemText(i) for i in range(window.nodules.choice.count())]
    assert names[0].startswith("N1") and names[1].startswith("N2") and "b.png" in names[1]
    window.undo()
    assert [n.id for n in window.session.state.nodules] == ["N1", "N2", "N3"]


def test_layout_thumbnails_resize_hint_and_about(window, qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from thyroid_desktop.ui.about import about_text
    from thyroid_desktop.ui.main_window import FIRST_RUN_HINT

    paths = [_png(tmp_path, f"s{i}.png", i) for i in range(3)]
    window.open_paths(paths)
    items = [window.study_list.item(i) for i in range(3)]
    qtbot.waitUntil(lambda: all(not it.icon().isNull() for it in items), timeout=60000)
    _analysed(window, qtbot)
    view = window.view
    window.resize(1400, 900)
    qtbot.wait(50)
    big = view.transform().m11()
    window.resize(900, 600)
    qtbot.waitUntil(lambda: view.transform().m11() < big * 0.95, timeout=5000)  # fitted again
    view.zoom(2.0)
    zoomed = view.transform().m11()
    window.resize(1300, 850)
    qtbot.wait(50)
    assert view.transform().m11() == zoomed  # the user's zoom is kept
    fresh = MainWindow(QSettings(str(tmp_path / "fresh.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(fresh)
    assert fresh.statusBar().currentMessage() == FIRST_RUN_HINT
    again = MainWindow(QSettings(str(tmp_path / "fresh.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    assert again.statusBar().currentMessage() == ""
    text = about_text(window.classifier, window.segmenter)
    assert window.classifier.card.id in text and "LGPL" in text and "segmenter" in text


def test_caliper_lines_size_the_nodule_and_undo(window, qtbot, tmp_path):
    window.open_paths([_png(tmp_path)])
    _accepted(window, qtbot)
    window.set_user_scale(0.1)
    window.measure_nodule()
    assert window.view.measuring
    window.view.lineDrawn.emit((10.0, 20.0), (130.0, 70.0))  # as a drag across the nodule ends
    (nodule,) = window.session.state.nodules
    assert [c.length_px for c in nodule.calipers] == [130.0]
    assert "calipers 13.0 mm (user scale)" in window.panel.size.text()
    window.undo()
    assert window.session.state.nodules[0].calipers == ()


def test_report_dialogs_remember_the_reports_folder(window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QDialog

    from thyroid_desktop.ui import exports

    window.open_paths([_png(tmp_path)])
    _accepted(window, qtbot)
    reports = tmp_path / "reports"
    reports.mkdir()
    asked = []

    def save_name(_parent, _title, suggested, _filter):
        asked.append(suggested)
        return str(reports / f"out{len(asked)}.pdf"), ""

    monkeypatch.setattr(exports.ReportDialog, "exec", lambda self: QDialog.DialogCode.Accepted)
    monkeypatch.setattr(exports.QFileDialog, "getSaveFileName", save_name)
    window.export_dialog()
    qtbot.waitUntil(lambda: (reports / "out1.pdf").exists(), timeout=60000)
    window.export_study_dialog()
    qtbot.waitUntil(lambda: (reports / "out2.pdf").exists(), timeout=120000)
    # opened where the last one went, named after the patient (none here) and the date
    assert asked[1] == str(reports / report_file_name("", ""))


def test_a_candidate_marked_as_another_nodule_is_drawn_as_that_nodule_and_n_skips_it(
    window, qtbot, tmp_path
):
    path = tmp_path / "two.png"
    two = np.hstack([make_phantom(seed=0).pixels, make_phantom(seed=1).pixels])
    cv2.imwrite(str(path), np.asarray(two))
    window.open_paths([path])
    _accepted(window, qtbot)
    assert len(window.review.proposals) == 2 and window.review.nodule_id == "N1"
    first, second = (c.roi for c in window.review.proposals)
    assert window.view.candidate_rects()  # the second candidate, dashed
    window.start_new_nodule()
    window.set_roi(second, BoxSource.AUTO)  # the second candidate becomes N2
    _analysed(window, qtbot)
    assert window.review.nodule_id == "N2" and len(window.review.proposals) == 2
    assert [name for name, _ in window.view.other_nodules()] == ["N1"]
    assert window.view.candidate_rects() == []  # N1's box is not offered as a candidate
    window.next_candidate()  # N: the only free candidate is N2's own box
    _analysed(window, qtbot)
    assert window.review.roi == second
    assert window.session.state.nodule("N1").box == first
    assert window.session.state.nodule("N2").box == second


def _one_nodule_accepted(qtbot, tmp_path):
    """A window with the in-scope test image open and its proposal accepted (analysed)."""
    inscope = Path(__file__).resolve().parents[1] / "assets" / "inscope_bmode.png"
    path = tmp_path / "scan.png"
    path.write_bytes(inscope.read_bytes())
    window = MainWindow()
    qtbot.addWidget(window)
    window.start_model_loading()
    window.open_paths([path])
    qtbot.waitUntil(lambda: window.review.proposal is not None, timeout=120000)
    window.accept_proposal()
    qtbot.waitUntil(lambda: not window.review.awaiting, timeout=120000)
    (nodule,) = window.session.state.nodules
    return window, nodule


def test_a_signed_study_restored_at_start_stays_signed(qtbot, tmp_path):
    """Sign, stop; at the next start the open study comes back and its shown nodule is
    analysed again with the same result: still signed (the file's rounded suggestion
    confidences counted as a change and took the signature away; found in a trial)."""
    first, nodule = _one_nodule_accepted(qtbot, tmp_path)
    assert nodule.estimate is not None and nodule.estimate.suggestion is not None
    assert first.sign_report("Dr Example")
    first.close()
    again = MainWindow()
    qtbot.addWidget(again)
    assert again.restore_open_study()
    assert again.session.state.study.report.signed
    again.start_model_loading()
    qtbot.waitUntil(lambda: again.review.finding is not None, timeout=120000)
    again.pool.waitForDone(60000)
    qtbot.wait(100)
    assert again.review.shown_result_matches()
    assert again.session.state.study.report.signed


def test_a_restored_nodule_shows_its_measured_size_before_the_model_is_loaded(qtbot, tmp_path):
    """Restored at start, a nodule with a caliper line under the user's scale shows its size
    in mm at once (the panel said nothing and the TI-RADS advice 'size not calibrated' until
    the model had loaded and analysed it; found in a trial)."""
    from thyroid_desktop.core.clinical.measure import Caliper

    first, nodule = _one_nodule_accepted(qtbot, tmp_path)
    first.session.set_user_scale(nodule.image, 0.1)
    b = nodule.box
    first.session.add_caliper("N1", Caliper((b.x, b.y + b.h / 2), (b.x + 100, b.y + b.h / 2)))
    first.close()
    again = MainWindow()  # the model is not loaded
    qtbot.addWidget(again)
    assert again.restore_open_study()
    assert "10.0 mm" in again.panel.size.text()


def test_a_loop_holding_a_view_shown_before_the_model_loads_stays_on_its_frame(qtbot, tmp_path):
    """A review: when the model became ready, a loop shown meanwhile (as the study restored
    at start-up is) was searched for its best frame although it holds a linked view."""
    from tests.conftest import write_cine_dicom
    from thyroid_desktop.core.clinical.measure import Plane
    from thyroid_desktop.core.io.images import open_image
    from thyroid_desktop.core.review.session import View

    a = _png(tmp_path, "a.png", 0)
    loop = write_cine_dicom(tmp_path / "loop.dcm", n_frames=6)
    key_a, key_loop = open_image(a).sha256, open_image(loop).sha256
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    s = w.session
    s.add_image(key_a, a)
    s.add_image(key_loop, loop, n_frames=6)
    n1 = s.add_nodule(key_a, 0, ROI(10, 10, 40, 40))
    s.link_view(n1, View(key_loop, 4, Plane.LONGITUDINAL, ROI(12, 10, 40, 40)))
    s.set_frame(key_loop, 4)
    assert w.open_paths([loop])
    qtbot.waitUntil(lambda: w.review.image is not None and w.review.pending, timeout=60000)
    w.start_model_loading()
    qtbot.waitUntil(
        lambda: w.classifier is not None and not w.review.pending and not w.review.awaiting,
        timeout=120000,
    )
    assert w.review.image.frame_index == 4 and key_loop not in w.review.frame_scores
    w.pool.waitForDone(30000)
