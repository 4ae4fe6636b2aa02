"""The thyroid-gland segmenter: where a nodule can be.

The nodule segmenter's architecture (``training.segmenter.build``: U-Net-style decoder on
the frozen ImageNet EfficientNet-Lite0 encoder, encoder features cached once), trained on the
tg3k gland masks of the published ``train`` split (mirrored as well), judged on ``val`` and
``test``. Its input is the app's: the field-of-view box, outside black, resized to 256 px.

Usage: python -m training.gland [--epochs 10] [--export resources/models]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import time
from pathlib import Path

import numpy as np

from thyroid_desktop.core.io.images import open_image
from thyroid_desktop.core.models.shipped import GLAND_CARD_KEY, GLAND_FILE, sha256_file
from thyroid_desktop.core.pipeline.detect import GLAND_THRESHOLD, map_to_image, segmenter_input
from thyroid_desktop.core.pipeline.fov import detect_fov
from thyroid_desktop.core.site.validation import neighbour_groups
from training.data import DEFAULT_DATA, read_mask
from training.segmenter import SIZE, _Batches, _coarse, bootstrap_ci, build, dice_bce, dice_iou

log = logging.getLogger(__name__)


def load_rows(data: Path) -> list[dict[str, str]]:
    with open(data / "tg3k" / "gland_masks.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def prepare(data: Path, rows: list[dict[str, str]]):
    """Segmenter inputs, square masks and full-resolution masks of ``rows``."""
    inputs = np.empty((len(rows), SIZE, SIZE, 3), np.uint8)
    coarse = np.empty((len(rows), SIZE // 4, SIZE // 4, 1), np.float32)
    full = []
    for i, r in enumerate(rows):
        img = open_image(data / "tg3k" / r["file"])
        mask = read_mask(data / "tg3k" / r["mask"], img.width, img.height)
        fov = detect_fov(img.gray)
        inputs[i] = segmenter_input(np.asarray(img.pixels), fov, SIZE)
        m = segmenter_input(np.repeat(mask[..., None].astype(np.uint8) * 255, 3, 2), fov, SIZE)
        coarse[i, ..., 0] = _coarse(m[..., 0])
        full.append((mask, fov, img.width, img.height))
    return inputs, coarse, full


def evaluate(seg_fn, inputs, full, files) -> dict:
    """Dice and IoU at image resolution (the app's mapping back), CI over runs of ids."""
    import tensorflow as tf

    dices, ious = [], []
    for i, (mask, fov, w, h) in enumerate(full):
        prob = seg_fn(tf.cast(inputs[i : i + 1], tf.float32)).numpy()[0, ..., 0]
        pred = map_to_image(prob, fov, w, h) >= GLAND_THRESHOLD
        d, j = dice_iou(pred, mask)
        dices.append(d)
        ious.append(j)
    groups = np.array(neighbour_groups(files))
    d, j = np.array(dices), np.array(ious)
    return {
        "n": len(d),
        "n_groups": int(len(set(groups))),
        "dice_mean": round(float(d.mean()), 3),
        "dice_ci95": [round(v, 3) for v in bootstrap_ci(d, groups)],
        "dice_median": round(float(np.median(d)), 3),
        "iou_mean": round(float(j.mean()), 3),
    }


def main(argv: list[str] | None = None) -> int:
    import keras
    import tensorflow as tf

    from thyroid_desktop.core.io.files import write_atomically

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--export", type=Path, default=Path("resources/models"))
    parser.add_argument("--limit", type=int, default=0, help="use only N training frames")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    keras.utils.set_random_seed(0)
    rows = load_rows(args.data)
    by_split = {s: [r for r in rows if r["split"] == s] for s in ("train", "val", "test")}
    train = (
        by_split["train"][:: max(1, len(by_split["train"]) // args.limit)]
        if args.limit
        else by_split["train"]
    )
    t0 = time.perf_counter()
    x_train, y_train, _ = prepare(args.data, train)
    log.info("%d training frames read in %.0f s", len(train), time.perf_counter() - t0)

    full, cache_model, trainer = build(tune_from=0)
    skip_fn = tf.function(lambda x: cache_model(x, training=False))

    def features(images: np.ndarray) -> list[np.ndarray]:
        outs = []
        for i in range(0, len(images), 32):
            x = tf.cast(images[i : i + 32], tf.float32)
            outs.append([o.numpy().astype(np.float16) for o in skip_fn(x)])
        return [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]

    t0 = time.perf_counter()
    plain, mirror = features(x_train), features(x_train[:, :, ::-1])
    feats = [np.concatenate([a, b]) for a, b in zip(plain, mirror, strict=True)]
    targets = np.concatenate([y_train, y_train[:, :, ::-1]])
    log.info("encoder features in %.0f s", time.perf_counter() - t0)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), loss=dice_bce)
    t0 = time.perf_counter()
    trainer.fit(_Batches(feats, targets, 32), epochs=args.epochs, verbose=2)
    train_s = time.perf_counter() - t0
    log.info("decoder trained in %.0f s", train_s)

    seg_fn = tf.function(lambda x: full(x, training=False))
    metrics = {}
    for split in ("val", "test"):
        x, _, masks = prepare(args.data, by_split[split])
        metrics[split] = evaluate(seg_fn, x, masks, [r["file"] for r in by_split[split]])
        log.info("gland %s: %s", split, metrics[split])
    weights = args.export / GLAND_FILE
    write_atomically(weights, lambda p: full.save(p))
    card_path = args.export / "model_card.json"
    card = json.loads(card_path.read_text())
    previous = card.get(GLAND_CARD_KEY, {})
    card[GLAND_CARD_KEY] = {
        # the filter decision stays until training.detector_eval measures the new model
        **{k: previous[k] for k in ("filter_candidates", "filter_note") if k in previous},
        "name": "Thyroid gland segmenter",
        "file": GLAND_FILE,
        "sha256": sha256_file(weights),
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "architecture": "the nodule segmenter's U-Net-style decoder on the frozen ImageNet "
        "EfficientNet-Lite0 encoder",
        "input_size": SIZE,
        "input": "field-of-view box, outside the scan area black, resized to a square; RGB 0..255",
        "training": {
            "frames": len(train),
            "dataset": "tg3k published train split (saved with flips, rotations, noise), mirrored",
            "epochs": args.epochs,
            "seconds": round(train_s),
            "loss": "BCE + soft Dice on the 1/4-resolution grid",
        },
        "threshold": GLAND_THRESHOLD,
        "metrics": {**metrics, "ci": "95 % bootstrap over runs of neighbouring file ids"},
    }
    write_atomically(card_path, lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
