"""The int8 graph's disagreement with the float graph, beside the float graph's disagreement
with itself when the box moves by 1-3 px.

Issue 25's guard for the int8 graph (``training.quantize``): AUROC within 0.005 of the float
graph's and at most 2 % of calls flipped at the shipped threshold, on the same box. This
script puts that beside what the float graph (the default) does on its own when each edge of
the auto box moves by 0-3 px (at least one by 1-3 px; drawn by
``bench_what_it_looks_at.box_changes``, seeded, not the same draws as that check's): how
many calls flip, how far the probability moves, and the AUROC of the moved boxes. Held-out test split (ddti 94, chaouchi 55), the app's default path
(``AnalysisService``: the float graph's auto box, else the scan area; the same box and
detection for both graphs).

Usage: python benchmarks/int8_in_context.py [--data ../shared/data] [--box-changes 3]
[--json out.json]   (about 1 minute here)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SITES = ("ddti", "chaouchi")
SEED = 2026


def main(argv: list[str] | None = None) -> int:
    from bench_what_it_looks_at import box_changes, forced_finding

    from thyroid_desktop.core.analysis import AnalysisService
    from thyroid_desktop.core.io.images import open_image
    from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter
    from thyroid_desktop.core.site.metrics import auroc, auroc_with_ci
    from training.data import DEFAULT_DATA, samples_in

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--box-changes", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    seg = load_segmenter()
    graphs = {p: load_classifier(precision=p) for p in ("float", "int8")}
    if graphs["int8"].precision != "int8":
        raise SystemExit("no current int8 graph (run python -m training.quantize)")
    services = {p: AnalysisService(c, seg, None) for p, c in graphs.items()}
    threshold = graphs["float"].card.threshold
    test = set(graphs["float"].card.raw["data"]["split"]["test_files"])
    rng = np.random.default_rng(SEED)

    def estimate(service, image, roi, det) -> float:
        p = forced_finding(service, image, roi, det).probability
        return float("nan") if p is None else p

    t0 = time.perf_counter()
    out: dict = {"threshold": threshold, "box_changes": args.box_changes, "sites": {}}
    for site in SITES:
        y, groups, p_float, p_int8, p_moved = [], [], [], [], []
        for s in samples_in(args.data, site, test):
            image = open_image(s.path)
            det = services["float"].detect(image)
            roi = det.best.roi if det.best is not None else None
            box = roi or det.fov.box
            y.append(s.label)
            groups.append(s.group)
            p_float.append(estimate(services["float"], image, roi, det))
            p_int8.append(estimate(services["int8"], image, roi, det))
            moved = box_changes(box, args.box_changes, rng, image.width, image.height)
            p_moved.append([estimate(services["float"], image, b, det) for b in moved])
        y, groups = np.array(y), np.array(groups)
        pf, pq, pm = np.array(p_float), np.array(p_int8), np.array(p_moved)
        ok = ~np.isnan(pf) & ~np.isnan(pq) & ~np.isnan(pm).any(axis=1)
        y, groups, pf, pq, pm = y[ok], groups[ok], pf[ok], pq[ok], pm[ok]
        call = pf >= threshold
        flips_moved = (pm >= threshold) != call[:, None]
        base = auroc(y, pf)
        aurocs_moved = [auroc(y, pm[:, j]) for j in range(pm.shape[1])]
        out["sites"][site] = {
            "n": int(ok.sum()),
            "auroc_float": auroc_with_ci(y, pf, groups).to_dict(3),
            "int8_same_box": {
                "auroc_change": round(auroc(y, pq) - base, 4),
                "flipped": int(((pq >= threshold) != call).sum()),
                "flipped_share": round(float(((pq >= threshold) != call).mean()), 4),
                "mean_abs_dp": round(float(np.abs(pq - pf).mean()), 4),
            },
            "float_box_moved_1_3px": {
                "auroc_change_mean": round(float(np.mean(aurocs_moved)) - base, 4),
                "auroc_change_each": [round(a - base, 4) for a in aurocs_moved],
                "flipped_mean_per_change": round(float(flips_moved.sum(axis=0).mean()), 2),
                "flipped_share_per_change": round(float(flips_moved.mean()), 4),
                "images_flipped_by_any_change": int(flips_moved.any(axis=1).sum()),
                "mean_abs_dp": round(float(np.abs(pm - pf[:, None]).mean()), 4),
            },
        }
        print(f"{site}: {json.dumps(out['sites'][site])}", flush=True)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
