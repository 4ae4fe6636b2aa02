"""Study list, batch, box editing, calibration, side-by-side view, typed report fields
and CSV export, driven on the real window with the real models."""

import csv
import threading

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRunnable, Qt

from thyroid_desktop.core.io.images import from_array, open_image
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.estimate import predict
from thyroid_desktop.core.pipeline.roi import ROI
from thyroid_desktop.core.report.pdf import StudyInfo


def _study_folder(tmp_path, n=3, bad=True):
    for i in range(n):
        cv2.imwrite(str(tmp_path / f"scan{i}.png"), np.asarray(make_phantom(seed=i).pixels))
    if bad:
        (tmp_path / "scan9.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return tmp_path


def _drag(qtbot, view, start_scene, end_scene):
    vp = view.viewport()
    start, end = view.mapFromScene(*start_scene), view.mapFromScene(*end_scene)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(vp, pos=QPoint((start.x() + end.x()) // 2, (start.y() + end.y()) // 2))
    qtbot.mouseMove(vp, pos=end)
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=end)


def test_folder_batch_fills_the_list_and_exports_csv(window, qtbot, tmp_path, classifier):
    (tmp_path / "study").mkdir()
    folder = _study_folder(tmp_path / "study")
    assert window.open_paths([folder])
    assert window.study_list.count() == 4 and window.review.current == 0
    qtbot.waitUntil(lambda: window.review.finding is not None, timeout=120000)
    with qtbot.waitSignal(window.batchFinished, timeout=120000) as done:
        window.analyse_all()
        assert window.batch.progress.isVisible()
    assert done.args == [3] and not window.batch.progress.isVisible()
    assert window.statusBar().currentMessage() == (
        "Batch finished: 2 image(s) analysed; 1 could not be read or analysed (the list says why)."
    )
    statuses = [window.review.status(i) for i in range(4)]
    assert statuses == ["analysed", "analysed", "analysed", "error"]
    bad = window.study_list.item(3).text()
    assert "scan9.png" in bad and "PNG" in bad  # the list entry says why
    assert window.session.state.nodules == ()  # the batch proposes; it confirms nothing
    listed = window.study_list.item(1).text()
    assert "proposal" in listed and "no estimate" not in listed
    out = tmp_path / "study.csv"
    assert window.export_csv(out)
    with open(out, newline="") as fh:
        assert list(csv.DictReader(fh)) == []  # browsed only: nothing in the CSV
    second = window.review.entries[1]
    window.study_list.setCurrentRow(1)
    qtbot.waitUntil(lambda: window.review.proposal is not None, timeout=60000)
    window.accept_proposal()
    (nodule,) = window.session.state.nodules_on(second.sha256)
    result = nodule.estimate
    image = open_image(second.path)
    expected = predict(image, classifier, result.box, "manual")
    assert result.no_estimate_reason == expected.no_estimate_reason == ""
    assert result.probability == pytest.approx(expected.estimate, abs=1e-6)
    assert expected.in_scope  # the thyroid-like phantoms pass the scope check
    assert f"{result.probability:.2f}" in listed  # the list showed the proposal's number
    assert window.export_csv(out)
    with open(out, newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["status"] == "analysed" and row["file"] == str(second.path)
    rows = [None, row]
    assert rows[1]["nodule"] == nodule.id and rows[1]["roi_w"] == str(result.box.w)
    assert rows[1]["probability"] == f"{result.probability:.4f}"
    assert rows[1]["model_estimate"] == expected.call_text
    assert rows[1]["no_estimate_reason"] == ""
    # each CSV written is audited, a line per nodule row with its numbers (it was not)
    from thyroid_desktop.core.report.audit import AuditLog

    csv_lines = [r for r in AuditLog().read() if r["action"] == "export-csv"]
    assert len(csv_lines) == 1 and csv_lines[0]["detail"] == f"study CSV {out}"
    line = csv_lines[0]
    assert line["image_sha256"] == second.sha256 and line["roi"] == result.box.as_list()
    assert line["probability"] == result.probability and line["file"] == str(second.path)
    assert line["nodule"] == nodule.id  # which nodule (a GUI trial matched them by box)
    assert rows[1]["caveats"] == "not validated at this site"


def test_batch_cancel_stops_after_the_current_image(window, qtbot, tmp_path):
    folder = _study_folder(tmp_path, n=4, bad=False)
    window.open_paths([folder])
    qtbot.waitUntil(lambda: window.review.finding is not None, timeout=120000)
    with qtbot.waitSignal(window.batchFinished, timeout=120000) as done:
        window.analyse_all()
        window.cancel_batch()
    assert done.args == [1]
    assert [window.review.status(i) for i in range(4)] == [
        "analysed",
        "analysed",
        "not analysed",
        "not analysed",
    ], [e.error for e in window.review.entries]


def test_arrow_keys_move_through_the_list_and_unreadable_entries_show_no_image(
    window, qtbot, tmp_path
):
    folder = _study_folder(tmp_path, n=2)
    window.open_paths([folder])
    # the list says the file cannot be read as soon as its thumbnail fails, before a click
    qtbot.waitUntil(lambda: "PNG" in window.study_list.item(2).text(), timeout=10000)
    assert "not analysed" not in window.study_list.item(2).text()
    window.study_list.setFocus()
    qtbot.keyClick(window.study_list, Qt.Key.Key_Down)
    assert window.review.current == 1 and window.review.image.source.name == "scan1.png"
    qtbot.keyClick(window.view, Qt.Key.Key_Up)  # the viewer passes Up/Down to the list
    assert window.review.current == 0 and window.review.image.source.name == "scan0.png"
    window.step(2)
    assert window.review.current == 2 and window.review.image is None
    assert "scan9.png" in window.panel.state.text() and "PNG" in window.panel.state.text()
    assert window.panel.size.text() == "" and window.tirads.descriptors() is None
    controls = (window.tirads, window.panel.overlay, window.nodules.add_button)
    assert not any(w.isEnabled() for w in controls)  # nothing on screen to describe
    qtbot.keyClick(window.view, Qt.Key.Key_G)  # the key does not toggle a disabled control
    assert window.panel.overlay.isChecked()
    window.step(-1)
    assert window.review.image.source.name == "scan1.png"
    assert all(w.isEnabled() for w in controls)
    window.step(1)
    assert not any(w.isEnabled() for w in controls)
    window.step(-1)
    assert all(w.isEnabled() for w in controls)
    window.new_study()  # an empty window: nothing to describe, as at start
    assert not any(w.isEnabled() for w in controls)


def test_box_is_moved_and_resized_with_the_mouse(window, qtbot):
    phantom = make_phantom()
    window.show_image(from_array(phantom.pixels), ROI(100, 80, 120, 100))
    window.resize(900, 700)
    window.view.actual_size()
    qtbot.waitUntil(lambda: window.review.finding is not None, timeout=120000)
    _drag(qtbot, window.view, (160, 130), (190, 150))  # inside: move by (30, 20)
    qtbot.waitUntil(lambda: window.review.finding.roi == ROI(130, 100, 120, 100), timeout=60000)
    assert window.review.finding.roi_source == "manual"
    _drag(qtbot, window.view, (250, 150), (280, 150))  # right edge: 30 px wider
    qtbot.waitUntil(lambda: window.review.finding.roi == ROI(130, 100, 150, 100), timeout=60000)
    assert window.review.roi == window.review.finding.roi


def test_user_scale_gives_mm_and_drawn_line_calibrates(window, qtbot, monkeypatch):
    from thyroid_desktop.ui import measure_actions

    phantom = make_phantom()
    window.show_image(from_array(phantom.pixels), phantom.nodule)
    qtbot.waitUntil(lambda: window.review.finding is not None, timeout=120000)
    assert "uncalibrated" in window.panel.size.text()
    window.set_user_scale(0.1)
    w, h = phantom.nodule.w * 0.1, phantom.nodule.h * 0.1
    # in scope: TI-RADS uses the segmenter's mask's longest axis; the box is listed too
    mask_mm = window.review.finding.tirads_suggestion.size_px * 0.1
    size = window.panel.size.text()
    assert f"mask's longest axis {mask_mm:.1f} mm (user scale)" in size
    assert f"box {w:.1f} x {h:.1f} mm" in size
    assert window.tirads._max_diameter_mm == pytest.approx(mask_mm)
    window.set_user_scale(None)
    assert "uncalibrated" in window.panel.size.text()
    # the calibration line: 200 px drawn, "10 mm" typed -> 0.05 mm per pixel
    monkeypatch.setattr(measure_actions.QInputDialog, "getDouble", lambda *a, **k: (10.0, True))
    window.resize(900, 700)
    window.view.actual_size()
    window.calibrate_scale()
    _drag(qtbot, window.view, (50, 40), (250, 40))
    assert window.review.user_mm_per_px == pytest.approx(10.0 / 200, rel=0.02)
    assert "(user scale)" in window.panel.size.text()


def test_side_by_side_shows_gradcam_beside_the_plain_image(window, qtbot):
    phantom = make_phantom()
    window.show_image(from_array(phantom.pixels), phantom.nodule)
    qtbot.waitUntil(lambda: window.review.finding is not None, timeout=120000)
    view = window.view
    width = phantom.pixels.shape[1]
    window.side_action.trigger()
    assert view.scene().sceneRect().width() > 2 * width
    assert view._twin_overlay.isVisible() and not view._overlay.isVisible()
    assert view._twin_box.isVisible()
    window.side_action.trigger()
    assert view.scene().sceneRect().width() == width and view._overlay.isVisible()


def test_report_carries_typed_fields_and_impression(window, qtbot, tmp_path):
    from pypdf import PdfReader

    from thyroid_desktop.ui.report_dialog import ReportDialog

    phantom = make_phantom()
    meta = {"PatientName": "Doe^Jane", "PatientID": "P123"}
    window.show_image(from_array(phantom.pixels, metadata=meta), phantom.nodule)
    qtbot.waitUntil(lambda: window.review.finding is not None, timeout=120000)
    dialog = ReportDialog(StudyInfo.from_metadata(meta, operator="Dr Who"))
    qtbot.addWidget(dialog)
    assert dialog.edits["patient_name"].text() == "Doe, Jane"
    dialog.edits["accession"].setText("ACC-7")
    dialog.impression.setPlainText("Solid hypoechoic nodule, agree with FNA.")
    study = dialog.study()
    assert study.operator == "Dr Who" and study.patient_id == "P123"
    out = tmp_path / "report.pdf"
    window.export_report(out, study)
    qtbot.waitUntil(lambda: out.exists(), timeout=60000)
    text = PdfReader(out).pages[0].extract_text()
    for expected in ("Doe, Jane", "P123", "ACC-7", "Dr Who", "agree with FNA"):
        assert expected in text


def test_dark_theme_follows_the_override(qapp, monkeypatch):
    from thyroid_desktop.ui.theme import apply_theme

    before = qapp.palette()
    try:
        monkeypatch.setenv("THYROID_THEME", "dark")
        assert apply_theme(qapp) is True
        assert qapp.palette().window().color().lightness() < 80
        monkeypatch.setenv("THYROID_THEME", "light")
        assert apply_theme(qapp) is False
        assert qapp.palette().window().color().lightness() > 180
    finally:
        qapp.setPalette(before)


def test_tirads_choices_belong_to_their_image(window, qtbot, tmp_path):
    from thyroid_desktop.core.clinical.tirads import (
        Composition,
        EchogenicFoci,
        Echogenicity,
        Margin,
        Shape,
    )

    window.open_paths([_study_folder(tmp_path, n=2, bad=False)])
    qtbot.waitUntil(lambda: window.review.finding is not None, timeout=120000)
    for choice in (Composition.SOLID, Echogenicity.VERY_HYPO, Shape.TALLER, Margin.SMOOTH):
        window.tirads.select(choice)  # describing the proposal accepts it
    window.tirads.set_focus(EchogenicFoci.NONE, True)
    scored = window.tirads.descriptors()
    assert scored.level.tr == 5 and "TR5" in window.study_list.item(0).text()
    window.step(1)
    assert window.tirads.descriptors() is None  # a new image starts not scored
    window.step(-1)
    assert window.tirads.descriptors() == scored


def test_dropping_files_and_a_folder_opens_them(window, qtbot, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    folder = _study_folder(tmp_path, n=2)
    single = tmp_path.parent / f"{tmp_path.name}_single.png"
    cv2.imwrite(str(single), np.asarray(make_phantom(seed=7).pixels))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(single)), QUrl.fromLocalFile(str(folder))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    assert [e.name for e in window.review.entries] == [
        single.name,
        "scan0.png",
        "scan1.png",
        "scan9.png",
    ]
    assert window.review.image.source == single


def test_a_box_drawn_while_auto_detect_runs_wins(window, qtbot):
    phantom = make_phantom(seed=3)
    qtbot.waitUntil(lambda: window.classifier is not None, timeout=120000)
    window.show_image(from_array(phantom.pixels))  # auto-detect queued
    manual = ROI(40, 40, 90, 80)
    window.set_roi(manual)  # before the auto result arrives
    window.pool.waitForDone(60000)
    qtbot.wait(200)  # let queued results reach the GUI thread
    assert window.review.finding.roi == manual and window.review.finding.roi_source == "manual"
    assert window.view.roi() == manual and window.review.roi == manual


def test_a_file_changed_on_disk_is_analysed_anew(window, qtbot, tmp_path):
    folder = _study_folder(tmp_path, n=2, bad=False)
    window.open_paths([folder])
    qtbot.waitUntil(lambda: window.review.finding is not None, timeout=120000)
    first = window.review.finding
    old_key = window.review.image.sha256
    window.set_user_scale(0.1)
    cv2.imwrite(str(folder / "scan0.png"), np.asarray(make_phantom(seed=11).pixels))
    window.step(1)
    window.step(-1)
    assert window.review.user_mm_per_px is None  # the scale was for the old image
    assert "uncalibrated" in window.panel.size.text() or window.panel.size.text() == ""
    qtbot.waitUntil(lambda: window.review.finding is not None, timeout=120000)
    assert window.review.finding is not first
    assert window.review.entries[0].sha256 == window.review.image.sha256 != old_key
    assert window.session.state.image(old_key).user_mm_per_px == 0.1  # kept for the old file


def test_calibration_mode_ends_when_the_image_changes(window, qtbot):
    window.show_image(from_array(make_phantom().pixels))
    window.calibrate_scale()
    assert window.view.measuring
    window.show_image(from_array(make_phantom(seed=1).pixels))
    assert not window.view.measuring


def test_other_candidates_are_dashed_and_can_be_picked(window, qtbot):
    two = np.hstack([make_phantom(seed=0).pixels, make_phantom(seed=1).pixels])
    window.show_image(from_array(two))
    qtbot.waitUntil(lambda: window.review.finding is not None, timeout=120000)
    assert (
        len(window.review.proposals) == 2
        and window.review.finding.roi == window.review.proposals[0].roi
    )
    dashed = window.view.candidate_rects()
    assert len(dashed) == 1 and "N)" in window.panel.state.text()
    window.next_candidate()  # N
    qtbot.waitUntil(
        lambda: window.review.finding.roi == window.review.proposals[1].roi, timeout=60000
    )
    assert window.review.finding.roi_source == "auto"
    # a click (no drag) inside the dashed box of the first candidate picks it back
    window.resize(1200, 700)
    window.view.fit()
    first = window.view.candidate_rects()[0].center()
    pos = window.view.mapFromScene(first)
    qtbot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.waitUntil(
        lambda: window.review.finding.roi == window.review.proposals[0].roi, timeout=60000
    )
    assert window.view.roi() == window.review.proposals[0].roi


def test_middle_drag_pans(window, qtbot):
    window.show_image(from_array(make_phantom().pixels))
    window.resize(600, 400)
    window.view.actual_size()
    window.view.zoom(3)
    bar = window.view.horizontalScrollBar()
    before = bar.value()
    vp = window.view.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.MiddleButton, pos=QPoint(300, 200))
    qtbot.mouseMove(vp, pos=QPoint(250, 200))
    qtbot.mouseMove(vp, pos=QPoint(200, 200))
    qtbot.mouseRelease(vp, Qt.MouseButton.MiddleButton, pos=QPoint(200, 200))
    assert bar.value() == before + 100


def test_results_arriving_after_close_are_dropped(window, qtbot):
    qtbot.waitUntil(lambda: window.classifier is not None, timeout=120000)
    window.show_image(from_array(make_phantom().pixels))  # auto-detect queued
    window.close()  # waits for the worker, then ignores what it sends
    qtbot.wait(100)
    assert window.review.finding is None


def test_a_status_line_about_one_image_goes_when_another_is_shown(window, qtbot, tmp_path):
    """ "Proposal accepted as N1" (or "AI suggestions accepted") is about the image it was
    said on: moving to the next image takes it away; a line about the study stays (found in
    a clinician trial: it stayed its 8 s over a refused image)."""
    window.open_paths([_study_folder(tmp_path, n=2, bad=False)])
    qtbot.waitUntil(lambda: window.review.proposal is not None, timeout=120000)
    window.accept_proposal()
    assert window.statusBar().currentMessage() == "Proposal accepted as N1."
    window.step(1)
    assert "N1" not in window.statusBar().currentMessage()
    window.step(-1)
    window.statusBar().showMessage("Report written to somewhere.pdf", 10000)
    window.step(1)
    assert window.statusBar().currentMessage() == "Report written to somewhere.pdf"


def test_describing_a_proposal_accepts_it_and_the_audit_log_says_so(window, qtbot, tmp_path):
    """A TI-RADS choice on the detector's proposal makes it a nodule (one step): a GUI trial
    found no ``accept-proposal`` line for it, as the Accept button writes."""
    from thyroid_desktop.core.clinical.tirads import Composition
    from thyroid_desktop.core.report.audit import AuditLog

    window.open_paths([_study_folder(tmp_path, n=1, bad=False)])
    qtbot.waitUntil(lambda: window.review.proposal is not None, timeout=120000)
    proposal = window.review.finding.roi
    window.tirads.select(Composition.SOLID)
    (nodule,) = window.session.state.nodules
    assert nodule.box == proposal and nodule.tirads.composition is Composition.SOLID
    accepted = [r for r in AuditLog().read() if r["action"] == "accept-proposal"]
    assert [r["roi"] for r in accepted] == [proposal.as_list()]
    assert "Enter accepts it" not in window.panel.state.text()  # no longer a proposal
    assert not window.panel.accept_button.isVisible()
    assert window.statusBar().currentMessage() == "Proposal accepted as N1."
    assert window.tirads.choices().composition is Composition.SOLID


class _Wait(QRunnable):
    """A worker job that holds the (one-thread) pool until ``event`` is set."""

    def __init__(self, event) -> None:
        super().__init__()
        self.event = event

    def run(self) -> None:
        self.event.wait(30)


def test_a_result_arriving_after_moving_on_is_kept_for_its_nodule(window, qtbot, tmp_path):
    """N2's box is changed and the clinician moves to the other image before its analysis
    ends: the result is still N2's (its box and frame), so the list and the CSV have its
    estimate as the report does (it stayed 'not analysed' until N2 was shown again)."""
    window.open_paths([_study_folder(tmp_path, n=2, bad=False)])
    for row in range(2):
        window.study_list.setCurrentRow(row)
        qtbot.waitUntil(lambda: window.review.proposal is not None, timeout=120000)
        window.accept_proposal()
        qtbot.waitUntil(lambda: not window.review.awaiting, timeout=120000)
    n2 = window.session.state.nodule("N2")
    bigger = ROI(n2.box.x - 10, n2.box.y - 5, n2.box.w + 20, n2.box.h + 10)
    busy = threading.Event()
    window.pool.start(_Wait(busy))  # the worker is busy (an earlier job): N2's waits
    window.set_roi(bigger)
    window.step(-1)
    busy.set()  # N2's job starts only now, stale: it must still run (found in a review)
    window.pool.waitForDone(120000)
    qtbot.wait(100)  # the result is delivered
    n2 = window.session.state.nodule("N2")
    assert n2.box == bigger and n2.estimate is not None and n2.estimate.box == bigger
    out = tmp_path / "study.csv"
    assert window.export_csv(out)
    with open(out, newline="") as fh:
        rows = {r["nodule"]: r for r in csv.DictReader(fh)}
    assert rows["N2"]["probability"] == f"{n2.estimate.probability:.4f}"
