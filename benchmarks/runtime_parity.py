"""ONNX Runtime vs Keras through the app's default path on the shipped test split.

Usage: python benchmarks/runtime_parity.py [--data ../shared/data]
Prints, per site: images, same auto-detected box, max and mean |difference| of the
calibrated estimate, max |difference| of the heat map, AUROC of each runtime (labels are
TI-RADS categories: TI-RADS 4-5 vs 2-3, not pathology; chaouchi: weak folder labels).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from thyroid_desktop.core.analysis import AnalysisService
    from thyroid_desktop.core.models.shipped import load_card, load_classifier, load_segmenter
    from thyroid_desktop.core.site.metrics import auroc

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    labels: dict[str, str] = {}
    for site in ("ddti", "chaouchi"):
        with open(args.data / site / "labels.csv", newline="") as fh:
            labels.update({f"{site}/{r['file']}": r["label"] for r in csv.DictReader(fh)})
    files = load_card().raw["data"]["split"]["test_files"]
    services = {
        backend: AnalysisService(
            load_classifier(backend=backend), load_segmenter(backend=backend), None
        )
        for backend in ("onnx", "keras")
    }
    runtimes = {k: s.classifier.runtime for k, s in services.items()}
    if runtimes != {"onnx": "ONNX Runtime", "keras": "Keras"}:  # e.g. a stale graph
        raise SystemExit(f"not comparing two runtimes: {runtimes}")
    rows = []
    for rel in files:
        a, b = (
            services[k].analyse_file(args.data / rel, scan_area_fallback=True).finding
            for k in ("onnx", "keras")
        )
        rows.append(
            (
                rel.split("/")[0],
                labels[rel] == "malignant",
                a.roi == b.roi,
                a.probability,
                b.probability,
                float(np.abs(a.heatmap - b.heatmap).max()),
            )
        )
    for site in ("ddti", "chaouchi"):
        part = [r for r in rows if r[0] == site]
        y = [r[1] for r in part]
        pa, pb = np.array([r[3] for r in part]), np.array([r[4] for r in part])
        gap = np.abs(pa - pb)
        print(
            f"{site}: n={len(part)}, same box {sum(r[2] for r in part)}/{len(part)}, "
            f"|dp| max {gap.max():.2e} mean {gap.mean():.2e}, heat map |d| max "
            f"{max(r[5] for r in part):.2e}, AUROC onnx {auroc(y, pa):.4f} "
            f"keras {auroc(y, pb):.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
