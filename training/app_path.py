"""Training, selecting and reporting the classifier on the crops the app produces.

The app analyses the box its segmenter finds (best candidate, else the scan area), not the
expert's box. This module caches frozen-backbone features of the crops the app would cut
(and of expert boxes, jittered boxes, the scan area and a wider context crop) for the
development images once, compares training recipes by grouped CV *scored on the app's
auto-ROI crop*, and fits, calibrates and exports the chosen one.

Usage (in this order; the test split is read only by ``test``)::

    python -m training.app_path cache   # features of every development crop (~25 min)
    python -m training.app_path cv      # recipes x C, 3 x 5-fold grouped CV
    python -m training.app_path fit     # final head, Platt + threshold, export
    python -m training.reliability --skip-novelty   # the new head's stability limit
    python -m training.app_path test    # once: test split through auto_predict
    python -m training.auto_roi_eval    # expert box / auto-ROI / scan area on the test split
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from thyroid_desktop.core.io.images import UltrasoundImage, open_image
from thyroid_desktop.core.pipeline.fov import FieldOfView
from thyroid_desktop.core.pipeline.roi import CROP_MARGIN, JITTERS, ROI, roi_from_mask
from training.data import (
    DEFAULT_DATA,
    Sample,
    grouped_folds,
    load_dataset,
    read_mask,
    sample_key,
)

log = logging.getLogger(__name__)

#: The shipped backbone and input side; the cached features must be exactly the model's.
BACKBONE = "efficientnet_lite2"
INPUT_SIZE = 260
#: Margin of the second, wider crop of the two-view experiment.
CONTEXT_MARGIN = 0.5
#: Jittered copies per box, their largest shift (share of the box side) and scale change.
N_JITTERS = 4
JITTER_SHIFT = 0.10
JITTER_SCALE = 0.15
JITTER_SEED = 0
#: Grouped CV as the shipped card's: seeds CV_SEED .. CV_SEED + N_REPEATS - 1.
N_FOLDS = 5
N_REPEATS = 3
CV_SEED = 0
#: The shipped L2 strength and the at most three values CV may choose among.
C_SHIPPED = 0.03
C_GRID = (0.01, 0.03, 0.1)
#: Another C replaces the shipped one only if it raises the ranking AUROC by this much.
MIN_C_GAIN = 0.005
#: Export only when the chosen recipe beats R0 on both sites or by this much on average.
MIN_MEAN_GAIN = 0.02
#: Largest tolerated difference between cached features and the shipped model's.
FEATURE_TOLERANCE = 1e-3
#: Images whose crops go through the backbone together (bounds memory).
CHUNK_IMAGES = 16
EXTRACT_BATCH = 32
SITES = ("ddti", "chaouchi")
OUT_DIR = Path("runs/app_path")

AUTO_VIEWS = ("auto",) + tuple(f"auto_j{i}" for i in range(N_JITTERS))
EXPERT_VIEWS = ("expert",) + tuple(f"expert_j{i}" for i in range(N_JITTERS))
BOX_VIEWS = AUTO_VIEWS + EXPERT_VIEWS
CONTEXT = "_ctx"
VIEWS = BOX_VIEWS + ("scan",) + tuple(v + CONTEXT for v in BOX_VIEWS)
#: Boxes the app may analyse; each is also cut as ``core.inference.predict`` scores it now:
#: the crop, its mirror and the fixed box jitters ``roi.JITTERS`` (``jitter_views``).
APP_SCORED = ("auto", "expert", "scan")
#: Scoring crop -> (cached view, with the app's jitter views). ``expert`` is the scan area
#: where there is no mask, exactly as :func:`training.data.sample_roi` and ``auto_roi_eval``
#: define it. Plain names: crop + mirror, logits averaged; ``_app``: the mean logit over the
#: crop, its mirror and the 4 app jitters, which is what ``predict`` calibrates.
SCORING = {
    "auto_roi": ("auto", False),
    "expert_box": ("expert", False),
    "scan_area": ("scan", False),
    "auto_roi_app": ("auto", True),
    "expert_box_app": ("expert", True),
    "scan_area_app": ("scan", True),
}
#: What recipes are ranked, calibrated and reported by: the app's own scoring of its box.
RANK_SCORING = "auto_roi_app"


@dataclass(frozen=True)
class ImageBoxes:
    """The boxes cut from one image, in image pixels."""

    fov: ROI
    auto: ROI
    found: bool
    expert: ROI | None
    auto_jitter: tuple[ROI, ...]
    expert_jitter: tuple[ROI, ...]


@dataclass
class FeatureCache:
    """Features of every view of every image, in one order.

    Attributes:
        keys, sites, labels, groups: per image (``sample_key``, dataset, 0/1, split group).
        found: the segmenter proposed a candidate (else the auto box is the scan area).
        has_mask: an expert mask exists (else ``expert`` is the scan area, jitters absent).
        features: view -> ``N x 2 x D`` float32 (index 1: the mirror image); zeros where the
            view does not exist for an image (expert jitters and context without a mask).
        boxes: name -> ``N x 4`` int (x, y, w, h) of ``fov``, ``auto`` and ``expert``.
        app_views: ``APP_SCORED`` view -> ``N x J x D``: the app's jitter views of that box
            (``core.inference.jitter_views``, mirrored where the jitter says so).
        app_jitters: ``J x 4``: the ``roi.JITTERS`` rows the app views were cut with.
    """

    keys: np.ndarray
    sites: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    found: np.ndarray
    has_mask: np.ndarray
    features: dict[str, np.ndarray]
    boxes: dict[str, np.ndarray] = field(default_factory=dict)
    app_views: dict[str, np.ndarray] = field(default_factory=dict)
    app_jitters: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))

    def __len__(self) -> int:
        return len(self.keys)

    def save(self, path: Path) -> None:
        """Writes one ``.npz`` (uncompressed: written once, read often)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "keys": self.keys,
            "sites": self.sites,
            "labels": self.labels,
            "groups": self.groups,
            "found": self.found,
            "has_mask": self.has_mask,
            **{f"feat_{k}": v for k, v in self.features.items()},
            **{f"box_{k}": v for k, v in self.boxes.items()},
            **{f"app_{k}": v for k, v in self.app_views.items()},
            "app_jitters": np.asarray(self.app_jitters, np.float64),
        }
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> FeatureCache:
        with np.load(path, allow_pickle=False) as z:
            return cls(
                keys=z["keys"],
                sites=z["sites"],
                labels=z["labels"],
                groups=z["groups"],
                found=z["found"],
                has_mask=z["has_mask"],
                features={k[5:]: z[k] for k in z.files if k.startswith("feat_")},
                boxes={k[4:]: z[k] for k in z.files if k.startswith("box_")},
                app_views={
                    k[4:]: z[k] for k in z.files if k.startswith("app_") and k != "app_jitters"
                },
                app_jitters=z["app_jitters"] if "app_jitters" in z.files else np.zeros((0, 4)),
            )

    @classmethod
    def concat(cls, parts: Sequence[FeatureCache]) -> FeatureCache:
        cat = np.concatenate
        return cls(
            keys=cat([p.keys for p in parts]),
            sites=cat([p.sites for p in parts]),
            labels=cat([p.labels for p in parts]),
            groups=cat([p.groups for p in parts]),
            found=cat([p.found for p in parts]),
            has_mask=cat([p.has_mask for p in parts]),
            features={v: cat([p.features[v] for p in parts]) for v in parts[0].features},
            boxes={b: cat([p.boxes[b] for p in parts]) for b in parts[0].boxes},
            app_views={v: cat([p.app_views[v] for p in parts]) for v in parts[0].app_views},
            app_jitters=parts[0].app_jitters,
        )

    def jitter_columns(self) -> list[int]:
        """Which cached app views are today's ``roi.JITTERS``, in their order."""
        rows = [tuple(float(v) for v in row) for row in self.app_jitters]
        missing = [j for j in JITTERS if tuple(map(float, j)) not in rows]
        if missing:
            raise SystemExit(f"the cache has no app views for jitters {missing}: rerun `cache`")
        return [rows.index(tuple(map(float, j))) for j in JITTERS]


