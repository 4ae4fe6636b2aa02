"""Auto-ROI: candidate boxes from the segmenter's map, and the real segmenter on phantoms."""

import cv2
import numpy as np
import pytest

from thyroid_desktop.core.io.images import from_array
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.detect import (
    candidates_from_map,
    map_to_image,
    segmenter_input,
)
from thyroid_desktop.core.pipeline.estimate import auto_predict, detect_nodules
from thyroid_desktop.core.pipeline.fov import FieldOfView, detect_fov
from thyroid_desktop.core.pipeline.roi import ROI


def test_two_parts_give_two_candidates_best_first_and_specks_are_dropped():
    fov = FieldOfView.whole(200, 100)
    prob = np.zeros((100, 200), np.float32)
    prob[10:40, 10:50] = 0.9  # large, confident
    prob[50:70, 120:140] = 0.6  # smaller, less sure
    prob[90, 190] = 1.0  # one-pixel speck
    cands = candidates_from_map(prob, fov)
    assert [c.roi for c in cands] == [ROI(10, 10, 40, 30), ROI(120, 50, 20, 20)]
    assert cands[0].score == pytest.approx(0.9)
    assert candidates_from_map(np.zeros((100, 200), np.float32), fov) == []


def test_map_back_to_image_is_zero_outside_the_field_of_view():
    mask = np.zeros((60, 80), bool)
    mask[10:50, 20:60] = True
    fov = FieldOfView(mask, ROI(20, 10, 40, 40))
    full = map_to_image(np.ones((16, 16), np.float32), fov, 80, 60)
    assert full.shape == (60, 80)
    assert full[mask].min() == pytest.approx(1.0) and full[~mask].max() == 0.0
    img = np.full((60, 80, 3), 100, np.uint8)
    x = segmenter_input(img, fov, 32)
    assert x.shape == (32, 32, 3) and x.min() == 100  # the FOV box only


def test_real_segmenter_finds_phantom_nodules(classifier, segmenter):
    found = 0
    for seed in range(4):
        phantom = make_phantom(seed=seed)
        det = detect_nodules(from_array(phantom.pixels), segmenter)
        if det.best is not None and det.best.roi.iou(phantom.nodule) > 0.5:
            found += 1
    assert found >= 3


def test_blank_frame_has_no_nodule_and_falls_back_to_the_scan_area(classifier, segmenter):
    image = from_array(np.zeros((300, 400), np.uint8))
    finding, det = auto_predict(image, classifier, segmenter)
    assert det.candidates == []
    assert finding.roi_source == "full"


def test_without_a_segmenter_the_whole_scan_area_is_analysed(classifier):
    image = from_array(make_phantom().pixels)
    finding, detection = auto_predict(image, classifier, None)
    assert detection is None and finding.roi_source == "full"


def gray_of(ph):
    return from_array(np.asarray(ph.pixels)).gray


def _gland_scene():
    """A phantom with a nodule inside an oval "gland" and a round dark "vessel" beside it."""
    ph = make_phantom(seed=3)
    h, w = ph.pixels.shape[:2]
    gland = np.zeros((h, w), bool)
    n = ph.nodule
    cv2.ellipse(
        gland.view(np.uint8),
        (n.x + n.w // 2, n.y + n.h // 2),
        (n.w, int(n.h * 0.9)),
        0,
        0,
        360,
        1,
        -1,
    )
    vessel = ROI(min(w - 40, n.x + 2 * n.w + 20), n.y, 30, 30)
    return ph, gland, vessel


def test_gland_prior_keeps_nodules_in_the_gland_and_drops_a_vessel_beside_it():
    from thyroid_desktop.core.pipeline.detect import Candidate, split_by_gland

    ph, gland, vessel = _gland_scene()
    fov = detect_fov(gray_of(ph))
    nodule = Candidate(ph.nodule, 0.9, ph.nodule.w * ph.nodule.h)
    beside = Candidate(vessel, 0.95, 900)
    kept, removed = split_by_gland([beside, nodule], gland, fov)
    assert kept == [nodule] and removed == [beside]
    # Growing the gland far enough makes the vessel "touch" it.
    kept, _ = split_by_gland([beside, nodule], gland, fov, grow=0.5)
    assert kept == [beside, nodule]
    # A stricter overlap rule drops a candidate that only grazes the gland.
    graze = Candidate(ROI(ph.nodule.x + ph.nodule.w * 2 - 10, ph.nodule.y, 40, 20), 0.8, 800)
    assert split_by_gland([graze], gland, fov, min_overlap=0.5)[0] == []
    # No gland seen at all: nothing is removed (the prior cannot place anything).
    assert split_by_gland([beside, nodule], np.zeros_like(gland), fov) == ([beside, nodule], [])


def test_detect_with_a_gland_model_filters_candidates_and_keeps_the_gland_mask():
    from thyroid_desktop.core.pipeline.detect import detect, map_to_image

    ph, gland, vessel = _gland_scene()
    fov = detect_fov(gray_of(ph))
    size = 64
    b = fov.box

    def square(mask):  # an image-sized mask as the segmenter's square output
        crop = mask[b.y : b.y + b.h, b.x : b.x + b.w].astype(np.float32)
        return cv2.resize(crop, (size, size), interpolation=cv2.INTER_NEAREST)

    nodules = np.zeros_like(gland)
    n = ph.nodule
    nodules[n.y : n.y + n.h, n.x : n.x + n.w] = True
    nodules[vessel.y : vessel.y + vessel.h, vessel.x : vessel.x + vessel.w] = True
    seg_out, gland_out = square(nodules), square(gland)
    pixels = np.asarray(ph.pixels)
    plain = detect(pixels, gray_of(ph), lambda x: seg_out[None], size)
    assert len(plain.candidates) == 2 and plain.gland is None

    def gland_fn(x):
        return gland_out[None]

    shown_only = detect(pixels, gray_of(ph), lambda x: seg_out[None], size, gland_fn)
    assert len(shown_only.candidates) == 2 and shown_only.gland is not None  # the default
    det = detect(pixels, gray_of(ph), lambda x: seg_out[None], size, gland_fn, True)
    assert len(det.candidates) == 1 and det.candidates[0].roi.iou(ph.nodule) > 0.7
    assert len(det.outside_gland) == 1 and det.outside_gland[0].roi.iou(vessel) > 0.5
    expected = map_to_image(gland_out, fov, pixels.shape[1], pixels.shape[0]) >= 0.5
    assert np.array_equal(det.gland, expected) and "gland" in det.timings_ms


def test_the_app_follows_the_cards_gland_filter_setting(segmenter):
    """The shipped card turns the gland filter off: the app's detection keeps candidates
    outside the gland, and still returns the gland for the outline."""
    from thyroid_desktop.core.models.shipped import load_card

    info = load_card().raw.get("gland_segmenter")
    assert info is not None and segmenter.gland is not None
    assert segmenter.filter_by_gland is False and info["filter_candidates"] is False
    image = from_array(np.asarray(make_phantom(seed=3).pixels))
    det = detect_nodules(image, segmenter)
    assert det.gland is not None and det.outside_gland == []
