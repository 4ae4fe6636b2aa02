"""The thyroid-gland outline in the viewer (real models, a real tg3k frame)."""

from __future__ import annotations

import csv


def test_gland_outline_is_drawn_and_toggled(window, qtbot, shared_data):
    with open(shared_data / "tg3k" / "gland_masks.csv", newline="") as fh:
        first_test = next(r for r in csv.DictReader(fh) if r["split"] == "test")
    assert window.open_paths([shared_data / "tg3k" / first_test["file"]])
    review = window.review  # a proposal analysed, or nothing found (no estimate)
    qtbot.waitUntil(
        lambda: (review.finding is not None or review.nothing_found) and not review.awaiting,
        timeout=120000,
    )
    assert window.segmenter.gland is not None
    outline = window.view.gland_outline()
    assert not outline.isEmpty()
    box = outline.boundingRect()
    assert box.width() > 20 and box.height() > 10  # a gland, not a speck
    assert window.view._gland.isVisible()
    window.gland_action.trigger()  # View > Thyroid gland outline (T)
    assert not window.view._gland.isVisible() and not window.gland_action.isChecked()
    window.gland_action.trigger()
    assert window.view._gland.isVisible()
