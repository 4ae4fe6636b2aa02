"""Click and stroke to segment (``core.pipeline.click``): on the synthetic phantom with the
bundled segmenter, with made-up segmenters for the edge cases, and on a few real frames."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from thyroid_desktop.core.io.images import from_array, open_image
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.click import (
    ClickSettings,
    Uncertain,
    click_windows,
    segment_point,
    segment_stroke,
    square_window,
)
from thyroid_desktop.core.pipeline.fov import FieldOfView, detect_fov
from thyroid_desktop.core.pipeline.roi import ROI


@pytest.fixture(scope="module")
def phantom():
    ph = make_phantom()
    return ph, from_array(ph.pixels)


def centre(roi: ROI) -> tuple[float, float]:
    return roi.x + roi.w / 2, roi.y + roi.h / 2


def test_a_click_inside_the_nodule_outlines_it(phantom, segmenter):
    ph, img = phantom
    seg = segment_point(np.asarray(img.pixels), img.gray, segmenter, centre(ph.nodule))
    assert seg.roi.iou(ph.nodule) >= 0.5
    assert not seg.size_uncertain and seg.reason == ""
    assert seg.mask is not None and seg.mask.shape == img.gray.shape
    ys, xs = np.nonzero(seg.mask)  # the box is the mask's box
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (
        seg.roi.x,
        seg.roi.y,
        seg.roi.x + seg.roi.w,
        seg.roi.y + seg.roi.h,
    )
    contour = np.array(seg.contour)
    assert (
        len(contour) >= 4
        and cv2.pointPolygonTest(
            contour.reshape(-1, 1, 2).astype(np.int32), centre(ph.nodule), False
        )
        > 0
    )
    assert 0.5 <= seg.score <= 1.0


def test_a_sloppy_click_near_the_border_still_finds_the_nodule(phantom, segmenter):
    ph, img = phantom
    n = ph.nodule
    seg = segment_point(
        np.asarray(img.pixels), img.gray, segmenter, (n.x + n.w * 0.3, n.y + n.h * 0.6)
    )
    assert seg.roi.iou(n) >= 0.5


def test_a_click_on_background_gives_a_default_box_marked_uncertain(phantom, segmenter):
    ph, img = phantom
    point = (70.0, 300.0)
    assert detect_fov(img.gray).mask[300, 70]  # inside the scan area, far from the nodule
    seg = segment_point(np.asarray(img.pixels), img.gray, segmenter, point)
    assert seg.size_uncertain and seg.reason == Uncertain.NOTHING_AT_CLICK
    assert seg.mask is None and seg.contour == () and seg.score == 0.0
    cx, cy = centre(seg.roi)
    assert abs(cx - point[0]) <= 1 and abs(cy - point[1]) <= 1
    assert seg.roi.iou(ph.nodule) == 0.0


def test_a_stroke_along_the_nodule_spans_it(phantom, segmenter):
    ph, img = phantom
    n = ph.nodule
    stroke = (n.x + 2.0, n.y + n.h / 2, n.x + n.w - 2.0, n.y + n.h / 2)
    seg = segment_stroke(np.asarray(img.pixels), img.gray, segmenter, stroke)
    assert seg.roi.iou(n) >= 0.5 and seg.is_stroke and not seg.size_uncertain
    assert seg.roi.x <= stroke[0] and seg.roi.x + seg.roi.w >= stroke[2]


def test_a_stroke_over_background_gives_its_ellipse_marked_uncertain(phantom, segmenter):
    _, img = phantom
    stroke = (40.0, 300.0, 120.0, 300.0)  # horizontal, 80 px, below the nodule
    seg = segment_stroke(np.asarray(img.pixels), img.gray, segmenter, stroke)
    assert seg.size_uncertain and seg.reason == Uncertain.NOTHING_ON_STROKE
    assert seg.roi.x <= 40 and seg.roi.x + seg.roi.w >= 120  # spans the stroke
    assert seg.roi.h == pytest.approx(0.6 * 80, abs=2)  # the short axis guessed


def test_points_outside_the_image_are_refused(phantom, segmenter):
    _, img = phantom
    with pytest.raises(ValueError, match="outside"):
        segment_point(np.asarray(img.pixels), img.gray, segmenter, (img.width + 5, 10))
    with pytest.raises(ValueError, match="outside"):
        segment_stroke(np.asarray(img.pixels), img.gray, segmenter, (10, 10, -3, 10))


# ---------------------------------------------------------------- made-up segmenters


class Painted:
    """A segmenter that 'sees' a fixed image-sized map: each window's output is that map cut
    to the window (windows are found by matching the batch to the masked image)."""

    threshold = 0.5

    def __init__(self, truth: np.ndarray, windows_of, size: int = 200) -> None:
        self.size = size
        self.truth = truth.astype(np.float32)
        self.windows_of = windows_of

    def __call__(self, batch):
        out = []
        for w in self.windows_of():
            part = self.truth[w.y : w.y + w.h, w.x : w.x + w.w]
            out.append(cv2.resize(part, (self.size, self.size), interpolation=cv2.INTER_NEAREST))
        assert len(out) == len(batch)
        return np.stack(out)


def _scene(width=400, height=300):
    fov = FieldOfView.whole(width, height)
    pixels = np.full((height, width, 3), 90, np.uint8)
    return fov, pixels, cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)


def test_a_click_beside_the_part_snaps_to_it_and_says_so():
    fov, pixels, gray = _scene()
    truth = np.zeros(gray.shape, bool)
    truth[100:140, 150:200] = True
    point = (205.0, 120.0)  # 6 px right of the part
    settings = ClickSettings(scales=(0.5,), threshold=0.5, snap_radius=0.03)  # 12 px
    windows = click_windows(fov, *point, settings.scales)
    seg = segment_point(pixels, gray, Painted(truth, lambda: windows), point, settings, fov)
    assert seg.roi == ROI(150, 100, 50, 40) and seg.reason == Uncertain.SNAPPED
    far = ClickSettings(scales=(0.5,), threshold=0.5, snap_radius=0.005)  # 2 px
    seg = segment_point(pixels, gray, Painted(truth, lambda: windows), point, far, fov)
    assert seg.reason == Uncertain.NOTHING_AT_CLICK


def test_a_part_cut_by_every_window_is_marked_uncertain():
    fov, pixels, gray = _scene()
    truth = np.zeros(gray.shape, bool)
    truth[50:250, 50:350] = True  # larger than the largest window
    point = (200.0, 150.0)
    settings = ClickSettings(scales=(0.25, 0.4), threshold=0.5)
    windows = click_windows(fov, *point, settings.scales)
    seg = segment_point(pixels, gray, Painted(truth, lambda: windows), point, settings, fov)
    assert seg.size_uncertain and seg.reason == Uncertain.AT_WINDOW_EDGE


def test_windows_stay_inside_the_scan_area_and_keep_their_size():
    fov, _, _ = _scene(400, 300)
    w = square_window(fov, 5, 5, 100)  # near a corner: shifted, not shrunk
    assert w == ROI(0, 0, 100, 100)
    big = square_window(fov, 200, 150, 1000)  # larger than the scan area: cut to it
    assert big == ROI(0, 0, 400, 300)
    assert click_windows(fov, 10, 10, (1.0,)) == [fov.box]


# ---------------------------------------------------------------- real frames


@pytest.mark.realdata
def test_clicks_and_strokes_on_real_ddti_frames(shared_data, segmenter):
    """A click at the mask's inner-most point and a stroke along its longest axis, on the
    first masked ddti images."""
    with open(shared_data / "ddti" / "metadata.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["mask"]][:4]
    click_hits = 0
    for r in rows:
        img = open_image(shared_data / "ddti" / r["file"])
        mask = cv2.imread(str(shared_data / "ddti" / r["mask"]), cv2.IMREAD_GRAYSCALE) > 0
        mask = cv2.resize(mask.astype(np.uint8), (img.width, img.height)) > 0
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
        part = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        ys, xs = np.nonzero(part)
        truth = ROI(int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)
        inner = cv2.distanceTransform(part.astype(np.uint8), cv2.DIST_L2, 5)
        iy, ix = np.unravel_index(int(np.argmax(inner)), inner.shape)
        pixels = np.asarray(img.pixels)
        click = segment_point(pixels, img.gray, segmenter, (float(ix), float(iy)))
        click_hits += click.roi.iou(truth) >= 0.5
        hull = cv2.convexHull(np.column_stack([xs, ys]).astype(np.int32)).reshape(-1, 2)
        d = ((hull[:, None] - hull[None]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmax(d)), d.shape)
        stroke = segment_stroke(pixels, img.gray, segmenter, (*hull[i], *hull[j]))
        assert stroke.roi.iou(truth) >= 0.5, r["file"]
    assert click_hits >= 3


INSCOPE = Path(__file__).resolve().parents[1] / "assets" / "inscope_bmode.png"


def test_a_clicked_nodule_analysed_again_from_its_stored_outline_gives_the_same_answer(
    classifier, segmenter, tmp_path
):
    """The outline a nodule keeps (``Nodule.outline``) gives, when its box is analysed again
    (coming back to it, the study report), the same estimate, suggestion and size as the
    click did; the segmenter's map inside the box alone would not."""
    from thyroid_desktop.core.analysis import AnalysisService, nodule_reports
    from thyroid_desktop.core.pipeline.roi import BoxSource
    from thyroid_desktop.core.review.session import Estimate, Session, read_session, write_session

    service = AnalysisService(classifier, segmenter, None)
    image = open_image(INSCOPE)
    clicked = service.analyse_point(image, (280.0, 334.0), None)
    seg, finding = clicked.segmentation, clicked.finding
    assert seg.contour and not seg.size_uncertain and finding.estimate is not None
    again = service.analyse_box(image, finding.roi, BoxSource.POINT, None, seg.contour)
    assert again.finding.logit == finding.logit
    assert again.finding.tirads_suggestion == finding.tirads_suggestion
    assert again.size.to_json() == clicked.size.to_json()

    session = Session()
    session.add_image(image.sha256, INSCOPE)
    n1 = session.add_nodule(image.sha256, 0, finding.roi, BoxSource.POINT, outline=seg.contour)
    session.set_estimate(n1, Estimate.of(finding))
    (report,) = nodule_reports(service, session.state)
    assert report.finding.tirads_suggestion == finding.tirads_suggestion
    assert report.size.text() == clicked.size.text()
    restored = read_session(write_session(tmp_path / "session.json", session.state))
    assert restored.nodule(n1).outline == session.state.nodule(n1).outline
    session.set_box(n1, finding.roi.jittered(4, 0, 1.0, image.width, image.height))
    assert session.state.nodule(n1).outline == ()  # a moved box is not the outline's any more
    from thyroid_desktop.core.clinical.measure import Caliper

    (report,) = nodule_reports(service, session.state)
    assert report.caliper_check == ""  # the moved box, no lines

    session.add_caliper(n1, Caliper((1.0, 1.0), (20.0, 1.0), 0))  # nowhere near the box
    (report,) = nodule_reports(service, session.state)
    assert report.caliper_check.startswith("N1: caliper 1 lies outside its box")
