"""The ``test`` command: once, the held-out test split through the app's path."""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np

from thyroid_desktop.core.pipeline.roi import JITTERS
from training.app_path.recipes import SITES

log = logging.getLogger(__name__)


def cmd_test(args: argparse.Namespace) -> None:
    """Once: the held-out test split through the app's analysis service -> ``metrics.test``."""
    from thyroid_desktop.core.analysis import AnalysisService
    from thyroid_desktop.core.io.files import write_atomically
    from thyroid_desktop.core.models.shipped import CARD_FILE, load_classifier, load_segmenter
    from training.data import samples_in
    from training.evaluate import evaluate

    clf, seg = load_classifier(args.export), load_segmenter(args.export)
    service = AnalysisService(clf, seg, None)
    card = clf.card.raw
    test_files = set(card["data"]["split"]["test_files"])
    result: dict = {
        "scoring": "auto_roi: the app's path, core.analysis.AnalysisService (segmenter's best "
        "candidate, else the scan area; mean logit over the crop, its mirror and the "
        f"{len(JITTERS)} box jitters); expert-box and scan-area figures are in metrics.auto_roi"
    }
    for site in SITES:
        samples = samples_in(args.data, site, test_files)
        p = np.array(
            [
                service.analyse_file(
                    s.path, action=None, scan_area_fallback=True
                ).finding.probability
                for s in samples
            ]
        )
        y = np.array([s.label for s in samples])
        result[site] = evaluate(y, p, [s.group for s in samples], clf.card.threshold).to_dict()
        log.info("test %s: AUROC %.3f %s", site, result[site]["auroc"], result[site]["auroc_ci95"])
    card_path = args.export / CARD_FILE
    card = json.loads(card_path.read_text())
    card["metrics"]["test"] = result
    write_atomically(card_path, lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
    print(json.dumps(result, indent=2))
