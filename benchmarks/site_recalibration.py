"""Validate-and-recalibrate on a "local site": the chaouchi collection stands in for a clinic.

Its cases (runs of neighbouring file ids, the rule the app and training use) are split into
two halves, stratified by label; a site profile is fitted on one half with the app's own
``core.site.fit_profile`` and the other half is validated with the shipped calibration and
with the profile; then the halves swap roles. Two sets are used:

- ``test``: the chaouchi images of the model card's held-out test split only (never trained
  on, never used to choose the model): the honest figures, but few images.
- ``all``: every labelled chaouchi image. Most were in the model's development split (its
  head was trained on them), so these figures are optimistic.

Every image is analysed once through the app's default path (``validate`` with the shipped
calibration; auto-detected box, else the scan area). The validation half under the profile
is then analysed again through ``predict`` with the profile set (``test``), or re-mapped from
the same logits (``all``: identical by construction; the script checks the two agree on
``test``).

A single split of so few cases is noisy, so ``--repeats N`` also repeats the two-way split
with N seeds (re-mapping the cached logits) and prints the median and quartiles over the
2N validation halves, and how often a profile was refused.

Usage: python benchmarks/site_recalibration.py [--data ../shared/data] [--sensitivity 0.9]
       [--seed 0] [--repeats 20] [--out runs/site_recalibration]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter  # noqa: E402
from thyroid_desktop.core.site.metrics import (  # noqa: E402
    Metrics,
    auroc,
    compute_metrics,
    expected_calibration_error,
    operating_point,
)
from thyroid_desktop.core.site.profile import ProfileError, fit_profile, grouped_folds  # noqa: E402
from thyroid_desktop.core.site.validation import (  # noqa: E402
    ImageResult,
    LabelledFolder,
    analyse_folder,
    read_labelled_folder,
    summarise,
)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def fmt(m: Metrics) -> str:
    lo, hi = m.auroc_ci95
    return (
        f"AUROC {m.auroc:.3f} ({lo:.3f}-{hi:.3f})  ECE {m.ece:.3f}  Brier {m.brier:.3f}  "
        f"@{m.threshold:.3f}: sens {m.sensitivity:.3f} spec {m.specificity:.3f}"
    )


def halves(folder: LabelledFolder, seed: int) -> tuple[set[str], set[str]]:
    """Two halves of the cases, stratified (cases with a malignant image / all benign)."""
    files = [i.file for i in folder.images]
    fold = grouped_folds([i.case for i in folder.images], [i.label for i in folder.images], 2, seed)
    return {f for f, k in zip(files, fold, strict=True) if k == 0}, {
        f for f, k in zip(files, fold, strict=True) if k == 1
    }


def fingerprint(classifier) -> str:
    """What the cached results depend on: the weights, and the novelty reference and limit
    (they decide which images get no estimate)."""
    raw = classifier.card.raw
    novelty = raw.get("novelty") or {}
    return f"{raw['id']}|{raw['sha256']}|{novelty.get('sha256')}|{novelty.get('limit')}"


def analysed(folder, classifier, segmenter, cache: Path) -> list[ImageResult]:
    """The shipped-calibration results of every image (cached: analysis takes minutes)."""
    if cache.exists():
        data = json.loads(cache.read_text())
        if data.get("fingerprint") == fingerprint(classifier):
            return [ImageResult.from_dict(d) for d in data["images"]]
    classifier.profile = None
    t0 = time.perf_counter()

    def progress(done, total, name):
        if done % 20 == 0 or done == total:
            print(f"  analysed {done}/{total} ({time.perf_counter() - t0:.0f} s)", flush=True)

    results, _ = analyse_folder(folder, classifier, segmenter, progress)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(
        json.dumps(
            {"fingerprint": fingerprint(classifier), "images": [r.to_dict() for r in results]}
        )
    )
    return results


def run_set(name, folder, results, classifier, segmenter, args, real_path: bool) -> dict:
    by_file = {r.file: r for r in results}
    a, b = halves(folder, args.seed)
    out = {"set": name, "n_images": len(folder.images), "directions": []}
    without = [by_file[i.file] for i in folder.images if not by_file[i.file].has_estimate]
    out["no_estimate"] = len(without)
    print(
        f"\n== {name}: {len(folder.images)} images, {len({i.case for i in folder.images})} "
        f"cases; {len(without)} without an estimate (left out)"
    )
    for fit_files, val_files, label in ((a, b, "A->B"), (b, a, "B->A")):
        fit_folder, val_folder = folder.subset(fit_files), folder.subset(val_files)
        classifier.profile = None
        fit_run = summarise(fit_folder, [by_file[i.file] for i in fit_folder.images], classifier)
        val_shipped = [by_file[i.file] for i in val_folder.images]
        usable = [r for r in val_shipped if r.has_estimate]
        y, cases = [r.label for r in usable], [r.case for r in usable]
        before = compute_metrics(
            y, [r.shipped_probability for r in usable], cases, classifier.card.threshold
        )
        row = {
            "direction": label,
            "fit": {
                "images": len(fit_folder.images),
                "cases": len({i.case for i in fit_folder.images}),
                "malignant": sum(i.label for i in fit_folder.images),
            },
            "validate": {
                "images": len(val_folder.images),
                "with_estimate": len(usable),
                "cases": len(set(cases)),
                "malignant": int(sum(y)),
            },
            "before": before.to_dict(),
        }
        print(
            f"-- {label}: fit on {row['fit']['images']} images / {row['fit']['cases']} cases "
            f"({row['fit']['malignant']} malignant), validate on {len(usable)} images / "
            f"{len(set(cases))} cases ({int(sum(y))} malignant)"
        )
        print(f"   shipped      {fmt(before)}")
        try:
            profile = fit_profile(fit_run, args.sensitivity, f"chaouchi-{name}-{label[0]}")
        except ProfileError as err:
            row["refused"] = str(err)
            print(f"   profile REFUSED: {err}")
            try:  # what the fit would have given (the app refuses it; recalibrate --force)
                profile = fit_profile(fit_run, args.sensitivity, "forced", force=True)
            except ProfileError:
                out["directions"].append(row)
                continue
        cv = profile.card["cv"]
        forced = "FORCED " if profile.card["forced"] else ""
        row["forced"] = bool(profile.card["forced"])
        print(
            f"   {forced}profile: a={profile.a:.3f} b={profile.b:+.3f} threshold {profile.threshold:.3f}; "
            f"fit-half out-of-fold ECE {cv['before']['ece']:.3f} -> {cv['after']['ece']:.3f}, "
            f"sens {cv['after']['sensitivity']:.3f}"
        )
        remapped = [
            replace(r, probability=profile.probability(r.logit), threshold=profile.threshold)
            for r in usable
        ]
        if real_path:  # the validation half again, through predict with the profile set
            classifier.profile = profile
            val_site, _ = analyse_folder(val_folder, classifier, segmenter)
            classifier.profile = None
            site_usable = [r for r in val_site if r.has_estimate]
            diff = max(
                abs(r.probability - m.probability)
                for r, m in zip(site_usable, remapped, strict=True)
            )
            row["real_path_vs_remap_max_abs_diff"] = diff
            print(f"   (real path with the profile vs re-mapped logits: max |diff| {diff:.2e})")
        else:
            site_usable = remapped
        after = compute_metrics(
            [r.label for r in site_usable],
            [r.probability for r in site_usable],
            [r.case for r in site_usable],
            profile.threshold,
        )
        row.update(profile=profile.to_dict(), after=after.to_dict())
        print(f"   {forced or 'site '}profile {fmt(after)}")
        out["directions"].append(row)
    return out


def _point(y, p, threshold) -> dict[str, float]:
    point = operating_point(y, p, threshold)
    return {
        "auroc": auroc(y, p),
        "ece": expected_calibration_error(y, p),
        "sensitivity": point.sensitivity,
        "specificity": point.specificity,
    }


def repeated(name, folder, results, classifier, args) -> dict:
    """Before/after figures of the validation halves over ``args.repeats`` two-way splits."""
    by_file = {r.file: r for r in results}
    rows, refused = [], {"no evidence (forced here)": 0, "inverted": 0}
    classifier.profile = None
    for seed in range(args.repeats):
        a, b = halves(folder, 1000 + seed)
        for fit_files, val_files in ((a, b), (b, a)):
            fit_folder = folder.subset(fit_files)
            fit_run = summarise(
                fit_folder, [by_file[i.file] for i in fit_folder.images], classifier
            )
            try:
                profile = fit_profile(fit_run, args.sensitivity, "repeat", force=True)
            except ProfileError:
                refused["inverted"] += 1
                continue
            if profile.card["forced"]:
                refused["no evidence (forced here)"] += 1
            val = [by_file[f] for f in sorted(val_files) if by_file[f].has_estimate]
            y = [r.label for r in val]
            if len(set(y)) < 2:
                continue
            rows.append(
                {
                    "before": _point(
                        y, [r.shipped_probability for r in val], classifier.card.threshold
                    ),
                    "after": _point(
                        y, [profile.probability(r.logit) for r in val], profile.threshold
                    ),
                }
            )
    out = {"set": name, "splits": 2 * args.repeats, "refused": refused, "fitted": len(rows)}
    print(
        f"\n== {name}, {args.repeats} seeds x 2 directions: the app refuses "
        f"{sum(refused.values())} of {2 * args.repeats} profiles: {refused}; figures below "
        f"over the {len(rows)} fitted (forced ones included)"
    )
    for key in ("auroc", "ece", "sensitivity", "specificity"):
        for when in ("before", "after"):
            values = sorted(r[when][key] for r in rows)
            if not values:
                continue
            q1, med, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
            out[f"{key}_{when}"] = {"median": med, "q1": q1, "q3": q3}
        b, a = out.get(f"{key}_before"), out.get(f"{key}_after")
        if b and a:
            print(
                f"   {key:12s} shipped {b['median']:.3f} [{b['q1']:.3f}-{b['q3']:.3f}]   "
                f"site {a['median']:.3f} [{a['q1']:.3f}-{a['q3']:.3f}]"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Validate-and-recalibrate on a stand-in local site.")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--sensitivity", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=20, help="extra seeded splits (0: none)")
    p.add_argument("--out", type=Path, default=Path("runs/site_recalibration"))
    args = p.parse_args(argv)
    folder = read_labelled_folder(args.data / "chaouchi")
    classifier, segmenter = load_classifier(), load_segmenter()
    card = classifier.card.raw
    test_keys = {f.removeprefix("chaouchi/") for f in card["data"]["split"]["test_files"]}
    test_keys &= {i.file for i in folder.images}
    print(
        f"chaouchi: {len(folder.images)} labelled images, cases from {folder.case_source}; "
        f"{len(test_keys)} in the card's test split (never trained on), "
        f"{len(folder.images) - len(test_keys)} in its development split (trained on)"
    )
    results = analysed(folder, classifier, segmenter, args.out / "chaouchi_shipped.json")
    summary = {
        "model_id": classifier.card.id,
        "sensitivity_target": args.sensitivity,
        "seed": args.seed,
        "sets": [
            run_set(
                "test",
                folder.subset(test_keys),
                results,
                classifier,
                segmenter,
                args,
                real_path=True,
            ),
            run_set("all", folder, results, classifier, segmenter, args, real_path=False),
        ],
    }
    if args.repeats:
        summary["repeated"] = [
            repeated("test", folder.subset(test_keys), results, classifier, args),
            repeated("all", folder, results, classifier, args),
        ]
    no_estimate = sum(1 for r in results if not r.has_estimate)
    print(f"\nimages without an estimate or unreadable: {no_estimate} of {len(results)}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    print(f"written: {args.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
