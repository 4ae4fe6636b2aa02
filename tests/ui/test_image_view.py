"""The image view on its own (no models)."""

import numpy as np
import pytest

from thyroid_desktop.ui.image_view import ImageView


@pytest.mark.parametrize("zoom", [1.0, 2.0])
def test_an_emptied_view_has_nothing_to_scroll(qtbot, zoom):
    """After an image wider than the view (zoomed in or not), clearing it leaves no scroll
    bar: the scene used to keep the hidden items' extent (found in a clinician trial)."""
    view = ImageView()
    qtbot.addWidget(view)
    view.resize(600, 400)
    view.show()
    view.set_image(np.zeros((300, 1400, 3), np.uint8))
    view.set_roi(None)
    if zoom != 1.0:
        view.zoom(zoom)
    qtbot.wait(20)
    view.clear()
    qtbot.wait(20)
    assert not view.horizontalScrollBar().isVisible()
    assert not view.verticalScrollBar().isVisible()
    assert not view.user_zoomed


def test_a_long_nodule_entry_is_elided_not_cut_and_keeps_the_column_narrow(qtbot):
    """The nodule list's shown entry ends in "…" where a long file name does not fit (it
    was cut off mid-letter), its tool tip has all of it, and it does not widen the panel."""
    from thyroid_desktop.core.pipeline.roi import ROI, BoxSource
    from thyroid_desktop.core.review.session import Lobe, Nodule, Pole
    from thyroid_desktop.ui.nodule_panel import NodulePanel

    panel = NodulePanel()
    qtbot.addWidget(panel)
    panel.show()
    narrow = panel.sizeHint().width()
    nodule = Nodule("N1", "a" * 64, 6, ROI(1, 2, 30, 40), BoxSource.MANUAL, Lobe.RIGHT, Pole.UPPER)
    name = "a_scanner_export_with_a_very_long_file_name_0001.dcm"
    panel.show_nodules([nodule], "N1", {"a" * 64: name})
    panel.resize(narrow, panel.sizeHint().height())
    qtbot.wait(20)
    full = panel.choice.currentText()
    assert full == f"N1 · right lobe, upper · {name} frame 7"
    assert panel.choice.toolTip() == full
    shown = panel.choice.shown_text()
    assert shown.endswith("…") and shown.startswith("N1 · right lobe")
    assert panel.sizeHint().width() == narrow


def test_the_study_pdf_draws_box_outline_and_calipers_in_the_windows_colours():
    """A GUI trial: the PDF drew the nodule's outline green, the window's colour for the
    thyroid gland's outline, while the window draws it orange."""
    from thyroid_desktop.core.report import pdf
    from thyroid_desktop.ui import image_view

    assert image_view.CONTOUR_COLOR.name() == pdf.OUTLINE_COLOUR
    assert image_view.BOX_COLOR.name() == pdf.BOX_COLOUR
    assert image_view.CALIPER_COLOR.name() == pdf.CALIPER_COLOUR
