import numpy as np
import pytest

from thyroid_desktop.core.pipeline.roi import ROI, crop_square, roi_from_mask


def test_parse_and_list_round_trip():
    assert ROI.parse("10,20,30,40").as_list() == [10, 20, 30, 40]
    with pytest.raises(ValueError, match="four numbers"):
        ROI.parse("1,2,3")
    with pytest.raises(ValueError, match="positive size"):
        ROI.parse("1,2,0,3")


def test_clipped_limits_to_image_and_rejects_outside():
    assert ROI(-5, -5, 20, 20).clipped(10, 10) == ROI(0, 0, 10, 10)
    with pytest.raises(ValueError, match="outside"):
        ROI(50, 50, 5, 5).clipped(10, 10)


def test_mask_box_is_largest_component():
    mask = np.zeros((100, 200), np.uint8)
    mask[10:20, 10:20] = 255  # small
    mask[40:90, 120:190] = 255  # large
    assert roi_from_mask(mask) == ROI(120, 40, 70, 50)
    assert roi_from_mask(np.zeros((5, 5), np.uint8)) is None


def test_crop_is_square_centred_with_margin_and_black_outside():
    img = np.full((100, 100, 3), 200, np.uint8)
    crop, window = crop_square(img, ROI(0, 40, 20, 20), size=32, margin=0.5)
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
    assert window == ROI(-10, 30, 40, 40)
    assert crop[:, :4].max() == 0  # left quarter lies outside the image
    assert crop[:, 16:].min() == 200


def test_crop_of_same_input_is_identical():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    a, _ = crop_square(img, ROI(30, 30, 50, 40), 64)
    b, _ = crop_square(img, ROI(30, 30, 50, 40), 64)
    assert np.array_equal(a, b)


