"""The bundled model through the app's own path: open -> crop -> predict -> Grad-CAM."""

import numpy as np
import pytest

from thyroid_desktop.core.io.images import from_array
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.models.gradcam import heatmap_rgba
from thyroid_desktop.core.models.shipped import load_card, verify
from thyroid_desktop.core.pipeline.estimate import heatmap_to_image, predict
from thyroid_desktop.core.pipeline.roi import ROI


def test_bundled_card_is_complete_and_weights_match():
    card = load_card()
    verify(card)
    raw = card.raw
    assert 0.0 < card.threshold < 1.0
    assert (
        "not pathology" in raw["label_definition"].lower()
        or "NOT pathology" in raw["label_definition"]
    )
    for site in ("ddti", "chaouchi"):
        test = raw["metrics"]["test"][site]
        assert 0.0 <= test["auroc_ci95"][0] <= test["auroc"] <= test["auroc_ci95"][1] <= 1.0
    assert raw["metrics"]["cv"]["ddti"]["mean"] > raw["baseline"]["cv"]["ddti"]["mean"]


def test_predict_is_calibrated_deterministic_and_explained(classifier):
    phantom = make_phantom(seed=3)
    image = from_array(phantom.pixels)
    a = predict(image, classifier, phantom.nodule, "manual")
    b = predict(image, classifier, phantom.nodule, "manual")
    assert 0.0 < a.probability < 1.0
    assert a.probability == b.probability and np.array_equal(a.heatmap, b.heatmap)
    assert a.label in ("benign", "malignant")
    assert a.model_id == classifier.card.id and a.threshold == classifier.card.threshold
    assert a.heatmap.shape == (image.height, image.width) and a.heatmap.dtype == np.float32
    assert a.heatmap.min() >= 0.0 and a.heatmap.max() <= 1.0
    inside = a.heatmap[a.window.y : a.window.y + a.window.h, a.window.x : a.window.x + a.window.w]
    assert inside.sum() == pytest.approx(a.heatmap.sum())  # nothing outside what the model saw
    assert set(a.timings_ms) >= {"crop", "model", "heatmap", "total"}


def test_blank_image_gives_no_nan(classifier):
    image = from_array(np.zeros((200, 300), np.uint8))
    f = predict(image, classifier)
    assert f.roi_source == "full" and f.roi == ROI(0, 0, 300, 200)
    assert np.isfinite(f.probability) and np.isfinite(f.heatmap).all()


def test_heatmap_mapping_and_colouring():
    cam = np.ones((7, 7), np.float32)
    full = heatmap_to_image(cam, ROI(-10, 5, 40, 40), width=50, height=30)
    assert full.shape == (30, 50)
    assert (
        full[:5].max() == 0
        and full[5:, :30].min() == pytest.approx(1.0)
        and full[:, 30:].max() == 0
    )
    rgba = heatmap_rgba(np.zeros((4, 4), np.float32))
    assert rgba.shape == (4, 4, 4) and rgba[..., 3].max() == 0


def test_heatmap_matches_resizing_the_whole_window_and_stays_in_the_image():
    import cv2

    cam = np.random.default_rng(1).random((17, 17)).astype(np.float32)
    for win in (ROI(10, 20, 300, 300), ROI(-50, -30, 400, 400), ROI(500, 300, 200, 200)):
        expected = np.zeros((360, 560), np.float32)
        up = cv2.resize(cam, (win.w, win.h), interpolation=cv2.INTER_LINEAR)
        x0, y0 = max(win.x, 0), max(win.y, 0)
        x1, y1 = min(win.x + win.w, 560), min(win.y + win.h, 360)
        expected[y0:y1, x0:x1] = up[y0 - win.y : y1 - win.y, x0 - win.x : x1 - win.x]
        np.testing.assert_allclose(heatmap_to_image(cam, win, 560, 360), expected, atol=1e-5)
    huge = heatmap_to_image(cam, ROI(-(10**6), -(10**6), 3 * 10**6, 3 * 10**6), 64, 48)
    assert huge.shape == (48, 64)


def test_box_source_is_one_enum_written_as_its_value(classifier):
    import json

    from thyroid_desktop.core.pipeline.estimate import auto_predict
    from thyroid_desktop.core.pipeline.roi import BoxSource
    from thyroid_desktop.core.review.session import BoxSource as SessionBoxSource

    assert SessionBoxSource is BoxSource  # one definition, in core.pipeline.roi
    phantom = make_phantom()
    image = from_array(phantom.pixels)
    assert predict(image, classifier, phantom.nodule).roi_source is BoxSource.MANUAL
    assert predict(image, classifier, None).roi_source is BoxSource.FULL
    assert predict(image, classifier, phantom.nodule, "auto").roi_source is BoxSource.AUTO
    finding, _ = auto_predict(image, classifier, None)  # no segmenter: the scan area
    assert finding.roi_source is BoxSource.FULL
    assert json.dumps({"s": BoxSource.AUTO}) == '{"s": "auto"}' and f"{BoxSource.FULL}" == "full"
