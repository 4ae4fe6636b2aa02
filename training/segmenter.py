"""The nodule segmenter: a U-Net-style decoder on the ImageNet EfficientNet-Lite0 encoder,
trained on nodule masks of arcegor (sequences) and ddti (cases).

The encoder's early stages stay frozen, so their features are computed once per image (and
its mirror image) and training runs from those: tens of minutes on a CPU instead of hours.
With ``--augment`` every epoch sees a new geometric and grey-map view of each image instead,
and the frozen stages run at every step (about as fast per view on this CPU).
First the decoder alone trains; then (``--tune-from 3``) the encoder's stages 4-6 are
fine-tuned with it. The exported model is one flat graph: image -> encoder -> decoder ->
nodule probability map. The defaults reproduce the shipped segmenter.

Usage: python -m training.segmenter [--data ../shared/data] [--export resources/models]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from thyroid_desktop.core.io.images import open_image
from thyroid_desktop.core.models.shipped import SEGMENTER_CARD_KEY, SEGMENTER_FILE, sha256_file
from thyroid_desktop.core.pipeline.detect import (
    MASK_THRESHOLD,
    candidates_from_map,
    map_to_image,
    segmenter_input,
)
from thyroid_desktop.core.pipeline.fov import detect_fov
from thyroid_desktop.core.pipeline.roi import roi_from_mask
from training.data import DEFAULT_DATA, read_mask

log = logging.getLogger(__name__)

SIZE = 256
BACKBONE = "efficientnet_lite0"
#: Encoder stages the decoder takes skips from (64, 32, 16 and 8 px at 256 px input).
SKIP_STAGES = (2, 3, 5, 6)
DECODER_WIDTHS = (64, 48, 32, 16)
TEST_FRACTION = 0.2
SPLIT_SEED = 2026


@dataclass(frozen=True)
class MaskSample:
    path: Path
    mask_path: Path | None  # None: a frame known to show no nodule
    group: str
    dataset: str


def load_mask_samples(data: Path) -> list[MaskSample]:
    """arcegor frames (grouped by sequence) and ddti images with a mask (grouped by case)."""
    out = []
    with open(data / "arcegor" / "masks.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            mask = data / "arcegor" / r["mask"] if r["has_nodule"] == "1" else None
            out.append(
                MaskSample(data / "arcegor" / r["file"], mask, f"arcegor:{r['group']}", "arcegor")
            )
    with open(data / "ddti" / "metadata.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            if r["mask"]:
                out.append(
                    MaskSample(
                        data / "ddti" / r["file"],
                        data / "ddti" / r["mask"],
                        f"ddti:{r['case']}",
                        "ddti",
                    )
                )
    return out


def split(
    samples: list[MaskSample], classifier_test_groups: set[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out groups: the classifier's ddti test cases (so auto-ROI can be scored on images
    neither model saw) plus a random 20 % of arcegor sequences."""
    rng = np.random.default_rng(SPLIT_SEED)
    arcegor = sorted({s.group for s in samples if s.dataset == "arcegor"})
    test_arcegor = set(rng.choice(arcegor, int(round(TEST_FRACTION * len(arcegor))), replace=False))
    is_test = np.array(
        [s.group in test_arcegor or s.group in classifier_test_groups for s in samples]
    )
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def load_pair(s: MaskSample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image pixels, full-resolution bool mask, and the segmenter input (FOV-cut square)."""
    img = open_image(s.path)
    mask = read_mask(s.mask_path, img.width, img.height)
    if mask is None:
        mask = np.zeros((img.height, img.width), bool)
    return np.asarray(img.pixels), mask, img.gray


def build(weights: str | None = "imagenet", tune_from: int = 0, size: int = SIZE):
    """Returns (full segmenter, cache model, training model).

    The cache model maps an image to the frozen features the training model starts from:
    the encoder's skips when ``tune_from`` is 0, else the skips of stages up to
    ``tune_from`` (whose output is the last of them); the training model then runs the
    encoder's later stages (trainable, batch norm kept in inference mode) and the decoder.
    Layers are created once, so the exported full model carries the trained weights.
    """
    import keras

    from training.backbones import build_backbone
    from training.linear_head import stage_outputs

    encoder, _ = build_backbone(BACKBONE, size, weights=weights)
    skips = [encoder.get_layer(n).output for n in stage_outputs(encoder, SKIP_STAGES)]
    cached_stages = (
        SKIP_STAGES if not tune_from else tuple(s for s in SKIP_STAGES if s <= tune_from)
    )
    if tune_from and cached_stages[-1] != tune_from:
        raise ValueError(f"tune_from must be one of the skip stages {SKIP_STAGES}")
    cached = skips[: len(cached_stages)]
    cache_model = keras.Model(encoder.input, cached, name="encoder_cache")
    widths = DECODER_WIDTHS
    layers = {
        "in": keras.layers.Conv2D(widths[0], 1, activation="relu", name="dec_in"),
        "convs": [
            (
                keras.layers.Conv2D(w, 3, padding="same", activation="relu", name=f"dec{i}_a"),
                keras.layers.Conv2D(w, 3, padding="same", activation="relu", name=f"dec{i}_b"),
            )
            for i, w in enumerate(widths[1:], start=1)
        ],
        "out": keras.layers.Conv2D(1, 1, name="dec_logits"),
    }

    def decode(feats, prefix: str):
        x = layers["in"](feats[-1])
        for i, (ca, cb) in enumerate(layers["convs"], start=1):
            x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{prefix}up{i}")(x)
            x = keras.layers.Concatenate(name=f"{prefix}cat{i}")([x, feats[-1 - i]])
            x = cb(ca(x))
        return layers["out"](x)

    logits = decode(skips, "")
    up = keras.layers.UpSampling2D(4, interpolation="bilinear", name="upsample_full")(logits)
    prob = keras.layers.Activation("sigmoid", name="nodule_probability")(up)
    full = keras.Model(encoder.input, prob, name="thyroid_nodule_segmenter")
    cache_inputs = [keras.Input(t.shape[1:], name=f"skip{i}") for i, t in enumerate(cached)]
    train_feats = list(cache_inputs)
    if tune_from:
        upper = keras.Model(cached[-1], skips[len(cached) :], name="encoder_upper")
        for layer in upper.layers:
            layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
        train_feats += list(upper(cache_inputs[-1], training=False))
    trainer = keras.Model(cache_inputs, decode(train_feats, "c_"), name="segmenter_train")
    return full, cache_model, trainer


def _batches_class():
    import keras

    class Batches(keras.utils.PyDataset):
        """Shuffled float32 batches cut from float16 feature arrays (keeps memory low)."""

        def __init__(self, feats: list[np.ndarray], targets: np.ndarray, batch_size: int):
            super().__init__()
            self.feats, self.targets, self.batch_size = feats, targets, batch_size
            self.order = np.random.default_rng(0).permutation(len(targets))

        def __len__(self) -> int:
            return int(np.ceil(len(self.targets) / self.batch_size))

        def __getitem__(self, i: int):
            idx = np.sort(self.order[i * self.batch_size : (i + 1) * self.batch_size])
            return tuple(f[idx].astype(np.float32) for f in self.feats), self.targets[idx]

        def on_epoch_end(self) -> None:
            self.order = np.random.default_rng(len(self.order) + int(self.order[0])).permutation(
                len(self.targets)
            )

    return Batches


def _Batches(feats, targets, batch_size):  # noqa: N802 (reads as the class it builds)
    return _batches_class()(feats, targets, batch_size)


def _coarse(square_mask: np.ndarray) -> np.ndarray:
    """A square uint8 mask as the decoder's 1/4-resolution soft target."""
    q = square_mask.shape[0] // 4
    return cv2.resize(square_mask.astype(np.float32) / 255.0, (q, q), interpolation=cv2.INTER_AREA)


def _zoom_view(images: np.ndarray, masks: np.ndarray, rng: np.random.Generator):
    """Each image zoomed in by a random 1-1.8x around a random point (small nodules become
    larger), with its mask; returns the images and coarse targets."""
    size = images.shape[1]
    out_i, out_t = (
        np.empty_like(images),
        np.empty((len(images), size // 4, size // 4, 1), np.float32),
    )
    for k in range(len(images)):
        z = rng.uniform(1.0, 1.8)
        side = size / z
        x0, y0 = rng.uniform(0, size - side, size=2)
        m = np.array([[z, 0, -x0 * z], [0, z, -y0 * z]], np.float32)
        out_i[k] = cv2.warpAffine(images[k], m, (size, size), flags=cv2.INTER_LINEAR)
        out_t[k, ..., 0] = _coarse(
            cv2.warpAffine(masks[k], m, (size, size), flags=cv2.INTER_LINEAR)
        )
    return out_i, out_t


#: ``--resample-views``: each frame resampled by a log-uniform factor in this range first (as
#: another scanner's pixel size shows the same anatomy), then cut and resized as the app does.
RESAMPLE = (0.6, 1.4)


def resampled_view(
    s: MaskSample, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The segmenter input and its uint8 mask of frame ``s`` after resampling the whole frame
    by a random factor (``RESAMPLE``; ``training.app_path.cache.resampled``, the scale
    benchmark's resampling), its scan area found again on the resampled frame; mirrored
    half the time."""
    from thyroid_desktop.core.io.images import from_array
    from training.app_path.cache import resampled

    pixels, mask, _gray = load_pair(s)
    factor = float(np.exp(rng.uniform(*np.log(RESAMPLE))))
    image = resampled(from_array(pixels), factor)
    small = cv2.resize(
        mask.astype(np.uint8) * 255, (image.width, image.height), interpolation=cv2.INTER_NEAREST
    )
    fov = detect_fov(image.gray)
    x = segmenter_input(np.asarray(image.pixels), fov, size)
    m = segmenter_input(np.repeat(small[..., None], 3, 2), fov, size)[..., 0]
    if rng.random() < 0.5:
        x, m = x[:, ::-1], m[:, ::-1]
    return np.ascontiguousarray(x), np.ascontiguousarray(m)


#: ``--augment`` ranges: scale (log-uniform), shift (share of the side), rotation (degrees),
#: gain, offset (share of full grey), gamma (log-uniform), blur sigma (px), speckle shape
#: (multiplicative gamma noise of mean 1, sd 1/sqrt(shape)); blur and speckle each in a
#: quarter of the views.
AUG_SCALE = (0.7, 1.5)
AUG_SHIFT = 0.12
AUG_ROTATION = 8.0
AUG_GAIN = (0.75, 1.3)
AUG_OFFSET = 0.08
AUG_GAMMA = (0.7, 1.4)
AUG_BLUR = (0.5, 1.5)
AUG_SPECKLE = 16.0
AUGMENTATION = (
    f"a fresh view per epoch: mirror, scale {AUG_SCALE[0]}-{AUG_SCALE[1]}x, shift <= "
    f"{AUG_SHIFT:.0%}, rotation <= {AUG_ROTATION:g} deg, gain {AUG_GAIN[0]}-{AUG_GAIN[1]}, "
    f"offset <= {AUG_OFFSET}, gamma {AUG_GAMMA[0]}-{AUG_GAMMA[1]}, blur or speckle noise"
)


def augment_view(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One random training view of a square segmenter input and its uint8 mask.

    Geometric: horizontal mirror, scale 0.7-1.5x (zooming out makes nodules smaller, as on a
    wide-field scanner; zooming in makes small ones larger), a shift of up to 12 % and a
    rotation of up to 8 degrees; never a vertical flip (depth runs top to bottom). Intensity,
    inside the scan area only: gain, offset and gamma (another scanner's grey map), blur or
    multiplicative speckle noise. What falls outside the scan area stays black, as the app's
    input has it (the scan area is taken as the pixels that are not pure black, so a pure
    black pixel inside it stays black too).
    """
    size = image.shape[0]
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    scale = float(np.exp(rng.uniform(*np.log(AUG_SCALE))))
    angle = float(rng.uniform(-AUG_ROTATION, AUG_ROTATION))
    shift = rng.uniform(-AUG_SHIFT, AUG_SHIFT, size=2) * size
    m = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    m[:, 2] += shift
    valid = cv2.warpAffine(
        (image.max(axis=2) > 0).astype(np.uint8), m, (size, size), flags=cv2.INTER_NEAREST
    ).astype(bool)
    out = cv2.warpAffine(np.ascontiguousarray(image), m, (size, size), flags=cv2.INTER_LINEAR)
    out_mask = cv2.warpAffine(np.ascontiguousarray(mask), m, (size, size), flags=cv2.INTER_LINEAR)
    x = out.astype(np.float32) / 255.0
    x = np.clip(x * rng.uniform(*AUG_GAIN) + rng.uniform(-AUG_OFFSET, AUG_OFFSET), 0, 1)
    x **= float(np.exp(rng.uniform(*np.log(AUG_GAMMA))))
    noise = rng.random()
    if noise < 0.25:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(*AUG_BLUR))
    elif noise < 0.5:
        speckle = rng.gamma(AUG_SPECKLE, 1 / AUG_SPECKLE, size=x.shape[:2])
        x = np.clip(x * speckle[..., None], 0, 1)
    out = np.round(x * 255).astype(np.uint8)
    out[~valid] = 0
    return out, out_mask


def _augmented_batches_class():
    import keras

    class AugmentedBatches(keras.utils.PyDataset):
        """Batches of freshly augmented images (``augment_view``) and coarse targets: every
        epoch sees each training image once, in a new view."""

        def __init__(self, images: np.ndarray, masks: np.ndarray, batch_size: int, seed: int):
            super().__init__()
            self.images, self.masks, self.batch_size = images, masks, batch_size
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(images))

        def __len__(self) -> int:
            return int(np.ceil(len(self.images) / self.batch_size))

        def __getitem__(self, i: int):
            idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
            views = [augment_view(self.images[k], self.masks[k], self.rng) for k in idx]
            x = np.stack([v[0] for v in views]).astype(np.float32)
            y = np.stack([_coarse(v[1]) for v in views])[..., None]
            return x, y

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(len(self.images))

    return AugmentedBatches


def dice_bce(y_true, y_pred):
    """BCE + soft Dice on logits (coarse grid)."""
    import keras
    from keras import ops

    p = ops.sigmoid(y_pred)
    inter = ops.sum(p * y_true, axis=(1, 2, 3))
    denom = ops.sum(p, axis=(1, 2, 3)) + ops.sum(y_true, axis=(1, 2, 3))
    dice = 1.0 - (2.0 * inter + 1.0) / (denom + 1.0)
    bce = keras.losses.binary_crossentropy(y_true, y_pred, from_logits=True)
    return ops.mean(bce, axis=(1, 2)) + dice


def dice_iou(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    inter = np.logical_and(pred, truth).sum()
    total = pred.sum() + truth.sum()
    union = np.logical_or(pred, truth).sum()
    return (2 * inter / total if total else 1.0), (inter / union if union else 1.0)


def bootstrap_ci(values: np.ndarray, groups: np.ndarray, n_boot: int = 2000) -> tuple[float, float]:
    """95 % CI of the mean, resampling whole groups (core's grouped bootstrap, seed 0)."""
    from thyroid_desktop.core.site.metrics import grouped_bootstrap

    values = np.asarray(values, dtype=float)
    return grouped_bootstrap(lambda idx: float(values[idx].mean()), groups, n_boot, seed=0)


def main(argv: list[str] | None = None) -> int:
    import keras
    import tensorflow as tf

    from thyroid_desktop.core.io.files import write_atomically

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=12, help="decoder-only epochs")
    parser.add_argument("--export", type=Path, default=Path("resources/models"))
    parser.add_argument("--out", type=Path, default=Path("runs/segmenter"))
    parser.add_argument("--limit", type=int, default=0, help="use only N images (smoke runs)")
    parser.add_argument(
        "--zoom-views", type=int, default=0, help="extra training views zoomed in 1-1.8x"
    )
    parser.add_argument(
        "--resample-views",
        type=int,
        default=0,
        help="extra cached views per image: the frame resampled by 0.6-1.4x first",
    )
    parser.add_argument(
        "--tune-from",
        type=int,
        default=3,
        choices=(0, *SKIP_STAGES),
        help="fine-tune the encoder stages after this one (0: encoder frozen)",
    )
    parser.add_argument("--tune-epochs", type=int, default=12)
    parser.add_argument("--tune-lr", type=float, default=3e-5)
    parser.add_argument("--size", type=int, default=SIZE, help="input side in px (x32)")
    parser.add_argument(
        "--augment",
        action="store_true",
        help="train on a fresh geometric + intensity augmented view of each image per epoch "
        "(the frozen encoder stages run every step instead of being cached)",
    )
    args = parser.parse_args(argv)
    if args.augment and (args.zoom_views or args.resample_views):
        parser.error("--zoom/resample-views add cached views; --augment draws its own")
    size = args.size
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    keras.utils.set_random_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)

    card_path = args.export / "model_card.json"
    card = json.loads(card_path.read_text())
    clf_test = {"ddti:" + f for f in _classifier_test_cases(card, args.data)}
    samples = load_mask_samples(args.data)
    if args.limit:
        samples = samples[:: max(1, len(samples) // args.limit)]
    train_idx, test_idx = split(samples, clf_test)
    log.info("%d train / %d test images", len(train_idx), len(test_idx))

    full, cache_model, trainer = build(tune_from=args.tune_from, size=size)
    skip_fn = tf.function(lambda x: cache_model(x, training=False))
    t0 = time.perf_counter()
    inputs = np.empty((len(samples), size, size, 3), np.uint8)
    coarse = np.empty((len(samples), size // 4, size // 4, 1), np.float32)
    square_masks = np.empty((len(samples), size, size), np.uint8)
    for i, s in enumerate(samples):
        pixels, mask, gray = load_pair(s)
        fov = detect_fov(gray)
        inputs[i] = segmenter_input(pixels, fov, size)
        m = segmenter_input(np.repeat(mask[..., None].astype(np.uint8) * 255, 3, 2), fov, size)[
            ..., 0
        ]
        square_masks[i] = m
        coarse[i, ..., 0] = _coarse(m)
    log.info("inputs in %.0f s", time.perf_counter() - t0)

    def features(
        idx: np.ndarray, mirror: bool, images: np.ndarray | None = None
    ) -> list[np.ndarray]:
        images = inputs[idx] if images is None else images
        outs = []
        for i in range(0, len(idx), 32):
            x = tf.cast(images[i : i + 32], tf.float32)
            outs.append(
                [o.numpy().astype(np.float16) for o in skip_fn(x[:, :, ::-1] if mirror else x)]
            )
        return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]

    if args.augment:
        # The frozen stages run inside the training graph: their batch norm stays in
        # inference mode (not trainable), while their drop-connect is active during fit,
        # as it is in the fine-tuned stages of either mode (stochastic depth, 2.5-5 % here).
        batches = _augmented_batches_class()(inputs[train_idx], square_masks[train_idx], 32, 1)
        cache_model.trainable = False
        image_in = keras.Input((size, size, 3), name="image")
        fit_model = keras.Model(image_in, trainer(cache_model(image_in, training=False)))
    else:
        t0 = time.perf_counter()
        f_plain, f_mirror = features(train_idx, False), features(train_idx, True)
        feats = [np.concatenate([a, b]) for a, b in zip(f_plain, f_mirror, strict=True)]
        targets = np.concatenate([coarse[train_idx], coarse[train_idx][:, :, ::-1]])
        rng = np.random.default_rng(1)
        for _ in range(args.zoom_views):
            zoomed, zoom_targets = _zoom_view(inputs[train_idx], square_masks[train_idx], rng)
            extra = features(train_idx, False, zoomed)
            feats = [np.concatenate([a, b]) for a, b in zip(feats, extra, strict=True)]
            targets = np.concatenate([targets, zoom_targets])
        for _ in range(args.resample_views):
            views = [resampled_view(samples[k], size, rng) for k in train_idx]
            extra = features(train_idx, False, np.stack([v[0] for v in views]))
            feats = [np.concatenate([a, b]) for a, b in zip(feats, extra, strict=True)]
            targets = np.concatenate([targets, np.stack([_coarse(v[1]) for v in views])[..., None]])
        log.info("encoder features in %.0f s", time.perf_counter() - t0)
        batches = _Batches(feats, targets, 32)
        fit_model = trainer
    upper = trainer.get_layer("encoder_upper") if args.tune_from else None
    t0 = time.perf_counter()
    if upper is not None:
        upper.trainable = False
    fit_model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=dice_bce)
    fit_model.fit(batches, epochs=args.epochs, verbose=2)
    log.info("decoder trained in %.0f s", time.perf_counter() - t0)
    if upper is not None and args.tune_epochs:
        upper.trainable = True
        for layer in upper.layers:  # batch norm stays in inference mode
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        fit_model.compile(optimizer=keras.optimizers.Adam(args.tune_lr), loss=dice_bce)
        t0 = time.perf_counter()
        fit_model.fit(batches, epochs=args.tune_epochs, verbose=2)
        log.info(
            "encoder stages > %d fine-tuned in %.0f s", args.tune_from, time.perf_counter() - t0
        )

    seg_fn = tf.function(lambda x: full(x, training=False))
    dices, ious, groups, false_det, neg_groups = [], [], [], [], []
    box_hits: dict[str, list[bool]] = {}
    per_dataset: dict[str, list[float]] = {}
    for i in test_idx:
        s = samples[i]
        pixels, mask, gray = load_pair(s)
        fov = detect_fov(gray)
        prob = seg_fn(tf.cast(inputs[i : i + 1], tf.float32)).numpy()[0, ..., 0]
        full_prob = map_to_image(prob, fov, pixels.shape[1], pixels.shape[0])
        cands = candidates_from_map(full_prob, fov)
        pred = full_prob >= MASK_THRESHOLD
        if mask.any():
            truth_box = roi_from_mask(mask.astype(np.uint8))
            hit = bool(cands) and cands[0].roi.iou(truth_box) >= 0.5
            box_hits.setdefault(s.dataset, []).append(hit)
            d, j = dice_iou(pred, mask)
            dices.append(d)
            ious.append(j)
            groups.append(s.group)
            per_dataset.setdefault(s.dataset, []).append(d)
        else:
            false_det.append(1.0 if cands else 0.0)
            neg_groups.append(s.group)
    dices_a, ious_a = np.array(dices), np.array(ious)
    metrics = {
        "test_images_with_nodule": len(dices),
        "dice_mean": float(dices_a.mean()),
        "dice_ci95": bootstrap_ci(dices_a, np.array(groups)),
        "dice_median": float(np.median(dices_a)),
        "iou_mean": float(ious_a.mean()),
        "iou_ci95": bootstrap_ci(ious_a, np.array(groups)),
        "dice_by_dataset": {k: float(np.mean(v)) for k, v in per_dataset.items()},
        "best_box_iou_ge_0.5_rate_by_dataset": {k: float(np.mean(v)) for k, v in box_hits.items()},
        "test_frames_without_nodule": len(false_det),
        "false_detection_rate": float(np.mean(false_det)) if false_det else None,
        "false_detection_ci95": bootstrap_ci(np.array(false_det), np.array(neg_groups))
        if false_det
        else None,
        "split": "held-out groups: 20 % of arcegor sequences + the classifier's ddti test cases",
    }
    log.info("segmenter test: %s", metrics)
    args.export.mkdir(parents=True, exist_ok=True)
    weights = args.export / SEGMENTER_FILE
    write_atomically(weights, lambda p: full.save(p))
    card[SEGMENTER_CARD_KEY] = {
        "name": "Thyroid nodule segmenter",
        "file": SEGMENTER_FILE,
        "sha256": sha256_file(weights),
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "architecture": f"U-Net-style decoder {DECODER_WIDTHS} on ImageNet {BACKBONE}, skips from stages {SKIP_STAGES}; "
        + (
            f"encoder stages after {args.tune_from} fine-tuned"
            if args.tune_from and args.tune_epochs
            else "encoder frozen"
        ),
        "input_size": size,
        "input": "field-of-view box, outside the scan area black, resized to a square; RGB 0..255",
        "training": {
            "images": int(len(train_idx)),
            "datasets": ["arcegor", "ddti"],
            "epochs": args.epochs,
            "fine_tune_epochs": args.tune_epochs if args.tune_from else 0,
            "augmentation": (
                AUGMENTATION
                if args.augment
                else f"horizontal mirror; {args.zoom_views} random 1-1.8x zoom view(s); "
                f"{args.resample_views} view(s) of the frame resampled by "
                f"{RESAMPLE[0]}-{RESAMPLE[1]}x first"
            ),
            "loss": "BCE + soft Dice on the 1/4-resolution grid",
        },
        "threshold": MASK_THRESHOLD,
        "metrics": metrics,
    }
    write_atomically(card_path, lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))
    return 0


def _classifier_test_cases(card: dict, data: Path) -> set[str]:
    """ddti case ids of the classifier's test images."""
    files = {
        f.split("/", 1)[1] for f in card["data"]["split"]["test_files"] if f.startswith("ddti/")
    }
    with open(data / "ddti" / "metadata.csv", newline="") as fh:
        return {r["case"] for r in csv.DictReader(fh) if r["file"] in files}


if __name__ == "__main__":
    raise SystemExit(main())