@dataclass(frozen=True)
class Recipe:
    """Which cached views of a training image become rows (each with its mirror image).

    Attributes:
        views: for every image; ``mask_views`` in addition where an expert mask exists,
            ``no_mask_views`` where none does.
        two_view: each row is a view's features concatenated with its context crop's.
    """

    name: str
    description: str
    views: tuple[str, ...] = ()
    mask_views: tuple[str, ...] = ()
    no_mask_views: tuple[str, ...] = ()
    two_view: bool = False

    def views_for(self, has_mask: bool) -> tuple[str, ...]:
        return self.views + (self.mask_views if has_mask else self.no_mask_views)


RECIPES = {
    r.name: r
    for r in (
        Recipe(
            "R0",
            "current: ddti expert-box crops, chaouchi scan-area crops",
            mask_views=("expert",),
            no_mask_views=("scan",),
        ),
        Recipe("R1", "app boxes: auto-box crop + 4 jittered auto boxes, every site", AUTO_VIEWS),
        Recipe(
            "R2",
            "app boxes + jittered expert: R1 plus the expert box and 4 jitters where masks exist",
            AUTO_VIEWS,
            mask_views=EXPERT_VIEWS,
        ),
        Recipe(
            "R3",
            "R2 plus the scan-area crop of every image",
            AUTO_VIEWS + ("scan",),
            mask_views=EXPERT_VIEWS,
        ),
    )
}
#: CV-only experiments (not shipped): the same rows, each with a margin-0.5 context crop.
TWO_VIEW = {
    f"{name}-2v": Recipe(
        f"{name}-2v",
        f"{RECIPES[name].description}; two views (margin 0.15 + margin {CONTEXT_MARGIN})",
        RECIPES[name].views,
        RECIPES[name].mask_views,
        two_view=True,
    )
    for name in ("R1", "R2")
}


# ----------------------------------------------------------------------------- boxes, crops


def image_seed(key: str) -> int:
    """A stable per-image seed (``hash`` is salted per process, crc32 is not)."""
    return zlib.crc32(key.encode("utf-8"))


def jitter_boxes(box: ROI, n: int, seed: Sequence[int], width: int, height: int) -> list[ROI]:
    """``n`` copies of ``box`` shifted by up to ``JITTER_SHIFT`` of its size in x and y and
    scaled by up to ``JITTER_SCALE`` about its centre; clipped to the image. Deterministic
    for a given ``seed``."""
    rng = np.random.default_rng(list(seed))
    out = []
    for _ in range(n):
        dx, dy = rng.uniform(-JITTER_SHIFT, JITTER_SHIFT, 2)
        s = rng.uniform(1.0 - JITTER_SCALE, 1.0 + JITTER_SCALE)
        w, h = max(1.0, box.w * s), max(1.0, box.h * s)
        cx, cy = box.x + box.w / 2.0 + dx * box.w, box.y + box.h / 2.0 + dy * box.h
        jit = ROI(int(round(cx - w / 2)), int(round(cy - h / 2)), int(round(w)), int(round(h)))
        try:
            out.append(jit.clipped(width, height))
        except ValueError:  # shifted off a tiny image: keep the box itself
            out.append(box)
    return out


