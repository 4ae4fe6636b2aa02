"""AI TI-RADS suggestions in the panel and the window: shown apart from the choices, counted
only once confirmed, accepted in one logged click, overridable, in the report and CSV."""

from __future__ import annotations

import csv
import json
import os

import pytest
from PySide6.QtCore import Qt

from tests.conftest import full_suggestion
from thyroid_desktop.core.clinical.tirads import (
    Composition,
    EchogenicFoci,
    Margin,
    Shape,
    TiradsChoices,
)
from thyroid_desktop.core.pipeline.tirads_ai import accept_all
from thyroid_desktop.ui.tirads_panel import TiradsPanel


def test_panel_shows_suggestions_apart_and_counts_only_confirmed_choices(qtbot):
    panel = TiradsPanel()
    qtbot.addWidget(panel)
    panel.show()
    sug = full_suggestion()
    panel.set_suggestion(sug)
    assert panel.suggestion_text("composition") == "AI: solid or almost completely solid · 80 %"
    assert panel.suggestion_text("shape") == "AI: wider-than-tall (from the mask)"
    assert "punctate" in panel.suggestion_text("echogenic_foci")
    # Nothing counts yet: the clinician's level is "not scored", the AI-only line is apart.
    assert panel.descriptors() is None and "Not scored" in panel.result.text()
    assert panel.ai_result.text().startswith("AI-only: TR5 (highly suspicious), 7 points")
    assert panel.accept_button.isVisible() and panel.accept_button.isEnabled()
    with qtbot.waitSignal(panel.acceptRequested):
        qtbot.mouseClick(panel.accept_button, Qt.MouseButton.LeftButton)
    panel.set_choices(accept_all(panel.choices(), sug))  # what the window does
    assert panel.descriptors().points == 7 and panel.result.text().startswith("TR5 (")
    assert panel.suggestion_text("margin").endswith("✓ accepted")
    assert not panel.accept_button.isEnabled()  # nothing open any more
    with qtbot.waitSignal(panel.changed):
        panel.select(Margin.LOBULATED)  # the clinician overrides one
    assert panel.suggestion_text("margin").endswith("✗ changed")
    assert panel.descriptors().points == 9
    panel.set_suggestion(None)
    assert panel.suggestion_text("composition") == "" and not panel.accept_button.isVisible()
    assert panel.ai_result.text() == ""


def test_a_choice_accepted_for_an_earlier_box_is_not_ticked_beside_a_new_suggestion(qtbot):
    """The box changed after "Accept AI suggestions" and the AI now suggests another shape
    and other foci: the panel must not put a tick beside the new suggestion (it reads as
    agreement); it says the clinician's choice came from the AI for an earlier box."""
    import dataclasses

    from thyroid_desktop.core.pipeline.tirads_ai import Suggestion

    panel = TiradsPanel()
    qtbot.addWidget(panel)
    sug = full_suggestion()
    panel.set_suggestion(sug)
    panel.set_choices(accept_all(panel.choices(), sug))
    groups = dict(sug.groups)
    groups["shape"] = Suggestion(Shape.TALLER, None, "mask geometry")
    groups["echogenic_foci"] = Suggestion(EchogenicFoci.MACRO, 0.6, "image features")
    panel.set_suggestion(dataclasses.replace(sug, groups=groups))
    shape, foci = panel.suggestion_text("shape"), panel.suggestion_text("echogenic_foci")
    assert "✓" not in shape and "✓" not in foci
    assert shape.startswith("AI: taller-than-wide") and "yours (wider-than-tall)" in shape
    assert "earlier box" in shape and "yours (punctate" in foci
    assert panel.suggestion_text("margin").endswith("✓ accepted")  # unchanged groups stay


