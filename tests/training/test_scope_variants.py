"""The scope check's experiment code (training.scope_variants, training.scope's folds)."""

import numpy as np

from thyroid_desktop.core.pipeline.roi import ROI
from training import scope
from training.scope_variants import TILES, jigsaw


def test_jigsaw_shuffles_the_scan_areas_tiles_and_nothing_else():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (100, 140, 3), dtype=np.uint8)
    box = ROI(10, 20, 120, 80)
    out = jigsaw(pixels, box, np.random.default_rng(1))
    inside = np.zeros(pixels.shape[:2], bool)
    inside[box.y : box.y + box.h, box.x : box.x + box.w] = True
    assert np.array_equal(out[~inside], pixels[~inside])
    th, tw = box.h // TILES, box.w // TILES

    def tiles(img):
        return sorted(
            img[
                box.y + r * th : box.y + (r + 1) * th, box.x + c * tw : box.x + (c + 1) * tw
            ].tobytes()
            for r in range(TILES)
            for c in range(TILES)
        )

    assert tiles(out) == tiles(pixels) and not np.array_equal(out, pixels)


def test_extra_examples_join_only_the_training_fold():
    """An experiment's added examples are made from each fold's training rows only (never
    from the frames it is scored on)."""
    rng = np.random.default_rng(0)
    n = 60
    x = rng.normal(size=(n, 3))
    y = (np.arange(n) % 3 != 0).astype(int)
    groups = np.array([f"g{i // 2}" for i in range(n)])
    seen: list[np.ndarray] = []

    def extra(train):
        seen.append(np.asarray(train))
        return x[train[:2]] + 5, np.zeros(2, int)

    scope.grouped_oof(x, y, groups, y, 1.0, seed=0, extra=extra)
    assert len(seen) == 5
    # every frame is scored in exactly one fold, and that fold's extras were not made from it
    in_training = np.zeros(n, int)
    for train in seen:
        in_training[train] += 1
    assert (in_training == 4).all()