def test_iou():
    a = ROI(0, 0, 10, 10)
    assert a.iou(a) == 1.0
    assert a.iou(ROI(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert a.iou(ROI(20, 20, 5, 5)) == 0.0


def test_huge_window_crop_is_bounded_and_matches_the_padded_crop(monkeypatch):
    import thyroid_desktop.core.pipeline.roi as roi_module

    yy, xx = np.mgrid[0:600, 0:900]
    smooth = np.dstack([(xx / 4) % 256, (yy / 3) % 256, (xx + yy) / 6 % 256]).astype(np.uint8)
    box = ROI(500, 300, 390, 290)  # the window reaches past the image
    padded, win = crop_square(smooth, box, 260)
    monkeypatch.setattr(roi_module, "MAX_CANVAS_PIXELS", 1000)  # force the bounded path
    bounded, win2 = crop_square(smooth, box, 260)
    assert win == win2 and bounded.shape == padded.shape
    assert np.abs(bounded.astype(int) - padded).mean() < 2.0


def test_box_over_a_long_image_allocates_no_square_of_its_long_side():
    import tracemalloc

    strip = np.full((200, 4000, 3), 90, np.uint8)  # a 20:1 frame, the longest allowed
    tracemalloc.start()
    crop, win = crop_square(strip, ROI(0, 0, 4000, 200), 260)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert crop.shape == (260, 260, 3) and win.w > 4000
    assert peak < 4 * strip.nbytes  # the padded square would be 4600^2 x 3 = 63 MB


def _speckle(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Fine random texture (as ultrasound speckle) with a smooth gradient under it."""
    rng = np.random.default_rng(seed)
    grain = rng.integers(0, 120, (height, width), dtype=np.uint8).astype(np.float32)
    ramp = np.linspace(0, 120, width, dtype=np.float32)[None, :]
    return np.dstack([grain + ramp] * 3).astype(np.uint8)


def test_resolution_limit_leaves_small_windows_and_unset_cards_unchanged():
    img = _speckle(300, 400)
    box = ROI(100, 100, 80, 60)  # window 104 px, under the limit
    plain, win = crop_square(img, box, 260)
    assert np.array_equal(crop_square(img, box, 260, resolution=None)[0], plain)
    limited, win2 = crop_square(img, box, 260, resolution=128)
    assert win2 == win and np.array_equal(limited, plain)


def test_resolution_limit_makes_the_crop_follow_neither_pixel_size_nor_box_size():
    """The same anatomy at two pixel sizes (the image and its box enlarged 1.5x) gives nearly
    the same crop with the limit; without it the larger copy keeps finer speckle."""
    import cv2

    img = _speckle(300, 400)
    box = ROI(100, 80, 150, 150)  # window 195 px; enlarged: 292 px, both over 128
    big = cv2.resize(img, (600, 450), interpolation=cv2.INTER_LINEAR)
    big_box = ROI(150, 120, 225, 225)

    def gap(resolution):
        a, _ = crop_square(img, box, 260, resolution=resolution)
        b, _ = crop_square(big, big_box, 260, resolution=resolution)
        return np.abs(a.astype(int) - b).mean()

    assert gap(128) < 0.5 * gap(None)
    # and the limited crop holds no detail finer than 128 px a side: shrinking it to 128 and
    # back changes it little, where the unlimited crop loses most of its speckle
    for resolution, most in ((128, 5.0), (None, None)):
        crop, _ = crop_square(img, box, 260, resolution=resolution)
        again = cv2.resize(cv2.resize(crop, (128, 128), interpolation=cv2.INTER_AREA), (260, 260))
        change = np.abs(again.astype(int) - crop).mean()
        assert change < most if most else change > 10.0


def test_resolution_limit_on_the_bounded_huge_window_path(monkeypatch):
    import thyroid_desktop.core.pipeline.roi as roi_module

    img = _speckle(600, 900)
    box = ROI(500, 300, 390, 290)
    padded, _ = crop_square(img, box, 260, resolution=128)
    monkeypatch.setattr(roi_module, "MAX_CANVAS_PIXELS", 1000)
    bounded, _ = crop_square(img, box, 260, resolution=128)
    assert bounded.shape == (260, 260, 3)
    assert np.abs(bounded.astype(int) - padded).mean() < 2.0


def test_predict_cuts_what_card_crop_cuts_with_the_cards_detail_limit(classifier):
    """`card_crop` (for code outside predict: the novelty reference, benchmarks) and predict
    cut the same crop, with the card's marks step and, when the card sets one, its detail
    limit; a card without ``crop.resolution`` has none."""
    import dataclasses

    from thyroid_desktop.core.io.images import from_array
    from thyroid_desktop.core.io.phantom import make_phantom
    from thyroid_desktop.core.models.shipped import ModelCard
    from thyroid_desktop.core.pipeline import estimate
    from thyroid_desktop.core.pipeline.fov import detect_fov
    from thyroid_desktop.core.pipeline.marks import marks_step

    phantom = make_phantom()
    image = from_array(phantom.pixels)
    fov = detect_fov(image.gray)
    assert classifier.card.crop_resolution is None
    raw = {**classifier.card.raw, "crop": {**classifier.card.raw["crop"], "resolution": 64}}
    limited = dataclasses.replace(classifier, card=ModelCard(raw, classifier.card.directory))
    assert limited.card.crop_resolution == 64
    box = phantom.nodule
    for clf in (classifier, limited):
        card = clf.card
        crop, window = estimate.card_crop(image, box, card, fov)
        masked = estimate.scan_pixels(image, fov, box, card.crop_margin, marks_step(card.raw))
        want, _ = crop_square(masked, box, card.input_size, card.crop_margin, card.crop_resolution)
        assert np.array_equal(crop, want)
        views_crop, views_window, jitters = estimate.card_views(image, box, card, fov)
        assert np.array_equal(views_crop, want) and views_window == window
        want_jitters = estimate.jitter_views(
            image,
            box,
            card.input_size,
            card.crop_margin,
            fov,
            masked,
            resolution=card.crop_resolution,
        )
        assert np.array_equal(jitters, want_jitters) and len(jitters) == len(estimate.JITTERS)
        finding = estimate.predict(image, clf, box, "manual", fov)
        assert finding.window == window
    plain = estimate.predict(image, classifier, box, "manual", fov).probability
    assert estimate.predict(image, limited, box, "manual", fov).probability != plain
