"""The scope check's model: "is this thyroid ultrasound?" at image level.

Each frame is described the way the app describes it (``core.pipeline.scope``): what the
gland and nodule segmenters see inside the scan area (``anatomy_features``) and the
classifier's pooled features of the scan area's middle (``scan_view``: no fan outline, no
screen). A logistic regression separates thyroid frames (ddti, chaouchi, arcegor, tg3k
val/test) from other organs (``nonthyroid/``: lung, fetal head, muscle, breast).

Judged by
- grouped 5-fold CV (cases, sequences, runs of ids, patients never split), repeated;
- leave-one-organ-out: fitted without one organ, tested on it (what transfers to an organ
  it never saw);
- the same on rectangular scan areas only (so that the fan shape is not what it learnt).

The threshold is chosen on out-of-fold thyroid scores so that at most ``REFUSE_PER_SET`` of
the frames of **each** thyroid collection are refused.

Usage:
    python -m training.scope extract      # models over every frame, cached (~5 min)
    python -m training.scope evaluate     # CV + leave-one-organ-out, prints the tables
    python -m training.scope fit          # ships resources/models/scope.npz + the card's `scope`
    python -m training.scope all          # the three in order
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import re
import time
from pathlib import Path

import numpy as np

from thyroid_desktop.core.io.images import open_image
from thyroid_desktop.core.models.shipped import sha256_file
from thyroid_desktop.core.pipeline.detect import segmenter_input
from thyroid_desktop.core.pipeline.fov import detect_fov
from thyroid_desktop.core.pipeline.scope import (
    ANATOMY_FEATURES,
    scan_view,
)
from thyroid_desktop.core.site.validation import neighbour_groups
from training.data import DEFAULT_DATA

log = logging.getLogger(__name__)

CACHE = Path("runs/scope/features.npz")
REPORT = Path("runs/scope/evaluation.json")
MODELS = Path("resources/models")
SCOPE_FILE = "scope.npz"
#: At most this share of the frames of each thyroid collection may be refused.
REFUSE_PER_SET = 0.02
#: arcegor sequences are long: every k-th frame.
ARCEGOR_STEP = 4
SEEDS = (0, 1, 2)
C_VALUES = (0.01, 0.03, 0.1, 0.3)
THYROID_SETS = ("ddti", "chaouchi", "arcegor", "tg3k")
ORGANS = ("lung", "fetal_head", "muscle", "breast")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def nonthyroid_group(organ: str, name: str) -> str:
    """Related images together: a lung clip's patient or recording day, a muscle subject or
    recording; every fetal head and breast image is its own patient."""
    stem = Path(name).stem
    if organ == "lung":
        m = re.match(r"(Reg_pat\d+|northumbria_\d+)", stem)
        if m:
            return m.group(1)
        return re.sub(r"_f\d+$", "", stem)
    if organ == "muscle":
        m = re.match(r"(d1_S\d+|d2|d3_p\d+|d4_[A-Za-z]+_[A-Za-z]+)", stem)
        return m.group(1) if m else stem
    return stem


def frames(data: Path) -> list[dict[str, str]]:
    """Every frame of the scope check's data: path, collection (set), organ, group."""
    out = []
    meta = {r["file"]: r for r in _rows(data / "ddti" / "metadata.csv")}
    for name in sorted(p.name for p in (data / "ddti" / "images").iterdir()):
        case = meta.get(f"images/{name}", {}).get("case") or name.split("_")[0]
        out.append(
            dict(path=f"ddti/images/{name}", set="ddti", organ="thyroid", group=f"ddti:{case}")
        )
    files = [r["file"] for r in _rows(data / "chaouchi" / "labels.csv")]
    for f, g in zip(files, neighbour_groups(files), strict=True):
        out.append(
            dict(path=f"chaouchi/{f}", set="chaouchi", organ="thyroid", group=f"chaouchi:{g}")
        )
    by_group: dict[str, list[str]] = {}
    for r in _rows(data / "arcegor" / "masks.csv"):
        by_group.setdefault(r["group"], []).append(r["file"])
    for g, fs in sorted(by_group.items()):
        fs.sort(key=lambda f: int(re.findall(r"\d+", Path(f).stem)[-1]))
        for f in fs[::ARCEGOR_STEP]:
            out.append(
                dict(path=f"arcegor/{f}", set="arcegor", organ="thyroid", group=f"arcegor:{g}")
            )
    tg = [r["file"] for r in _rows(data / "tg3k" / "gland_masks.csv") if r["split"] != "train"]
    for f, g in zip(tg, neighbour_groups(tg), strict=True):
        out.append(dict(path=f"tg3k/{f}", set="tg3k", organ="thyroid", group=f"tg3k:{g}"))
    for r in _rows(data / "nonthyroid" / "labels.csv"):
        organ = r["organ"]
        group = nonthyroid_group(organ, r["file"])
        out.append(
            dict(path=f"nonthyroid/{r['file']}", set=organ, organ=organ, group=f"{organ}:{group}")
        )
    return out


