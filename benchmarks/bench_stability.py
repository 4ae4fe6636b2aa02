"""Box-placement sensitivity: how much the estimate moves when the box moves.

For every image of the ddti test split (the classifier never saw them), the expert's box
(from the nodule mask) is shifted by +-10 % of its width and of its height (4 shifted boxes);
prints the median and 90th percentile of |estimate(shifted) - estimate(box)| before jitter
averaging (the box and its mirror only) and after (``predict``: box, mirror and the box
jitters), and the share of estimates marked unstable.

``--pixels``: the box moved by 1-3 pixels instead (each image: 8 changes, see
``PIXEL_CHANGES``), through the app's path (``predict``) on the held-out test split of ddti
and chaouchi; prints the median, 95th percentile and maximum |change| of the estimate, the
held-out AUROC of the unmoved boxes and the milliseconds per ``predict``. ``--jitters NAME``
scores the same with another set of box jitters from ``JITTER_SETS`` in place of
``roi.JITTERS`` (a trial: the shipped calibration was fitted on the current views).

Usage: python benchmarks/bench_stability.py [--data ../shared/data] [--limit N]
       python benchmarks/bench_stability.py --pixels [--jitters current|fine8|...]
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
#: 1-3 pixel box changes: (left, top, right, bottom) edge moves in pixels. Four moves of the
#: whole box (x, y) and four of one edge (the box grows or shrinks).
PIXEL_CHANGES = (
    (1, 0, 1, 0),
    (-2, 0, -2, 0),
    (0, 1, 0, 1),
    (0, -3, 0, -3),
    (0, 0, 2, 0),
    (0, 0, 0, -2),
    (-3, 0, 0, 0),
    (0, 1, 0, 0),
)
#: Box jitter sets to try in place of ``roi.JITTERS``: (dx, dy of the box size, scale, mirror).
JITTER_SETS: dict[str, tuple[tuple[float, float, float, bool], ...]] = {
    "current": (),  # filled from roi.JITTERS
    "none": (),
    # 8 fine jitters: shifts of 1-3 % of the box (1-3 px on a 100 px box), scale +-4 %.
    "fine8": tuple(
        (dx, dy, sc, m)
        for (dx, dy), sc, m in zip(
            (
                (0.01, 0.0),
                (-0.02, 0.0),
                (0.0, 0.01),
                (0.0, -0.02),
                (0.03, 0.03),
                (-0.03, -0.03),
                (0.02, -0.02),
                (-0.01, 0.03),
            ),
            (1.04, 0.96, 0.96, 1.04, 1.0, 1.0, 1.02, 0.98),
            (False, True, False, True, False, True, False, True),
            strict=True,
        )
    ),
    # the current two coarse jitters plus six fine ones
    "current+fine6": (),
}


def moved(box, change, width: int, height: int):
    """``box`` with its edges moved by ``change`` pixels, kept inside the image."""
    from thyroid_desktop.core.pipeline.roi import ROI

    x0 = min(max(box.x + change[0], 0), width - 1)
    y0 = min(max(box.y + change[1], 0), height - 1)
    x1 = min(max(box.x + box.w + change[2], x0 + 1), width)
    y1 = min(max(box.y + box.h + change[3], y0 + 1), height)
    return ROI(x0, y0, x1 - x0, y1 - y0)


def pixel_study(args) -> int:
    """1-3 px box changes through ``predict`` on the held-out split; see the module doc."""
    import time

    import thyroid_desktop.core.pipeline.estimate as estimate
    from thyroid_desktop.core.io.images import open_image
    from thyroid_desktop.core.models.shipped import load_classifier
    from thyroid_desktop.core.pipeline.fov import detect_fov
    from thyroid_desktop.core.pipeline.roi import JITTERS
    from thyroid_desktop.core.site.metrics import auroc
    from training.data import load_dataset, sample_key, sample_roi

    sets = dict(JITTER_SETS, current=JITTERS)
    sets["current+fine6"] = tuple(JITTERS) + sets["fine8"][:6]
    estimate.JITTERS = sets[args.jitters]  # predict reads the module's name at call time
    clf = load_classifier()
    clf.gradcam.warm_up(clf.card.input_size, len(estimate.JITTERS))
    test = set(clf.card.raw["data"]["split"]["test_files"])
    samples = [
        s
        for site in ("ddti", "chaouchi")
        for s in load_dataset(args.data / site, site)
        if sample_key(s) in test
    ]
    samples = samples[:: args.every]
    samples = samples[: args.limit] if args.limit else samples
    card, calibration = clf.card, clf.calibration

    def views_of(image, fov, box) -> np.ndarray:
        """The views ``predict`` averages for ``box``: crop, mirror, jitters, as it cuts them."""
        crop, _, jit = estimate.card_views(image, box, card, fov)
        return np.concatenate([crop[None], crop[None, :, ::-1], jit])

    shifts, probs, labels, ms, sides = [], [], [], [], []
    for i, s in enumerate(samples):
        image = open_image(s.path)
        fov = detect_fov(image.gray)
        box = sample_roi(s, image.width, image.height, fov.box)
        boxes = [box] + [moved(box, c, image.width, image.height) for c in PIXEL_CHANGES]
        boxes = [b.clipped(image.width, image.height) for b in boxes]
        # All boxes' views in one batch (the same numbers as one predict per box, faster).
        views = np.concatenate([views_of(image, fov, b) for b in boxes])
        logits = clf.gradcam.run(views[:1], views=views[1:]).logits.reshape(len(boxes), -1)
        p = calibration.apply(logits.mean(axis=1))
        if i < args.timed:  # the app's own call, timed, and the same estimate
            t = time.perf_counter()
            finding = estimate.predict(image, clf, box, "manual", fov)
            ms.append(1000 * (time.perf_counter() - t))
            assert abs(finding.probability - p[0]) < 1e-4, (finding.probability, p[0])
        probs.append(float(p[0]))
        labels.append(s.label)
        shifts.extend(np.abs(p[1:] - p[0]).tolist())
        sides.extend([max(box.w, box.h)] * len(PIXEL_CHANGES))
    d = np.array(shifts)
    sites = np.array([s.dataset for s in samples])
    y, pr = np.array(labels), np.array(probs)
    site_auroc = ", ".join(
        f"{site} {auroc(y[sites == site], pr[sites == site]):.4f}"
        for site in ("ddti", "chaouchi")
        if len(set(y[sites == site])) == 2
    )
    print(
        f"jitters {args.jitters} ({2 + len(estimate.JITTERS)} views): 1-3 px box change -> "
        f"|change| median {np.median(d):.4f}, p95 {np.quantile(d, 0.95):.4f}, max {d.max():.4f}, "
        f"share > 0.02: {np.mean(d > 0.02):.1%}; held-out AUROC {site_auroc}; "
        f"predict + Grad-CAM {np.median(ms):.0f} ms (median of {len(ms)})  "
        f"({len(samples)} ddti + chaouchi test images x {len(PIXEL_CHANGES)} changes)"
    )
    side = np.array(sides)
    cuts = np.quantile(side, [1 / 3, 2 / 3])
    for name, sel in (
        (f"boxes <= {cuts[0]:.0f} px", side <= cuts[0]),
        (f"{cuts[0]:.0f}-{cuts[1]:.0f} px", (side > cuts[0]) & (side <= cuts[1])),
        (f"> {cuts[1]:.0f} px", side > cuts[1]),
    ):
        print(
            f"  {name} (longer side): p95 {np.quantile(d[sel], 0.95):.4f}, max {d[sel].max():.4f}"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--limit", type=int, default=0, help="only the first N images")
    parser.add_argument("--pixels", action="store_true", help="1-3 px box changes instead")
    parser.add_argument("--jitters", choices=sorted(JITTER_SETS), default="current")
    parser.add_argument("--every", type=int, default=1, help="every N-th test image (--pixels)")
    parser.add_argument("--timed", type=int, default=10, help="images timed through predict")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not (args.data / "ddti").exists():
        print(f"no data at {args.data}")
        return 1
    if args.pixels:
        return pixel_study(args)
    from thyroid_desktop.core.io.images import open_image
    from thyroid_desktop.core.models.shipped import load_classifier
    from thyroid_desktop.core.pipeline.estimate import card_crop, predict
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
        crop, _ = card_crop(image, box, card, fov)
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
