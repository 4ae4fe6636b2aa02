"""TI-RADS descriptor heads on the classifier's frozen features: grouped CV, fit, test.

The DDTI radiologists' descriptors (``ddti/metadata.csv``) are mapped to the ACR 2017
lexicon (``core.pipeline.tirads_ai.DDTI_TO_ACR``); one standardised multinomial logistic regression
per group (composition, echogenicity, margin, echogenic foci) is trained on the pooled
features the shipped classifier computes for a crop (mean of the crop and its mirror, exactly
``GradCAM.run``'s ``features``), read from the ``training.app_path`` cache.

Training crops: the expert box, its jitters and the app's auto box; CV is scored on the
**auto box** (the app's default path), grouped by case (5 folds x 3 repeats). A head whose
macro one-vs-rest AUROC has a 95 % CI lower bound below ``OFFER_MIN_AUROC`` is not shipped.

Usage::

    python -m training.descriptors cv     # grouped CV of a few variants -> runs/descriptors
    python -m training.descriptors fit    # chosen variant on all development images -> export
    python -m training.descriptors test   # once: ddti test split through auto_predict -> card
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from enum import Enum
from pathlib import Path

import numpy as np

from thyroid_desktop.core.pipeline.tirads_ai import (
    DDTI_COLUMNS,
    HEAD_GROUPS,
    HEADS_FILE,
    SUGGESTED_GROUPS,
    DescriptorHeads,
    Head,
    ddti_to_acr,
)
from thyroid_desktop.core.site import metrics
from training.app_path import OUT_DIR as APP_OUT, FeatureCache, shipped_card
from training.data import DEFAULT_DATA

log = logging.getLogger(__name__)

OUT = Path("runs/descriptors")
EXPORT = Path("resources/models")
#: Categories with fewer development images than this are not trained (never suggested).
MIN_CLASS = 15
#: A head is offered only when its macro AUROC's CI lower bound reaches this.
OFFER_MIN_AUROC = 0.60
N_FOLDS, N_REPEATS = 5, 3
#: Training views: expert box (+ its jitters), optionally the auto box as well.
TRAIN_SETS = {
    "expert": ("expert", "expert_j0", "expert_j1", "expert_j2", "expert_j3"),
    "expert+auto": ("expert", "expert_j0", "expert_j1", "expert_j2", "expert_j3", "auto"),
}
N_BOOT = 1000
#: DDTI TI-RADS category -> ACR TR level, for agreement (DDTI used a Kwak-style 2/3/4a-c/5
#: scale; 4a-4b take one or two suspicious features ~ TR4, 4c and 5 three or more ~ TR5).
DDTI_CATEGORY_TO_TR = {"2": 2, "3": 3, "4a": 4, "4b": 4, "4c": 5, "5": 5}


def read_metadata(data: Path) -> dict[str, dict[str, str]]:
    with (data / "ddti" / "metadata.csv").open(newline="", encoding="utf-8") as fh:
        return {f"ddti/{r['file']}": r for r in csv.DictReader(fh)}


def targets(keys, meta) -> dict[str, list[Enum | None]]:
    """Per group, the ACR category of each key (None: no usable descriptor)."""
    out = {}
    for g in HEAD_GROUPS:
        col = DDTI_COLUMNS[g]
        out[g] = [ddti_to_acr(g, meta.get(str(k), {}).get(col, "")) for k in keys]
    return out


def trained_classes(values: list[Enum | None]) -> list[Enum]:
    """The categories with at least ``MIN_CLASS`` images, in lexicon order."""
    present = [v for v in values if v is not None]
    if not present:
        return []
    enum = type(present[0])
    return [c for c in enum if sum(v is c for v in present) >= MIN_CLASS]


def pooled(cache: FeatureCache, view: str) -> np.ndarray:
    """``N x D``: the mean of the crop's and its mirror's features (``GradCAM.run``)."""
    return cache.features[view].mean(axis=1).astype(np.float64)


def fit_head(
    x: np.ndarray, y: np.ndarray, classes: list[Enum], c: float, inputs: str = "features"
) -> Head:
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(0), x.std(0) + 1e-6
    lr = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    lr.fit((x - mean) / scale, y)
    coef, intercept = lr.coef_, lr.intercept_
    if len(classes) == 2:  # sklearn's binary form -> two-row softmax
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    return Head(tuple(classes), mean, scale, coef, intercept, inputs)


def head_probs(head: Head, x: np.ndarray) -> np.ndarray:
    z = (x - head.mean) / head.scale
    logits = z @ head.coef.T + head.intercept
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def training_rows(cache, intensity, idx, ys, views, inputs) -> tuple[np.ndarray, np.ndarray]:
    """Rows of every training view of the images ``idx``: expert views read the grey levels
    inside the expert mask, the auto view those inside the app's mask."""
    xs, yy = [], []
    for v in views:
        sel = idx[cache.has_mask[idx]] if v.startswith("expert") else idx
        inten = intensity["expert" if v.startswith("expert") else "auto"][sel]
        keep = np.isfinite(inten).all(1)
        sel, inten = sel[keep], inten[keep]
        xs.append(Head.design(inputs, pooled(cache, v)[sel], inten))
        yy.append(ys[sel])
    return np.concatenate(xs), np.concatenate(yy)


