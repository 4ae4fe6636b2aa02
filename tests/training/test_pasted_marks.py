"""Pasted sonographer's marks (training augmentation, issue 25) on the demo phantom."""

import numpy as np

from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.marks import find_marks
from training.pasted_marks import paste_marks


def test_marks_are_seeded_drawn_around_the_box_and_found_by_the_marks_step():
    ph = make_phantom(seed=3)
    box = (ph.nodule.x, ph.nodule.y, ph.nodule.w, ph.nodule.h)
    a = paste_marks(ph.pixels, box, np.random.default_rng(5))
    assert np.array_equal(a, paste_marks(ph.pixels, box, np.random.default_rng(5)))
    assert not np.array_equal(a, paste_marks(ph.pixels, box, np.random.default_rng(6)))
    changed = np.any(a != ph.pixels, axis=-1)
    assert changed.sum() > 20 and np.array_equal(ph.pixels[~changed], a[~changed])
    ys, xs = np.nonzero(changed)
    x, y, w, h = box
    # calipers and labels sit on or near the box (labels at most a box side away)
    assert xs.min() >= x - w - 10 and xs.max() <= x + 2 * w + 60
    assert ys.min() >= y - h - 20 and ys.max() <= y + 2 * h + 20
    # the app's detector finds most of what was drawn (what it misses, training teaches away)
    found = find_marks(a)
    assert (found & changed).sum() >= 0.5 * changed.sum()


def test_marks_vary_in_kind_and_colour_over_seeds():
    ph = make_phantom(seed=4)
    box = (ph.nodule.x, ph.nodule.y, ph.nodule.w, ph.nodule.h)
    colours, counts = set(), set()
    for seed in range(30):
        out = paste_marks(ph.pixels, box, np.random.default_rng(seed))
        changed = np.any(out != ph.pixels, axis=-1)
        counts.add(int(changed.sum()) // 50)
        rgb = out[changed].astype(int)
        colours.add(bool((rgb.max(axis=1) - rgb.min(axis=1) > 60).any()))
    assert colours == {True, False}  # grey marks and coloured ones
    assert len(counts) > 3
