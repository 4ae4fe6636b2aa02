"""Box-placement sensitivity: how much the estimate moves when the box moves.

For every image of the ddti test split (the classifier never saw them), the expert's box
(from the nodule mask) is shifted by +-10 % of its width and of its height (4 shifted boxes);
prints the median and 90th percentile of |estimate(shifted) - estimate(box)| before jitter
averaging (the box and its mirror only) and after (``predict``: box, mirror and the box
jitters), and the share of estimates marked unstable.

Usage: python benchmarks/bench_stability.py [--data ../shared/data] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHIFTS = ((0.10, 0.0), (-0.10, 0.0), (0.0, 0.10), (0.0, -0.10))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--limit", type=int, default=0, help="only the first N images")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from thyroid_desktop.core.io.images import open_image
    from thyroid_desktop.core.models.shipped import load_classifier
    from thyroid_desktop.core.pipeline.estimate import classifier_crop, predict
    from thyroid_desktop.core.pipeline.fov import detect_fov
    from training.data import load_dataset, sample_key, sample_roi

    if not (args.data / "ddti").exists():
        print(f"no data at {args.data}")
        return 1
    clf = load_classifier()
    card = clf.card
    test = set(card.raw["data"]["split"]["test_files"])
    samples = [s for s in load_dataset(args.data / "ddti", "ddti") if sample_key(s) in test]
    samples = samples[: args.limit] if args.limit else samples

    def single(image, box, fov) -> float:
        crop, _ = classifier_crop(image, box, card.input_size, card.crop_margin, fov)
        return clf.gradcam(crop[None], mirror=card.tta)[0]

    before, after, unstable = [], [], []
    for s in samples:
        image = open_image(s.path)
        fov = detect_fov(image.gray)
        box = sample_roi(s, image.width, image.height, fov.box)
        shifted = [box.jittered(dx, dy, 1.0, image.width, image.height) for dx, dy in SHIFTS]
        p0, f0 = single(image, box, fov), predict(image, clf, box, "manual", fov)
        unstable.append(f0.unstable)
        for b in shifted:
            before.append(abs(single(image, b, fov) - p0))
            after.append(abs(predict(image, clf, b, "manual", fov).probability - f0.probability))
    for name, d in (("before (box + mirror)", before), ("after (box + mirror + jitters)", after)):
        d = np.array(d)
        print(
            f"{name}: median |change| {np.median(d):.3f}, p90 {np.quantile(d, 0.9):.3f}, "
            f"share > 0.10: {np.mean(d > 0.10):.1%}  ({len(samples)} ddti test images x 4 shifts)"
        )
    print(f"marked unstable (spread > {card.spread_limit:.3f}): {np.mean(unstable):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
