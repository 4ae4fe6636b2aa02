"""detector_eval's frame scoring, with and without the gland model, on a phantom."""

import cv2
import numpy as np

from thyroid_desktop.core.io.phantom import make_phantom
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


def test_rates_per_sequence_count_hits_and_false_boxes_and_bound_them_by_sequence():
    from thyroid_desktop.core.pipeline.fov import detect_fov
    from training.detector_eval import by_group

    gray = np.zeros((120, 160), np.uint8)
    gray[10:110, 10:150] = 90
    fov = detect_fov(gray)
    truth = np.zeros((120, 160), bool)
    truth[40:70, 50:90] = True
    on_nodule = np.where(truth, 0.95, 0.0)
    elsewhere = np.zeros((120, 160))
    elsewhere[80:105, 100:140] = 0.95
    empty, no_gland = np.zeros_like(truth), np.zeros_like(truth)
    frames = [
        ("s1", (truth, on_nodule, no_gland, fov)),  # hit
        ("s1", (truth, elsewhere, no_gland, fov)),  # miss
        ("s1", (empty, elsewhere, no_gland, fov)),  # false box
        ("s2", (truth, elsewhere, no_gland, fov)),  # miss
        ("s2", (empty, np.zeros((120, 160)), no_gland, fov)),  # empty, nothing drawn
    ]
    out = by_group(frames)
    assert out["s1"] == {"hits": "1/2", "false_boxes": "1/1"}
    assert out["s2"] == {"hits": "0/1", "false_boxes": "0/1"}
    assert out["hit_rate"]["rate"] == round(1 / 3, 3)
    lo, hi = out["hit_rate"]["ci95"]
    assert lo == 0.0 and hi == 0.5  # resampling whole sequences: s2 alone, or s1 alone
    assert out["false_box_rate"]["rate"] == 0.5
