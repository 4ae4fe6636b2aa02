"""Thyroid only, in the window (issue 23, real models): an image of another organ gets no
estimate, no heat map, no AI TI-RADS, no gland outline and no proposal, with the reason;
"Analyse anyway" gives an estimate marked outside the validated scope, audited."""

from __future__ import annotations

import csv

import pytest
from pypdf import PdfReader
from PySide6.QtCore import Qt

from thyroid_desktop.core.analysis import ROI
from thyroid_desktop.core.report.audit import AuditLog


def _settled(window, qtbot):
    review = window.review
    qtbot.waitUntil(
        lambda: (review.finding is not None or review.nothing_found) and not review.awaiting,
        timeout=120000,
    )


def test_another_organ_is_refused_and_can_be_analysed_anyway(window, qtbot, shared_data, tmp_path):
    breast = sorted((shared_data / "nonthyroid" / "breast").glob("*.png"))
    if not breast:
        pytest.skip("../shared/data/nonthyroid is absent")
    window.open_paths([breast[0]])
    _settled(window, qtbot)
    review, panel = window.review, window.panel
    assert review.nothing_found and review.proposal is None and review.finding is None
    assert "does not look like thyroid ultrasound" in panel.state.text()
    assert panel.force_button.isVisible() and panel.probability.text() == "–"
    assert window.view.gland_outline().isEmpty() and window.view.candidate_rects() == []
    assert "out of scope" in window.study_list.item(0).text()
    qtbot.mouseClick(panel.force_button, Qt.MouseButton.LeftButton)
    _settled(window, qtbot)  # the detector's proposal, or nothing found: then a drawn box
    if review.finding is None:
        window.set_roi(ROI(60, 60, 120, 90))
        qtbot.waitUntil(lambda: review.finding is not None and not review.awaiting, timeout=120000)
    finding = review.finding
    assert finding.estimate is not None and finding.overridden_reason
    assert "Outside the validated scope" in panel.caveats.text()
    assert "Not validated at this site" in panel.caveats.text()
    assert not panel.force_button.isVisible()
    qtbot.waitUntil(lambda: "outside scope" in window.study_list.item(0).text())
    actions = [r["action"] for r in AuditLog().read()]
    assert actions[0] == "auto-detect" and "analyse-anyway" in actions
    if review.proposal is not None:
        window.accept_proposal()
    out = tmp_path / "study.pdf"  # the report marks it too
    window.export_study_report(out)
    qtbot.waitUntil(lambda: getattr(window, "last_report", None) == out, timeout=120000)
    text = " ".join(" ".join(p.extract_text().split()) for p in PdfReader(out).pages)
    assert "outside the validated scope" in text and "not validated at this site" in text
    table = tmp_path / "study.csv"
    assert window.export_csv(table)
    with open(table, newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["caveats"].startswith("outside the validated scope (analysed anyway: does not")
    assert row["caveats"].endswith("; not validated at this site")


def test_a_thyroid_image_shows_no_refusal(window, qtbot, tmp_path):
    from pathlib import Path

    asset = Path(__file__).resolve().parents[1] / "assets" / "inscope_bmode.png"
    window.open_paths([asset])
    _settled(window, qtbot)
    assert not window.panel.force_button.isVisible()
    finding = window.review.finding
    assert finding is not None and finding.in_scope and not finding.overridden_reason
    assert window.panel.caveats.text() == "Not validated at this site."