def describe(image, classifier, segmenter) -> tuple[np.ndarray, np.ndarray, bool]:
    """(anatomy features, classifier features of the scan view, rectangular scan area?) of
    one frame, as the app computes them (``core.pipeline.scope``)."""
    from thyroid_desktop.core.pipeline.scope import scope_inputs

    fov = detect_fov(image.gray)
    x = segmenter_input(np.asarray(image.pixels), fov, segmenter.size)[None]
    nodule, gland = segmenter(x)[0], segmenter.gland(x)[0]
    view = scan_view(np.asarray(image.pixels), fov, classifier.card.input_size)
    feats = classifier.gradcam.run(view[None]).features
    anat, _ = scope_inputs(gland, nodule, fov)
    b = fov.box
    rectangular = bool(fov.mask[b.y : b.y + b.h, b.x : b.x + b.w].mean() >= 0.92)
    return anat, np.asarray(feats, np.float32), rectangular


def cmd_extract(args: argparse.Namespace) -> None:
    from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter

    data = Path(args.data)
    rows = frames(data)
    classifier, segmenter = load_classifier(precision="float"), load_segmenter()  # as fitted
    anat = np.zeros((len(rows), len(ANATOMY_FEATURES)), np.float32)
    feats, rect, ok = None, np.zeros(len(rows), bool), np.ones(len(rows), bool)
    t0 = time.perf_counter()
    for i, r in enumerate(rows):
        try:
            image = open_image(data / r["path"])
        except Exception as err:  # noqa: BLE001 - an unreadable file is left out, said so
            log.warning("%s: %s", r["path"], err)
            ok[i] = False
            continue
        a, f, rect[i] = describe(image, classifier, segmenter)
        anat[i] = a
        if feats is None:
            feats = np.zeros((len(rows), f.size), np.float32)
        feats[i] = f
        if i % 200 == 0:
            log.info("%d/%d frames, %.0f s", i, len(rows), time.perf_counter() - t0)
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        CACHE,
        anat=anat[ok],
        feats=feats[ok],
        rect=rect[ok],
        path=np.array([r["path"] for r in rows])[ok],
        set=np.array([r["set"] for r in rows])[ok],
        organ=np.array([r["organ"] for r in rows])[ok],
        group=np.array([r["group"] for r in rows])[ok],
    )
    log.info("cached %d frames in %.0f s -> %s", int(ok.sum()), time.perf_counter() - t0, CACHE)


# ------------------------------------------------------------------ model
def design(cache, kind: str) -> np.ndarray:
    """The feature matrix of one variant: ``anatomy`` (segmenters only), ``scan`` (the
    classifier's view only) or ``both``."""
    if kind == "anatomy":
        return cache["anat"].astype(np.float64)
    if kind == "scan":
        return cache["feats"].astype(np.float64)
    return np.hstack([cache["anat"], cache["feats"]]).astype(np.float64)


def fit_lr(x: np.ndarray, y: np.ndarray, c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
    )
    return model.fit(x, y)


def threshold_for(scores: np.ndarray, sets: np.ndarray, refuse: float = REFUSE_PER_SET) -> float:
    """The highest threshold that refuses at most ``refuse`` of each thyroid collection's
    frames (scores: probability of thyroid; refused when below)."""
    out = []
    for s in THYROID_SETS:
        values = np.sort(scores[sets == s])
        if len(values):
            out.append(values[int(np.floor(refuse * len(values)))])  # k below it: <= refuse
    return float(min(out))


def grouped_oof(
    x, y, groups, strata, c: float, seed: int, n_folds: int = 5, extra=None
) -> np.ndarray:
    from sklearn.model_selection import StratifiedGroupKFold

    out = np.zeros(len(y))
    skf = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for train, test in skf.split(x, strata, groups):
        out[test] = _fit_fold(x, y, train, c, extra).predict_proba(x[test])[:, 1]
    return out


