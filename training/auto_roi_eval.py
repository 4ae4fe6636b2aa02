"""How much the classifier loses when the segmenter, not the expert, draws the box.

Scores the held-out test split (images neither model was trained on) three ways: with the
box from the expert's mask, with the app's auto-ROI (best candidate, else the scan area),
and with the whole scan area. Writes the result into the model card's ``auto_roi`` entry.

Usage: python -m training.auto_roi_eval [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from thyroid_desktop.core.analysis import AnalysisService
from thyroid_desktop.core.io.files import write_atomically
from thyroid_desktop.core.models.shipped import (
    CARD_FILE,
    load_classifier,
    load_segmenter,
    models_dir,
)
from thyroid_desktop.core.pipeline.roi import BoxSource
from thyroid_desktop.core.site.metrics import auroc, bootstrap_auroc_ci
from training.data import DEFAULT_DATA, sample_roi, samples_in


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    clf, seg = load_classifier(), load_segmenter()
    if seg is None:
        raise SystemExit("the model card names no segmenter")
    test_files = set(clf.card.raw["data"]["split"]["test_files"])
    service = AnalysisService(clf, seg, None)  # the app's path; evaluations are not audited
    result = {}
    for site in ("ddti", "chaouchi"):
        samples = samples_in(args.data, site, test_files)
        scores: dict[str, list[float]] = {"expert_box": [], "auto_roi": [], "scan_area": []}
        sources: list[str] = []
        refused = 0
        for s in samples:
            # The classifier is scored on every test image: one the scope check would refuse
            # is analysed anyway (force) and counted (``scope_refused``).
            auto = service.analyse_file(s.path, action=None, scan_area_fallback=True, force=True)
            image, finding = auto.image, auto.finding
            refused += bool(finding.overridden_reason)
            found = auto.detection if auto.detection is not None else service.detect(image)
            fov = found.fov
            box = sample_roi(s, image.width, image.height, fov.box)
            expert = service.analyse_box(image, box, BoxSource.MANUAL, action=None, force=True)
            scores["expert_box"].append(expert.finding.probability)
            scores["auto_roi"].append(finding.probability)
            sources.append(finding.roi_source)
            scan = service.analyse_box(image, None, BoxSource.FULL, action=None, force=True)
            scores["scan_area"].append(scan.finding.probability)
        y = np.array([s.label for s in samples])
        groups = [s.group for s in samples]
        result[site] = {
            "n": len(samples),
            "auto_roi_found_share": float(np.mean([src == "auto" for src in sources])),
            "scope_refused": refused,
            **{
                name: {
                    "auroc": auroc(y, p),
                    "auroc_ci95": list(bootstrap_auroc_ci(y, p, groups)),
                }
                for name, p in scores.items()
            },
        }
        print(site, json.dumps(result[site]), flush=True)
    card_path = models_dir() / CARD_FILE
    card = json.loads(card_path.read_text())
    card["metrics"]["auto_roi"] = {
        "description": "test split: classifier AUROC with the expert's box vs the app's auto-ROI "
        "(best candidate, else the scan area) vs the whole scan area",
        **result,
    }
    write_atomically(card_path, lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
