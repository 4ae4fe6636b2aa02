"""Auto-ROI: candidate boxes from the segmenter's map, and the real segmenter on phantoms."""

import numpy as np
import pytest

from thyroid_desktop.core.detect import (
    candidates_from_map,
    map_to_image,
    segmenter_input,
)
from thyroid_desktop.core.fov import FieldOfView
from thyroid_desktop.core.images import from_array
from thyroid_desktop.core.inference import auto_predict, detect_nodules
from thyroid_desktop.core.phantom import make_phantom
from thyroid_desktop.core.roi import ROI


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