def _fit_fold(x, y, train: np.ndarray, c: float, extra=None):
    """``fit_lr`` on the rows ``train``, plus the rows ``extra(train)`` gives (an
    experiment's added training examples, made only from those rows; ``None``: none)."""
    if extra is None:
        return fit_lr(x[train], y[train], c)
    more_x, more_y = extra(train)
    return fit_lr(np.vstack([x[train], more_x]), np.r_[y[train], more_y], c)


def auroc_ci(pos: np.ndarray, neg: np.ndarray, groups_neg: np.ndarray, seed: int = 0):
    """AUROC (thyroid vs the organ) with a 95 % bootstrap CI over the organ's groups."""
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    auc = float(roc_auc_score(y, np.r_[pos, neg]))
    rng = np.random.default_rng(seed)
    uniq = np.unique(groups_neg)
    boots = []
    for _ in range(500):
        pick = rng.choice(uniq, len(uniq))
        nb = np.concatenate([neg[groups_neg == g] for g in pick])
        pb = rng.choice(pos, len(pos))
        boots.append(roc_auc_score(np.r_[np.ones(len(pb)), np.zeros(len(nb))], np.r_[pb, nb]))
    return auc, [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))]


def share_ci(hits: np.ndarray, groups: np.ndarray, seed: int = 0):
    """A share with a 95 % bootstrap CI over groups."""
    rng = np.random.default_rng(seed)
    uniq = np.unique(groups)
    boots = [
        float(np.concatenate([hits[groups == g] for g in rng.choice(uniq, len(uniq))]).mean())
        for _ in range(500)
    ]
    return float(hits.mean()), [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))]


def evaluate(cache, kind: str, c: float, rect_only: bool = False, x=None, extra=None) -> dict:
    """Grouped CV (thyroid refusal per collection, organs passed) and leave-one-organ-out.
    ``x``: another feature matrix than ``design(cache, kind)`` (one row per cached frame);
    ``extra(train_rows)``: examples added to each training fold, made from those rows of the
    frames evaluated (``training.scope_variants``)."""
    if rect_only and extra is not None:
        raise ValueError("extra examples are made from rows of all frames, not rect_only's")
    keep = cache["rect"] if rect_only else np.ones(len(cache["organ"]), bool)
    x = (design(cache, kind) if x is None else x)[keep]
    organ, sets, groups = (cache[k][keep] for k in ("organ", "set", "group"))
    y = (organ == "thyroid").astype(int)
    strata = sets
    result: dict = {"kind": kind, "C": c, "rect_only": rect_only, "n": int(len(y))}
    # pooled grouped CV
    oof = np.mean([grouped_oof(x, y, groups, strata, c, s, extra=extra) for s in SEEDS], axis=0)
    thr = threshold_for(oof, sets)
    result["cv_threshold"] = thr
    result["cv_refused"] = {
        s: share_ci((oof[sets == s] < thr).astype(float), groups[sets == s])
        for s in THYROID_SETS
        if (sets == s).any()
    }
    result["cv_passed"] = {
        o: share_ci((oof[organ == o] >= thr).astype(float), groups[organ == o])
        for o in ORGANS
        if (organ == o).any()
    }
    # leave one organ out: fit on thyroid (grouped folds) + the other organs
    loo = {}
    for o in ORGANS:
        held = organ == o
        if not held.any():
            continue
        rest = ~held
        rows = np.flatnonzero(rest)
        xt, yt, gt, st = x[rest], y[rest], groups[rest], strata[rest]
        thyroid_oof = np.zeros(rest.sum())
        organ_scores = []
        from sklearn.model_selection import StratifiedGroupKFold

        for seed in SEEDS:
            skf = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)
            for train, test in skf.split(xt, st, gt):
                m = _fit_fold(x, y, rows[train], c, extra)
                thyroid_oof[test] += m.predict_proba(xt[test])[:, 1] / len(SEEDS)
                organ_scores.append(m.predict_proba(x[held])[:, 1])
        o_scores = np.mean(organ_scores, axis=0)
        is_thy = yt == 1
        t = threshold_for(thyroid_oof[is_thy], st[is_thy])
        auc, ci = auroc_ci(thyroid_oof[is_thy], o_scores, groups[held])
        loo[o] = {
            "n": int(held.sum()),
            "auroc": auc,
            "auroc_ci": ci,
            "passed": share_ci((o_scores >= t).astype(float), groups[held]),
            "threshold": t,
        }
    result["leave_one_organ_out"] = loo
    return result


def cmd_evaluate(args: argparse.Namespace) -> None:
    cache = dict(np.load(CACHE))
    results = []
    for kind in args.kinds:
        for c in args.c:
            r = evaluate(cache, kind, c)
            results.append(r)
            _print(r)
            if args.rect:
                r2 = evaluate(cache, kind, c, rect_only=True)
                results.append(r2)
                _print(r2)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(results, indent=1))


