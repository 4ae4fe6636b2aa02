"""The experiments behind the shipped model: grouped cross-validation, the frozen-feature
baseline, cross-site checks and the final fit that is exported with its card."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from training import data as D
from training.evaluate import evaluate, fit_platt, save_plots, threshold_for_sensitivity
from training.linear_head import extract
from training.train import TrainConfig, predict_logits, sigmoid, train_classifier

log = logging.getLogger(__name__)

TEST_FRACTION = 0.2
SPLIT_SEED = 2026
#: The shipped threshold is the highest one that keeps this sensitivity on validation data:
#: missing a cancer costs more than an extra biopsy.
TARGET_SENSITIVITY = 0.90


@dataclass
class Corpus:
    """Samples of all datasets with their crops, in one order."""

    samples: list[D.Sample]
    crops: np.ndarray

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples])

    @property
    def sites(self) -> np.ndarray:
        return np.array([s.dataset for s in self.samples])

    @property
    def groups(self) -> np.ndarray:
        return np.array([s.group for s in self.samples])

    @property
    def aux(self) -> np.ndarray:
        return np.array([s.descriptors for s in self.samples], dtype=int)

    def subset(self, idx: np.ndarray) -> Corpus:
        return Corpus([self.samples[i] for i in idx], self.crops[idx])


def load_corpus(roots: Sequence[Path], size: int, margin: float = D.CROP_MARGIN) -> Corpus:
    """Reads every labelled folder and cuts the classifier crops."""
    samples: list[D.Sample] = []
    for root in roots:
        samples += D.load_dataset(root)
    t0 = time.perf_counter()
    crops = D.load_crops(samples, size, margin)
    log.info("%d crops of %d px in %.1f s", len(samples), size, time.perf_counter() - t0)
    return Corpus(samples, crops)


def dev_test_split(corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
    """The fixed, grouped development/test split (the test part is looked at once)."""
    return D.holdout_split(corpus.samples, TEST_FRACTION, SPLIT_SEED)


def per_site_auroc(corpus: Corpus, scores: np.ndarray) -> dict[str, float]:
    from thyroid_desktop.core.site.metrics import auroc

    out = {}
    for site in sorted(set(corpus.sites)):
        sel = corpus.sites == site
        if 0 < corpus.labels[sel].sum() < sel.sum():
            out[site] = auroc(corpus.labels[sel], scores[sel])
    return out


def summarise_folds(fold_aurocs: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    sites = sorted({k for f in fold_aurocs for k in f})
    return {
        s: {
            "mean": float(np.mean([f[s] for f in fold_aurocs if s in f])),
            "sd": float(np.std([f[s] for f in fold_aurocs if s in f], ddof=1)),
            "folds": [round(f[s], 4) for f in fold_aurocs if s in f],
        }
        for s in sites
    }


def feature_extractor(backbone: str, size: int):
    import keras

    from training.backbones import build_backbone

    features, _ = build_backbone(backbone, size, weights="imagenet")
    pooled = keras.layers.GlobalAveragePooling2D()(features.output)
    return keras.Model(features.input, pooled)


def run_baseline(
    corpus: Corpus, backbone: str, size: int, n_folds: int, seed: int, repeats: int = 1
) -> dict:
    """Frozen ImageNet features + logistic regression, the data README's baseline, scored
    per site with the same grouped folds as the fine-tuned model, trained per site or pooled,
    over a small grid of L2 strengths."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = feature_extractor(backbone, size)
    feats = extract(model, corpus.crops)
    results = {}
    for mode, c in ((m, c) for m in ("per_site", "pooled") for c in (0.003, 0.01, 0.05, 0.3)):
        folds = []
        splits = [
            f for r in range(repeats) for f in D.grouped_folds(corpus.samples, n_folds, seed + r)
        ]
        for tr, va in splits:
            scores = np.zeros(len(va))
            sites_tr, sites_va = corpus.sites[tr], corpus.sites[va]
            for site in sorted(set(sites_va)) if mode == "per_site" else [None]:
                fit_sel = sites_tr == site if site else np.ones(len(tr), bool)
                pred_sel = sites_va == site if site else np.ones(len(va), bool)
                clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
                clf.fit(feats[tr][fit_sel], corpus.labels[tr][fit_sel])
                scores[pred_sel] = clf.decision_function(feats[va][pred_sel])
            folds.append(per_site_auroc(corpus.subset(va), scores))
        results[f"{mode}_C{c}"] = summarise_folds(folds)
    # The baseline gets its best regularisation in hindsight: an optimistic bar to beat.
    for site in sorted(set(corpus.sites)):
        best = max(results, key=lambda k: results[k].get(site, {}).get("mean", 0))
        results[f"best_{site}"] = {"setting": best, **results[best][site]}
    return results


