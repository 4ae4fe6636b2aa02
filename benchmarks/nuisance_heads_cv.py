"""Heads that ignore a nuisance, on the development folds: the box's size as a training
covariate the app never gets, and recipe R6's penalty on what pasted marks and resampling
change (``training.app_path.invariant``), against the shipped head (R4).

**The box's size.** The classifier's crop is the box's window resized to 224 px (260 before v1.3.0), so the
crop's sharpness tells the model how many pixels the box spans, and in these data a small box
is more often malignant (ddti: the expert box's area alone gives AUROC 0.67,
``bench_confounds.py``). On another scanner the same
nodule spans another number of pixels, so whatever the estimate learns from it will not
carry. A standard way to take a known confounder out of a linear model: fit the head with the
confounder as one more column (here the log of the auto box's longer side, and of the side
the resampled training views were cut at), so that the image features need not carry it,
then score without it (a constant: the AUROC does not depend on which). ``--weights`` scales
the covariate's standardised column, i.e. how much less the L2 penalty holds it back (1: like
any feature).

**The layout** (``--layout-weights``): the same construction with a column that is 1 where
the scan area holds two panels side by side (ddti's two-panel frames are 91 % malignant);
each head's within-class Spearman with that column is printed beside the box area's.

**R6** (``--no-r6`` leaves it out): R4's rows, the head penalised for following the feature
differences between each pasted-marks or resampled view and the same box without
(``recipes.NUISANCE_PAIRS``).

Per head, on the same 3 x 5 grouped development folds and scoring as ``training.app_path
cv`` (C = 0.03 as shipped; the test split is not read):

- CV AUROC per site as the app scores its box, and the paired difference from the shipped
  head (mean ± standard error over the 15 folds, folds below);
- Spearman of the out-of-fold logit (mean over the repeats) with the auto box's area within
  each class of each site (near 0: the estimate no longer follows the box's size beyond
  what the label explains);
- the other collection through the app's path (``training.app_path.cross_site``: fitted
  on all development images of one site, scored on the other's, 95 % CI over its cases);
- the held-out images' resampled views (the frame resampled by 0.7-0.9 and by 1.1-1.3, each
  against the same jittered box cut from the frame itself; crop + mirror): the AUROC change
  and the mean and mean absolute shift of the probability; and their pasted-marks views
  against the same box without marks: the same shifts. The probability is each head's own
  Platt map, fitted on repeat 0's out-of-fold logits (as ``fit`` fits it) and applied to
  every repeat's logits, so that heads whose logits spread differently compare.

Reads an augmented cache (``training.app_path cache --augment``). About 2.5 minutes here.

Usage: python benchmarks/nuisance_heads_cv.py [--out runs/app_path_v2] [--weights 1 3 10]
       [--layout-weights 1 3 10] [--no-r6] [--json runs/nuisance_heads_cv.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_what_it_looks_at import TWO_PANEL_ASPECT  # noqa: E402

#: The two resampled views of an augmented cache.
RESAMPLED = ("auto_sc0", "auto_sc1")


def per_row(cache, idx: np.ndarray, recipe, values: np.ndarray, per_view=None) -> np.ndarray:
    """Per row of ``training.app_path.cv.design(cache, idx, recipe)``: the image's entry of
    ``values`` (plus ``per_view(view)`` where given), in the order design() builds its rows."""
    out = []
    for has_mask in (True, False):
        sel = idx[cache.has_mask[idx] == has_mask]
        if not len(sel):
            continue
        for view in recipe.views_for(has_mask):
            extra = per_view(view) if per_view is not None else 0.0
            out += [values[sel] + extra] * 2  # the view and its mirror
    return np.concatenate(out)[:, None]


def box_covariate(cache, idx: np.ndarray, recipe) -> np.ndarray:
    """Per row of ``design``: the log of the side, in pixels, of the box its view was cut at
    (the auto box; the resampled views at the middle of their band)."""
    from training.app_path.recipes import SCALE_BANDS

    factor = dict(zip(RESAMPLED, (np.mean(b) for b in SCALE_BANDS), strict=True))
    side = np.log(cache.boxes["auto"][:, 2:].max(axis=1).astype(float))
    return per_row(cache, idx, recipe, side, lambda view: np.log(factor.get(view, 1.0)))


def two_panels(cache) -> np.ndarray:
    """1.0 where the image's scan area holds two panels side by side, else 0.0."""
    fov = cache.boxes["fov"]
    return (fov[:, 2] > TWO_PANEL_ASPECT * fov[:, 3]).astype(float)


