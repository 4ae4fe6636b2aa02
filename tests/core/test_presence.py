""" "Nodule present?": the presence model's rule, how the card states it, and real frames."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from thyroid_desktop.core.analysis import NO_NODULE, AnalysisService
from thyroid_desktop.core.io.images import open_image
from thyroid_desktop.core.models.shipped import (
    PRESENCE_CARD_KEY,
    SEGMENTER_CARD_KEY,
    ModelError,
    load_segmenter,
    models_dir,
)
from thyroid_desktop.core.pipeline.detect import candidates_from_map, detect, map_to_image
from thyroid_desktop.core.pipeline.fov import detect_fov
from thyroid_desktop.core.pipeline.presence import FEATURES, PresenceModel
from thyroid_desktop.core.pipeline.roi import roi_from_mask


def area_model(threshold: float = 0.5, enforced: bool = True) -> PresenceModel:
    """Presence rises with the part's share of the scan area: 50 % at 1 % of it."""
    return PresenceModel(
        ("log_area_share",), (math.log(0.01),), (1.0,), (1.0,), 0.0, threshold, False, enforced
    )


class MapSegmenter:
    """A segmenter that always answers the same square map: a large and a small part."""

    size = 64

    def __init__(self, presence: PresenceModel | None = None) -> None:
        self.presence = presence
        sq = np.zeros((self.size, self.size), np.float32)
        sq[8:32, 8:32] = 0.95  # 14 % of the square
        sq[44:48, 44:48] = 0.99  # 0.4 %: more confident, smaller
        self.map = sq

    def __call__(self, batch):
        return np.repeat(self.map[None], len(batch), axis=0)


def frame() -> tuple[np.ndarray, np.ndarray]:
    gray = np.full((200, 200), 90, np.uint8)
    return np.dstack([gray] * 3), gray


def test_low_presence_candidates_are_not_proposed_but_kept_aside():
    pixels, gray = frame()
    det = detect(pixels, gray, MapSegmenter(area_model()), MapSegmenter.size)
    assert len(det.candidates) == 1 and len(det.below_presence) == 1
    big, small = det.candidates[0], det.below_presence[0]
    assert big.area_px > small.area_px
    assert big.presence >= 0.5 > small.presence
    assert det.best == big


def test_when_every_candidate_is_below_presence_nothing_is_proposed():
    pixels, gray = frame()
    det = detect(pixels, gray, MapSegmenter(area_model(threshold=0.99)), MapSegmenter.size)
    assert det.best is None and det.candidates == []
    assert len(det.below_presence) == 2  # still there for frame scores and debugging


def test_without_a_presence_model_detection_is_as_before():
    pixels, gray = frame()
    seg = MapSegmenter(None)
    det = detect(pixels, gray, seg, seg.size)
    fov = detect_fov(gray)
    expected = candidates_from_map(map_to_image(seg.map, fov, 200, 200), fov)
    assert det.candidates == expected and len(expected) == 2
    assert det.below_presence == [] and all(c.presence is None for c in det.candidates)


def test_an_unenforced_model_scores_every_candidate_and_holds_none_back():
    pixels, gray = frame()
    seg = MapSegmenter(area_model(threshold=0.99, enforced=False))
    det = detect(pixels, gray, seg, seg.size)
    assert len(det.candidates) == 2 and det.below_presence == []
    assert all(c.presence is not None and c.presence < 0.99 for c in det.candidates)


def test_presence_model_reads_and_checks_its_card_section():
    section = {
        "features": ["mean_probability", "depth"],
        "mean": [0.9, 0.5],
        "scale": [0.1, 0.2],
        "coef": [1.0, -1.0],
        "intercept": 0.5,
        "threshold": 0.7,
    }
    model = PresenceModel.from_card(section)
    assert model.enforced and not model.needs_gland and model.threshold == 0.7
    table = np.zeros((1, len(FEATURES)))
    table[0, FEATURES.index("mean_probability")] = 0.9
    table[0, FEATURES.index("depth")] = 0.5
    assert model.probability(table)[0] == pytest.approx(1 / (1 + math.exp(-0.5)))
    assert PresenceModel.from_card(None) is None
    with pytest.raises(ValueError):
        PresenceModel.from_card({**section, "features": ["mean_probability", "colour"]})
    with pytest.raises(ValueError):
        PresenceModel.from_card({**section, "coef": [1.0]})


