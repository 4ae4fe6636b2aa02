import numpy as np
import pytest

from thyroid_desktop.core.roi import ROI, crop_square, roi_from_mask


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
