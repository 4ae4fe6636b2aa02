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
