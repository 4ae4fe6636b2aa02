"""Does the AI's TI-RADS score rank a site whose labels it never saw?

The descriptor heads (``training.descriptors``) were fitted on ddti's radiologist descriptors
only, on frozen ImageNet features, and the segmenter never saw a chaouchi mask. So the AI-only
ACR TI-RADS points of a chaouchi image come from nothing that saw a chaouchi label: scored on
**all** chaouchi images they are a cross-site figure; so are each group's suggested points
alone (echogenicity, shape, margin, echogenic foci) and the mask's aspect ratio. The
classifier's probability is shown beside them on the chaouchi test split only (its
development images trained the classifier).

Both through the app's default path (``AnalysisService.analyse``: the auto box, else the scan
area). Images where nothing was found get no suggestion (no points) and are counted apart.
AUROC with a 95 % CI by bootstrap over cases (chaouchi's groups: runs of neighbouring ids).
Labels: chaouchi's benign / malignant folders, of undocumented provenance (not pathology).

Usage: python benchmarks/tirads_points_other_site.py [--data ../shared/data] [--json out.json]
(1-2 minutes here).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


#: Groups whose suggested category's ACR points are scored alone (composition is never
#: suggested; shape also as the mask's anteroposterior / transverse ratio, ``aspect``).
GROUP_SCORES = ("echogenicity", "shape", "margin", "echogenic_foci")


def main(argv: list[str] | None = None) -> int:
    from thyroid_desktop.core.analysis import AnalysisService
    from thyroid_desktop.core.clinical.tirads import points_of
    from thyroid_desktop.core.io.images import open_image
    from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter
    from thyroid_desktop.core.site.metrics import auroc_with_ci
    from training.app_path import shipped_card
    from training.data import DEFAULT_DATA, load_dataset, sample_key

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--site", default="chaouchi")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    service = AnalysisService(load_classifier(), load_segmenter(), None)  # audit off
    test_files = set(shipped_card()["data"]["split"]["test_files"])
    rows = []
    for s in load_dataset(args.data / args.site):
        result = service.analyse(open_image(s.path), None, None, scan_area_fallback=True)
        f = result.finding
        sug = f.tirads_suggestion
        rows.append(
            {
                "label": s.label,
                "group": s.group,
                "test": sample_key(s) in test_files,
                "points": None if sug is None else sug.points,
                "level": None if sug is None else sug.level.tr,
                "probability": f.probability,
                **{
                    g: None if sug is None or sug.value(g) is None else points_of(sug.value(g))
                    for g in GROUP_SCORES
                },
                "aspect": None if sug is None else sug.aspect,
            }
        )
    y = np.array([r["label"] for r in rows])
    groups = np.array([r["group"] for r in rows])
    has = np.array([r["points"] is not None for r in rows])
    test = np.array([r["test"] for r in rows])

    def figure(sel: np.ndarray, key: str) -> dict:
        sel = sel & np.array([r[key] is not None for r in rows])
        score = np.array([r[key] for r in rows], float)[sel]
        return auroc_with_ci(y[sel], score, groups[sel]).to_dict(ndigits=3)

    out = {
        "site": args.site,
        "scoring": "AnalysisService.analyse (auto box, else the scan area), shipped models",
        "n_images": len(rows),
        "n_without_suggestion": int((~has).sum()),
        "ai_points_all_images": figure(has, "points"),
        "ai_points_test_split": figure(has & test, "points"),
        "classifier_test_split": figure(has & test, "probability"),
        "each_group_all_images": {g: figure(has, g) for g in (*GROUP_SCORES, "aspect")},
        "ai_level_counts": {f"TR{k}": int(sum(r["level"] == k for r in rows)) for k in range(1, 6)},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
