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


def _phantom(size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """A scan area (grey, brighter with depth) with a dark nodule, a black margin and its mask."""
    image = np.zeros((size, size, 3), np.uint8)
    depth = np.linspace(60, 200, size - 16).astype(np.uint8)[:, None, None]
    image[8:-8, 8:-8] = depth
    yy, xx = np.mgrid[:size, :size]
    nodule = (yy - 70) ** 2 + (xx - 40) ** 2 < 12**2
    image[nodule] = 20
    return image, nodule.astype(np.uint8) * 255


def test_augmented_view_moves_the_mask_with_the_nodule_and_keeps_depth_and_the_margin():
    from training.segmenter import augment_view

    image, mask = _phantom()
    rng = np.random.default_rng(0)
    for _ in range(30):
        view, view_mask = augment_view(image, mask, rng)
        assert view.shape == image.shape and view.dtype == np.uint8
        assert view_mask.shape == mask.shape
        inside = view_mask > 200
        assert inside.sum() > 50  # scale >= 0.7 and a small shift keep the nodule in view
        scan = view.max(axis=2) > 0
        tissue = scan & ~(cv2_dilate(view_mask) > 0)
        # the nodule stays the dark thing under its mask, whatever gain and gamma did
        assert view[inside].mean() < view[tissue].mean() - 20
        # depth still runs top to bottom (no vertical flip): deeper tissue is brighter
        rows = np.flatnonzero(tissue.any(axis=1))
        top, bottom = rows[: len(rows) // 4], rows[-len(rows) // 4 :]
        assert view[top][tissue[top]].mean() < view[bottom][tissue[bottom]].mean()
    # outside the scan area stays black, whatever offset the grey map got: a round scan area
    # of radius 0.3 x side never reaches the corners, even zoomed 1.5x and shifted
    yy, xx = np.mgrid[:128, :128]
    disc = np.where(((yy - 64) ** 2 + (xx - 64) ** 2 < 38**2)[..., None], 90, 0).astype(np.uint8)
    corners = [(0, 0), (0, -1), (-1, 0), (-1, -1)]
    for _ in range(30):
        view, _ = augment_view(np.repeat(disc, 3, axis=2), mask, rng)
        assert view.max() > 0 and all(view[c].max() == 0 for c in corners)


def test_augmented_batches_give_a_new_view_of_each_image_every_epoch():
    import cv2

    from training.segmenter import _augmented_batches_class

    image, mask = _phantom()
    images, masks = np.stack([image] * 5), np.stack([mask] * 5)
    for k in range(5):  # each image its own nodule place, so image and target must pair up
        images[k], masks[k] = np.roll(image, 12 * k, axis=1), np.roll(mask, 12 * k, axis=1)
    batches = _augmented_batches_class()(images, masks, 2, seed=0)
    assert len(batches) == 3
    orders = []
    for _epoch in range(3):
        orders.append(batches.order.copy())
        assert sorted(batches.order) == list(range(5))  # every image once per epoch
        for i in range(len(batches)):
            x, y = batches[i]
            assert x.dtype == np.float32 and x.shape[1:] == (128, 128, 3)
            assert y.shape[1:] == (32, 32, 1) and y.min() >= 0 and y.max() <= 1
            for view, target in zip(x, y, strict=True):
                nodule = cv2.resize(target[..., 0], (128, 128)) > 0.5
                scan = view.max(axis=2) > 0
                assert nodule.any()
                assert view[nodule].mean() < view[scan & ~nodule].mean() - 20
        batches.on_epoch_end()
    assert any(not np.array_equal(orders[0], o) for o in orders[1:])  # reshuffled


def cv2_dilate(mask: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.dilate(mask, np.ones((9, 9), np.uint8))


def test_a_resampled_view_keeps_the_mask_on_the_nodule(tmp_path):
    """--resample-views: the frame is resampled (another pixel size), its scan area found
    again and cut as the app cuts it; the mask follows the nodule, mirrored with it."""
    import cv2

    from thyroid_desktop.core.io.phantom import make_phantom
    from training.segmenter import MaskSample, resampled_view

    phantom = make_phantom(seed=3)
    pixels = np.asarray(phantom.pixels)
    mask = np.zeros(pixels.shape[:2], np.uint8)
    b = phantom.nodule
    cv2.ellipse(mask, (b.x + b.w // 2, b.y + b.h // 2), (b.w // 2, b.h // 2), 0, 0, 360, 255, -1)
    cv2.imwrite(str(tmp_path / "f.png"), pixels[..., ::-1])
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    sample = MaskSample(tmp_path / "f.png", tmp_path / "m.png", "g", "test")
    rng = np.random.default_rng(0)
    for _ in range(6):
        x, m = resampled_view(sample, 128, rng)
        assert x.shape == (128, 128, 3) and m.shape == (128, 128)
        inside = m > 127
        assert 0.01 < inside.mean() < 0.5
        # the nodule is the phantom's dark disc: darker inside the mask than around it
        grey = x.mean(axis=2)
        assert grey[inside].mean() < grey[~inside & (grey > 0)].mean() - 20