def grouped_bootstrap(fn, groups: np.ndarray, n_boot: int = N_BOOT, seed: int = 0):
    """95 % percentile CI of ``fn(idx)``, resampling whole cases (core's bootstrap)."""
    return metrics.grouped_bootstrap(lambda i: _finite(fn(i)), groups, n_boot, seed)


def _finite(v):
    return v if v is not None and np.isfinite(v) else None


def group_metrics(y: np.ndarray, p: np.ndarray, classes: list[Enum], groups: np.ndarray) -> dict:
    """Balanced accuracy, per-class one-vs-rest AUROC (case-bootstrap CI), macro AUROC,
    confusion matrix (rows: radiologist, columns: suggestion)."""
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix

    k = len(classes)
    pred = p.argmax(1)

    def auc(idx, j):
        t = y[idx] == j
        return metrics.auroc(t, p[idx, j]) if 0 < t.sum() < len(t) else None

    def macro(idx):
        vals = [auc(idx, j) for j in range(k)]
        return None if any(v is None for v in vals) else float(np.mean(vals))

    def rounded(v):
        return None if v is None else round(float(v), 3)

    all_idx = np.arange(len(y))
    per_class = {}
    for j, c in enumerate(classes):
        per_class[c.name] = {
            "n": int((y == j).sum()),
            "auroc": rounded(auc(all_idx, j)),  # None: the class is absent here
            "auroc_ci95": [
                round(v, 3) for v in grouped_bootstrap(lambda i, j=j: auc(i, j), groups)
            ],
        }
    bacc = balanced_accuracy_score(y, pred)
    return {
        "n": int(len(y)),
        "n_cases": int(len(np.unique(groups))),
        "classes": [c.name for c in classes],
        "balanced_accuracy": round(float(bacc), 3),
        "balanced_accuracy_ci95": [
            round(v, 3)
            for v in grouped_bootstrap(lambda i: balanced_accuracy_score(y[i], pred[i]), groups)
        ],
        "chance_balanced_accuracy": round(1.0 / k, 3),
        "macro_auroc": rounded(macro(all_idx)),
        "macro_auroc_ci95": [round(v, 3) for v in grouped_bootstrap(macro, groups)],
        "per_class": per_class,
        "confusion": confusion_matrix(y, pred, labels=list(range(k))).tolist(),
    }