def layout_covariate(cache, idx: np.ndarray, recipe) -> np.ndarray:
    """Per row of ``design``: whether its image shows two panels side by side (ddti's
    two-panel frames are 91 % malignant: a layout, not a nodule, property)."""
    return per_row(cache, idx, recipe, two_panels(cache))


def fit_adjusted(x, covariate, y, w, c: float, weight: float):
    """A ``LinearHead`` on ``x`` fitted with ``covariate`` as extra standardised columns
    scaled by ``weight``; the covariate's coefficients are dropped (a constant at scoring,
    absorbed by the Platt map)."""
    from sklearn.linear_model import LogisticRegression

    from training.linear_head import LinearHead

    full = np.concatenate([x, covariate], axis=1)
    mean, var = full.mean(axis=0), full.var(axis=0) + 1e-6
    z = (full - mean) / np.sqrt(var)
    z[:, x.shape[1] :] *= weight
    lr = LogisticRegression(C=c, max_iter=5000).fit(z, y, sample_weight=w)
    d = x.shape[1]
    return LinearHead(mean[:d], var[:d], lr.coef_[0][:d], float(lr.intercept_[0]))


def main() -> int:
    from scipy.stats import spearmanr

    import training.app_path as A
    from thyroid_desktop.core.site.calibration import sigmoid
    from training.app_path.cv import design, fit_recipe_head, score, site_aurocs
    from training.data import DEFAULT_DATA
    from training.evaluate import fit_platt

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("runs/app_path_v2"), help="the cache")
    parser.add_argument("--weights", type=float, nargs="+", default=[1.0, 3.0, 10.0])
    parser.add_argument(
        "--layout-weights",
        type=float,
        nargs="*",
        default=[],
        help="also heads with the two-panel layout as a dropped covariate, at these weights",
    )
    parser.add_argument("--no-r6", action="store_true", help="leave recipe R6 out")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    card = A.shipped_card()
    samples = A.development_samples(args.data, set(card["data"]["split"]["test_files"]))
    cache = A.load_cache(args.out, samples)
    missing = [v for v in A.R4_VIEWS if v not in cache.features]
    if missing or A.RANK_SCORING not in A.scorings_of(cache):
        raise SystemExit(f"{args.out} is not an augmented cache: rerun `cache --augment`")
    r4, c = A.RECIPES["R4"], A.C_SHIPPED
    view, app_views = A.SCORING[A.RANK_SCORING]
    # head name -> (recipe, (covariate, its weight) or None)
    heads = {"shipped head (R4)": (r4, None)}
    if not args.no_r6:
        heads["R6: ignores what marks and resampling change"] = (A.RECIPES["R6"], None)
    heads |= {
        f"R4, box size as covariate, weight {k:g}": (r4, (box_covariate, k)) for k in args.weights
    }
    heads |= {
        f"R4, two panels as covariate, weight {k:g}": (r4, (layout_covariate, k))
        for k in args.layout_weights
    }

    def fit(idx, recipe, weight):
        if weight is None:
            return fit_recipe_head(cache, idx, recipe, c)
        covariate, k = weight
        x, y, w = design(cache, idx, recipe)
        return fit_adjusted(x, covariate(cache, idx, recipe), y, w, c, k)

    resampled = [p for p in A.NUISANCE_PAIRS if p[0] in RESAMPLED]
    marked = [p for p in A.NUISANCE_PAIRS if p[0] not in RESAMPLED]
    splits = A.cv_splits(cache)
    folds = {h: [] for h in heads}
    oof = {h: np.full((1 + max(r for r, _, _ in splits), len(cache)), np.nan) for h in heads}
    pairs = {h: [] for h in heads}
    for rep, tr, va in splits:
        for name, (recipe, weight) in heads.items():
            head = fit(tr, recipe, weight)
            z = score(head, cache, va, view, recipe.two_view, app_views)
            folds[name].append(site_aurocs(cache, va, z))
            oof[name][rep, va] = z
            # each view's crop and its mirror
            logits = {v: score(head, cache, va, v, False) for p in A.NUISANCE_PAIRS for v in p}
            pairs[name].append(
                {
                    "auroc": {v: site_aurocs(cache, va, zv) for v, zv in logits.items()},
                    "logits": logits,
                    "sites": cache.sites[va],
                }
            )

    area = cache.boxes["auto"][:, 2].astype(float) * cache.boxes["auto"][:, 3]
    panels_all = two_panels(cache)
    base = next(iter(heads))
    result: dict = {}
    for name, (recipe, weight) in heads.items():
        row: dict = {"cv_auroc": {}, "paired_vs_shipped": {}, "spearman_box_area": {}}
        row["spearman_two_panels"] = {}
        row["resampled"], row["marks"] = {}, {}
        z = np.nanmean(oof[name], axis=0)
        # shifts as the app would show them: the head's own Platt map, fitted as `fit` fits it
        # (repeat 0's out-of-fold logits), so that heads whose logits spread differently compare
        a, b = fit_platt(oof[name][0], cache.labels)
        row["platt"] = {"a": a, "b": b}
        for s in A.SITES:
            vals = np.array([f[s] for f in folds[name]])
            row["cv_auroc"][s] = float(vals.mean())
            if name != base:
                d = vals - np.array([f[s] for f in folds[base]])
                row["paired_vs_shipped"][s] = {
                    "mean": float(d.mean()),
                    "se": float(d.std(ddof=1) / np.sqrt(len(d))),
                    "folds_below": int((d < 0).sum()),
                    "folds": len(d),
                }
            for k, cls in ((0, "benign"), (1, "malignant")):
                sel = (cache.sites == s) & (cache.labels == k)
                row["spearman_box_area"][f"{s} {cls}"] = float(spearmanr(area[sel], z[sel])[0])
                panels = panels_all[sel]
                row["spearman_two_panels"][f"{s} {cls}"] = (
                    float(spearmanr(panels, z[sel])[0]) if 0 < panels.sum() < len(panels) else None
                )

            def shift(v, s=s, name=name, a=a, b=b):
                plain = dict(A.NUISANCE_PAIRS)[v]
                return np.concatenate(
                    [
                        sigmoid(a * f["logits"][v] + b)[f["sites"] == s]
                        - sigmoid(a * f["logits"][plain] + b)[f["sites"] == s]
                        for f in pairs[name]
                    ]
                )

            row["resampled"][s] = {
                v: {
                    "auroc_change": float(
                        np.mean([f["auroc"][v][s] - f["auroc"][plain][s] for f in pairs[name]])
                    ),
                    "mean_shift": float(shift(v).mean()),
                    "mean_abs_shift": float(np.abs(shift(v)).mean()),
                }
                for v, plain in resampled
            }
            moved = np.concatenate([shift(v) for v, _ in marked])
            row["marks"][s] = {
                "mean_abs_shift": float(np.abs(moved).mean()),
                "mean_shift": float(moved.mean()),
            }
        across = A.site_to_site(
            cache, recipe, c, lambda idx, recipe=recipe, weight=weight: fit(idx, recipe, weight)
        )
        row["cross_site"] = {k: v.to_dict() for k, v in across.items()}
        result[name] = row
        print_row(name, row)
    if args.json:
        args.json.write_text(json.dumps({"cache": cache.cut, "c": c, "heads": result}, indent=2))
    return 0


