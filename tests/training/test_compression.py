"""The JPEG re-encoding augmentation (``training.compression``)."""

import numpy as np
import pytest

from training.compression import reencode


def frame_of_speckle(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grey = blurred(rng.integers(0, 255, (96, 128)).astype(np.uint8))
    return np.repeat(grey[:, :, None], 3, axis=2)


def blurred(a: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(a, (0, 0), 2)


def block_edges(grey: np.ndarray) -> float:
    steps = np.abs(np.diff(grey.astype(np.float32), axis=1))
    return float(steps[:, 7::8].mean() / (steps.mean() + 1e-6))


def test_lower_quality_changes_more_and_adds_block_edges():
    frame = frame_of_speckle()
    hard, light = reencode(frame, 20), reencode(frame, 90)
    assert hard.shape == frame.shape and hard.dtype == np.uint8
    err = [np.abs(x.astype(int) - frame).mean() for x in (light, hard)]
    assert 0 < err[0] < err[1]
    assert block_edges(hard[:, :, 0]) > block_edges(frame[:, :, 0]) + 0.1


def test_colour_channels_stay_in_order():
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[:, :, 0] = 200  # red
    out = reencode(frame, 90)
    assert out[:, :, 0].mean() > 150 and out[:, :, 2].mean() < 50


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32)])
def test_refuses_what_is_not_an_rgb8_frame(bad):
    with pytest.raises(ValueError):
        reencode(bad, 50)


def test_refuses_a_quality_out_of_range():
    with pytest.raises(ValueError):
        reencode(frame_of_speckle(), 0)
