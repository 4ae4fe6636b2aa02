"""File > New study / Close study and one patient per study, in the real window: the window
only asks (the rules are ``core.review.lifecycle``'s); every answer is in the audit log."""

from __future__ import annotations

import numpy as np
import pytest

from tests.core.test_dicom import make_dataset, save
from thyroid_desktop.core.report.audit import AuditLog
from thyroid_desktop.core.review.lifecycle import Answer
from thyroid_desktop.ui.main_window import MainWindow


def _dicom(path, patient_id, name, seed):
    rng = np.random.default_rng(seed)
    ds = make_dataset(rng.integers(0, 255, (120, 160), dtype=np.uint8))
    ds.PatientID, ds.PatientName, ds.StudyDate = patient_id, name, "20260301"
    ds.StudyInstanceUID = f"1.2.826.0.1.{seed}"
    return save(ds, path)


@pytest.fixture
def bare_window(qtbot):
    """The window without models: opening, asking and closing need none."""
    w = MainWindow()
    qtbot.addWidget(w)
    return w


@pytest.mark.parametrize("answer", list(Answer))
def test_images_of_another_patient_ask_and_the_answer_is_logged(bare_window, tmp_path, answer):
    w = bare_window
    anna = _dicom(tmp_path / "anna.dcm", "P-1", "Doe^Anna", 1)
    ben = _dicom(tmp_path / "ben.dcm", "P-2", "Roe^Ben", 2)
    asked = []
    w.ask_other_patient = lambda adm: asked.append(adm.question) or answer
    assert w.open_paths([anna])
    assert "Doe, Anna (ID P-1), study 1 Mar 2026" in w.windowTitle() and not asked
    first_study = w.session.state.study.id
    w.open_paths([ben])
    assert len(asked) == 1 and "Roe, Ben (ID P-2)" in asked[0]
    (record,) = AuditLog().read()  # THYROID_AUDIT_LOG: this test's
    assert record["action"] == "other-patient-images"
    assert record["detail"].startswith(f"{answer}: 1 image(s) of Roe, Ben (ID P-2)")
    names = [e.name for e in w.review.entries]
    if answer is Answer.NEW_STUDY:
        assert names == ["ben.dcm"] and w.session.state.study.id != first_study
        assert "Roe, Ben (ID P-2)" in w.windowTitle() and w.study_list.count() == 1
    elif answer is Answer.ADD_ANYWAY:
        assert names == ["anna.dcm", "ben.dcm"] and w.session.state.study.id == first_study
        assert "+ images of another patient" in w.windowTitle()
    else:
        assert names == ["anna.dcm"] and w.study_list.count() == 1


def test_close_study_empties_the_window_and_reopening_brings_the_work_back(bare_window, tmp_path):
    from thyroid_desktop.core.pipeline.roi import ROI
    from thyroid_desktop.core.review.session import SessionStore

    w = bare_window
    anna = _dicom(tmp_path / "anna.dcm", "P-1", "Doe^Anna", 1)
    assert w.open_paths([anna])
    w.review.box_drawn(ROI(10, 10, 40, 30))  # as drawing a box does (no model needed)
    assert len(w.session.state.nodules) == 1
    (file_menu,) = [a.menu() for a in w.menuBar().actions() if a.text() == "&File"]
    (close,) = [a for a in file_menu.actions() if a.text() == "C&lose study"]
    close.trigger()
    assert w.study_list.count() == 0 and w.session.state.nodules == ()
    assert w.windowTitle() == "Thyroid Review — no patient data"
    assert SessionStore().open_study() is None  # a closed study is not reopened at start
    assert w.open_paths([anna])
    assert [n.box for n in w.session.state.nodules] == [ROI(10, 10, 40, 30)]


@pytest.mark.parametrize("current", [0, 2])
def test_closing_a_study_of_several_images_raises_nothing(bare_window, tmp_path, current):
    """Emptying the list moves its current row while the study is already gone: that row
    must not be opened (it raised IndexError in the list's signal)."""
    w = bare_window
    paths = [_dicom(tmp_path / f"{n}.dcm", "P-1", "Doe^Anna", 1) for n in "abc"]
    assert w.open_paths(paths)
    w.study_list.setCurrentRow(current)
    w.new_study()  # pytest-qt fails the test on an exception in a Qt slot
    assert w.study_list.count() == 0 and w.review.entries == []


def test_the_open_study_comes_back_at_start_even_when_its_files_are_gone(
    bare_window, qtbot, tmp_path
):
    from thyroid_desktop.core.pipeline.roi import ROI

    anna = _dicom(tmp_path / "anna.dcm", "P-1", "Doe^Anna", 1)
    assert bare_window.open_paths([anna])
    bare_window.review.box_drawn(ROI(10, 10, 40, 30))
    anna.unlink()
    again = MainWindow()  # the next start (the window of ui.app.run)
    qtbot.addWidget(again)
    assert again.restore_open_study()
    assert again.study_list.count() == 1 and len(again.session.state.nodules) == 1
    assert "unreadable" in again.windowTitle() and "anna.dcm" in again.review.entries[0].error