def find_boxes(sample: Sample, image: UltrasoundImage, segmenter) -> tuple[ImageBoxes, FieldOfView]:
    """The app's auto box (best candidate, else the scan area), the expert box and jitters."""
    from thyroid_desktop.core.pipeline.estimate import detect_nodules

    w, h = image.width, image.height
    det = detect_nodules(image, segmenter)
    fov = det.fov
    found = det.best is not None
    auto = (det.best.roi if found else fov.box).clipped(w, h)
    mask = read_mask(sample.mask_path, w, h)
    expert = roi_from_mask(mask) if mask is not None else None
    seed = image_seed(sample_key(sample))
    boxes = ImageBoxes(
        fov=fov.box,
        auto=auto,
        found=found,
        expert=expert,
        auto_jitter=tuple(jitter_boxes(auto, N_JITTERS, (JITTER_SEED, seed, 0), w, h)),
        expert_jitter=tuple(
            jitter_boxes(expert, N_JITTERS, (JITTER_SEED, seed, 1), w, h) if expert else ()
        ),
    )
    return boxes, fov


def view_boxes(boxes: ImageBoxes) -> dict[str, ROI]:
    """Box per view name (without the context views); expert views only with a mask."""
    out = {"auto": boxes.auto, "scan": boxes.fov}
    out.update({f"auto_j{i}": b for i, b in enumerate(boxes.auto_jitter)})
    if boxes.expert is not None:
        out["expert"] = boxes.expert
        out.update({f"expert_j{i}": b for i, b in enumerate(boxes.expert_jitter)})
    return out


def cut_crops(
    image: UltrasoundImage,
    boxes: ImageBoxes,
    fov: FieldOfView,
    size: int,
    margin: float = CROP_MARGIN,
    context_margin: float = CONTEXT_MARGIN,
) -> dict[str, np.ndarray]:
    """Every view's crop, cut by the app's own ``classifier_crop``."""
    from thyroid_desktop.core.pipeline.estimate import classifier_crop

    crops = {}
    for view, roi in view_boxes(boxes).items():
        crops[view], _ = classifier_crop(image, roi, size, margin, fov)
        if view != "scan":
            crops[view + CONTEXT], _ = classifier_crop(image, roi, size, context_margin, fov)
    return crops


