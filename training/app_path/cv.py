"""Heads on cached features and the grouped CV of the recipes, scored on the app's auto-ROI
crop; the ``cv`` command."""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.app_path.cache import FeatureCache, development_samples, load_cache, shipped_card
from training.app_path.recipes import (
    C_SHIPPED,
    CONTEXT,
    CV_SEED,
    JPEG_PROBE_QUALITY,
    JPEG_SCORING,
    MIN_C_GAIN,
    MIN_MEAN_GAIN,
    N_FOLDS,
    N_REPEATS,
    RANK_SCORING,
    RECIPES,
    SCORING,
    SITES,
    TWO_VIEW,
    Recipe,
)
from training.data import Sample, grouped_folds

log = logging.getLogger(__name__)


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


def nuisance_differences(cache: FeatureCache, idx: np.ndarray, recipe: Recipe) -> np.ndarray:
    """The feature differences of ``recipe.invariant_to``'s view pairs for the images
    ``idx``, each pair and its mirror image."""
    return np.concatenate(
        [
            cache.features[view][idx, m] - cache.features[plain][idx, m]
            for view, plain in recipe.invariant_to
            for m in (0, 1)
        ]
    )


def fit_recipe_head(cache: FeatureCache, idx: np.ndarray, recipe: Recipe, c: float):
    """The head of ``recipe`` fitted on the images ``idx`` (``design``'s rows; with the
    penalty on ``recipe.invariant_to``'s differences where it asks for one)."""
    from training.app_path.invariant import fit_invariant_head
    from training.linear_head import fit_head

    x, y, w = design(cache, idx, recipe)
    if not recipe.invariance:
        return fit_head(x, y, w, c)
    differences = nuisance_differences(cache, idx, recipe)
    return fit_invariant_head(x, y, w, c, differences, recipe.invariance)


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
    over the app's jitter views too (what ``core.pipeline.estimate.predict`` calibrates)."""
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


def scorings_of(cache: FeatureCache) -> tuple[str, ...]:
    """The ``SCORING`` crops the cache holds (an augmented cache: the auto box only)."""
    return tuple(
        s
        for s, (view, app) in SCORING.items()
        if view in cache.features and (not app or view in cache.app_views)
    )


def recipes_of(cache: FeatureCache) -> list[Recipe]:
    """The recipes whose every view the cache holds."""
    return [
        r
        for r in RECIPES.values()
        if all(v in cache.features for v in r.views_for(True) + r.views_for(False))
    ]


