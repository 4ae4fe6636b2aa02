"""Issue 22's scripted session, as a clinician would do it in the window (real models):
open 5 images, accept 2 proposals, reject the rest, click one nodule, measure each: the
study report and the CSV hold exactly those 3 nodules, each with its caliper."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
from pypdf import PdfReader
from PySide6.QtCore import QPointF, Qt

from tests.ui.test_calipers import _drag

INSCOPE = Path(__file__).resolve().parents[1] / "assets" / "inscope_bmode.png"
#: Where the synthetic image's nodule is (tests/assets/make_inscope_image.py).
NODULE = (280.0, 334.0)


def _settled(window, qtbot):
    review = window.review
    qtbot.waitUntil(
        lambda: (review.finding is not None or review.nothing_found) and not review.awaiting,
        timeout=120000,
    )


def _five_images(tmp_path) -> list[Path]:
    """Five different files: the synthetic in-scope image mirrored and shifted (the last one
    as it is, its nodule where NODULE says)."""
    image = cv2.imread(str(INSCOPE), cv2.IMREAD_GRAYSCALE)
    variants = [
        image[:, ::-1],
        np.roll(image, 30, axis=1),
        np.roll(image[:, ::-1], -30, axis=1),
        np.roll(image, -25, axis=1),
        image,
    ]
    paths = []
    for i, pixels in enumerate(variants):
        paths.append(tmp_path / f"scan{i + 1}.png")
        cv2.imwrite(str(paths[-1]), np.ascontiguousarray(pixels))
    return paths


def _reject_all(window, qtbot) -> None:
    """X on every proposal of the frame shown (the keys work with the list focused)."""
    for _ in range(10):
        if window.review.proposal is None:
            return
        qtbot.keyClick(window.study_list, Qt.Key.Key_X)
        qtbot.waitUntil(lambda: not window.review.awaiting, timeout=60000)
    raise AssertionError("proposals kept coming")


def _measure(window, qtbot) -> str:
    """A caliper across the shown nodule's box; its label (number and length)."""
    box = window.review.roi
    y = box.y + box.h / 2
    window.measure_nodule()
    _drag(qtbot, window.view, (box.x + 3.0, y), (box.x + box.w - 3.0, y))
    (item,) = window.view.calipers()
    return item.label_text


def test_open_five_accept_two_click_one_reject_the_rest_gives_three_nodules(
    window, qtbot, tmp_path
):
    paths = _five_images(tmp_path)
    window.open_paths(paths)
    labels = {}
    for row in range(5):
        window.select(row)
        _settled(window, qtbot)
        if row < 2:  # accepted: Enter with the study list focused
            assert window.review.proposal is not None, f"no proposal on {paths[row].name}"
            qtbot.keyClick(window.study_list, Qt.Key.Key_Return)
            qtbot.waitUntil(lambda n=row + 1: len(window.session.state.nodules) == n)
        else:
            _reject_all(window, qtbot)
        if row == 4:  # the clinician clicks on the nodule the detector was told is not one
            vp = window.view.viewport()
            qtbot.mouseClick(
                vp, Qt.MouseButton.LeftButton, pos=window.view.mapFromScene(QPointF(*NODULE))
            )
            qtbot.waitUntil(lambda: len(window.session.state.nodules) == 3, timeout=60000)
            qtbot.waitUntil(lambda: not window.review.awaiting, timeout=60000)
        if row in (0, 1, 4):
            labels[window.review.nodule_id] = _measure(window, qtbot)
    nodules = window.session.state.nodules
    assert [n.id for n in nodules] == ["N1", "N2", "N3"] and sorted(labels) == ["N1", "N2", "N3"]
    assert [len(n.calipers) for n in nodules] == [1, 1, 1]

    out = tmp_path / "study.pdf"
    window.export_study_report(out)
    qtbot.waitUntil(lambda: getattr(window, "last_report", None) == out, timeout=120000)
    pages = [" ".join(p.extract_text().split()) for p in PdfReader(out).pages]
    text = " ".join(pages)
    summary = pages[0]
    assert all(f"{n} - " in summary for n in labels) and "N4" not in text
    files = {"N1": "scan1.png", "N2": "scan2.png", "N3": "scan5.png"}
    for n, label in labels.items():  # a page per nodule, its caliper drawn and listed
        (page,) = [p for p in pages if f"Image {files[n]}" in p]
        assert f"{n} {files[n]}" in page and f"Calipers {label}" in page
    assert window.export_csv(tmp_path / "study.csv")
    with open(tmp_path / "study.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["nodule"] for r in rows] == ["N1", "N2", "N3"]
    assert [Path(r["file"]).name for r in rows] == ["scan1.png", "scan2.png", "scan5.png"]