def make_extractor(model, batch_size: int = EXTRACT_BATCH) -> Callable[..., np.ndarray]:
    """``f(crops, mirror) -> features`` with one compiled function (traced once per shape)."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def extract(crops: np.ndarray, mirror: bool = False) -> np.ndarray:
        out = []
        for i in range(0, len(crops), batch_size):
            x = tf.cast(crops[i : i + batch_size], tf.float32)
            out.append(fn(x[:, :, ::-1, :] if mirror else x).numpy())
        return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), "float32")

    return extract


def build_cache(
    samples: Sequence[Sample],
    feature_model,
    segmenter,
    size: int = INPUT_SIZE,
    on_first_crops: Callable[[np.ndarray], None] | None = None,
) -> FeatureCache:
    """Runs detection and the frozen backbone over every image once.

    Args:
        samples: the images (their order is the cache's order).
        feature_model: image -> pooled feature vector (``linear_head.feature_graph``).
        segmenter: the app's segmenter (or anything ``detect_nodules`` accepts).
        size: crop side in pixels.
        on_first_crops: called with the first chunk's auto-box crops (feature layout check).
    """
    extract = make_extractor(feature_model)
    n, dim = len(samples), int(feature_model.output_shape[-1])
    feats = {v: np.zeros((n, 2, dim), np.float32) for v in VIEWS}
    boxes = {b: np.zeros((n, 4), np.int32) for b in ("fov", "auto", "expert")}
    found, has_mask = np.zeros(n, bool), np.zeros(n, bool)
    t0 = time.perf_counter()
    for start in range(0, n, CHUNK_IMAGES):
        chunk: list[tuple[int, str, np.ndarray]] = []
        for i in range(start, min(start + CHUNK_IMAGES, n)):
            image = open_image(samples[i].path)
            b, fov = find_boxes(samples[i], image, segmenter)
            found[i], has_mask[i] = b.found, b.expert is not None
            boxes["fov"][i], boxes["auto"][i] = b.fov.as_list(), b.auto.as_list()
            boxes["expert"][i] = (b.expert or b.fov).as_list()
            chunk += [(i, v, c) for v, c in cut_crops(image, b, fov, size).items()]
        crops = np.stack([c for _, _, c in chunk])
        if start == 0 and on_first_crops is not None:
            on_first_crops(np.stack([c for _, v, c in chunk if v == "auto"]))
        plain, mirrored = extract(crops), extract(crops, mirror=True)
        for k, (i, v, _) in enumerate(chunk):
            feats[v][i, 0], feats[v][i, 1] = plain[k], mirrored[k]
        done = min(start + CHUNK_IMAGES, n)
        log.info("%d/%d images, %.0f s", done, n, time.perf_counter() - t0)
    # Without a mask the expert box is the scan area (as sample_roi and the app fall back).
    feats["expert"][~has_mask] = feats["scan"][~has_mask]
    cache = FeatureCache(
        keys=np.array([sample_key(s) for s in samples]),
        sites=np.array([s.dataset for s in samples]),
        labels=np.array([s.label for s in samples], dtype=int),
        groups=np.array([s.group for s in samples]),
        found=found,
        has_mask=has_mask,
        features=feats,
        boxes=boxes,
    )
    add_app_views(cache, samples, feature_model, size)
    return cache


def add_app_views(
    cache: FeatureCache,
    samples: Sequence[Sample],
    feature_model,
    size: int = INPUT_SIZE,
    margin: float = CROP_MARGIN,
) -> None:
    """Adds the features of the app's jitter views (``core.inference.jitter_views``, as
    ``predict`` scores a box) of the cached auto, expert and scan-area boxes."""
    from thyroid_desktop.core.pipeline.estimate import jitter_views
    from thyroid_desktop.core.pipeline.fov import detect_fov

    extract = make_extractor(feature_model)
    n, dim = len(cache), int(feature_model.output_shape[-1])
    out = {v: np.zeros((n, len(JITTERS), dim), np.float32) for v in APP_SCORED}
    t0 = time.perf_counter()
    for start in range(0, n, CHUNK_IMAGES):
        chunk: list[tuple[int, str, np.ndarray]] = []
        for i in range(start, min(start + CHUNK_IMAGES, n)):
            if sample_key(samples[i]) != cache.keys[i]:
                raise ValueError(f"sample {i} is not the cache's {cache.keys[i]}")
            image = open_image(samples[i].path)
            fov = detect_fov(image.gray)  # what detect_nodules found, deterministic
            for view in APP_SCORED:
                if view == "expert" and not cache.has_mask[i]:
                    continue
                roi = ROI(*(int(v) for v in cache.boxes[view if view != "scan" else "fov"][i]))
                chunk += [(i, view, c) for c in jitter_views(image, roi, size, margin, fov)]
        feats = extract(np.stack([c for _, _, c in chunk]))
        counts: dict[tuple[int, str], int] = {}
        for k, (i, view, _) in enumerate(chunk):
            j = counts.get((i, view), 0)
            counts[(i, view)] = j + 1
            out[view][i, j] = feats[k]
        log.info(
            "app views: %d/%d images, %.0f s",
            min(start + CHUNK_IMAGES, n),
            n,
            time.perf_counter() - t0,
        )
    out["expert"][~cache.has_mask] = out["scan"][~cache.has_mask]
    cache.app_views = out
    cache.app_jitters = np.asarray(JITTERS, np.float64)


def feature_layout_gap(feature_model, classifier_model, crops: np.ndarray) -> float:
    """Largest absolute difference between ``feature_model`` and the shipped classifier's
    ``features`` layer on the same crops (0 when the layout and weights are the same)."""
    import keras

    sub = keras.Model(classifier_model.inputs, classifier_model.get_layer("features").output)
    x = np.asarray(crops, np.float32)
    a = np.asarray(feature_model(x, training=False))
    b = np.asarray(sub(x, training=False))
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max())


# ----------------------------------------------------------------------------- heads and CV


def design(
    cache: FeatureCache, idx: np.ndarray, recipe: Recipe
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training rows of ``recipe`` for the images ``idx``: features, labels and
    (site, class)-balanced weights. Every view comes with its mirror image."""
    from training.train import balanced_weights

    xs, ys, ss = [], [], []
    for has_mask in (True, False):
        sel = idx[cache.has_mask[idx] == has_mask]
        if not len(sel):
            continue
        for view in recipe.views_for(has_mask):
            for m in (0, 1):
                xs.append(view_features(cache, sel, view, recipe.two_view, m))
                ys.append(cache.labels[sel])
                ss.append(cache.sites[sel])
    y, s = np.concatenate(ys), np.concatenate(ss)
    return np.concatenate(xs), y, balanced_weights(y, s)


def view_features(
    cache: FeatureCache, idx: np.ndarray, view: str, two_view: bool, mirror: int
) -> np.ndarray:
    """One view's features (with its context crop's appended for two-view recipes)."""
    x = cache.features[view][idx, mirror]
    if two_view:
        x = np.concatenate([x, cache.features[view + CONTEXT][idx, mirror]], axis=1)
    return x


def head_logits(head, x: np.ndarray) -> np.ndarray:
    """The exported graph's ``malignancy_logit`` for feature rows ``x``."""
    return ((x - head.mean) / np.sqrt(head.var)) @ head.coef + head.intercept


def score(
    head, cache: FeatureCache, idx: np.ndarray, view: str, two_view: bool, app_views: bool = False
) -> np.ndarray:
    """The logit for a box: mean over the crop and its mirror image, and with ``app_views``
    over the app's jitter views too (what ``core.inference.predict`` calibrates)."""
    logits = [head_logits(head, view_features(cache, idx, view, two_view, m)) for m in (0, 1)]
    if app_views:
        jit = cache.app_views[view][idx]
        logits += [head_logits(head, jit[:, j]) for j in cache.jitter_columns()]
    return np.mean(logits, axis=0)