def cmd_intensity(args) -> None:
    """Grey-level features (``core.pipeline.tirads_ai.intensity_features``) of every cached ddti image,
    inside the expert mask and inside the app's own mask (the segmenter's best candidate, as
    ``auto_predict`` finds it; NaN where it finds none)."""
    from thyroid_desktop.core.io.images import open_image
    from thyroid_desktop.core.models.shipped import load_segmenter
    from thyroid_desktop.core.pipeline.estimate import detect_nodules
    from thyroid_desktop.core.pipeline.roi import roi_from_mask
    from thyroid_desktop.core.pipeline.tirads_ai import (
        INTENSITY_FEATURES,
        intensity_features,
        largest_component,
        nodule_mask,
    )
    from training.data import read_mask

    cache = FeatureCache.load(args.cache / "features_ddti.npz")
    seg = load_segmenter(args.export)
    n, d = len(cache), len(INTENSITY_FEATURES)
    expert, auto = np.full((n, d), np.nan), np.full((n, d), np.nan)
    for i, key in enumerate(cache.keys):
        path = args.data / str(key)
        img = open_image(path)
        det = detect_nodules(img, seg)
        m = read_mask(path.parent.parent / "masks" / path.name, img.width, img.height)
        m = largest_component(m) if m is not None else None
        if m is not None:
            expert[i] = intensity_features(img.gray, m, roi_from_mask(m), det.fov.mask)
        if det.best is not None:
            am = nodule_mask(det.probability, det.best.roi)
            auto[i] = intensity_features(img.gray, am, det.best.roi, det.fov.mask)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(OUT / "intensity.npz", keys=cache.keys, expert=expert, auto=auto)
    log.info(
        "intensity features: %d images, %d with an auto mask", n, int(np.isfinite(auto[:, 0]).sum())
    )


def load_ddti(args) -> tuple[FeatureCache, dict]:
    cache = FeatureCache.load(args.cache / "features_ddti.npz")
    check_cache(cache, shipped_card(args.export))
    return cache, read_metadata(args.data)


def check_cache(cache: FeatureCache, card: dict) -> None:
    """The heads read the classifier's features of the app's crop: a cache cut with another
    marks step, input side or by another backbone than the card's would fit them to other
    inputs."""
    from thyroid_desktop.core.pipeline.marks import marks_step

    resolution = int((card.get("crop") or {}).get("resolution") or 0)
    want = FeatureCache.cut_of(
        str(marks_step(card)), card.get("backbone"), resolution, input_size=int(card["input_size"])
    )
    if cache.cut != want:
        raise SystemExit(
            f"the cache was cut as {cache.cut}, the classifier's crops as {want}: rebuild it "
            f"(python -m training.app_path --out {APP_OUT} cache --marks {want['marks']} "
            f"--resolution {resolution} --input-size {want['input_size']} --force)"
        )


def load_intensity(cache: FeatureCache) -> dict[str, np.ndarray]:
    z = np.load(OUT / "intensity.npz")
    if list(z["keys"]) != list(cache.keys):
        raise SystemExit("runs/descriptors/intensity.npz is for other images: rerun `intensity`")
    return {"expert": z["expert"], "auto": z["auto"]}


def cv_oof(cache, intensity, meta, train_views, inputs: str, c: float) -> dict[str, tuple]:
    """Out-of-fold probabilities on the app's box, averaged over the repeats, per group.
    Scored where the app makes a suggestion: images where the detector found a nodule."""
    from sklearn.model_selection import StratifiedGroupKFold

    tgt = targets(cache.keys, meta)
    found = np.isfinite(intensity["auto"]).all(1) & cache.found.astype(bool)
    x_auto = Head.design(inputs, pooled(cache, "auto"), np.nan_to_num(intensity["auto"]))
    out = {}
    for g in HEAD_GROUPS:
        classes = trained_classes(tgt[g])
        y = np.array([classes.index(v) if v in classes else -1 for v in tgt[g]])
        use = np.flatnonzero(y >= 0)
        probs = np.zeros((len(y), len(classes)))
        for r in range(N_REPEATS):
            skf = StratifiedGroupKFold(N_FOLDS, shuffle=True, random_state=r)
            for tr, te in skf.split(use, y[use], cache.groups[use]):
                xt, yt = training_rows(cache, intensity, use[tr], y, train_views, inputs)
                head = fit_head(xt, yt, classes, c, inputs)
                probs[use[te]] += head_probs(head, x_auto[use[te]]) / N_REPEATS
        scored = use[found[use]]
        out[g] = (classes, y[scored], probs[scored], cache.groups[scored])
    return out


#: (training views, inputs, C) compared by ``cv``; C is larger for the 7 grey-level features.
VARIANTS = [
    ("expert", "features", 0.01),
    ("expert+auto", "features", 0.01),
    ("expert+auto", "features", 0.03),
    ("expert+auto", "features+intensity", 0.01),
    ("expert+auto", "intensity", 1.0),
]