def run_cv(
    cache: FeatureCache,
    variants: Sequence[tuple[Recipe, float]],
    splits: Sequence[tuple[int, np.ndarray, np.ndarray]],
    train_sites: Sequence[str] = SITES,
) -> CvResult:
    """Fits every (recipe, C) on each training part and scores the held-out images on the
    auto-ROI, expert-box and scan-area crops, each as crop + mirror and as the app scores it
    (two-view recipes: auto-ROI crop + mirror only). ``train_sites``: only these collections'
    images of each training part are trained on (every held-out image is still scored)."""
    repeats = 1 + max(rep for rep, _, _ in splits)
    folds: dict = {}
    oof: dict = {}
    for k, (rep, tr, va) in enumerate(splits):
        t0 = time.perf_counter()
        tr = tr[np.isin(cache.sites[tr], list(train_sites))]
        for recipe, c in variants:
            head = fit_recipe_head(cache, tr, recipe, c)
            scorings = ("auto_roi",) if recipe.two_view else scorings_of(cache)
            for scoring in scorings:
                key = (recipe.name, c, scoring)
                view, app_views = SCORING[scoring]
                z = score(head, cache, va, view, recipe.two_view, app_views)
                folds.setdefault(key, []).append(site_aurocs(cache, va, z))
                oof.setdefault(key, np.full((repeats, len(cache)), np.nan))[rep, va] = z
        ddti = {
            f"{r.name}@{c}": summarise(folds[(r.name, c, RANK_SCORING)])
            for r, c in variants
            if not r.two_view
        }
        log.info(
            "fold %d/%d (repeat %d) in %.0f s; ddti auto-ROI (app) mean so far: %s",
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
    ref = reference_recipe(cv)
    if recipe == ref:
        return True
    new, old = cv.summary(recipe, c, scoring), cv.summary(ref, C_SHIPPED, scoring)
    both = all(new[s]["mean"] > old[s]["mean"] for s in SITES)
    gain = cv.mean_auto_roi(recipe, c, scoring) - cv.mean_auto_roi(ref, C_SHIPPED, scoring)
    return both or gain >= MIN_MEAN_GAIN


def reference_recipe(cv: CvResult) -> str:
    """What a new recipe must beat: R0 (expert-box crops) where the cache has it, else R1
    (an augmented cache: the shipped recipe on the same crop step)."""
    return "R0" if any(r == "R0" for r, _, _ in cv.folds) else "R1"


def jpeg_shift(cv: CvResult, labels: np.ndarray, sites: np.ndarray, recipe: str, c: float) -> dict:
    """Per site: how far the held-out estimate moves when the frame is re-encoded as a JPEG of
    quality ``JPEG_PROBE_QUALITY`` (same box): mean and 95th percentile of |dp| over images
    and repeats, the probability calibrated per repeat as ``fit`` calibrates (Platt on the
    repeat's out-of-fold ``RANK_SCORING`` logits), and the mean signed shift per class."""
    from thyroid_desktop.core.site.calibration import sigmoid
    from training.evaluate import fit_platt

    z, zq = cv.oof[(recipe, c, RANK_SCORING)], cv.oof[(recipe, c, JPEG_SCORING)]
    d = np.empty_like(z)
    for rep in range(len(z)):
        a, b = fit_platt(z[rep], labels)
        d[rep] = sigmoid(a * zq[rep] + b) - sigmoid(a * z[rep] + b)
    out = {}
    for site in SITES:
        sel = sites == site
        ds = d[:, sel]
        out[site] = {
            "mean_abs": float(np.abs(ds).mean()),
            "p95_abs": float(np.quantile(np.abs(ds), 0.95)),
            "mean_benign": float(ds[:, labels[sel] == 0].mean()),
            "mean_malignant": float(ds[:, labels[sel] == 1].mean()),
        }
    return out


def cv_to_json(
    cv: CvResult, variants: Sequence[tuple[Recipe, float]], cache: FeatureCache | None = None
) -> dict:
    out = {
        f"{r.name}@{c}": {
            "recipe": r.description,
            "c": c,
            **{s: cv.summary(r.name, c, s) for s in SCORING if (r.name, c, s) in cv.folds},
        }
        for r, c in variants
    }
    if cache is not None:
        for r, c in variants:
            if (r.name, c, JPEG_SCORING) in cv.oof:
                shift = jpeg_shift(cv, cache.labels, cache.sites, r.name, c)
                out[f"{r.name}@{c}"]["jpeg_shift"] = shift
    return out


def cmd_cv(args: argparse.Namespace) -> None:
    """Recipes x C grid (plus the two-view experiment) on the development folds."""
    card = shipped_card()
    samples = development_samples(args.data, set(card["data"]["split"]["test_files"]))
    cache = load_cache(args.out, samples)
    splits = cv_splits(cache, args.folds, args.repeats)
    variants = [(r, c) for r in recipes_of(cache) for c in args.c_grid]
    if "auto" + CONTEXT in cache.features:
        variants += [(r, C_SHIPPED) for r in TWO_VIEW.values()]
    t0 = time.perf_counter()
    cv = run_cv(cache, variants, splits, args.train_sites)
    result = {
        "protocol": f"{args.repeats} x {args.folds}-fold CV grouped by case (ddti) / runs of "
        f"neighbouring ids (chaouchi), stratified by site and label, seeds {CV_SEED}.."
        f"{CV_SEED + args.repeats - 1} (the shipped card's folds), development split only",
        "seconds": time.perf_counter() - t0,
        "variants": cv_to_json(cv, variants, cache),
        "jpeg_probe_quality": JPEG_PROBE_QUALITY,
        "auto_roi_found_share": {s: float(cache.found[cache.sites == s].mean()) for s in SITES},
        "cache": cache.cut,
        "train_sites": list(args.train_sites),
        "fold_aurocs": cv.fold_json(),
    }
    tag = "" if set(args.train_sites) == set(SITES) else "_train_" + "+".join(args.train_sites)
    (args.out / f"cv{tag}.json").write_text(json.dumps(result, indent=2))
    np.savez(args.out / f"oof{tag}.npz", **{"|".join(map(str, k)): v for k, v in cv.oof.items()})
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
    shifts = {name: v["jpeg_shift"] for name, v in variants.items() if "jpeg_shift" in v}
    if shifts:
        print(
            f"\nheld-out |dp| when the frame is re-encoded as JPEG q{JPEG_PROBE_QUALITY}: mean / p95"
        )
        for name, shift in shifts.items():
            cells = [f"{s} {d['mean_abs']:.3f} / {d['p95_abs']:.3f}" for s, d in shift.items()]
            print(f"{name:12s} " + "   ".join(cells))


def paired_differences(
    base: CvResult, base_recipe: str, other: CvResult, recipe: str, c: float = C_SHIPPED
) -> dict[str, dict[str, float]]:
    """Per site: mean, SE and the share of folds below, of ``recipe``'s fold AUROC minus
    ``base_recipe``'s on the same folds (``RANK_SCORING``; both CVs use the card's seeds)."""
    a = base.folds[(base_recipe, c, RANK_SCORING)]
    b = other.folds[(recipe, c, RANK_SCORING)]
    out = {}
    for site in SITES:
        d = np.array([y[site] - x[site] for x, y in zip(a, b, strict=True)])
        out[site] = {
            "mean": float(d.mean()),
            "se": float(d.std(ddof=1) / np.sqrt(len(d))),
            "folds_below": int((d < 0).sum()),
            "folds": len(d),
        }
    return out


def cmd_compare(args: argparse.Namespace) -> None:
    """Paired fold differences between recipes of two CV runs (``--out`` folders, whose
    ``cv.json`` is read, or a CV file such as ``cv_train_ddti.json``)."""
    runs = {}
    for spec in args.pairs:
        where, recipe = spec.rsplit(":", 1)
        path = Path(where) if where.endswith(".json") else Path(where) / "cv.json"
        rows = json.loads(path.read_text())["fold_aurocs"]
        runs[spec] = (CvResult.from_json(rows), recipe)
    base_spec, *others = args.pairs
    base, base_recipe = runs[base_spec]
    print(f"{RANK_SCORING} at C={C_SHIPPED}, paired over the same folds, against {base_spec}")
    for spec in others:
        cv, recipe = runs[spec]
        diff = paired_differences(base, base_recipe, cv, recipe)
        cells = [
            f"{s} {d['mean']:+.3f} ± {d['se']:.3f} (below in {d['folds_below']}/{d['folds']})"
            for s, d in diff.items()
        ]
        print(f"{spec:28s} " + "   ".join(cells))