def cv_splits(
    cache: FeatureCache, n_folds: int = N_FOLDS, repeats: int = N_REPEATS, seed: int = CV_SEED
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(repeat, train, held-out) index triples from ``training.data.grouped_folds`` with the
    shipped card's seeds: grouped by case, stratified by site and label."""
    stand_ins = [
        Sample(Path(k), int(y), str(g), str(s))
        for k, y, g, s in zip(cache.keys, cache.labels, cache.groups, cache.sites, strict=True)
    ]
    return [
        (rep, tr, va)
        for rep in range(repeats)
        for tr, va in grouped_folds(stand_ins, n_folds, seed + rep)
    ]


def site_aurocs(cache: FeatureCache, idx: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    from thyroid_desktop.core.site.metrics import auroc

    out = {}
    for site in SITES:
        sel = cache.sites[idx] == site
        y = cache.labels[idx][sel]
        if 0 < y.sum() < len(y):
            out[site] = auroc(y, logits[sel])
    return out


def summarise(folds: list[dict[str, float]]) -> dict[str, dict]:
    """Per site: mean, SD (ddof 1) and the fold values."""
    out = {}
    for site in SITES:
        vals = [f[site] for f in folds if site in f]
        if vals:
            out[site] = {
                "mean": float(np.mean(vals)),
                "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                "folds": [round(v, 4) for v in vals],
            }
    return out


@dataclass
class CvResult:
    """Fold AUROCs and out-of-fold logits of every (recipe, C) and scoring crop.

    ``folds[(recipe, c, scoring)]`` is a list of per-site AUROC dicts over all folds;
    ``oof[(recipe, c, scoring)]`` is ``repeats x N`` logits.
    """

    folds: dict[tuple[str, float, str], list[dict[str, float]]]
    oof: dict[tuple[str, float, str], np.ndarray]

    def summary(self, recipe: str, c: float, scoring: str) -> dict[str, dict]:
        return summarise(self.folds[(recipe, c, scoring)])

    def mean_auto_roi(self, recipe: str, c: float, scoring: str = RANK_SCORING) -> float:
        """Mean over sites of the mean auto-ROI fold AUROC: what recipes are ranked by."""
        s = self.summary(recipe, c, scoring)
        return float(np.mean([s[site]["mean"] for site in SITES if site in s]))

    def fold_json(self) -> list[dict]:
        """The fold AUROCs, unrounded, as JSON rows (the logits go to an ``.npz``)."""
        return [
            {"recipe": r, "c": c, "scoring": s, "folds": f} for (r, c, s), f in self.folds.items()
        ]

    @classmethod
    def from_json(cls, rows: list[dict], oof: dict | None = None) -> CvResult:
        folds = {(r["recipe"], float(r["c"]), r["scoring"]): r["folds"] for r in rows}
        return cls(folds, oof or {})


def run_cv(
    cache: FeatureCache,
    variants: Sequence[tuple[Recipe, float]],
    splits: Sequence[tuple[int, np.ndarray, np.ndarray]],
) -> CvResult:
    """Fits every (recipe, C) on each training part and scores the held-out images on the
    auto-ROI, expert-box and scan-area crops, each as crop + mirror and as the app scores it
    (two-view recipes: auto-ROI crop + mirror only)."""
    from training.linear_head import fit_head

    repeats = 1 + max(rep for rep, _, _ in splits)
    folds: dict = {}
    oof: dict = {}
    for k, (rep, tr, va) in enumerate(splits):
        t0 = time.perf_counter()
        for recipe, c in variants:
            x, y, w = design(cache, tr, recipe)
            head = fit_head(x, y, w, c)
            scorings = ("auto_roi",) if recipe.two_view else tuple(SCORING)
            for scoring in scorings:
                key = (recipe.name, c, scoring)
                view, app_views = SCORING[scoring]
                z = score(head, cache, va, view, recipe.two_view, app_views)
                folds.setdefault(key, []).append(site_aurocs(cache, va, z))
                oof.setdefault(key, np.full((repeats, len(cache)), np.nan))[rep, va] = z
        ddti = {f"{r.name}@{c}": summarise(folds[(r.name, c, "auto_roi")]) for r, c in variants}
        log.info(
            "fold %d/%d (repeat %d) in %.0f s; ddti auto-ROI mean so far: %s",
            k + 1,
            len(splits),
            rep,
            time.perf_counter() - t0,
            {name: round(v["ddti"]["mean"], 3) for name, v in ddti.items() if "ddti" in v},
        )
    return CvResult(folds, oof)


def choose(
    cv: CvResult, recipes: Sequence[str], cs: Sequence[float], scoring: str = RANK_SCORING
) -> tuple[str, float]:
    """The recipe with the best mean auto-ROI CV AUROC over both sites (at its best C), and
    the shipped C for it unless another C beats that by ``MIN_C_GAIN`` (fold noise is larger
    than the differences between C values)."""
    best = {r: max(cs, key=lambda c, r=r: cv.mean_auto_roi(r, c, scoring)) for r in recipes}
    recipe = max(recipes, key=lambda r: cv.mean_auto_roi(r, best[r], scoring))
    c = best[recipe]
    if C_SHIPPED in cs and (
        cv.mean_auto_roi(recipe, c, scoring) - cv.mean_auto_roi(recipe, C_SHIPPED, scoring)
        < MIN_C_GAIN
    ):
        c = C_SHIPPED
    return recipe, c


def beats_current(cv: CvResult, recipe: str, c: float, scoring: str = RANK_SCORING) -> bool:
    """Chosen recipe better than R0 (shipped C) on both sites' auto-ROI, or clearly on average."""
    new, old = cv.summary(recipe, c, scoring), cv.summary("R0", C_SHIPPED, scoring)
    both = all(new[s]["mean"] > old[s]["mean"] for s in SITES)
    gain = cv.mean_auto_roi(recipe, c, scoring) - cv.mean_auto_roi("R0", C_SHIPPED, scoring)
    return both or gain >= MIN_MEAN_GAIN


# ----------------------------------------------------------------------------- I/O helpers


def shipped_card(models: Path | None = None) -> dict:
    from thyroid_desktop.core.models.shipped import CARD_FILE, models_dir

    return json.loads(((models or models_dir()) / CARD_FILE).read_text())


def development_samples(data: Path, test_files: set[str]) -> list[Sample]:
    """ddti + chaouchi samples outside the card's test split, in the order the shipped
    ``fit_final`` uses (so the folds are the card's)."""
    out: list[Sample] = []
    for site in SITES:
        out += [s for s in load_dataset(data / site) if sample_key(s) not in test_files]
    return out


def load_cache(out: Path, samples: Sequence[Sample]) -> FeatureCache:
    cache = FeatureCache.concat([FeatureCache.load(out / f"features_{s}.npz") for s in SITES])
    if list(cache.keys) != [sample_key(s) for s in samples]:
        raise SystemExit("the feature cache does not match the development split: rerun `cache`")
    return cache


def cv_to_json(cv: CvResult, variants: Sequence[tuple[Recipe, float]]) -> dict:
    return {
        f"{r.name}@{c}": {
            "recipe": r.description,
            "c": c,
            **{s: cv.summary(r.name, c, s) for s in SCORING if (r.name, c, s) in cv.folds},
        }
        for r, c in variants
    }


# ----------------------------------------------------------------------------- commands


def _has_jitters(cache: FeatureCache) -> bool:
    try:
        cache.jitter_columns()
    except SystemExit:
        return False
    return True


def cmd_cache(args: argparse.Namespace) -> None:
    """Caches features of every development image's crops, per site."""
    from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter
    from training.linear_head import feature_graph

    card = shipped_card()
    samples = development_samples(args.data, set(card["data"]["split"]["test_files"]))
    features, cam_layer = feature_graph(BACKBONE, INPUT_SIZE)
    if cam_layer != card["last_conv_layer"]:
        raise SystemExit(f"feature graph taps {cam_layer}, the card says {card['last_conv_layer']}")
    segmenter = load_segmenter()
    if segmenter is None:
        raise SystemExit("the model card names no segmenter")
    shipped = load_classifier(backend="keras").model
    checks: dict[str, float] = {}

    def check(crops: np.ndarray) -> None:
        gap = feature_layout_gap(features, shipped, crops[:4])
        checks["max_abs_feature_gap"] = gap
        log.info("cached features vs shipped 'features' layer: max |diff| %.2e", gap)
        if gap > FEATURE_TOLERANCE:
            raise SystemExit(f"features differ from the shipped model's by {gap}")

    args.out.mkdir(parents=True, exist_ok=True)
    for site in SITES:
        path = args.out / f"features_{site}.npz"
        part = [s for s in samples if s.dataset == site]
        if path.exists() and not args.force:
            cache = FeatureCache.load(path)
            if set(cache.app_views) != set(APP_SCORED) or not _has_jitters(cache):
                add_app_views(cache, part, features)
                cache.save(path)
            log.info("%s: cached already (%s)", site, path)
            continue
        t0 = time.perf_counter()
        cache = build_cache(part, features, segmenter, on_first_crops=check)
        cache.save(path)
        log.info("%s: %d images in %.0f s -> %s", site, len(part), time.perf_counter() - t0, path)
        checks[f"{site}_seconds"] = time.perf_counter() - t0
        checks[f"{site}_found_share"] = float(cache.found.mean())
    check_path = args.out / "cache_check.json"
    previous = json.loads(check_path.read_text()) if check_path.exists() else {}
    check_path.write_text(json.dumps({**previous, **checks}, indent=2))


def cmd_cv(args: argparse.Namespace) -> None:
    """Recipes x C grid (plus the two-view experiment) on the development folds."""
    card = shipped_card()
    samples = development_samples(args.data, set(card["data"]["split"]["test_files"]))
    cache = load_cache(args.out, samples)
    splits = cv_splits(cache, args.folds, args.repeats)
    variants = [(r, c) for r in RECIPES.values() for c in args.c_grid]
    variants += [(r, C_SHIPPED) for r in TWO_VIEW.values()]
    t0 = time.perf_counter()
    cv = run_cv(cache, variants, splits)
    result = {
        "protocol": f"{args.repeats} x {args.folds}-fold CV grouped by case (ddti) / runs of "
        f"neighbouring ids (chaouchi), stratified by site and label, seeds {CV_SEED}.."
        f"{CV_SEED + args.repeats - 1} (the shipped card's folds), development split only",
        "seconds": time.perf_counter() - t0,
        "variants": cv_to_json(cv, variants),
        "auto_roi_found_share": {s: float(cache.found[cache.sites == s].mean()) for s in SITES},
        "fold_aurocs": cv.fold_json(),
    }
    (args.out / "cv.json").write_text(json.dumps(result, indent=2))
    np.savez(args.out / "oof.npz", **{"|".join(map(str, k)): v for k, v in cv.oof.items()})
    print_table(result["variants"])


def print_table(variants: dict) -> None:
    rows = []
    for name, v in variants.items():
        for scoring in SCORING:
            if scoring in v:
                cells = [
                    f"{v[scoring][s]['mean']:.3f} ± {v[scoring][s]['sd']:.3f}"
                    for s in SITES
                    if s in v[scoring]
                ]
                rows.append(f"{name:12s} {scoring:11s} " + "   ".join(cells))
    print("variant      scoring      " + "   ".join(f"{s:13s}" for s in SITES))
    print("\n".join(rows))


def cmd_fit(args: argparse.Namespace) -> None:
    """Chooses the recipe, fits it on all development images, calibrates and exports."""
    from training.evaluate import evaluate, fit_platt, save_plots, threshold_for_sensitivity
    from training.experiment import TARGET_SENSITIVITY
    from training.linear_head import classifier_graph, feature_graph, fit_head
    from training.train import sigmoid

    card = shipped_card(args.export)
    samples = development_samples(args.data, set(card["data"]["split"]["test_files"]))
    cache = load_cache(args.out, samples)
    cv_json = json.loads((args.out / "cv.json").read_text())
    with np.load(args.out / "oof.npz") as z:
        oof = {tuple(k.split("|")): z[k] for k in z.files}
    cv = CvResult.from_json(cv_json["fold_aurocs"])
    cs = sorted({c for r, c, _ in cv.folds if r in RECIPES})
    name, c = choose(cv, list(RECIPES), cs)
    plain_pick = choose(cv, list(RECIPES), cs, "auto_roi")
    n_variants = len(RECIPES) * len(cs)
    log.info("chosen %s at C=%s (mean auto-ROI %.3f)", name, c, cv.mean_auto_roi(name, c))
    app_path_cv = {
        "protocol": cv_json["protocol"] + "; each recipe trained on its crops (+ mirror) with "
        "(site, class)-balanced weights and scored on the held-out images' auto-ROI box "
        "(segmenter's best candidate, else the scan area), and for reference on the expert box "
        "(scan area where no mask) and on the scan area. auto_roi / expert_box / scan_area: "
        "mean logit of the crop and its mirror; *_app: mean logit of the crop, its mirror and "
        f"the {len(JITTERS)} box jitters core.inference.predict averages (what the app calibrates)",
        "c": c,
        "recipes": {
            r: {
                "description": RECIPES[r].description,
                **{
                    site: {s: cv.summary(r, c, s)[site] for s in SCORING}
                    for site in SITES
                    if site in cv.summary(r, c, "auto_roi")
                },
            }
            for r in RECIPES
        },
        "c_grid_mean": {
            scoring: {
                r: {str(cc): {s: cv.summary(r, cc, scoring)[s]["mean"] for s in SITES} for cc in cs}
                for r in RECIPES
            }
            for scoring in ("auto_roi", RANK_SCORING)
        },
        "two_view": {
            k.split("@")[0]: {
                "description": v["recipe"],
                "c": v["c"],
                **{s: v["auto_roi"][s] for s in SITES},
            }
            for k, v in cv_json["variants"].items()
            if k.split("@")[0] in TWO_VIEW
        },
        "chosen": name,
        "ranked_by": f"mean over sites of {RANK_SCORING}; by auto_roi (crop + mirror) the "
        f"pick would be {plain_pick[0]} at C={plain_pick[1]}",
        "note": f"picked among {n_variants} variants ({len(RECIPES)} recipes x {len(cs)} C) "
        "on the same folds: optimistic; the shipped C is kept unless another beats it by "
        f"{MIN_C_GAIN}; two-view variants were a CV experiment only",
    }
    if not beats_current(cv, name, c):
        (args.out / "decision.json").write_text(json.dumps(app_path_cv, indent=2))
        log.warning("%s does not beat R0 on auto-ROI CV: shipped model left untouched", name)
        return

    # Calibration and threshold from repeat-0 out-of-fold auto-ROI logits as the app scores
    # them: the same grouped 5-fold split (seed 0) that experiment.fit_final uses.
    oof_logits = oof[(name, str(c), RANK_SCORING)][0]
    y, sites = cache.labels, cache.sites
    a, b = fit_platt(oof_logits, y)
    oof_p = sigmoid(a * oof_logits + b)
    ddti = sites == "ddti"
    threshold = threshold_for_sensitivity(y[ddti], oof_p[ddti], TARGET_SENSITIVITY)
    development_oof = {}
    for site in SITES:
        sel = sites == site
        development_oof[site] = evaluate(y[sel], oof_p[sel], cache.groups[sel], threshold).to_dict()
        save_plots(y[sel], oof_p[sel], args.out / "plots", f"development_oof {site} auto-roi")
    cross_site: dict = {"scoring": f"{RANK_SCORING} (development images)"}
    for src in SITES:
        tr, te = np.flatnonzero(sites == src), np.flatnonzero(sites != src)
        hx, hy, hw = design(cache, tr, RECIPES[name])
        cross_site[f"train_{src}"] = site_aurocs(
            cache, te, score(fit_head(hx, hy, hw, c), cache, te, "auto", False, True)
        )

    x, yy, w = design(cache, np.arange(len(cache)), RECIPES[name])
    head = fit_head(x, yy, w, c)
    features, cam_layer = feature_graph(BACKBONE, INPUT_SIZE)
    model = classifier_graph(features, head)
    metrics = dict(card["metrics"])
    metrics.pop("auto_roi", None)  # of the previous model; auto_roi_eval writes the new one
    metrics.pop("test", None)  # of the previous model; `test` writes the new one
    scoring_text = (
        "auto-ROI as the app scores it: segmenter's best candidate (else the scan area), mean "
        f"logit over the crop, its mirror and the {len(JITTERS)} box jitters of "
        "core.inference.predict"
    )
    metrics["cv"] = {
        **{s: cv.summary(name, c, RANK_SCORING)[s] for s in SITES},
        "protocol": cv_json["protocol"],
        "scoring": scoring_text,
    }
    metrics["development_oof"] = {**development_oof, "scoring": scoring_text}
    metrics["app_path_cv"] = app_path_cv
    metrics["cross_site"] = cross_site
    training = {
        **card["training"],
        "c": c,
        "recipe": f"{name}: {RECIPES[name].description}; each crop and its mirror image, "
        f"{N_JITTERS} jitters per box (shift +-{JITTER_SHIFT:.0%} of the box size, scale "
        f"+-{JITTER_SCALE:.0%}), auto boxes from the shipped segmenter "
        "(best candidate, else the scan area), L2 logistic regression on frozen features",
    }
    card_fields = {
        "backbone": BACKBONE,
        "version": args.version,
        "training": training,
        "data": card["data"],
        "metrics": metrics,
        "baseline": card.get("baseline", {}),
        "calibration": {
            "method": "Platt scaling, sigmoid(a*logit + b), fitted on out-of-fold auto-ROI "
            f"logits (mean over the crop, its mirror and the {len(JITTERS)} box jitters, as the "
            "app scores) "
            "of the ddti and chaouchi development images (grouped 5-fold CV, seed 0)",
            "a": a,
            "b": b,
        },
    }
    from training.export import export

    path = export(model, cam_layer, (a, b), threshold, card_fields, args.export)
    carry_over(card, path)
    decision = {**app_path_cv, "exported": str(path), "a": a, "b": b, "threshold": threshold}
    (args.out / "decision.json").write_text(json.dumps(decision, indent=2))
    check_export(args, samples[:3] + samples[-3:], cache, head, (a, b))
    log.info("exported %s (threshold %.3f, Platt a %.3f b %.3f)", path, threshold, a, b)


def carry_over(previous: dict, card_path: Path) -> None:
    """Keeps the card sections ``export`` does not write (novelty reference, stability limit,
    ...) as they were. The novelty reference is on the frozen backbone's features, which the
    new head does not change; the stability limit is the head's: refit it with
    ``python -m training.reliability --skip-novelty``."""
    from thyroid_desktop.core.io.files import write_atomically

    card = json.loads(card_path.read_text())
    kept = [k for k in previous if k not in card]
    card.update({k: previous[k] for k in kept})
    write_atomically(card_path, lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
    log.info("card sections kept from the previous card: %s", kept)


def check_export(args, samples: Sequence[Sample], cache: FeatureCache, head, platt) -> None:
    """The exported model through the app's ``auto_predict`` gives the probability the cached
    features and the fitted head give: training and app see the same crop."""
    from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter
    from thyroid_desktop.core.pipeline.estimate import auto_predict
    from training.train import sigmoid

    clf, seg = load_classifier(args.export), load_segmenter(args.export)
    index = {k: i for i, k in enumerate(cache.keys)}
    for s in samples:
        i = index[sample_key(s)]
        finding, _ = auto_predict(open_image(s.path), clf, seg)
        z = score(head, cache, np.array([i]), "auto", False, app_views=True)[0]
        expected = float(sigmoid(platt[0] * z + platt[1]))
        log.info(
            "export check %s: app %.5f, cache %.5f", s.path.name, finding.probability, expected
        )
        if abs(finding.probability - expected) > 1e-3:
            raise SystemExit(f"exported model disagrees with the cache on {s.path}")


def cmd_test(args: argparse.Namespace) -> None:
    """Once: the held-out test split through the app's ``auto_predict`` -> ``metrics.test``."""
    from thyroid_desktop.core.io.files import write_atomically
    from thyroid_desktop.core.models.shipped import CARD_FILE, load_classifier, load_segmenter
    from thyroid_desktop.core.pipeline.estimate import auto_predict
    from training.data import samples_in
    from training.evaluate import evaluate

    clf, seg = load_classifier(args.export), load_segmenter(args.export)
    card = clf.card.raw
    test_files = set(card["data"]["split"]["test_files"])
    result: dict = {
        "scoring": "auto_roi: the app's path, core.inference.auto_predict (segmenter's best "
        "candidate, else the scan area; mean logit over the crop, its mirror and the "
        f"{len(JITTERS)} box jitters); expert-box and scan-area figures are in metrics.auto_roi"
    }
    for site in SITES:
        samples = samples_in(args.data, site, test_files)
        p = np.array([auto_predict(open_image(s.path), clf, seg)[0].probability for s in samples])
        y = np.array([s.label for s in samples])
        result[site] = evaluate(y, p, [s.group for s in samples], clf.card.threshold).to_dict()
        log.info("test %s: AUROC %.3f %s", site, result[site]["auroc"], result[site]["auroc_ci95"])
    card_path = args.export / CARD_FILE
    card = json.loads(card_path.read_text())
    card["metrics"]["test"] = result
    write_atomically(card_path, lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
    print(json.dumps(result, indent=2))


def main(argv: list[str] | None = None) -> int:
    from thyroid_desktop.core.models.shipped import models_dir

    parser = argparse.ArgumentParser(
        prog="python -m training.app_path",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="cache and CV results")
    parser.add_argument("--export", type=Path, default=models_dir(), help="model folder")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("cache", help="features of every development crop")
    p.add_argument("--force", action="store_true", help="recompute an existing cache")
    p = sub.add_parser("cv", help="grouped CV of the recipes, scored on auto-ROI")
    p.add_argument("--folds", type=int, default=N_FOLDS)
    p.add_argument("--repeats", type=int, default=N_REPEATS)
    p.add_argument("--c-grid", type=float, nargs="+", default=list(C_GRID))
    p = sub.add_parser("fit", help="choose, fit, calibrate and export")
    p.add_argument("--version", default="1.1.1", help="version written into the card")
    sub.add_parser("test", help="once: the test split through auto_predict")
    args = parser.parse_args(argv)
    if args.command == "cv" and len(args.c_grid) > len(C_GRID):
        parser.error(f"at most {len(C_GRID)} C values")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    {"cache": cmd_cache, "cv": cmd_cv, "fit": cmd_fit, "test": cmd_test}[args.command](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
