"""Fits what tells the app when not to trust an estimate, and measures it.

1. **Novelty** (``core.models.novelty``): a Gaussian over the classifier's pooled features of
   thyroid crops, each cut as the app cuts them (auto-detected box, else the scan area).
   Reference: the development images of ddti and chaouchi, arcegor frames of the segmenter's
   training groups and tg3k ``train`` frames. The limit is the highest of the collections'
   ``LIMIT_QUANTILE`` of out-of-fold distances (folds grouped by case/sequence), so at most
   5 % of each collection is above it; the share flagged is then measured on held-out sets of every
   thyroid collection (ddti and chaouchi test splits, held-out arcegor sequences, tg3k
   ``test``) and on images that are not thyroid ultrasound.
2. **Stability**: the spread (max - min over the box, its mirror and the box jitters) of the
   shipped classifier on the development images through ``predict``; the limit above which
   an estimate is marked unstable is its ``SPREAD_QUANTILE``.

Writes ``resources/models/novelty.npz`` and the card's ``novelty`` and ``stability``
sections (atomically). Features are cached under ``runs/reliability`` (the backbone is
frozen, so they do not change when the head is retrained).

Usage: python -m training.reliability [--data ../shared/data] [--skip-novelty] [--skip-stability]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thyroid_desktop.core.analysis import AnalysisService
from thyroid_desktop.core.io.files import write_atomically
from thyroid_desktop.core.io.images import ImageLoadError, UltrasoundImage, from_array, open_image
from thyroid_desktop.core.models.novelty import NoveltyModel
from thyroid_desktop.core.models.shipped import (
    CARD_FILE,
    NOVELTY_CARD_KEY,
    STABILITY_CARD_KEY,
    load_classifier,
    load_segmenter,
    models_dir,
    sha256_file,
)
from thyroid_desktop.core.pipeline.estimate import card_crop, detect_nodules
from thyroid_desktop.core.pipeline.roi import JITTERS
from training.data import DEFAULT_DATA, load_dataset, sample_key

log = logging.getLogger(__name__)

NOVELTY_FILE = "novelty.npz"
#: Principal components kept: enough for 90+ % of the variance of the reference features.
N_COMPONENTS = 64
#: The limit is the highest of the collections' out-of-fold quantiles, so that at most 5 % of
#: each thyroid collection is flagged (a pooled quantile flagged 11 % of chaouchi).
LIMIT_QUANTILE = 0.95
N_FOLDS = 5
#: Every k-th frame of a video collection (neighbouring frames are near duplicates).
ARCEGOR_STRIDE = 4
TG3K_STRIDE = 6
#: Share of development estimates marked unstable.
SPREAD_QUANTILE = 0.95
SEED = 0
CACHE = Path("runs/reliability")


@dataclass(frozen=True)
class Item:
    """One image of a collection, with the group it must not be split from."""

    path: Path
    collection: str
    group: str
    role: str  # "reference" or "held-out"


def thyroid_items(data: Path, card: dict) -> list[Item]:
    """Every thyroid image used: reference (fit) and held-out (report) per collection."""
    test_files = set(card["data"]["split"]["test_files"])
    items = []
    for site in ("ddti", "chaouchi"):
        for s in load_dataset(data / site, site):
            role = "held-out" if sample_key(s) in test_files else "reference"
            items.append(Item(s.path, site, f"{site}:{s.group}", role))
    from training.segmenter import _classifier_test_cases, load_mask_samples, split

    masks = load_mask_samples(data)
    _, test_idx = split(masks, _classifier_test_cases(card, data))
    held = {masks[i].group for i in test_idx}
    frames = sorted((m for m in masks if m.dataset == "arcegor"), key=lambda m: str(m.path))
    for i, s in enumerate(frames):
        if i % ARCEGOR_STRIDE == 0:
            role = "held-out" if s.group in held else "reference"
            items.append(Item(s.path, "arcegor", s.group, role))
    import csv

    with open(data / "tg3k" / "gland_masks.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for i, row in enumerate(rows):
        if i % TG3K_STRIDE or row["split"] == "val":
            continue
        role = "held-out" if row["split"] == "test" else "reference"
        number = int("".join(ch for ch in Path(row["file"]).stem if ch.isdigit()) or 0)
        items.append(Item(data / "tg3k" / row["file"], "tg3k", f"tg3k:{number // 50}", role))
    return items


def app_crop_features(image: UltrasoundImage, clf, seg) -> np.ndarray:
    """The classifier's features of the crop the app analyses by default (auto box, else
    the scan area), averaged with its mirror, exactly as ``predict`` computes them."""
    det = detect_nodules(image, seg)
    roi = det.best.roi if det.best is not None else det.fov.box
    crop, _ = card_crop(image, roi, clf.card, det.fov)
    out = clf.gradcam.run(crop[None], mirror=clf.card.tta)
    return out.features


def features_of(items: list[Item], clf, seg, cache: Path) -> np.ndarray:
    """Features of every item (cached by path)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    known: dict[str, np.ndarray] = {}
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            known = dict(zip(z["paths"].tolist(), z["features"], strict=True))
    out, t0 = [], time.perf_counter()
    for i, item in enumerate(items):
        key = str(item.path)
        if key not in known:
            known[key] = app_crop_features(open_image(item.path), clf, seg)
        out.append(known[key])
        if i % 200 == 0:
            log.info("features %d/%d (%.0f s)", i, len(items), time.perf_counter() - t0)
    paths = np.array(list(known))
    np.savez(cache, paths=paths, features=np.stack([known[p] for p in paths]))
    return np.stack(out)


