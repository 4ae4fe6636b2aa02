"""The segmenter's threshold: one named constant, the model card's value when it states one."""

import numpy as np

from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.models.shipped import Segmenter, load_card
from thyroid_desktop.core.pipeline.detect import (
    GLAND_THRESHOLD,
    MASK_THRESHOLD,
    detect,
    threshold_of,
)
from thyroid_desktop.core.pipeline.tirads_ai import nodule_mask


class Flat:
    """A segmenter answering 0.6 everywhere, with the card's ``threshold`` it was given."""

    def __init__(self, threshold=None):
        self.threshold = threshold

    def __call__(self, batch):
        return np.full(np.asarray(batch).shape[:3], 0.6, np.float32)


def test_the_cards_threshold_decides_what_counts_as_nodule():
    phantom = make_phantom()
    gray = np.asarray(phantom.pixels)[..., 0]
    default = detect(phantom.pixels, gray, Flat(), 64)
    assert default.threshold == MASK_THRESHOLD and default.candidates  # 0.6 >= 0.5
    strict = detect(phantom.pixels, gray, Flat(threshold=0.7), 64)
    assert strict.threshold == 0.7 and not strict.candidates
    box = default.candidates[0].roi
    assert nodule_mask(default.probability, box, default.threshold).any()
    assert nodule_mask(strict.probability, box, strict.threshold) is None


def test_a_loaded_segmenter_reads_its_threshold_from_the_card():
    assert Segmenter({"threshold": 0.7}, None, 8).threshold == 0.7
    assert Segmenter({}, None, 8).threshold is None
    assert threshold_of(Segmenter({}, None, 8)) == MASK_THRESHOLD
    assert threshold_of(lambda x: x, GLAND_THRESHOLD) == GLAND_THRESHOLD


def test_the_shipped_card_and_the_constants_agree():
    raw = load_card().raw
    assert raw["segmenter"]["threshold"] == MASK_THRESHOLD
    assert raw["gland_segmenter"]["threshold"] == GLAND_THRESHOLD