def cmd_cv(args) -> None:
    cache, meta = load_ddti(args)
    intensity = load_intensity(cache)
    results = {}
    for name, inputs, c in VARIANTS:
        oof = cv_oof(cache, intensity, meta, TRAIN_SETS[name], inputs, c)
        key = f"{name} {inputs} C={c}"
        results[key] = {g: group_metrics(y, p, cls, grp) for g, (cls, y, p, grp) in oof.items()}
        log.info(
            "%s: %s",
            key,
            ", ".join(
                f"{g} {m['macro_auroc']:.3f}/{m['balanced_accuracy']:.3f}"
                for g, m in results[key].items()
            ),
        )
    # Per group, the variant with the best macro AUROC (a choice made on this CV: optimistic).
    chosen = {g: max(results, key=lambda k, g=g: results[k][g]["macro_auroc"]) for g in HEAD_GROUPS}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cv.json").write_text(
        json.dumps({"variants": results, "chosen": chosen}, indent=2) + "\n"
    )
    print(
        json.dumps(
            {
                g: (k, results[k][g]["macro_auroc"], results[k][g]["macro_auroc_ci95"])
                for g, k in chosen.items()
            },
            indent=2,
        )
    )


def cmd_fit(args) -> None:
    """The chosen variant on every development image; CV metrics of that variant in the card."""
    from thyroid_desktop.core.io.files import write_atomically
    from thyroid_desktop.core.models.shipped import CARD_FILE, sha256_file

    cv = json.loads((OUT / "cv.json").read_text())
    cache, meta = load_ddti(args)
    intensity = load_intensity(cache)
    tgt = targets(cache.keys, meta)
    heads, section = {}, {}
    for g in HEAD_GROUPS:
        key = cv["chosen"][g]
        name, inputs, c = key.split(" ")
        c = float(c.removeprefix("C="))
        m = cv["variants"][key][g]
        classes = trained_classes(tgt[g])
        offered = m["macro_auroc_ci95"][0] >= OFFER_MIN_AUROC
        y = np.array([classes.index(v) if v in classes else -1 for v in tgt[g]])
        use = np.flatnonzero(y >= 0)
        xt, yt = training_rows(cache, intensity, use, y, TRAIN_SETS[name], inputs)
        if offered:
            heads[g] = fit_head(xt, yt, classes, c, inputs)
        section[g] = {
            "offered": bool(offered),
            "variant": key,
            "inputs": inputs,
            "training_views": list(TRAIN_SETS[name]),
            "C": c,
            "cv": m,
            "not_trained": [e.name for e in SUGGESTED_GROUPS[g] if e not in classes],
        }
    DescriptorHeads(heads).save(args.export / HEADS_FILE)
    card_path = args.export / CARD_FILE
    card = json.loads(card_path.read_text())
    card["tirads_heads"] = {
        "file": HEADS_FILE,
        "sha256": sha256_file(args.export / HEADS_FILE),
        "what": "ACR TI-RADS descriptor suggestions: standardised multinomial logistic "
        "regression per group on the classifier's pooled features (crop + mirror mean) "
        "and/or grey levels inside the nodule relative to the tissue around it",
        "labels": "DDTI radiologists' descriptors mapped to ACR 2017 (docs/model-card.md table); not pathology",
        "training": "ddti development split (expert masks; the app's own mask for the auto "
        "view), class_weight=balanced; per group: see groups.*.variant",
        "cv": f"{N_FOLDS}-fold x {N_REPEATS} case-grouped CV, scored on the app's auto box "
        "where the detector found a nodule (the app suggests nothing otherwise); "
        "out-of-fold probabilities averaged over repeats; 95 % CI by case bootstrap",
        "selection": f"per group, the best of {len(cv['variants'])} variants by macro AUROC on "
        "the same CV: optimistic (the test split figures are not)",
        "offer_rule": f"offered when the macro AUROC's CI lower bound >= {OFFER_MIN_AUROC}",
        "shape": "from the segmenter's mask in the box: anteroposterior vs transverse extent",
        "groups": section,
    }
    write_atomically(card_path, lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
    print(
        json.dumps(
            {
                g: (s["offered"], s["cv"]["macro_auroc"], s["cv"]["macro_auroc_ci95"])
                for g, s in section.items()
            },
            indent=2,
        )
    )


def weighted_kappa(a: np.ndarray, b: np.ndarray, weights: str = "linear") -> float:
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(a, b, weights=weights, labels=[1, 2, 3, 4, 5]))