def print_row(name: str, row: dict) -> None:
    print(f"\n{name}")
    for s, auc in row["cv_auroc"].items():
        d = row["paired_vs_shipped"].get(s)
        paired = (
            f"  paired {d['mean']:+.3f} ± {d['se']:.3f} ({d['folds_below']}/{d['folds']} below)"
            if d
            else ""
        )
        print(f"  CV AUROC {s} {auc:.3f}{paired}")
    print(
        "  Spearman(logit, box area) within class: "
        + ", ".join(f"{k} {v:+.2f}" for k, v in row["spearman_box_area"].items())
    )
    print(
        "  Spearman(logit, two panels) within class: "
        + ", ".join(f"{k} {_f(v, '+.2f')}" for k, v in row["spearman_two_panels"].items())
    )
    print(
        "  cross-site: "
        + ", ".join(
            f"{k} {_f(v['auroc'])} ({_f(v['ci95'][0])}-{_f(v['ci95'][1])})"
            for k, v in row["cross_site"].items()
        )
    )
    for s in row["resampled"]:
        views = row["resampled"][s]
        marks = row["marks"][s]
        print(
            f"  {s}: resampled "
            + ", ".join(
                f"{v} AUROC {r['auroc_change']:+.3f} dp {r['mean_shift']:+.3f}"
                f" |dp| {r['mean_abs_shift']:.3f}"
                for v, r in views.items()
            )
            + f"; pasted marks |dp| {marks['mean_abs_shift']:.3f}"
            + f" (mean {marks['mean_shift']:+.3f})"
        )


def _f(v: float | None, spec: str = ".3f") -> str:
    return "n/a" if v is None else format(v, spec)


if __name__ == "__main__":
    raise SystemExit(main())
