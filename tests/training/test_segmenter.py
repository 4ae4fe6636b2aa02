"""The segmenter's training graph: fine-tuned encoder layers are the exported model's."""

import numpy as np
import pytest

from training.segmenter import SIZE, build, dice_iou


def test_fine_tuning_graph_shares_its_encoder_stages_with_the_exported_model():
    full, cache_model, trainer = build(weights=None, tune_from=3)
    cached = cache_model(np.zeros((1, SIZE, SIZE, 3), np.float32))
    assert [t.shape[1] for t in cached] == [SIZE // 4, SIZE // 8]  # stages 2 and 3
    trainable = {w.path.split("/")[0] for w in trainer.trainable_weights}
    assert any(name.startswith("block5") for name in trainable)  # encoder stages 4-6
    assert not any("bn" in name for name in trainable)  # batch norm stays frozen
    assert not any(name.startswith(("block1", "block2", "block3")) for name in trainable)
    layer = next(w for w in trainer.trainable_weights if w.path.startswith("block5"))
    layer.assign(layer + 1.0)
    exported = {w.path: w for w in full.weights}
    assert np.array_equal(exported[layer.path].numpy(), layer.numpy())


def test_frozen_graph_trains_only_the_decoder():
    _, _, trainer = build(weights=None, tune_from=0)
    assert all(w.path.startswith("dec") for w in trainer.trainable_weights)


def test_another_input_size_gives_maps_and_targets_of_that_size():
    from training.segmenter import _coarse, _zoom_view

    full, cache_model, _ = build(weights=None, tune_from=3, size=128)
    assert full.input_shape[1:] == (128, 128, 3) and full.output_shape[1:3] == (128, 128)
    assert [t.shape[1] for t in cache_model(np.zeros((1, 128, 128, 3), np.float32))] == [32, 16]
    mask = np.zeros((128, 128), np.uint8)
    mask[32:96, 32:96] = 255
    assert _coarse(mask).shape == (32, 32) and _coarse(mask).max() == 1.0
    images, targets = _zoom_view(
        np.zeros((2, 128, 128, 3), np.uint8), np.stack([mask, mask]), np.random.default_rng(0)
    )
    assert images.shape == (2, 128, 128, 3) and targets.shape == (2, 32, 32, 1)


def test_tune_from_must_be_a_skip_stage():
    with pytest.raises(ValueError):
        build(weights=None, tune_from=4)


def test_dice_and_iou():
    a = np.zeros((10, 10), bool)
    a[2:6, 2:6] = True
    b = np.zeros_like(a)
    b[4:8, 2:6] = True
    assert dice_iou(a, b) == pytest.approx((0.5, 1 / 3))
    assert dice_iou(a & False, b & False) == (1.0, 1.0)
