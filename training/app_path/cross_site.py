"""Cross-site check through the app's path: a head trained on one collection's development
images, scored on the other collection's development images as the app scores its own box
(auto box, its mirror and the app's jitters; the scope check is not applied); the
``cross-site`` command.

Neither site's test split is touched. The two collections differ in scanner, layout and in
what their labels are (ddti: the radiologist's TI-RADS category; chaouchi: benign/malignant
folders of undocumented provenance), so a head that has never seen a site is scored on a
site whose images *and* label meaning are new: the nearest thing here to the hospitals the
product is re-measured on.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from thyroid_desktop.core.site.metrics import AurocWithCi, auroc_with_ci
from training.app_path.cache import development_samples, load_cache, shipped_card
from training.app_path.cv import fit_recipe_head, recipes_of, score
from training.app_path.recipes import RANK_SCORING, SCORING, SITES


def site_to_site(
    cache, recipe, c: float, fit: Callable[[np.ndarray], object] | None = None
) -> dict[str, AurocWithCi]:
    """``"train->scored"`` collection pair -> the head's AUROC on the scored collection, as the
    app scores its box (scope check not applied), with a 95 % CI by bootstrap over the scored
    collection's cases. Only the training collection's labels fit the head: ``fit(idx)``
    (default: the recipe's own head, ``fit_recipe_head``) on the training collection's images."""
    if fit is None:

        def fit(idx):
            return fit_recipe_head(cache, idx, recipe, c)

    view, app_views = SCORING[RANK_SCORING]
    out = {}
    for train in SITES:
        for test in SITES:
            if train == test:
                continue
            tr = np.flatnonzero(cache.sites == train)
            te = np.flatnonzero(cache.sites == test)
            z = score(fit(tr), cache, te, view, recipe.two_view, app_views)
            out[f"{train}->{test}"] = auroc_with_ci(cache.labels[te], z, cache.groups[te])
    return out


def cmd_cross_site(args: argparse.Namespace) -> None:
    """Every recipe the cache holds (two-view ones left out) x the C grid, both directions;
    writes ``cross_site.json``."""
    card = shipped_card()
    samples = development_samples(args.data, set(card["data"]["split"]["test_files"]))
    cache = load_cache(args.out, samples)
    t0 = time.perf_counter()
    rows = {}
    for recipe in recipes_of(cache):
        if recipe.two_view:
            continue
        for c in args.c_grid:
            pairs = site_to_site(cache, recipe, c)
            rows[f"{recipe.name}@{c}"] = {k: v.to_dict() for k, v in pairs.items()}
            cells = [
                f"{k} {v.auroc:.3f} ({_fmt(v.ci95[0])}-{_fmt(v.ci95[1])})" for k, v in pairs.items()
            ]
            print(f"{recipe.name}@{c:<6} " + "   ".join(cells), flush=True)
    result = {
        "protocol": "head fitted on all development images of one site, scored on all "
        f"development images of the other ({RANK_SCORING}: auto box, mirror and the app's "
        "jitters; scope check not applied); 95 % CI by bootstrap over the scored site's "
        "cases; test splits untouched",
        "seconds": time.perf_counter() - t0,
        "cache": cache.cut,
        "variants": rows,
    }
    (args.out / "cross_site.json").write_text(json.dumps(result, indent=2))


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"
