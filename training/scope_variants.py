"""Scope-check variants tried and not shipped (the experiments log, "Thyroid only").

Each is judged as ``python -m training.scope evaluate`` judges the shipped one (grouped CV,
leave-one-organ-out, the 2 %-per-collection threshold), on its cached features (run
``python -m training.scope extract`` first):

- ``base``: the shipped recipe (segmenters' evidence + the classifier's view, C = 1);
- ``l2``, ``sqrt``: the classifier's features L2-normalised, or signed square roots;
- ``pca64``: standardised, then 64 principal components, then the regression;
- ``c0.1`` (any ``cX``): another regularisation;
- ``jigsaw``: each training fold's thyroid frames, their scan area cut into 4 x 4 tiles and
  shuffled, added as "not thyroid": thyroid texture without thyroid anatomy, so that the
  model must use the anatomy (``--jigsaw`` makes them, ~2 min, cached).

Usage: python -m training.scope_variants base l2 sqrt pca64 c0.1 jigsaw
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from training import scope as sc

JIGSAW_CACHE = Path("runs/scope/jigsaw.npz")
REPORT = Path("runs/scope/variants.json")
TILES = 4


def jigsaw(pixels: np.ndarray, box, rng: np.random.Generator) -> np.ndarray:
    """``pixels`` with the ``box`` (the scan area's) cut into TILES x TILES tiles, shuffled."""
    out = pixels.copy()
    th, tw = box.h // TILES, box.w // TILES
    cells = [(box.y + r * th, box.x + c * tw) for r in range(TILES) for c in range(TILES)]
    tiles = [pixels[y : y + th, x : x + tw].copy() for y, x in cells]
    for (y, x), k in zip(cells, rng.permutation(len(tiles)), strict=True):
        out[y : y + th, x : x + tw] = tiles[k]
    return out


def extract_jigsaw(cache: dict, data: Path) -> None:
    """Describes a shuffled copy of every cached thyroid frame (as ``scope.describe``)."""
    from thyroid_desktop.core.io.images import from_array, open_image
    from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter
    from thyroid_desktop.core.pipeline.fov import detect_fov

    classifier, segmenter = load_classifier(precision="float"), load_segmenter()
    rng = np.random.default_rng(0)
    rows = np.flatnonzero(cache["organ"] == "thyroid")
    described = []
    for i in rows:
        image = open_image(data / str(cache["path"][i]))
        shuffled = jigsaw(np.asarray(image.pixels), detect_fov(image.gray).box, rng)
        anat, feats, _rect = sc.describe(from_array(shuffled), classifier, segmenter)
        described.append(np.r_[anat, feats])
    JIGSAW_CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(JIGSAW_CACHE, x=np.array(described, np.float32), rows=rows)


def variant(name: str, cache: dict):
    """(feature matrix, C, extra-examples function or None) of a variant."""
    anat, feats = cache["anat"].astype(np.float64), cache["feats"].astype(np.float64)
    c, extra = 1.0, None
    if name == "l2":
        feats = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    elif name == "sqrt":
        feats = np.sign(feats) * np.sqrt(np.abs(feats))
    elif name.startswith("c"):
        c = float(name[1:])
    elif name == "jigsaw":
        saved = np.load(JIGSAW_CACHE)
        shuffled, of_row = (
            saved["x"].astype(np.float64),
            {int(r): k for k, r in enumerate(saved["rows"])},
        )

        def extra(train: np.ndarray):
            picked = [of_row[i] for i in train if i in of_row]
            return shuffled[picked], np.zeros(len(picked), int)

    elif name not in ("base", "pca64"):
        raise ValueError(f"unknown variant {name}")
    return np.hstack([anat, feats]), c, extra


def _pca_lr(x, y, c):
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    lr = LogisticRegression(C=c, class_weight="balanced", max_iter=3000)
    return make_pipeline(StandardScaler(), PCA(64, random_state=0), lr).fit(x, y)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m training.scope_variants", description=__doc__)
    p.add_argument("variants", nargs="+")
    p.add_argument("--data", type=Path, default=sc.DEFAULT_DATA)
    args = p.parse_args(argv)
    cache = dict(np.load(sc.CACHE))
    if "jigsaw" in args.variants and not JIGSAW_CACHE.exists():
        extract_jigsaw(cache, args.data)
    results, shipped_fit = [], sc.fit_lr
    for name in args.variants:
        x, c, extra = variant(name, cache)
        sc.fit_lr = _pca_lr if name == "pca64" else shipped_fit
        t0 = time.perf_counter()
        try:
            r = sc.evaluate(cache, "both", c, x=x, extra=extra)
        finally:
            sc.fit_lr = shipped_fit
        r["variant"] = name
        passed = [v["passed"][0] for v in r["leave_one_organ_out"].values()]
        print(
            f"{name}: mean never-seen organ passed {100 * np.mean(passed):.1f} % "
            f"({time.perf_counter() - t0:.0f} s)"
        )
        sc._print(r)
        results.append(r)
    REPORT.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
