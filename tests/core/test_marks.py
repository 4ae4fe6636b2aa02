"""Marks inside the scan area (calipers, crosses, dotted lines, text) found and painted out,
without eating compact bright spots (echogenic foci) or speckle."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from thyroid_desktop.core.io.images import UltrasoundImage, from_array
from thyroid_desktop.core.pipeline.estimate import classifier_crop, jitter_views, scan_pixels
from thyroid_desktop.core.pipeline.fov import detect_fov
from thyroid_desktop.core.pipeline.marks import (
    MarksStep,
    find_marks,
    inpaint_marks,
    marks_step,
    paint_out,
)
from thyroid_desktop.core.pipeline.roi import ROI


def tissue(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    """Grey speckle-like texture (mean ~90) as an RGB uint8 frame."""
    rng = np.random.default_rng(seed)
    g = rng.gamma(2.0, 45.0, (h, w)).astype(np.float32)
    g = cv2.GaussianBlur(g, (0, 0), 1.2)
    g = np.clip(g, 0, 255).astype(np.uint8)
    return np.dstack([g, g, g])


def draw_cross(px: np.ndarray, x: int, y: int, arm: int = 5, colour=(250, 250, 250)) -> None:
    cv2.line(px, (x - arm, y), (x + arm, y), colour, 1)
    cv2.line(px, (x, y - arm), (x, y + arm), colour, 1)


def test_a_grey_caliper_cross_is_found_and_painted_out():
    px = tissue()
    draw_cross(px, 160, 120)
    found = find_marks(px)
    assert found[120, 155:166].mean() > 0.8 and found[115:126, 160].mean() > 0.8
    out = inpaint_marks(px)
    assert out[120, 155:166, 0].mean() < 180  # the cross's 250 is gone
    assert np.array_equal(out[:100], px[:100])  # far from the mark nothing changes


def test_paint_out_changes_only_the_given_pixels():
    """The painting the marks step uses, on any mask (the benchmark paints the pixels its
    own marks covered): only those pixels change; nothing to paint gives the image back."""
    px = tissue()
    draw_cross(px, 100, 80)
    mask = np.zeros(px.shape[:2], bool)
    mask[75:86, 95:106] = True
    out = paint_out(px, mask)
    assert np.array_equal(out[~mask], px[~mask]) and not np.array_equal(out[mask], px[mask])
    assert out[80, 95:106, 0].mean() < 180  # the cross's 250 is painted from the tissue
    assert paint_out(px, np.zeros_like(mask)) is px


def test_coloured_glyphs_and_text_are_found():
    px = tissue(seed=1)
    draw_cross(px, 80, 80, colour=(230, 230, 40))  # a yellow caliper
    cv2.putText(px, "d1", (200, 150), cv2.FONT_HERSHEY_PLAIN, 1.0, (175, 175, 175), 1)
    found = find_marks(px)
    assert found[75:86, 75:86].sum() >= 15
    assert found[135:155, 195:225].sum() >= 15


def test_a_dotted_line_is_found():
    px = tissue(seed=2)
    for x in range(60, 260, 8):
        px[100:102, x : x + 2] = 252
    found = find_marks(px)
    assert found[99:103, 60:260].sum() >= 0.8 * 25 * 4


def test_compact_bright_foci_and_speckle_are_kept():
    px = tissue(seed=3)
    for x, y in ((60, 60), (150, 90), (230, 180)):  # echogenic foci: 4-5 px bright blobs
        cv2.circle(px, (x, y), 2, (255, 255, 255), -1)
    found = find_marks(px)
    assert found.mean() < 0.001
    assert np.array_equal(inpaint_marks(px), px)


def test_marks_outside_the_inside_mask_are_left_alone():
    px = tissue(seed=4)
    draw_cross(px, 160, 120)
    inside = np.zeros(px.shape[:2], bool)
    inside[:, :100] = True
    assert not find_marks(px, inside).any()


def test_the_card_chooses_the_step_and_keep_is_the_default():
    assert marks_step({}) is MarksStep.KEEP
    assert marks_step({"crop": {"margin": 0.15}}) is MarksStep.KEEP
    assert marks_step({"crop": {"marks": "inpaint"}}) is MarksStep.INPAINT
    with pytest.raises(ValueError):
        marks_step({"crop": {"marks": "blur"}})


def frame_with_cross() -> tuple[UltrasoundImage, ROI]:
    px = np.zeros((300, 400, 3), np.uint8)
    px[20:280, 40:360] = tissue(260, 320, seed=5)
    draw_cross(px, 200, 150, arm=6)
    return from_array(px), ROI(170, 120, 60, 60)


def test_the_crop_is_inpainted_only_when_asked():
    image, roi = frame_with_cross()
    fov = detect_fov(image.gray)
    kept, _ = classifier_crop(image, roi, 96, 0.15, fov)
    painted, _ = classifier_crop(image, roi, 96, 0.15, fov, MarksStep.INPAINT)
    plain = scan_pixels(image, fov, roi, 0.15)
    assert plain[150, 194:207, 0].mean() > 240
    assert scan_pixels(image, fov, roi, 0.15, MarksStep.INPAINT)[150, 194:207, 0].mean() < 180
    assert np.abs(kept.astype(int) - painted).max() > 50
    views = jitter_views(image, roi, 96, 0.15, fov, marks=MarksStep.INPAINT)
    assert views.shape[0] >= 1 and views[..., 0].max() < 250


def test_inpainting_a_crop_window_is_fast():
    image, roi = frame_with_cross()
    fov = detect_fov(image.gray)
    scan_pixels(image, fov, roi, 0.15, MarksStep.INPAINT)
    t0 = time.perf_counter()
    for _ in range(10):
        scan_pixels(image, fov, roi, 0.15, MarksStep.INPAINT)
    assert (time.perf_counter() - t0) / 10 < 0.05  # generous: a shared CI machine
