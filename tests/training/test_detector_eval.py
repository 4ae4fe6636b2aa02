"""detector_eval's frame scoring, with and without the gland model, on a phantom."""

import cv2
import numpy as np

from thyroid_desktop.core.phantom import make_phantom
from training.detector_eval import frame_maps, outcome
from training.segmenter import MaskSample


def test_frames_are_scored_with_and_without_a_gland_model(tmp_path, segmenter):
    phantom = make_phantom()
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), np.asarray(phantom.pixels))
    sample = MaskSample(path, None, "g1", "arcegor")  # a frame known to show no nodule
    mask, nodule, gland, fov = frame_maps(sample, segmenter, None, None)
    h, w = np.asarray(phantom.pixels).shape[:2]
    assert mask.shape == nodule.shape == gland.shape == (h, w)
    assert not mask.any() and not gland.any()  # no gland model: an empty gland
    has_nodule, boxed = outcome(mask, nodule, gland, fov, 0.0, None)
    assert not has_nodule and boxed  # the phantom's nodule is found: a "false box" here
    _, _, with_gland, _ = frame_maps(sample, segmenter, segmenter.gland, 900)
    assert with_gland.shape[1] == 900
