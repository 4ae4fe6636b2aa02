"""What tells the label apart besides the nodule: image-level properties as lone predictors.

For every labelled image of ddti and chaouchi (development and test; no model is run, so
nothing here is fitted to the test split), measures properties that say nothing about the
nodule's tissue: the frame's and the scan area's size, two panels side by side, the file
number, the file's bytes per pixel and its JPEG 8x8 block edges (how hard it was
compressed), and the box's size (the expert mask's box, else the scan area). Each is scored
as the only predictor of the label: AUROC oriented to >= 0.5 (the direction is printed),
with a 95 % bootstrap interval over the site's groups (case / run of file numbers). A
property far above 0.5 is a shortcut a model can learn from these data and that will not
hold on another hospital's images.

Whether the model follows one: with ``--cv runs/app_path_v2`` (an app-path CV run, its
``oof.npz`` and cache), also the Spearman correlation of each property with the
out-of-fold logit of the shipped recipe (R4, the shipped C, scored as the app scores the
auto box; mean over the CV repeats) within each class of each site's development images.
Near 0 in both classes: the estimate does not follow the property beyond what the label
explains.

Usage: python benchmarks/bench_confounds.py [--data ../shared/data]
       [--json benchmarks/confounds.json] [--cv runs/app_path_v2]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_what_it_looks_at import TWO_PANEL_ASPECT  # noqa: E402

SITES = ("ddti", "chaouchi")
#: The shipped recipe, whose out-of-fold estimates ``--cv`` reads.
RECIPE = "R4"
#: Property -> what it is (printed and written with the figures).
PROPERTIES = {
    "frame width": "pixels",
    "frame height": "pixels",
    "scan-area width": "pixels (core.pipeline.fov)",
    "scan-area height": "pixels",
    "two panels": "scan area wider than 1.55 x its height",
    "file number": "the digits of the file name",
    "bytes per pixel": "file size / (width x height)",
    "JPEG block edges": "mean |step| across 8-px column borders / mean |step| elsewhere",
    "box area": "the expert mask's box (else the scan area), share of the frame",
}


def block_edges(gray: np.ndarray) -> float:
    """How much larger the grey-level steps across 8-pixel column borders are than elsewhere
    (1: no block structure; JPEG compressed harder gives more)."""
    steps = np.abs(np.diff(gray.astype(np.float32), axis=1))
    on = steps[:, 7::8].mean()
    return float(on / (steps.mean() + 1e-6))


def properties(sample) -> dict[str, float]:
    from thyroid_desktop.core.io.images import open_image
    from thyroid_desktop.core.pipeline.fov import detect_fov
    from training.data import sample_roi

    image = open_image(sample.path)
    fov = detect_fov(image.gray).box
    box = sample_roi(sample, image.width, image.height, fov)
    digits = re.findall(r"\d+", sample.path.stem)
    return {
        "frame width": image.width,
        "frame height": image.height,
        "scan-area width": fov.w,
        "scan-area height": fov.h,
        "two panels": float(fov.w > TWO_PANEL_ASPECT * fov.h),
        "file number": float(digits[0]) if digits else np.nan,
        "bytes per pixel": sample.path.stat().st_size / (image.width * image.height),
        "JPEG block edges": block_edges(image.gray),
        "box area": box.w * box.h / (image.width * image.height),
    }


def lone_auroc(y: np.ndarray, v: np.ndarray, groups: np.ndarray) -> dict:
    """AUROC of ``v`` alone, oriented to >= 0.5, with its 95 % group bootstrap interval."""
    from thyroid_desktop.core.site.metrics import auroc, bootstrap_auroc_ci

    keep = np.isfinite(v)
    y, v, groups = y[keep], v[keep], groups[keep]
    if len(set(v.tolist())) < 2 or len(set(y.tolist())) < 2:
        return {"auroc": None, "ci95": None, "higher_in": None, "n": int(len(y))}
    sign = 1.0 if auroc(y, v) >= 0.5 else -1.0
    lo, hi = bootstrap_auroc_ci(y, sign * v, groups)
    return {
        "auroc": auroc(y, sign * v),
        "ci95": [lo, hi],
        "higher_in": "malignant" if sign > 0 else "benign",
        "n": int(len(y)),
    }


def within_class(cv_out: Path, samples, rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per property: Spearman of the property with the out-of-fold logit, per class."""
    from scipy.stats import spearmanr

    from training.app_path.recipes import C_SHIPPED, RANK_SCORING
    from training.data import sample_key

    # the CV's images are both sites' caches in order (training.app_path.cache.load_cache);
    # only the keys are read, and a key names its site, so the other site's never match
    order = []
    for s in SITES:
        with np.load(cv_out / f"features_{s}.npz") as cache:
            order += [str(k) for k in cache["keys"]]
    with np.load(cv_out / "oof.npz") as z:
        oof = z[f"{RECIPE}|{C_SHIPPED}|{RANK_SCORING}"].mean(axis=0)
    logit = dict(zip(order, oof, strict=True))
    pick = [i for i, s in enumerate(samples) if sample_key(s) in logit]
    y = np.array([samples[i].label for i in pick])
    z = np.array([logit[sample_key(samples[i])] for i in pick])
    out = {}
    for name in PROPERTIES:
        v = np.array([rows[i][name] for i in pick], float)
        out[name] = {
            cls: float(spearmanr(v[y == k], z[y == k])[0])
            if len(set(v[y == k].tolist())) > 1
            else None
            for k, cls in ((0, "benign"), (1, "malignant"))
        }
        out[name]["n"] = len(pick)
    return out


def main() -> int:
    from training.data import DEFAULT_DATA, load_dataset

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "confounds.json")
    parser.add_argument("--cv", type=Path, help="an app-path CV folder: does the model follow them")
    args = parser.parse_args()
    out: dict = {"properties": PROPERTIES, "sites": {}}
    for site in SITES:
        if not (args.data / site).is_dir():
            print(f"{site}: not under {args.data}, skipped")
            continue
        samples = load_dataset(args.data / site, site)
        rows = [properties(s) for s in samples]
        y = np.array([s.label for s in samples])
        groups = np.array([s.group for s in samples])
        table = {}
        print(f"\n{site}: {len(samples)} images, {len(set(groups))} groups, "
              f"{y.mean():.0%} malignant")  # fmt: skip
        for name in PROPERTIES:
            v = np.array([r[name] for r in rows], float)
            table[name] = lone_auroc(y, v, groups)
            t = table[name]
            if t["auroc"] is None:
                print(f"  {name:18s} constant")
                continue
            print(
                f"  {name:18s} AUROC {t['auroc']:.3f} [{t['ci95'][0]:.2f}-{t['ci95'][1]:.2f}]"
                f"  higher in {t['higher_in']}"
            )
        out["sites"][site] = {"n": len(samples), "malignant_share": float(y.mean()), **table}
        if args.cv:
            follows = within_class(args.cv, samples, rows)
            out["sites"][site]["oof_logit_spearman_within_class"] = follows
            print(f"  does the {RECIPE} estimate follow it? Spearman with the out-of-fold logit "
                  f"within class (development images, n = {next(iter(follows.values()))['n']})")  # fmt: skip
            for name, r in follows.items():
                cells = [f"{c} {r[c]:+.2f}" if r[c] is not None else f"{c} n/a"
                         for c in ("benign", "malignant")]  # fmt: skip
                print(f"    {name:18s} " + "   ".join(cells))
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
