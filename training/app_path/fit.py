"""The ``fit`` command: chooses the recipe, fits it on every development image, calibrates,
exports, and checks the export against the cache."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from thyroid_desktop.core.pipeline.roi import JITTERS
from training.app_path.cache import FeatureCache, development_samples, load_cache, shipped_card
from training.app_path.cross_site import site_to_site
from training.app_path.cv import (
    CvResult,
    beats_current,
    choose,
    fit_recipe_head,
    reference_recipe,
    score,
)
from training.app_path.recipes import (
    C_SHIPPED,
    JITTER_SCALE,
    JITTER_SHIFT,
    JPEG_PROBE_QUALITY,
    JPEG_SCORING,
    LEGACY_INPUT_SIZE,
    MIN_C_GAIN,
    N_JITTERS,
    NON_INFERIORITY,
    RANK_SCORING,
    RECIPES,
    SCORING,
    SITES,
    TWO_VIEW,
)
from training.data import Sample, sample_key

log = logging.getLogger(__name__)

#: Card sections whose models read the classifier's features: a candidate of another backbone
#: or input side (``fit --without-feature-models``) is exported without them (the app then
#: runs with no scope check, novelty reference or TI-RADS suggestions).
FEATURE_MODELS = ("novelty", "scope", "tirads_heads")


def candidates(cv: CvResult) -> list[str]:
    """The recipes ``fit`` chooses among: those the CV ran, less the CV-only ones
    (``Recipe.experimental``, e.g. R5), which are neither chosen nor what a recipe asked
    for by name is ranked against."""
    ran = {k[0] for k in cv.folds}
    return [r for r in RECIPES if r in ran and not RECIPES[r].experimental]


def cmd_fit(args: argparse.Namespace) -> None:
    """Chooses the recipe, fits it on all development images, calibrates and exports."""
    from training.evaluate import evaluate, fit_platt, save_plots, threshold_for_sensitivity
    from training.experiment import TARGET_SENSITIVITY
    from training.linear_head import classifier_graph, feature_graph
    from training.train import sigmoid

    card = shipped_card(args.export)
    samples = development_samples(args.data, set(card["data"]["split"]["test_files"]))
    cache = load_cache(args.out, samples)
    if cache.grey_levels != "none":
        raise SystemExit(
            f"the cache's crops had their grey levels changed ({cache.grey_levels}); "
            "the app does not do that"
        )
    other_features = (cache.backbone, cache.input_size) != (
        card.get("backbone"),
        card.get("input_size"),
    )
    if other_features and not getattr(args, "without_feature_models", False):
        # The novelty reference, scope model and TI-RADS heads read the classifier's
        # features: kept from a card of another backbone or input side, they would read
        # other features.
        raise SystemExit(
            f"the cache holds {cache.backbone} features at {cache.input_size} px, the shipped "
            "card's novelty reference, scope model and TI-RADS heads were fitted on "
            f"{card.get('backbone')}'s at {card.get('input_size')} px: exporting these features "
            "means refitting those too (make models), or a candidate without them "
            "(--without-feature-models)"
        )
    cv_json = json.loads((args.out / "cv.json").read_text())
    check_cv_of(cv_json, cache)
    with np.load(args.out / "oof.npz") as z:
        oof = {tuple(k.split("|")): z[k] for k in z.files}
    cv = CvResult.from_json(cv_json["fold_aurocs"])
    recipes = candidates(cv)
    scorings = [s for s in SCORING if (recipes[0], C_SHIPPED, s) in cv.folds]
    cs = sorted({c for r, c, _ in cv.folds if r in RECIPES})
    name, c = choose(cv, recipes, cs)
    if args.recipe:  # asked for by name: fitted if not clearly worse than the best (in CV)
        best = cv.mean_auto_roi(name, c)
        c = choose(cv, [args.recipe], cs)[1]
        gap = best - cv.mean_auto_roi(args.recipe, c)
        log.info("%s asked for: %.3f below the best (%s) in CV", args.recipe, gap, name)
        if gap > NON_INFERIORITY:
            raise SystemExit(f"{args.recipe} is {gap:.3f} below {name} in CV: not fitted")
        name = args.recipe
    plain_pick = choose(cv, recipes, cs, "auto_roi")
    n_variants = len(recipes) * len(cs)
    log.info("chosen %s at C=%s (mean auto-ROI %.3f)", name, c, cv.mean_auto_roi(name, c))
    app_path_cv = {
        "protocol": cv_json["protocol"] + "; each recipe trained on its crops (+ mirror) with "
        "(site, class)-balanced weights and scored on the held-out images' auto-ROI box "
        "(segmenter's best candidate, else the scan area), and for reference on the expert box "
        "(scan area where no mask) and on the scan area. auto_roi / expert_box / scan_area: "
        "mean logit of the crop and its mirror; *_app: mean logit of the crop, its mirror and "
        f"the {len(JITTERS)} box jitters core.pipeline.estimate.predict averages (what the app calibrates); "
        f"{JPEG_SCORING}: *_app of the auto box of the frame re-encoded as JPEG quality "
        f"{JPEG_PROBE_QUALITY} (never trained on)",
        "c": c,
        "recipes": {
            r: {
                "description": RECIPES[r].description,
                **{
                    site: {s: cv.summary(r, c, s)[site] for s in scorings}
                    for site in SITES
                    if site in cv.summary(r, c, "auto_roi")
                },
            }
            for r in recipes
        },
        "c_grid_mean": {
            scoring: {
                r: {str(cc): {s: cv.summary(r, cc, scoring)[s]["mean"] for s in SITES} for cc in cs}
                for r in recipes
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
        "asked_for": args.recipe,
        "ranked_by": f"mean over sites of {RANK_SCORING}; by auto_roi (crop + mirror) the "
        f"pick would be {plain_pick[0]} at C={plain_pick[1]}",
        "crop_marks": cache.marks,
        "note": f"picked among {n_variants} variants ({len(recipes)} recipes x {len(cs)} C) "
        "on the same folds: optimistic; the shipped C is kept unless another beats it by "
        f"{MIN_C_GAIN}; two-view variants were a CV experiment only",
    }
    if not args.recipe and not beats_current(cv, name, c):
        (args.out / "decision.json").write_text(json.dumps(app_path_cv, indent=2))
        log.warning(
            "%s does not beat %s on auto-ROI CV: shipped model left untouched",
            name,
            reference_recipe(cv),
        )
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
    cross_site = {
        "scoring": f"{RANK_SCORING} (development images)",
        **{k: v.to_dict() for k, v in site_to_site(cache, RECIPES[name], c).items()},
    }

    head = fit_recipe_head(cache, np.arange(len(cache)), RECIPES[name], c)
    features, cam_layer = feature_graph(cache.backbone, cache.input_size)
    model = classifier_graph(features, head)
    metrics = dict(card["metrics"])
    metrics.pop("auto_roi", None)  # of the previous model; auto_roi_eval writes the new one
    metrics.pop("test", None)  # of the previous model; `test` writes the new one
    scoring_text = (
        "auto-ROI as the app scores it: segmenter's best candidate (else the scan area), mean "
        f"logit over the crop, its mirror and the {len(JITTERS)} box jitters of "
        "core.pipeline.estimate.predict"
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
        "backbone": cache.backbone,
        "input_size": cache.input_size,
        "c": c,
        "marks": cache.marks,
        "crop_resolution": cache.resolution or None,
        "recipe": f"{name}: {RECIPES[name].description}; each crop and its mirror image, "
        f"{N_JITTERS} jitters per box (shift +-{JITTER_SHIFT:.0%} of the box size, scale "
        f"+-{JITTER_SCALE:.0%}), auto boxes from the shipped segmenter "
        "(best candidate, else the scan area), L2 logistic regression on frozen features",
    }
    card_fields = {
        "backbone": cache.backbone,
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
    carry_over(card, path, FEATURE_MODELS if other_features else ())
    decision = {**app_path_cv, "exported": str(path), "a": a, "b": b, "threshold": threshold}
    (args.out / "decision.json").write_text(json.dumps(decision, indent=2))
    check_export(args, samples[:3] + samples[-3:], cache, head, (a, b))
    log.info("exported %s (threshold %.3f, Platt a %.3f b %.3f)", path, threshold, a, b)


def check_cv_of(cv_json: dict, cache: FeatureCache) -> None:
    """The CV that chose the recipe ran on this cache (not one recut since with another
    marks step, backbone, detail limit or input side); a cv.json from before it recorded the
    cut was of crops with the marks kept at 260 px, one from before the detail limit had none
    and one from before the input side was at 260 px."""
    legacy = {"marks": "keep", "backbone": cache.backbone, "resolution": 0}
    cut = {"resolution": 0, "input_size": LEGACY_INPUT_SIZE, **cv_json.get("cache", legacy)}
    if cut != cache.cut:
        raise SystemExit(f"cv.json is of a cache cut as {cut}, not {cache.cut}: rerun `cv`")


def carry_over(previous: dict, card_path: Path, dropped: Sequence[str] = ()) -> None:
    """Keeps the card sections ``export`` does not write (novelty reference, stability limit,
    ...) as they were, except ``dropped``. The novelty reference is on the frozen backbone's
    features, which the new head does not change; the stability limit is the head's: refit it
    with ``python -m training.reliability --skip-novelty``."""
    from thyroid_desktop.core.io.files import write_atomically

    card = json.loads(card_path.read_text())
    if dropped:
        log.warning("card sections left out (they read other features): %s", list(dropped))
    kept = [k for k in previous if k not in card and k not in dropped]
    card.update({k: previous[k] for k in kept})
    write_atomically(card_path, lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
    log.info("card sections kept from the previous card: %s", kept)


def check_export(args, samples: Sequence[Sample], cache: FeatureCache, head, platt) -> None:
    """The exported model through the app's analysis service gives the probability the
    cached features and the fitted head give: training and app see the same crop."""
    from thyroid_desktop.core.analysis import AnalysisService
    from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter
    from training.train import sigmoid

    clf, seg = load_classifier(args.export), load_segmenter(args.export)
    service = AnalysisService(clf, seg, None)
    index = {k: i for i, k in enumerate(cache.keys)}
    for s in samples:
        i = index[sample_key(s)]
        finding = service.analyse_file(s.path, action=None, scan_area_fallback=True).finding
        z = score(head, cache, np.array([i]), "auto", False, app_views=True)[0]
        expected = float(sigmoid(platt[0] * z + platt[1]))
        log.info(
            "export check %s: app %.5f, cache %.5f", s.path.name, finding.probability, expected
        )
        if abs(finding.probability - expected) > 1e-3:
            raise SystemExit(f"exported model disagrees with the cache on {s.path}")