def run_cv(corpus: Corpus, cfg: TrainConfig, n_folds: int, out_dir: Path, repeats: int = 1) -> dict:
    """Repeated grouped k-fold CV of a training recipe; saves out-of-fold logits per repeat.

    Fold AUROCs are computed per site, and the mean +- SD is over all folds of all repeats.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    folds = []
    for rep in range(repeats):
        oof = np.full(len(corpus.samples), np.nan)
        for k, (tr, va) in enumerate(D.grouped_folds(corpus.samples, n_folds, cfg.seed + rep)):
            t0 = time.perf_counter()
            train = corpus.subset(tr)
            model, _ = train_classifier(cfg, train.crops, train.labels, train.aux, train.sites)
            oof[va] = predict_logits(model, corpus.crops[va], tta=cfg.tta)
            folds.append(per_site_auroc(corpus.subset(va), oof[va]))
            log.info("repeat %d fold %d: %s (%.0f s)", rep, k, folds[-1], time.perf_counter() - t0)
            del model
        np.savez(out_dir / f"oof_{rep}.npz", logits=oof, labels=corpus.labels, sites=corpus.sites)
    result = {
        "config": asdict(cfg),
        "protocol": f"{repeats} x {n_folds}-fold CV grouped by case, development split only",
        "auroc": summarise_folds(folds),
    }
    (out_dir / "cv.json").write_text(json.dumps(result, indent=2))
    return result


def fit_final(corpus: Corpus, cfg: TrainConfig, out_dir: Path, calib_site: str = "ddti"):
    """Trains the shipped model on all development data and scores the test split once.

    Calibration and threshold come from out-of-fold logits of a grouped 5-fold CV on the
    development data (as scikit-learn's ``CalibratedClassifierCV(ensemble=False)`` does):
    Platt scaling fitted on the ``calib_site`` images, whose label definition (TI-RADS) the
    card states, and the highest threshold keeping sensitivity >= TARGET_SENSITIVITY there.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    dev_idx, test_idx = dev_test_split(corpus)
    dev, test = corpus.subset(dev_idx), corpus.subset(test_idx)
    oof = np.full(len(dev.samples), np.nan)
    for tr, va in D.grouped_folds(dev.samples, 5, cfg.seed):
        part = dev.subset(tr)
        model, _ = train_classifier(cfg, part.crops, part.labels, part.aux, part.sites)
        oof[va] = predict_logits(model, dev.crops[va], tta=cfg.tta)
    cal = dev.sites == calib_site
    a, b = fit_platt(oof[cal], dev.labels[cal])
    oof_p = sigmoid(a * oof + b)
    threshold = threshold_for_sensitivity(dev.labels[cal], oof_p[cal], TARGET_SENSITIVITY)
    model, cam_layer = train_classifier(cfg, dev.crops, dev.labels, dev.aux, dev.sites, out_dir)
    test_p = sigmoid(a * predict_logits(model, test.crops, tta=cfg.tta) + b)
    metrics: dict[str, dict] = {"development_oof": {}, "test": {}}
    for name, part, p in (("development_oof", dev, oof_p), ("test", test, test_p)):
        for site in sorted(set(part.sites)):
            sel = part.sites == site
            metrics[name][site] = evaluate(
                part.labels[sel], p[sel], part.groups[sel], threshold
            ).to_dict()
            save_plots(part.labels[sel], p[sel], out_dir / "plots", f"{name} {site}")
    np.savez(
        out_dir / "test_predictions.npz",
        p=test_p,
        labels=test.labels,
        sites=test.sites,
        files=np.array([str(s.path) for s in test.samples]),
    )
    split = {
        "rule": "grouped by case (ddti) / runs of neighbouring file ids (chaouchi); "
        "stratified by site and label",
        "seed": SPLIT_SEED,
        "test_fraction": TEST_FRACTION,
        "counts": {
            name: {
                site: {
                    "images": int((part.sites == site).sum()),
                    "malignant": int(part.labels[part.sites == site].sum()),
                }
                for site in sorted(set(part.sites))
            }
            for name, part in (("development", dev), ("test", test))
        },
        "test_files": sorted(D.sample_key(s) for s in test.samples),
    }
    return model, cam_layer, (a, b), threshold, metrics, split


def run_cross_site(corpus: Corpus, cfg: TrainConfig, out_dir: Path) -> dict:
    """Trains on each site alone and scores every other site (development data only)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {}
    for site in sorted(set(corpus.sites)):
        train = corpus.subset(np.flatnonzero(corpus.sites == site))
        other = corpus.subset(np.flatnonzero(corpus.sites != site))
        model, _ = train_classifier(cfg, train.crops, train.labels, train.aux, train.sites)
        scores = predict_logits(model, other.crops, tta=cfg.tta)
        result[f"train_{site}"] = per_site_auroc(other, scores)
        log.info("cross-site from %s: %s", site, result[f"train_{site}"])
        (out_dir / "cross_site.json").write_text(json.dumps(result, indent=2))
    return result
