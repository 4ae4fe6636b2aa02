"""The shipped model on real ultrasound images (../shared/data; skipped when absent)."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from thyroid_desktop.core.io.images import open_image
from thyroid_desktop.core.pipeline.estimate import auto_predict
from thyroid_desktop.core.pipeline.fov import detect_fov
from training.data import sample_roi, samples_in


def test_real_images_of_every_set_open(shared_data):
    for folder in ("ddti", "chaouchi", "arcegor"):
        files = sorted((shared_data / folder / "images").iterdir())[::25]
        for path in files:
            img = open_image(path)
            assert img.pixels.ndim == 3 and img.spacing_mm is None


@pytest.mark.slow
def test_card_test_metrics_reproduce_through_the_app_path(shared_data, classifier, segmenter):
    """Re-scores the held-out test split through the app's default path (auto_predict: the
    auto-detected box, box jitters and mirror): the AUROC must equal what the card states,
    so the card cannot drift from the shipped weights or from the app's code."""
    card = classifier.card.raw
    test_files = set(card["data"]["split"]["test_files"])
    for site in ("ddti", "chaouchi"):
        samples = samples_in(shared_data, site, test_files)
        assert len(samples) == card["data"]["split"]["counts"]["test"][site]["images"]
        probs = [
            auto_predict(open_image(s.path), classifier, segmenter)[0].probability for s in samples
        ]
        auroc = roc_auc_score([s.label for s in samples], probs)
        expected = card["metrics"]["auto_roi"][site]["auto_roi"]["auroc"]
        assert auroc == pytest.approx(expected, abs=2e-3), site
        assert np.all((np.array(probs) > 0) & (np.array(probs) < 1))


def test_auto_roi_finds_expert_nodules_on_held_out_images(shared_data, classifier, segmenter):
    """On ddti test images (neither model trained on them) the best candidate box mostly
    overlaps the expert's nodule box; the card's measured share is 77 %."""
    from thyroid_desktop.core.pipeline.estimate import detect_nodules

    test_files = set(classifier.card.raw["data"]["split"]["test_files"])
    samples = samples_in(shared_data, "ddti", test_files)[:30]
    hits = 0
    for s in samples:
        image = open_image(s.path)
        det = detect_nodules(image, segmenter)
        truth = sample_roi(s, image.width, image.height)
        hits += det.best is not None and det.best.roi.iou(truth) >= 0.5
    assert hits / len(samples) >= 0.6


def test_out_of_scope_check_stays_quiet_on_real_ultrasound(shared_data):
    """All 3,384 frames pass (measured); a sample keeps the suite fast."""
    from thyroid_desktop.core.pipeline.scope import check_scope

    for folder in ("ddti", "chaouchi", "arcegor"):
        for path in sorted((shared_data / folder / "images").iterdir())[::20]:
            image = open_image(path)
            result = check_scope(image, detect_fov(image.gray))
            assert result.in_scope, (path.name, result.reasons)