def _print(r: dict) -> None:
    loo = r["leave_one_organ_out"]
    refused = " ".join(f"{s} {100 * v[0]:.1f}%" for s, v in r["cv_refused"].items())
    passed = " ".join(f"{o} {100 * v[0]:.0f}%" for o, v in r["cv_passed"].items())
    lo = " ".join(
        f"{o} AUROC {v['auroc']:.3f} pass {100 * v['passed'][0]:.0f}%" for o, v in loo.items()
    )
    print(
        f"{r['kind']:8s} C={r['C']:<5} rect={r['rect_only']!s:5s} n={r['n']} | CV refused: "
        f"{refused} | CV passed: {passed} | LOO: {lo}",
        flush=True,
    )


def cmd_fit(args: argparse.Namespace) -> None:
    """Fits on every frame, picks the threshold from grouped out-of-fold scores, ships."""
    cache = dict(np.load(CACHE))
    x = design(cache, args.kind)
    organ, sets, groups = cache["organ"], cache["set"], cache["group"]
    y = (organ == "thyroid").astype(int)
    oof = np.mean([grouped_oof(x, y, groups, sets, args.C, s) for s in SEEDS], axis=0)
    thr = threshold_for(oof, sets)
    model = fit_lr(x, y, args.C)
    scaler, lr = model.steps[0][1], model.steps[1][1]
    out = Path(args.models)
    path = out / SCOPE_FILE
    np.savez(
        path,
        mean=scaler.mean_.astype(np.float64),
        scale=scaler.scale_.astype(np.float64),
        coef=lr.coef_[0].astype(np.float64),
        intercept=np.float64(lr.intercept_[0]),
        n_anatomy=np.int64(len(ANATOMY_FEATURES) if args.kind != "scan" else 0),
        n_scan=np.int64(cache["feats"].shape[1] if args.kind != "anatomy" else 0),
    )
    evaluation = json.loads(REPORT.read_text()) if REPORT.exists() else []
    chosen = next(
        (
            r
            for r in evaluation
            if r["kind"] == args.kind and r["C"] == args.C and not r["rect_only"]
        ),
        None,
    )
    rect = next(
        (r for r in evaluation if r["kind"] == args.kind and r["C"] == args.C and r["rect_only"]),
        None,
    )
    card_path = out / "model_card.json"
    card = json.loads(card_path.read_text())
    card["scope"] = {
        "file": SCOPE_FILE,
        "sha256": sha256_file(path),
        "created": dt.date.today().isoformat(),
        "what": "probability that a frame is thyroid ultrasound (logistic regression)",
        "features": args.kind,
        "anatomy_features": list(ANATOMY_FEATURES),
        "scan_features": "the classifier's pooled features of the scan area's middle (scope.scan_view)",
        "C": args.C,
        "threshold": thr,
        "threshold_rule": f"at most {REFUSE_PER_SET:.0%} of each thyroid collection's frames refused "
        "(grouped 5-fold out-of-fold scores, 3 seeds averaged)",
        "fitted_on": {
            s: int((sets == s).sum()) for s in (*THYROID_SETS, *ORGANS) if (sets == s).any()
        },
        "evaluation": chosen,
        "evaluation_rectangular_only": rect,
        "command": "python -m training.scope all",
    }
    tmp = card_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    tmp.replace(card_path)
    log.info("shipped %s (threshold %.3f) and the card's scope section", path, thr)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(
        prog="python -m training.scope", description=__doc__.splitlines()[0]
    )
    p.add_argument("command", choices=("extract", "evaluate", "fit", "all"))
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--models", default=str(MODELS))
    p.add_argument("--kinds", nargs="+", default=["anatomy", "scan", "both"])
    p.add_argument("--c", nargs="+", type=float, default=[1.0])
    p.add_argument(
        "--rect", action="store_true", help="also evaluate on rectangular scan areas only"
    )
    p.add_argument("--kind", default="both", help="the variant `fit` ships")
    p.add_argument("--C", type=float, default=1.0, help="the C `fit` ships (chosen: 1)")
    args = p.parse_args(argv)
    if args.command in ("extract", "all"):
        cmd_extract(args)
    if args.command in ("evaluate", "all"):
        if args.command == "all":
            args.kinds, args.c, args.rect = [args.kind], [args.C], True
        cmd_evaluate(args)
    if args.command in ("fit", "all"):
        cmd_fit(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