def test_choices_of_an_old_session_keep_their_foci(qtbot):
    old = {"composition": "SOLID", "foci": ["MACRO"]}  # saved before ``foci_set`` existed
    assert TiradsChoices.from_json(old).foci_set
    scored = {"composition": "SOLID", "echogenicity": "HYPO", "shape": "WIDER"}
    scored |= {"margin": "SMOOTH", "foci": ["NONE"]}  # a complete score with "none"
    assert TiradsChoices.from_json(scored).foci_set
    assert not TiradsChoices.from_json({"composition": "SOLID", "foci": ["NONE"]}).foci_set


@pytest.fixture
def ddti_image(shared_data):
    with open(shared_data / "ddti" / "metadata.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["composition"] and r["mask"]]
    return shared_data / "ddti" / rows[0]["file"]


def test_window_suggests_accepts_logs_and_reports(window, qtbot, ddti_image, tmp_path):
    """A real ddti image with the real models: suggestions shown, accepted in one click
    (audit-logged, one undo step), one overridden, and all of it in the PDF and the CSV."""
    from pypdf import PdfReader

    assert window.open_paths([ddti_image])
    qtbot.waitUntil(
        lambda: window.review.finding is not None and not window.review.awaiting, timeout=120000
    )
    sug = window.review.finding.tirads_suggestion
    assert sug is not None and window.review.finding.roi_source == "auto"
    assert window.tirads.suggestion() is sug and window.tirads.descriptors() is None
    assert window.tirads.suggestion_text("shape").startswith("AI: ")
    assert window.review.proposal is not None and window.session.state.nodules == ()
    window.tirads.accept_button.click()  # accepting the AI's words accepts the proposal too
    nodule_id = window.review.nodule_id
    assert nodule_id == "N1"
    nodule = window.session.state.nodule(nodule_id)
    for group in ("composition", "echogenicity", "shape", "margin"):
        if group in sug.groups:
            assert getattr(nodule.tirads, group) is sug.groups[group].value
    assert window.session.undo_text == f"accept AI TI-RADS {nodule_id}"
    window.tirads.select(Shape.TALLER if sug.value("shape") is Shape.WIDER else Shape.WIDER)
    with open(os.environ["THYROID_AUDIT_LOG"]) as fh:
        audit = [json.loads(x) for x in fh]
    accepted = [r for r in audit if r["action"] == "accept-ai-tirads"]
    assert len(accepted) == 1
    (proposal,) = [r for r in audit if r["action"] == "accept-proposal"]  # it was accepted too
    assert proposal["roi"] == nodule.box.as_list()
    assert "Enter accepts it" not in window.panel.state.text()
    assert accepted[0]["tirads_suggested"]["shape"] in ("WIDER", "TALLER")
    assert set(accepted[0]["tirads_review"].values()) <= {"accepted", "open", "chosen"}
    auto = [r for r in audit if r["action"] == "auto-detect"][0]
    assert auto["tirads_suggested"] == accepted[0]["tirads_suggested"]
    if window.tirads.choices().composition is None:  # no composition head is offered
        window.tirads.select(Composition.SOLID)
    if not window.tirads.choices().foci_set:  # no foci suggestion: the clinician sets them
        window.tirads.set_focus(EchogenicFoci.NONE, True)
    assert window.tirads.descriptors() is not None  # now scored, by the clinician
    csv_path = tmp_path / "study.csv"
    assert window.export_csv(csv_path)
    with open(csv_path, newline="") as fh:
        row = next(csv.DictReader(fh))
    assert row["ai_tirads_level"].startswith(f"TR{sug.level.tr}") and row["tirads_level"]
    assert row["ai_tirads_level"].endswith("(incomplete)") is not sug.complete
    assert "shape changed" in row["tirads_review"]
    assert row["tirads_advice"] == window.tirads.advice.text() != ""  # as the panel says
    pdf = tmp_path / "r.pdf"
    window.export_report(pdf)
    qtbot.waitUntil(lambda: pdf.exists(), timeout=60000)
    text = "".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "AI suggestions" in text and "shape changed" in text
    if not sug.complete:
        assert "without composition (counted 0)" in text