def cmd_test(args) -> None:
    """Once: the ddti test split through the app's default path (auto box): per-descriptor
    agreement, AI-only level vs the radiologist's category (weighted kappa), AUROC of the
    AI-only points vs the classifier's probability."""
    from thyroid_desktop.core.analysis import AnalysisService
    from thyroid_desktop.core.clinical.tirads import Shape, TiradsDescriptors
    from thyroid_desktop.core.io.files import write_atomically
    from thyroid_desktop.core.io.images import open_image
    from thyroid_desktop.core.models.shipped import CARD_FILE, load_classifier, load_segmenter
    from thyroid_desktop.core.pipeline.tirads_ai import (
        extents,
        intensity_features,
        largest_component,
        nodule_mask,
        shape_of,
    )
    from training.data import read_mask, samples_in

    clf, seg = load_classifier(args.export), load_segmenter(args.export)
    service = AnalysisService(clf, seg, None)  # the app's one door, audit off
    card = json.loads((args.export / CARD_FILE).read_text())
    test_files = set(card["data"]["split"]["test_files"])
    meta = read_metadata(args.data)
    samples = samples_in(args.data, "ddti", test_files)
    rows = []
    for s in samples:
        key = f"ddti/{s.path.parent.name}/{s.path.name}"
        img = open_image(s.path)
        result = service.analyse(img, None, None, scan_area_fallback=True)
        finding, det = result.finding, result.detection
        sug = finding.tirads_suggestion
        expert = read_mask(s.mask_path, img.width, img.height)
        expert = largest_component(expert) if expert is not None else None
        probs = {}
        if sug is not None:  # every head's probabilities, from exactly what predict read
            mask = nodule_mask(det.probability, finding.roi, det.threshold)
            inten = intensity_features(img.gray, mask, finding.roi, det.fov.mask)
            probs = {
                g: h.probabilities(finding.features, inten)
                for g, h in clf.tirads_heads.heads.items()
            }
        rows.append((s, meta[key], finding, sug, expert, probs))
    n_all = len(rows)
    # No suggestion where no nodule was found (the scan area is analysed): not a nodule.
    rows = [r for r in rows if r[3] is not None]
    head_out = [r[5] for r in rows]
    rows = [r[:5] for r in rows]
    y = np.array([s.label for s, *_ in rows])
    groups = np.array([s.group for s, *_ in rows])
    prob = np.array([f.probability for *_, f, _, _ in rows])
    result: dict = {
        "n_images": n_all,
        "n_with_suggestion": len(rows),
        "n_cases": int(len(np.unique(groups))),
        "scoring": "core.analysis.AnalysisService.analyse (the app's auto box)",
    }
    # Per-descriptor agreement with the radiologist.
    per = {}
    for g in HEAD_GROUPS:
        if g not in clf.tirads_heads.heads:
            continue
        head = clf.tirads_heads.heads[g]
        truth = [ddti_to_acr(g, m.get(DDTI_COLUMNS[g], "")) for _, m, *_ in rows]
        use = np.array([t in head.classes for t in truth])
        yy = np.array([head.classes.index(t) if t in head.classes else -1 for t in truth])[use]
        pp = np.array([probs[g] for probs in head_out])[use]
        per[g] = group_metrics(yy, pp, list(head.classes), groups[use])
    result["descriptors"] = per
    # Shape: the auto mask's call vs the expert mask's call (DDTI has no shape descriptor).
    agree = [
        (sug.value("shape"), shape_of(*extents(e)))
        for *_, sug, e in rows
        if sug is not None and e is not None
    ]
    result["shape"] = {
        "n": len(agree),
        "agreement_with_expert_mask": round(float(np.mean([a is b for a, b in agree])), 3),
        "taller_than_wide_expert_mask": int(sum(b is Shape.TALLER for _, b in agree)),
        "taller_than_wide_auto": int(sum(a is Shape.TALLER for a, _ in agree)),
    }
    # Levels: AI-only vs the radiologist's category (mapped to TR).
    cat = np.array([DDTI_CATEGORY_TO_TR.get(m.get("tirads", ""), 0) for _, m, *_ in rows])
    ai_level = np.array([sug.level.tr for *_, sug, _ in rows])
    ai_points = np.array([sug.points for *_, sug, _ in rows], dtype=float)

    def rad_level(m, expert) -> tuple[int, int] | None:
        vals = {g: ddti_to_acr(g, m.get(DDTI_COLUMNS[g], "")) for g in HEAD_GROUPS}
        if any(v is None for v in vals.values()):
            return None
        shape = shape_of(*extents(expert)) if expert is not None else Shape.WIDER
        d = TiradsDescriptors(
            vals["composition"],
            vals["echogenicity"],
            shape,
            vals["margin"],
            frozenset({vals["echogenic_foci"]}),
        )
        return d.level.tr, d.points

    rad = [rad_level(m, e) for _, m, _, _, e in rows]
    has = cat > 0
    kap = {}
    for wname in ("linear", "quadratic"):
        kap[wname] = {
            "kappa": round(weighted_kappa(cat[has], ai_level[has], wname), 3),
            "ci95": [
                round(v, 3)
                for v in grouped_bootstrap(
                    lambda i, w=wname: weighted_kappa(cat[has][i], ai_level[has][i], w), groups[has]
                )
            ],
        }
    rsel = np.array([r is not None for r in rad]) & has
    rad_tr = np.array([r[0] if r else 0 for r in rad])
    rad_pts = np.array([r[1] if r else 0 for r in rad], float)
    result["level"] = {
        "reference": "radiologist's DDTI category mapped 2->TR2, 3->TR3, 4a/4b->TR4, 4c/5->TR5",
        "n": int(has.sum()),
        "ai_only_vs_radiologist": kap,
        "radiologist_descriptors_vs_radiologist_category": {
            "n": int(rsel.sum()),
            "kappa_linear": round(weighted_kappa(cat[rsel], rad_tr[rsel]), 3),
            "note": "ceiling of the mapping: the radiologists' own descriptors scored by ACR "
            "rules (shape from the expert mask) against their own category",
        },
        "ai_level_counts": {f"TR{k}": int((ai_level == k).sum()) for k in range(1, 6)},
        "radiologist_counts": {f"TR{k}": int((cat == k).sum()) for k in range(1, 6)},
    }

    def auc_ci(score):
        return (
            round(metrics.auroc(y, score), 3),
            [
                round(v, 3)
                for v in grouped_bootstrap(
                    lambda i: metrics.auroc(y[i], score[i]) if 0 < y[i].sum() < len(i) else None,
                    groups,
                )
            ],
        )

    result["auroc_benign_malignant"] = {
        "label": "ddti benign (TI-RADS 2-3) / malignant (4a-5): TI-RADS derived, not pathology",
        "ai_only_points": auc_ci(ai_points),
        "classifier_probability": auc_ci(prob),
        "radiologist_descriptor_points": {
            "n": int(rsel.sum()),
            "auroc": round(metrics.auroc(y[rsel], rad_pts[rsel]), 3),
            "note": "circular: the label is derived from the same radiologist's category",
        },
    }
    card_path = args.export / CARD_FILE
    card = json.loads(card_path.read_text())
    card.setdefault("tirads_heads", {})["test"] = result
    write_atomically(card_path, lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
    print(json.dumps(result, indent=2))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m training.descriptors")
    parser.add_argument("command", choices=("intensity", "cv", "fit", "test"))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=APP_OUT)
    parser.add_argument("--export", type=Path, default=EXPORT)
    args = parser.parse_args(argv)
    {"intensity": cmd_intensity, "cv": cmd_cv, "fit": cmd_fit, "test": cmd_test}[args.command](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
