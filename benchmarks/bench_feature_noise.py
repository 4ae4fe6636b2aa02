"""Why a 1-3 px box change moves the estimate: the frozen backbone's features, and what a head
or an anti-aliased backbone can do about it. Development images only (the card's test split
is never read), so what it finds can be used to choose.

1. **Feature noise.** For every development image (ddti + chaouchi), the auto box of the
   app-path cache and 4 changes of it (each edge moved by 0-3 px, at least one by 1-3 px,
   fixed seed) are cut as the app cuts them (``classifier_crop``, marks painted out) and put
   through each backbone of ``--backbones``. Prints, per backbone and per tapped stage, the
   median over feature dimensions of (variance across the box changes) / (variance across
   images): how much of what tells images apart a 1-3 px box change also moves.
2. **Heads** (``--heads``, the first backbone; needs the R4 cache in ``--cache``): grouped CV
   (3 x 5 folds, the card's) of the R4 rows with heads that ask for stability: the shipped
   L2 logistic regression, the same with a penalty on the directions the box changes move
   (``nuisance``: the fit in features whitened by ``I + lambda * S``, S the box-change
   covariance of the training folds), on the top-k principal components only (``pca``), and
   on some stages' pooled features only (``stages``: the noisier later ones left out; the
   same C). Prints each head's CV AUROC per site and the out-of-fold |change| of the
   calibrated estimate (the app's views) when one crop's logit changes as the box changes
   (median, 95th percentile). ``--head-names`` runs only the heads named.

Usage: python benchmarks/bench_feature_noise.py [--data ../shared/data]
       [--cache runs/app_path_v2] [--backbones efficientnet_lite2 efficientnet_lite2_aa]
       [--heads] [--head-names "shipped L2" "stage 5 only"] [--json benchmarks/feature_noise.json]
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
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SEED = 7
CHANGES = 4
#: Head variants: (name, kind, strength): lambda of the penalty, principal components kept,
#: or the stages whose features the head sees.
HEADS = (("shipped L2", "plain", 0), ("nuisance lambda 10", "nuisance", 10.0))
HEADS += (
    ("nuisance lambda 100", "nuisance", 100.0),
    ("pca 16", "pca", 16),
    ("pca 128", "pca", 128),
    ("stages 5 + 6 only", "stages", ("stage 5", "stage 6")),
    ("stage 5 only", "stages", ("stage 5",)),
)


def crops_of(samples, cache, resolution: int | None = None) -> np.ndarray:
    """``N x (1 + CHANGES)`` crops: the auto box and its changes, as the app cuts them."""
    from bench_what_it_looks_at import box_changes

    from thyroid_desktop.core.io.images import open_image
    from thyroid_desktop.core.pipeline.estimate import classifier_crop
    from thyroid_desktop.core.pipeline.fov import detect_fov
    from thyroid_desktop.core.pipeline.marks import MarksStep
    from thyroid_desktop.core.pipeline.roi import CROP_MARGIN, ROI

    rng, out = np.random.default_rng(SEED), []
    step = MarksStep(cache.marks)
    for i, s in enumerate(samples):
        image = open_image(s.path)
        fov = detect_fov(image.gray)
        box = ROI(*(int(v) for v in cache.boxes["auto"][i]))
        boxes = [box, *box_changes(box, CHANGES, rng, image.width, image.height)]
        out.append(
            [
                classifier_crop(image, b, cache.input_size, CROP_MARGIN, fov, step, resolution)[0]
                for b in boxes
            ]
        )
    return np.asarray(out, np.uint8)


def noise_ratio(f: np.ndarray) -> np.ndarray:
    """Per feature: half the mean squared change under the box changes / variance over images."""
    within = ((f[:, 1:] - f[:, :1]) ** 2).mean(axis=(0, 1)) / 2
    return within / (f[:, 0].var(axis=0) + 1e-9)


def stage_columns(model) -> dict[str, slice]:
    """Feature columns of each tapped stage (``training.linear_head.feature_graph``)."""
    names = ("stage 5", "stage 6", "top")
    widths = [int(t.shape[-1]) for t in model.get_layer("features").input]
    edges = np.cumsum([0, *widths])
    return {n: slice(int(a), int(b)) for n, a, b in zip(names, edges[:-1], edges[1:], strict=True)}


def head_fit(x, y, w, kind: str, strength, changes: np.ndarray, columns: dict[str, slice]):
    """One head variant on rows ``x``: the shipped L2 head (``linear_head.fit_head``), or
    the same fitted in features whitened by ``I + strength S`` (``nuisance``: S the
    box-change covariance), on the top ``strength`` principal components (``pca``) or on the
    pooled features of the stages named in ``strength`` only (``stages``: the noisier later
    stages left out; ``columns`` names each stage's feature columns)."""
    from sklearn.linear_model import LogisticRegression

    from training.app_path.invariant import nuisance_penalty
    from training.app_path.recipes import C_SHIPPED
    from training.linear_head import LinearHead, fit_head

    if kind == "plain":
        return fit_head(x, y, w, C_SHIPPED)
    if kind == "stages":
        keep = np.zeros(x.shape[1], bool)
        for stage in strength:
            keep[columns[stage]] = True
        part = fit_head(x[:, keep], y, w, C_SHIPPED)
        coef = np.zeros(x.shape[1])
        coef[keep] = part.coef
        return LinearHead(x.mean(0), x.var(0) + 1e-6, coef, part.intercept)
    mean, var = x.mean(0), x.var(0) + 1e-6
    xs = (x - mean) / np.sqrt(var)
    if kind == "nuisance":
        m = nuisance_penalty(changes.reshape(-1, x.shape[1]), var, strength)
    else:
        _, _, vt = np.linalg.svd(xs[::3] - xs[::3].mean(0), full_matrices=False)
        m = vt[: int(strength)].T
    lr = LogisticRegression(C=C_SHIPPED, max_iter=5000).fit(xs @ m, y, sample_weight=w)
    return LinearHead(mean, var, m @ lr.coef_[0], float(lr.intercept_[0]))


def compare_heads(cache, feats: np.ndarray, columns: dict[str, slice], names=None) -> dict:
    """Grouped CV of the head variants (``names``: those only) on the R4 rows; ``feats``:
    N x (1 + CHANGES) x D; ``columns``: each stage's feature columns."""
    from thyroid_desktop.core.site.calibration import fit_platt
    from training.app_path.cv import cv_splits, design, head_logits, score, site_aurocs
    from training.app_path.recipes import N_REPEATS, RECIPES

    out = {}
    for name, kind, strength in HEADS:
        if names and name not in names:
            continue
        t0 = time.perf_counter()
        oof = np.full((N_REPEATS, len(cache)), np.nan)
        moved = np.full((N_REPEATS, len(cache), CHANGES), np.nan)
        folds: dict[str, list[float]] = {"ddti": [], "chaouchi": []}
        for rep, tr, va in cv_splits(cache):
            x, y, w = design(cache, tr, RECIPES["R4"])
            head = head_fit(x, y, w, kind, strength, feats[tr, 1:] - feats[tr, :1], columns)
            oof[rep, va] = score(head, cache, va, "auto", False, app_views=True)
            # each box change's change of the crop's logit, on the app's estimate
            change = head_logits(head, feats[va, 1:]) - head_logits(head, feats[va, :1])
            moved[rep, va] = oof[rep, va][:, None] + change
            for site, value in site_aurocs(cache, va, oof[rep, va]).items():
                folds[site].append(value)
        a, b = fit_platt(oof[0], cache.labels, prior_correction=False)

        def sig(z, a=a, b=b):
            return 1.0 / (1.0 + np.exp(-(a * z + b)))

        shift = np.abs(sig(moved) - sig(oof)[..., None])
        out[name] = {
            "cv_auroc": {s: float(np.mean(v)) for s, v in folds.items()},
            "one_crop_shift_median": float(np.median(shift)),
            "one_crop_shift_p95": float(np.percentile(shift, 95)),
        }
        print(
            f"  {name:22s} CV AUROC ddti {out[name]['cv_auroc']['ddti']:.3f} "
            f"chaouchi {out[name]['cv_auroc']['chaouchi']:.3f} | one crop, 1-3 px: median "
            f"{out[name]['one_crop_shift_median']:.3f}, p95 {out[name]['one_crop_shift_p95']:.3f}"
            f" ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    return out


def main() -> int:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from training.app_path.cache import (
        development_samples,
        load_cache,
        make_extractor,
        shipped_card,
    )
    from training.data import DEFAULT_DATA
    from training.linear_head import feature_graph

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "app_path_v2")
    parser.add_argument(
        "--backbones", nargs="+", default=["efficientnet_lite2", "efficientnet_lite2_aa"]
    )
    parser.add_argument("--heads", action="store_true", help="CV of the head variants too")
    parser.add_argument(
        "--head-names", nargs="+", default=None, help="only these head variants (default: all)"
    )
    parser.add_argument(
        "--resolution",
        type=int,
        default=None,
        help="cut the crops with this detail limit (the card's crop.resolution)",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "feature_noise.json")
    args = parser.parse_args()
    unknown = set(args.head_names or ()) - {name for name, _, _ in HEADS}
    if unknown:
        parser.error(f"--head-names: no head {sorted(unknown)}; heads: {[h[0] for h in HEADS]}")
    if not (args.cache / "features_ddti.npz").exists():
        raise SystemExit(
            f"no app-path cache in {args.cache}: run python -m training.app_path "
            f"--out {args.cache} cache --marks inpaint --augment"
        )
    card = shipped_card()
    samples = development_samples(args.data, set(card["data"]["split"]["test_files"]))
    cache = load_cache(args.cache, samples)
    if cache.grey_levels != "none":  # the fresh features below would be the app's crops'
        raise SystemExit(f"{args.cache}: grey levels {cache.grey_levels}, not the app's crops")
    t0 = time.perf_counter()
    crops = crops_of(samples, cache, args.resolution)
    print(f"{len(samples)} development images x {1 + CHANGES} boxes cut in "
          f"{time.perf_counter() - t0:.0f} s (marks {cache.marks})")  # fmt: skip
    result: dict = {"n_images": len(samples), "changes_per_image": CHANGES, "backbones": {}}
    result["resolution"] = args.resolution
    feats_first = columns_first = None
    for name in args.backbones:
        model, _ = feature_graph(name, cache.input_size)  # the cache's side: --heads mixes both
        t0 = time.perf_counter()
        f = make_extractor(model)(crops.reshape(-1, *crops.shape[2:]))
        f = f.reshape(len(samples), 1 + CHANGES, -1)
        seconds = time.perf_counter() - t0
        r = noise_ratio(f)
        per = {k: float(np.median(r[s])) for k, s in stage_columns(model).items()}
        result["backbones"][name] = {"median_ratio": float(np.median(r)), **per, "s": seconds}
        print(f"{name:24s} noise ratio (median over features) {np.median(r):.4f}; "
              + ", ".join(f"{k} {v:.4f}" for k, v in per.items())
              + f"  ({seconds:.0f} s through the backbone)", flush=True)  # fmt: skip
        if feats_first is None:
            feats_first, columns_first = f, stage_columns(model)
    if args.heads:
        if cache.backbone != args.backbones[0]:
            raise SystemExit(f"the cache holds {cache.backbone} features, not {args.backbones[0]}")
        print(f"head variants on {args.backbones[0]} (R4 rows, grouped CV 3 x 5):")
        result["heads"] = compare_heads(cache, feats_first, columns_first, args.head_names)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