def models_copy(tmp_path: Path, presence: dict | None) -> Path:
    """The shipped models (linked) with a card whose segmenter has ``presence``."""
    src = models_dir()
    for f in src.iterdir():
        if f.name != "model_card.json":
            (tmp_path / f.name).symlink_to(f)
    card = json.loads((src / "model_card.json").read_text())
    card[SEGMENTER_CARD_KEY].pop(PRESENCE_CARD_KEY, None)
    if presence is not None:
        card[SEGMENTER_CARD_KEY][PRESENCE_CARD_KEY] = presence
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    return tmp_path


SECTION = {
    "features": ["log_area_share"],
    "mean": [math.log(0.01)],
    "scale": [1.0],
    "coef": [4.0],
    "intercept": 0.0,
    "threshold": 0.999,
    "enforced": True,
}


def test_the_segmenter_loads_the_cards_presence_model(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert load_segmenter(models_copy(plain, None)).presence is None
    gated = tmp_path / "gated"
    gated.mkdir()
    seg = load_segmenter(models_copy(gated, SECTION))
    assert seg.presence == PresenceModel.from_card(SECTION)
    other = tmp_path / "other"
    other.mkdir()  # fitted on another segmenter's maps: not used
    assert (
        load_segmenter(models_copy(other, {**SECTION, "segmenter_sha256": "0" * 64})).presence
        is None
    )
    broken = tmp_path / "broken"
    broken.mkdir()
    with pytest.raises(ModelError, match="presence"):
        load_segmenter(models_copy(broken, {**SECTION, "threshold": 2.0}))


def gated(segmenter, threshold: float = 1.0):
    """The real segmenter with a presence model that holds back (nearly) every candidate."""
    seg = copy.copy(segmenter)
    seg.presence = area_model(threshold=threshold)
    return seg


INSCOPE = Path(__file__).resolve().parents[1] / "assets" / "inscope_bmode.png"


def test_no_proposal_means_no_nodule_found_and_no_estimate(classifier, segmenter):
    image = open_image(INSCOPE)
    service = AnalysisService(classifier, segmenter, None)
    assert service.analyse(image, None, None).finding.estimate is not None  # found today
    result = AnalysisService(classifier, gated(segmenter), None).analyse(image, None, None)
    assert result.finding.estimate is None
    assert result.finding.no_estimate_reason == NO_NODULE
    assert result.detection.best is None and result.detection.below_presence


def test_a_click_is_never_held_back_by_presence(classifier, segmenter):
    image = open_image(INSCOPE)
    service = AnalysisService(classifier, gated(segmenter), None)
    assert service.detect(image).best is None  # the detector would propose nothing
    result = service.analyse_point(image, (280.0, 334.0), None)
    assert result.finding.estimate is not None and result.segmentation.contour


# ------------------------------------------------------------------ real held-out frames
#: Held-out arcegor frames labelled nodule-free where the detector boxes something today.
EMPTY = ("arcegor/images/65_65.jpg", "arcegor/images/93_0.jpg", "arcegor/images/48_22.jpg")
#: Held-out ddti test frames whose nodule the detector finds today.
NODULE = ("ddti/images/351_1.png", "ddti/images/277_1.png", "ddti/images/156_2.png")
MASKS = {name: name.replace("images/", "masks/") for name in NODULE}


def enforced(segmenter):
    """The shipped segmenter with the card's presence model switched on."""
    if segmenter.presence is None:
        pytest.skip("the model card states no presence model")
    seg = copy.copy(segmenter)
    seg.presence = dataclasses.replace(segmenter.presence, enforced=True)
    return seg


def test_known_empty_frames_get_no_proposal_and_nodule_frames_keep_theirs(shared_data, segmenter):
    from training.data import read_mask  # the masks' reader (tests may use training)

    seg = enforced(segmenter)
    for name in EMPTY:
        image = open_image(shared_data / name)
        before = detect(np.asarray(image.pixels), image.gray, segmenter, segmenter.size)
        after = detect(np.asarray(image.pixels), image.gray, seg, seg.size)
        assert before.best is not None, name  # a box today
        assert after.best is None and after.below_presence, name
    for name in NODULE:
        image = open_image(shared_data / name)
        mask = read_mask(shared_data / MASKS[name], image.width, image.height)
        truth = roi_from_mask(mask.astype(np.uint8))
        after = detect(np.asarray(image.pixels), image.gray, seg, seg.size)
        assert after.best is not None and after.best.roi.iou(truth) >= 0.3, name
        assert after.best.presence >= seg.presence.threshold
