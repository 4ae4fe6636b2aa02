"""Experiment (issue 25, box stability): fine-tune the backbone's last stages with a
consistency loss, so that a 1-3 px box change stops moving the estimate. Development images
only (the card's test split is never read); grouped CV folds of the card (first repeat).

Why: a 1-3 px change of the box changes the frozen ImageNet features through aliasing, and the
later stages amplify it (noise ratio stage 5 0.029, stage 6 0.057, top 0.109;
``bench_feature_noise.py``). Heads alone could not separate the noise from what ranks ddti.
Here stages 6-7 and the top convolution (3.7 M weights, 17 x 17 -> 9 x 9 at 260 px; 14 x 14 ->
7 x 7 at the 224 px of v1.3.0: the cache's side) are trained, on
stage-5 maps cached once, to give the same logit for every view of an image.

Views of every development image: its auto box (the app-path cache's), 4 changes of it (each
edge moved 0-3 px, at least one 1-3 px; ``bench_feature_noise.crops_of``) and the mirror image
of each, cut as the app cuts them (marks painted out): 10 views. Stages 1-5 run once
(frozen); the tail and the head are trained per fold:

- epoch 0: the tail frozen, the shipped L2 logistic head (C = 0.03) fitted on the box and
  mirror views of the training images: the baseline, in the same code (not the shipped
  recipe's rows, R4, nor its scoring with the app's jitter views);
- then Adam on: balanced BCE over all views + ``--consistency`` x the variance of an image's
  logits over its 10 views + the head's L2 penalty + ``--anchor`` x |tail - ImageNet|^2.
- or, ``--distill``, without labels: the tail learns the frozen tail's features averaged over
  the image's 5 boxes from each single view (``run_fold_distill``); the head refitted after
  each epoch; ``--unlabelled EVERY`` adds every EVERY-th arcegor nodule frame (no labels:
  the expert mask's box and 4 changes, cut as the app cuts them) to what the tail learns
  from (``unlabelled_maps``); ``--logit L`` keeps each view's features and steadies only
  the epoch-0 head's logit (to the image's mean over its views), scored with that head.

For each epoch: held-out AUROC per site of the box + mirror mean logit, the logit's noise
ratio (half its mean squared change under the box changes over its variance between images)
and the shift of the calibrated estimate (Platt on the out-of-fold box logits) when the box
changes by 1-3 px (box + mirror of the changed box against box + mirror of the box): median,
95th pct and max. Prints a table; ``--json`` writes it; the out-of-fold logits go to
``--work``. About 30 minutes for 4 epochs on this 2-core CPU. Results:
docs/experiments.md (box stability: fine-tuning the last stages).

Usage: python benchmarks/tail_finetune_cv.py [--data ../shared/data]
       [--cache runs/app_path_v2] [--epochs 4] [--consistency 10] [--folds 5]
       [--distill [--unlabelled 2]] [--rescore runs/tail_finetune/oof_....npy]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
BACKBONE = "efficientnet_lite2"


def stage5_maps(samples, cache, work: Path, backbone: str = BACKBONE) -> np.ndarray:
    """Stage-5 output (float16) of every image's 5 boxes and their mirrors, N x 10 x h x w x C
    (17 x 17 at 260 px): read from ``work`` when there, else cut at the cache's input side
    (``bench_feature_noise.crops_of``), computed and stored (maps of 260 px caches, stored
    before the side was part of the name, keep their old name)."""
    from training.app_path.recipes import LEGACY_INPUT_SIZE

    name = "stage5" if backbone == BACKBONE else f"stage5_{backbone}"
    if cache.input_size != LEGACY_INPUT_SIZE:
        name += f"_{cache.input_size}px"
    store = work / f"{name}.npy"
    if store.exists():
        maps = np.load(store, mmap_mode="r")
        if len(maps) != len(samples):
            raise SystemExit(f"{store} holds {len(maps)} images, not {len(samples)}")
        return maps
    from bench_feature_noise import crops_of

    t0 = time.perf_counter()
    crops = crops_of(samples, cache)
    print(f"{len(samples)} images x 5 boxes cut in {time.perf_counter() - t0:.0f} s")
    maps = maps_of(crops, backbone)
    work.mkdir(parents=True, exist_ok=True)
    np.save(store, maps)
    return maps


def unlabelled_maps(data: Path, cache, work: Path, every: int, backbone: str = BACKBONE):
    """Stage-5 maps (as `stage5_maps`) of arcegor's nodule frames (every ``every``-th of
    them; no malignancy labels): the expert mask's box and 4 changes of it, cut as the app
    cuts them, and their mirrors. Read from ``work`` when there."""
    tag = "" if backbone == BACKBONE else f"_{backbone}"
    store = work / f"stage5_arcegor{tag}_{cache.input_size}px_every{every}.npy"
    if store.exists():
        return np.load(store, mmap_mode="r")
    import csv

    from bench_feature_noise import CHANGES, SEED
    from bench_what_it_looks_at import box_changes

    from thyroid_desktop.core.io.images import open_image
    from thyroid_desktop.core.pipeline.estimate import classifier_crop
    from thyroid_desktop.core.pipeline.fov import detect_fov
    from thyroid_desktop.core.pipeline.marks import MarksStep
    from thyroid_desktop.core.pipeline.roi import CROP_MARGIN, roi_from_mask
    from training.data import read_mask

    root = data / "arcegor"
    with open(root / "masks.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["has_nodule"] == "1"][::every]
    rng, crops, t0 = np.random.default_rng(SEED), [], time.perf_counter()
    for r in rows:
        image = open_image(root / r["file"])
        mask = read_mask(root / r["mask"], image.width, image.height)
        box = roi_from_mask(mask.astype(np.uint8)) if mask is not None and mask.any() else None
        if box is None:
            continue
        fov = detect_fov(image.gray)
        boxes = [box, *box_changes(box, CHANGES, rng, image.width, image.height)]
        step = MarksStep(cache.marks)
        crops.append(
            [classifier_crop(image, b, cache.input_size, CROP_MARGIN, fov, step)[0] for b in boxes]
        )
    crops = np.asarray(crops, np.uint8)
    print(f"arcegor: {len(crops)} frames x 5 boxes cut in {time.perf_counter() - t0:.0f} s")
    maps = maps_of(crops, backbone)
    work.mkdir(parents=True, exist_ok=True)
    np.save(store, maps)
    return maps


def maps_of(crops: np.ndarray, backbone: str = BACKBONE) -> np.ndarray:
    """Stage-5 output (float16) of ``N x 5`` crops and their mirrors, N x 10 x h x w x C."""
    import keras
    import tensorflow as tf

    from training.linear_head import feature_graph

    model, first = feature_graph(backbone, crops.shape[-2])
    head = keras.Model(model.input, model.get_layer(first).output)
    call = tf.function(lambda x: head(x, training=False), jit_compile=False)
    n = len(crops)
    views = np.concatenate([crops, crops[:, :, :, ::-1]], axis=1)  # N x 10 x H x W x 3
    flat = views.reshape(-1, *views.shape[2:])
    out = []
    t0 = time.perf_counter()
    for i in range(0, len(flat), 32):
        out.append(call(tf.constant(flat[i : i + 32], tf.float32)).numpy().astype(np.float16))
        if i % 640 == 0:
            print(f"  stage 5: {i}/{len(flat)} crops, {time.perf_counter() - t0:.0f} s", flush=True)
    return np.concatenate(out).reshape(n, views.shape[1], *out[0].shape[1:])


def tail_model(backbone: str, size: int):
    """Stage-5 map -> pooled (stage 5, stage 6, top) features, ImageNet weights (the
    ``backbone``'s feature graph at input side ``size`` from its first tapped stage on)."""
    import keras

    from training.linear_head import feature_graph

    model, first = feature_graph(backbone, size)
    return keras.Model(model.get_layer(first).output, model.output)


def run_fold(maps, y, w, tr, va, args) -> np.ndarray:
    """Held-out logits, (epochs + 1) x len(va) x 10 views."""
    import keras
    import tensorflow as tf

    from training.app_path.recipes import C_SHIPPED
    from training.linear_head import fit_head

    tail = tail_model(args.backbone, args.input_size)
    start = [v.numpy().copy() for v in tail.trainable_variables]

    def feats(idx, views):
        out = []
        for i in range(0, len(idx), 16):
            m = np.asarray(maps[idx[i : i + 16]][:, views], np.float32)
            f = tail(m.reshape(-1, *m.shape[2:]), training=False).numpy()
            out.append(f.reshape(len(m), len(views), -1))
        return np.concatenate(out)

    base_views = [0, 5]  # the box and its mirror
    ftr = feats(tr, base_views)
    head = fit_head(
        ftr.reshape(-1, ftr.shape[-1]), np.repeat(y[tr], 2), np.repeat(w[tr], 2), C_SHIPPED
    )
    mean = tf.constant(head.mean, tf.float32)
    scale = tf.constant(1.0 / np.sqrt(head.var), tf.float32)
    coef = tf.Variable(head.coef[:, None].astype(np.float32))
    bias = tf.Variable(np.float32(head.intercept))
    anchors = [tf.constant(v) for v in start]
    opt = keras.optimizers.Adam(args.lr)
    variables = [*tail.trainable_variables, coef, bias]
    n_views = maps.shape[1]
    # sklearn's penalty against its summed weighted loss, here against the weighted mean
    l2_head = 1.0 / (2 * C_SHIPPED * w[tr].sum() * 2)

    def logits_of(m):
        f = tail(tf.reshape(m, (-1, *m.shape[2:])), training=False)
        z = tf.matmul((f - mean) * scale, coef)[:, 0] + bias
        return tf.reshape(z, (-1, n_views))

    @tf.function
    def step(m, yb, wb):
        with tf.GradientTape() as tape:
            z = logits_of(m)
            bce = tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.repeat(yb[:, None], n_views, axis=1), logits=z
            )
            loss = tf.reduce_sum(tf.reduce_mean(bce, axis=1) * wb) / tf.reduce_sum(wb)
            var = tf.reduce_mean(tf.math.reduce_variance(z, axis=1))
            loss += args.consistency * var
            loss += l2_head * tf.reduce_sum(coef**2)
            loss += args.anchor * tf.add_n(
                [
                    tf.reduce_sum((v - a) ** 2)
                    for v, a in zip(tail.trainable_variables, anchors, strict=True)
                ]
            )
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables, strict=True))
        return loss, var

    held = tf.function(logits_of)

    def evaluate():
        out = []
        for i in range(0, len(va), 16):
            out.append(held(tf.constant(np.asarray(maps[va[i : i + 16]], np.float32))).numpy())
        return np.concatenate(out)

    result = [evaluate()]
    rng = np.random.default_rng(0)
    for epoch in range(args.epochs):
        t0, order, losses = time.perf_counter(), rng.permutation(tr), []
        for i in range(0, len(order), args.batch):
            b = np.sort(order[i : i + args.batch])
            loss, var = step(
                tf.constant(np.asarray(maps[b], np.float32)),
                tf.constant(y[b], tf.float32),
                tf.constant(w[b], tf.float32),
            )
            losses.append((float(loss), float(var)))
        result.append(evaluate())
        lo = np.mean(losses, axis=0)
        print(f"    epoch {epoch + 1}: loss {lo[0]:.3f}, view variance {lo[1]:.3f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    return np.stack(result)


def run_fold_distill(maps, y, w, tr, va, args) -> np.ndarray:
    """Label-free variant (``--distill``): the tail learns to give, from any single view, the
    frozen ImageNet tail's features *averaged over the image's 5 boxes* (same orientation),
    in units of each feature's SD between training images (floored at a tenth of the median
    SD: near-constant features would dominate); the labels are not used to train
    the tail. After each epoch the shipped L2 head (C = 0.03) is fitted on the tail's features
    of the training images' box and mirror views, as in epoch 0. Held-out logits, (epochs + 1)
    x len(va) x 10 views."""
    import keras
    import tensorflow as tf

    from training.app_path.recipes import C_SHIPPED
    from training.linear_head import fit_head

    tail = tail_model(args.backbone, args.input_size)
    start = [v.numpy().copy() for v in tail.trainable_variables]
    anchors = [tf.constant(v) for v in start]
    n_views = maps.shape[1]
    half = n_views // 2
    forward = tf.function(lambda m: tail(m, training=False))

    extra = getattr(args, "extra_maps", None)  # unlabelled frames (--unlabelled), or None
    n_extra = 0 if extra is None else len(extra)

    def feats(idx, source=maps):
        out = []
        for i in range(0, len(idx), 16):
            m = np.asarray(source[idx[i : i + 16]], np.float32)
            f = forward(tf.constant(m.reshape(-1, *m.shape[2:]))).numpy()
            out.append(f.reshape(len(m), n_views, -1))
        return np.concatenate(out)

    def batch_maps(rows):
        """Maps of training rows: the fold's images first, then the unlabelled frames."""
        rows = np.sort(rows)
        own, more = rows[rows < len(tr)], rows[rows >= len(tr)] - len(tr)
        parts = [np.asarray(maps[np.sort(tr[own])], np.float32)] if len(own) else []
        if len(more):
            parts.append(np.asarray(extra[more], np.float32))
        return np.concatenate(parts), rows

    teacher = feats(tr)  # frozen ImageNet tail
    if n_extra:
        teacher = np.concatenate([teacher, feats(np.arange(n_extra), extra)])
    target = np.concatenate(
        [
            np.repeat(teacher[:, :half].mean(1, keepdims=True), half, axis=1),
            np.repeat(teacher[:, half:].mean(1, keepdims=True), half, axis=1),
        ],
        axis=1,
    )
    sd = teacher[: len(tr), [0, half]].reshape(-1, teacher.shape[-1]).std(axis=0)
    sd = np.maximum(sd, 0.1 * np.median(sd))  # near-constant features would dominate
    inv_sd = tf.constant(1.0 / sd, tf.float32)
    opt = keras.optimizers.Adam(args.lr)
    # --logit L: only the epoch-0 head's logit is steadied (to the image's mean over its 10
    # views), each view's features otherwise kept where the frozen tail puts them
    head0 = fit_head(
        teacher[: len(tr), [0, half]].reshape(-1, teacher.shape[-1]),
        np.repeat(y[tr], 2),
        np.repeat(w[tr], 2),
        C_SHIPPED,
    )
    w_raw = (head0.coef / np.sqrt(head0.var)).astype(np.float32)
    b_raw = float(head0.intercept - np.sum(head0.mean * head0.coef / np.sqrt(head0.var)))
    t_logit = teacher @ w_raw + b_raw  # rows x 10
    logit_target = np.repeat(t_logit.mean(1, keepdims=True), n_views, axis=1)
    logit_var = float(t_logit[: len(tr), 0].var())
    if args.logit:
        target = teacher  # each view stays itself, but for the head's direction
    w_t = tf.constant(w_raw[:, None])

    @tf.function
    def step(m, t, tl):
        with tf.GradientTape() as tape:
            f = tail(tf.reshape(m, (-1, *m.shape[2:])), training=False)
            d = (f - tf.reshape(t, (-1, t.shape[-1]))) * inv_sd
            fit = tf.reduce_mean(d**2)
            lg = tf.squeeze(f @ w_t, -1) + b_raw
            steady = tf.reduce_mean((lg - tf.reshape(tl, (-1,))) ** 2) / logit_var
            fit = fit + args.logit * steady
            loss = fit + args.anchor * tf.add_n(
                [
                    tf.reduce_sum((v - a) ** 2)
                    for v, a in zip(tail.trainable_variables, anchors, strict=True)
                ]
            )
        grads = tape.gradient(loss, tail.trainable_variables)
        opt.apply_gradients(zip(grads, tail.trainable_variables, strict=True))
        return fit

    def score(ftr, fva):
        if args.logit:  # the head the tail was steadied for
            return fva @ w_raw + b_raw
        head = fit_head(
            ftr[:, [0, half]].reshape(-1, ftr.shape[-1]),
            np.repeat(y[tr], 2),
            np.repeat(w[tr], 2),
            C_SHIPPED,
        )
        return ((fva - head.mean) / np.sqrt(head.var)) @ head.coef + head.intercept

    # the fit of the frozen tail to the target, for the printout (the views' own noise)
    base = float(np.mean(((teacher - target) / sd) ** 2)) + args.logit * float(
        np.mean((t_logit - logit_target) ** 2) / logit_var
    )
    print(f"    epoch 0: distillation loss {base:.4f} ({len(tr)} images + {n_extra} "
          "unlabelled frames)", flush=True)  # fmt: skip
    result = [score(teacher[: len(tr)], feats(va))]
    rng = np.random.default_rng(0)
    # tr is sorted (cv_splits), so the rows of a sorted batch of tr follow its maps' order
    assert np.all(np.diff(tr) > 0)
    for epoch in range(args.epochs):
        t0, order, losses = time.perf_counter(), rng.permutation(len(tr) + n_extra), []
        for i in range(0, len(order), args.batch):
            m, rows = batch_maps(order[i : i + args.batch])
            tl = tf.constant(logit_target[rows], tf.float32)
            losses.append(float(step(tf.constant(m), tf.constant(target[rows], tf.float32), tl)))
        result.append(score(feats(tr), feats(va)))
        print(f"    epoch {epoch + 1}: distillation loss {np.mean(losses):.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    return np.stack(result)


def summarise(oof: np.ndarray, cache, folds: list[np.ndarray]) -> list[dict]:
    """Per epoch, scored within each fold (each fold's model has its own logit offset, so
    logits of different folds are not pooled): AUROC per site of the box + mirror logit (mean
    and SD over folds), the logit's noise ratio under the 4 box changes (each: changed box +
    its mirror; mean over folds), and the calibrated estimate's shift (Platt fitted per fold
    on that fold's box logits; shifts of all folds together: median, p95, max)."""
    from bench_feature_noise import noise_ratio

    from thyroid_desktop.core.site.calibration import fit_platt, sigmoid
    from training.app_path.cv import site_aurocs

    rows = []
    for e in range(oof.shape[0]):
        aurocs: dict[str, list[float]] = {"ddti": [], "chaouchi": []}
        noise, shifts = [], []
        for va in folds:
            z = oof[e, va]
            box = (z[:, 0] + z[:, 5]) / 2
            changed = (z[:, 1:5] + z[:, 6:10]) / 2
            for site, value in site_aurocs(cache, va, box).items():
                aurocs[site].append(value)
            # as bench_feature_noise's per feature; unlike the shift it does not shrink with
            # the calibration's slope when the ranking falls
            noise.append(noise_ratio(np.column_stack([box, changed])[..., None])[0])
            a, b = fit_platt(box, cache.labels[va], prior_correction=False)
            p_box, p_changed = sigmoid(a * box + b), sigmoid(a * changed + b)
            shifts.append(np.abs(p_changed - p_box[:, None]).ravel())
        shift = np.concatenate(shifts)
        rows.append(
            {
                "epoch": e,
                "auroc": {k: float(np.mean(v)) for k, v in aurocs.items()},
                "auroc_sd": {k: float(np.std(v)) for k, v in aurocs.items()},
                "auroc_folds": {k: [float(x) for x in v] for k, v in aurocs.items()},
                "noise_ratio": float(np.mean(noise)),
                "shift_median": float(np.median(shift)),
                "shift_p95": float(np.percentile(shift, 95)),
                "shift_max": float(shift.max()),
            }
        )
    return rows


def main() -> int:
    from training.app_path.cache import development_samples, load_cache, shipped_card
    from training.app_path.cv import cv_splits
    from training.app_path.recipes import N_FOLDS
    from training.data import DEFAULT_DATA
    from training.train import balanced_weights

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "app_path_v2")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "tail_finetune")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8, help="images per step (x 10 views)")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--consistency", type=float, default=10.0)
    parser.add_argument("--anchor", type=float, default=1e-4)
    parser.add_argument("--folds", type=int, default=5, help="folds of the first repeat run")
    parser.add_argument(
        "--backbone",
        default=BACKBONE,
        help="training.backbones network (efficientnet_lite2_aa: anti-aliased, same weights)",
    )
    parser.add_argument(
        "--distill",
        action="store_true",
        help="label-free: the tail learns the frozen tail's features averaged over the 5 boxes",
    )
    parser.add_argument(
        "--unlabelled",
        type=int,
        default=0,
        metavar="EVERY",
        help="with --distill: also every EVERY-th arcegor nodule frame (no labels) in training",
    )
    parser.add_argument(
        "--logit",
        type=float,
        default=0.0,
        metavar="L",
        help="with --distill: keep each view's features, steady only the epoch-0 head's logit "
        "(weight L); scored with that head",
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--rescore", type=Path, default=None, help="score saved out-of-fold logits (no training)"
    )
    args = parser.parse_args()
    if not 1 <= args.folds <= N_FOLDS:
        parser.error(f"--folds: 1 to {N_FOLDS} (the first repeat's folds)")

    card = shipped_card()
    samples = development_samples(args.data, set(card["data"]["split"]["test_files"]))
    cache = load_cache(args.cache, samples)
    args.input_size = cache.input_size  # the tail is built at the side its maps were cut at
    y = cache.labels.astype(np.float32)
    folds = cv_splits(cache, repeats=1)[: args.folds]
    tag = f"c{args.consistency:g}_lr{args.lr:g}_a{args.anchor:g}_e{args.epochs}_f{args.folds}"
    if args.backbone != BACKBONE:
        tag += f"_{args.backbone}"
    if args.distill:
        tag = "distill_" + tag.split("_", 1)[1]
        if args.unlabelled:
            tag += f"_arcegor{args.unlabelled}"
        if args.logit:
            tag += f"_logit{args.logit:g}"
    store = args.work / f"oof_{tag}.npy"
    if args.rescore:
        oof = np.load(args.rescore)
    else:
        maps = stage5_maps(samples, cache, args.work, args.backbone)
        if args.distill and args.unlabelled:
            args.extra_maps = unlabelled_maps(
                args.data, cache, args.work, args.unlabelled, args.backbone
            )
        oof = np.full((args.epochs + 1, len(y), maps.shape[1]), np.nan, np.float32)
        for _rep, tr, va in folds:
            t0 = time.perf_counter()
            print(f"  fold: {len(tr)} training, {len(va)} held-out images", flush=True)
            # weights from the training images only, as app_path's design() does
            w = np.zeros(len(y), np.float32)
            w[tr] = balanced_weights(cache.labels[tr], cache.sites[tr])
            fold = run_fold_distill if args.distill else run_fold
            oof[:, va] = fold(maps, y, w, tr, va, args)
            print(f"  fold done in {time.perf_counter() - t0:.0f} s", flush=True)
        np.save(store, oof)
    rows = summarise(oof, cache, [va for _rep, _tr, va in folds])
    done = sum(len(va) for _rep, _tr, va in folds)
    what = (
        f"rescored {args.rescore}"
        if args.rescore
        else f"distillation, lr {args.lr}, anchor {args.anchor}"
        if args.distill
        else f"consistency {args.consistency}, lr {args.lr}, anchor {args.anchor}"
    )
    print(f"{what}: {done} held-out images, scored within each of {len(folds)} folds")
    print("epoch | AUROC ddti, mean +- SD over folds (paired change from epoch 0) | "
          "AUROC chaouchi (same) | logit noise ratio | 1-3 px shift median | p95 | max")  # fmt: skip
    for r in rows:
        a, sd = r["auroc"], r["auroc_sd"]
        # paired over the same folds: this epoch's AUROC minus the frozen tail's
        d = {k: np.subtract(r["auroc_folds"][k], rows[0]["auroc_folds"][k]) for k in a}
        print(f"{r['epoch']:5d} | {a['ddti']:.3f} +- {sd['ddti']:.3f} "
              f"({d['ddti'].mean():+.3f} +- {d['ddti'].std():.3f}) | "
              f"{a['chaouchi']:.3f} +- {sd['chaouchi']:.3f} "
              f"({d['chaouchi'].mean():+.3f} +- {d['chaouchi'].std():.3f}) | "
              f"{r['noise_ratio']:.3f} | "
              f"{r['shift_median']:.3f} | {r['shift_p95']:.3f} | {r['shift_max']:.3f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) if isinstance(v, Path) else v
            for k, v in vars(args).items() if k != "extra_maps"}, "rows": rows}, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