def fit_novelty(x: np.ndarray, limit: float = np.inf) -> NoveltyModel:
    """PCA to ``N_COMPONENTS`` and a Ledoit-Wolf covariance of the projected features."""
    from sklearn.covariance import LedoitWolf

    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    components = vt[:N_COMPONENTS].T
    lw = LedoitWolf().fit((x - mean) @ components)
    return NoveltyModel(mean, components, np.linalg.inv(lw.covariance_), float(limit))


def out_of_fold_distances(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each reference image's distance to a reference fitted without its group's fold."""
    rng = np.random.default_rng(SEED)
    unique = np.array(sorted(set(groups)))
    fold_of = dict(zip(unique, rng.integers(0, N_FOLDS, len(unique)), strict=True))
    folds = np.array([fold_of[g] for g in groups])
    d = np.zeros(len(x))
    for k in range(N_FOLDS):
        model = fit_novelty(x[folds != k])
        d[folds == k] = model.distances(x[folds == k])
    return d


#: scikit-image's bundled sample images, the natural photographs every check is run on.
PHOTOGRAPHS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "hubble_deep_field",
               "immunohistochemistry", "moon", "page", "text", "brick", "grass", "gravel",
               "coins", "horse", "retina", "logo", "colorwheel")  # fmt: skip


def other_images(clf, seg) -> dict[str, list[UltrasoundImage]]:
    """Images that are not thyroid ultrasound: natural photographs (scikit-image's bundled
    samples), CT/MR/NM/RT/CR slices from pydicom's test files (pixels only, so the Modality
    rule cannot catch them here), pure noise and blank frames."""
    import pydicom
    import skimage.data as sk

    photos = []
    for name in PHOTOGRAPHS:
        try:
            photos.append(from_array(getattr(sk, name)()))
        except Exception as err:  # a sample that is not bundled offline
            log.info("skimage %s not available: %s", name, err)
    medical = []
    root = Path(pydicom.__file__).parent / "data" / "test_files"
    for p in sorted(root.rglob("*.dcm")):
        try:
            img = open_image(p)
        except ImageLoadError:
            continue
        if img.metadata.get("Modality", "US") != "US":
            medical.append(from_array(img.pixels))
    rng = np.random.default_rng(SEED)
    synthetic = [from_array(rng.integers(0, 256, (360, 480), dtype=np.uint8)) for _ in range(5)]
    synthetic += [from_array(np.full((360, 480), v, np.uint8)) for v in (0, 128)]
    return {
        "natural photographs": photos,
        "CT/MR/NM/RT/CR (pydicom test files, pixels only)": medical,
        "noise / blank": synthetic,
    }


def novelty(args, clf, seg, card: dict) -> dict:
    items = thyroid_items(args.data, card)
    x = features_of(items, clf, seg, CACHE / "thyroid_features.npz")
    ref = np.array([it.role == "reference" for it in items])
    groups = np.array([it.group for it in items])
    oof = out_of_fold_distances(x[ref], groups[ref])
    colls = np.array([it.collection for it in items])[ref]
    limit = max(float(np.quantile(oof[colls == c], LIMIT_QUANTILE)) for c in set(colls))
    model = fit_novelty(x[ref], limit)
    d = np.empty(len(items))
    d[ref], d[~ref] = oof, model.distances(x[~ref])
    flagged: dict[str, dict] = {}
    for coll in ("ddti", "chaouchi", "arcegor", "tg3k"):
        for role, name in (("reference", "reference, out of fold"), ("held-out", "held-out")):
            sel = np.array([it.collection == coll and it.role == role for it in items])
            if sel.any():
                flagged[f"{coll} ({name})"] = {
                    "n": int(sel.sum()),
                    "flagged_share": float(np.mean(d[sel] > limit)),
                }
    for kind, images in other_images(clf, seg).items():
        dist = np.array([model.distance(app_crop_features(im, clf, seg)) for im in images])
        flagged[kind] = {"n": len(images), "flagged_share": float(np.mean(dist > limit))}
    for k, v in flagged.items():
        print(f"{k:55s} n={v['n']:4d} flagged {100 * v['flagged_share']:5.1f} %", flush=True)
    path = models_dir() / NOVELTY_FILE
    write_atomically(path, lambda p: model.save(p))
    return {
        "file": NOVELTY_FILE,
        "sha256": sha256_file(path),
        "limit": limit,
        "method": (
            f"Mahalanobis distance on the classifier's {x.shape[1]} pooled features of the "
            f"app's default crop (auto box, else scan area; crop + mirror), PCA to "
            f"{N_COMPONENTS}, Ledoit-Wolf covariance; limit = the highest per-collection "
            f"{LIMIT_QUANTILE:.2f} quantile of out-of-fold distances ({N_FOLDS} folds grouped "
            "by case/sequence)"
        ),
        "reference": {
            c: int(sum(it.collection == c and it.role == "reference" for it in items))
            for c in ("ddti", "chaouchi", "arcegor", "tg3k")
        },
        "flagged": flagged,
    }


def stability(args, clf, seg, card: dict) -> dict:
    """Spread of the shipped estimate over its views on the development images."""
    service = AnalysisService(clf, seg, None)  # the app's one door, audit off
    test_files = set(card["data"]["split"]["test_files"])
    spreads = []
    for site in ("ddti", "chaouchi"):
        for s in load_dataset(args.data / site, site):
            if sample_key(s) in test_files:
                continue
            image = open_image(s.path)
            result = service.analyse(image, None, None, scan_area_fallback=True)
            spreads.append(result.finding.spread)  # the app's default path, as shown
    spreads = np.array(spreads)
    limit = float(np.quantile(spreads, SPREAD_QUANTILE))
    print(f"spread: median {np.median(spreads):.3f}, limit {limit:.3f}", flush=True)
    return {
        "views": f"the box, its mirror and {len(JITTERS)} jittered boxes (shift 10 %, scale "
        "15 %; roi.JITTERS); probability = calibration of the mean logit",
        "spread": "max - min of the views' calibrated probabilities",
        "spread_limit": limit,
        "chosen_on": f"{SPREAD_QUANTILE:.2f} quantile of the development images' spread "
        f"(ddti + chaouchi, auto-detected box; n = {len(spreads)})",
        "development_median_spread": float(np.median(spreads)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--skip-novelty", action="store_true")
    parser.add_argument("--skip-stability", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    clf, seg = load_classifier(), load_segmenter()
    clf.novelty = None  # measure without the current reference
    card_path = models_dir() / CARD_FILE
    card = json.loads(card_path.read_text())
    sections = {}
    if not args.skip_novelty:
        sections[NOVELTY_CARD_KEY] = novelty(args, clf, seg, card)
    if not args.skip_stability:
        sections[STABILITY_CARD_KEY] = stability(args, clf, seg, card)
    card = json.loads(card_path.read_text())  # what others wrote meanwhile stays
    card.update(sections)
    write_atomically(card_path, lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
