"""Zoomed tiles of the scan area (the ``detector_eval --tiles`` experiment)."""

import cv2
import numpy as np

from thyroid_desktop.core.io.images import from_array
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.detect import candidates_from_map, map_to_image, segmenter_input
from thyroid_desktop.core.pipeline.fov import detect_fov
from thyroid_desktop.core.pipeline.roi import ROI
from training.tiles import tile_boxes, tiled_probability


def test_tiles_cover_the_scan_area_with_overlap():
    box = ROI(10, 20, 400, 300)
    tiles = tile_boxes(box, grid=2, overlap=0.25)
    assert len(tiles) == 4 and all(t.w == 250 and t.h == 188 for t in tiles)
    covered = np.zeros((400, 500), bool)
    for t in tiles:
        covered[t.y : t.y + t.h, t.x : t.x + t.w] = True
    assert covered[20:320, 10:410].all() and not covered[:20].any()
    assert tile_boxes(box, grid=1) == [box]


def test_zoomed_tiles_find_a_small_nodule_the_whole_view_misses():
    """A stand-in segmenter that needs a few pixels of dark blob in its small input: the
    whole scan area shrunk to 64 px loses a small phantom nodule; 2 x 2 zoomed tiles keep it."""

    def segment(batch):
        x = np.asarray(batch, np.float32).mean(axis=-1)
        out = np.zeros_like(x)
        for i, img in enumerate(x):
            smooth = cv2.GaussianBlur(img, (0, 0), 2)
            out[i] = (smooth < 0.55 * np.median(smooth)).astype(np.float32)
        return out

    ph = make_phantom(seed=2, nodule_scale=0.3)
    image = from_array(np.asarray(ph.pixels))
    fov = detect_fov(image.gray)
    pixels = np.asarray(image.pixels)
    whole = map_to_image(
        segment(segmenter_input(pixels, fov, 64)[None])[0], fov, *pixels.shape[1::-1]
    )
    assert candidates_from_map(whole, fov) == []
    tiled = tiled_probability(pixels, fov, segment, 64)
    assert tiled.shape == pixels.shape[:2] and tiled[~fov.mask].max() == 0.0
    (found,) = candidates_from_map(tiled, fov)
    assert found.roi.iou(ph.nodule) > 0.3
