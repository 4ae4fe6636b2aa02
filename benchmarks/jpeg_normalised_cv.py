"""Compression normalisation, tried on cached features: train and score on frames re-encoded
as JPEG quality 50 against clean frames, on the development folds.

If every frame, in training and in the app, were first re-encoded at one fixed quality, a
frame that arrives compressed harder or not at all would look alike to the model (a second
pass at the same quality changes little), so the estimate could not move with the sender's
compression. This checks what that would cost before building it into the crop: a linear head
(the shipped C) fitted on the auto box's crop, its mirror and the app's box jitters of the
clean frames, or of the frames re-encoded at ``JPEG_PROBE_QUALITY`` (the cache's
``JPEG_PROBE`` view), each scored on the held-out images of the same grouped folds as
``training.app_path cv`` (3 x 5, the card's seeds), clean and re-encoded. Reads an augmented
cache (``training.app_path cache --augment``); the test split is not read. About 1 minute.

Usage: python benchmarks/jpeg_normalised_cv.py [--out runs/app_path_v2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    import training.app_path as A
    from training.data import DEFAULT_DATA
    from training.linear_head import fit_head
    from training.train import balanced_weights

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("runs/app_path_v2"), help="the cache")
    args = parser.parse_args()
    card = A.shipped_card()
    samples = A.development_samples(args.data, set(card["data"]["split"]["test_files"]))
    cache = A.load_cache(args.out, samples)
    if A.JPEG_PROBE not in cache.app_views:
        raise SystemExit(f"{args.out} holds no {A.JPEG_PROBE} views: rerun `cache --augment`")
    cols = cache.jitter_columns()

    def views(idx, view):
        own = [cache.features[view][idx, m] for m in (0, 1)]
        return own + [cache.app_views[view][idx, j] for j in cols]

    q = f"q{A.JPEG_PROBE_QUALITY}"
    pairs = [("clean", "auto"), (q, A.JPEG_PROBE)]
    folds: dict = {}
    for _, tr, va in A.cv_splits(cache):
        for train_name, train_view in pairs:
            xs = views(tr, train_view)
            x, y = np.concatenate(xs), np.tile(cache.labels[tr], len(xs))
            head = fit_head(
                x, y, balanced_weights(y, np.tile(cache.sites[tr], len(xs))), A.C_SHIPPED
            )
            for test_name, test_view in pairs:
                z = np.mean([A.head_logits(head, v) for v in views(va, test_view)], axis=0)
                key = (f"{train_name} -> {test_name}", A.C_SHIPPED, A.RANK_SCORING)
                folds.setdefault(key, []).append(A.site_aurocs(cache, va, z))
    cv = A.CvResult(folds, {})  # each train -> score pair stands as a recipe
    base = "clean -> clean"
    print(f"trained on -> scored on   CV AUROC (mean ± SD over {len(folds[key])} folds), paired "
          f"difference from {base} (mean ± SE, folds below)")  # fmt: skip
    for name, *_ in folds:
        summary, diff = (
            cv.summary(name, A.C_SHIPPED, A.RANK_SCORING),
            A.paired_differences(cv, base, cv, name),
        )
        cells = [
            f"{site} {summary[site]['mean']:.3f} ± {summary[site]['sd']:.3f} "
            f"({d['mean']:+.3f} ± {d['se']:.3f}, {d['folds_below']}/{d['folds']})"
            for site, d in diff.items()
        ]
        print(f"{name:14s}  " + "   ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
