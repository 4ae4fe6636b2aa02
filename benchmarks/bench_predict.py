"""Speed of one analysis on this machine: cold model load, warm predict + Grad-CAM, peak RSS.

Usage: python benchmarks/bench_predict.py [--repeats 50] [--backend onnx|keras]
[--precision float|int8] [--quick] [IMAGE]
Prints figures; targets: warm predict + Grad-CAM (with the box jitters) <= 35 ms (issue 25),
auto-ROI (field of view + segmenter + candidates) <= 60 ms, on a 2-core CPU; and end-to-end
predict without a box. ``--precision`` picks the classifier's ONNX graph (as
``THYROID_PRECISION``; default: the card's choice); ``--quick`` prints only the warm predict +
Grad-CAM line (for before/after runs alternated in separate processes, see
docs/model-card.md).
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


#: The library each backend imports first.
RUNTIME_MODULE = {"onnx": "onnxruntime", "keras": "tensorflow"}


def cold_import_and_load(backend: str) -> tuple[float, float]:
    """Seconds to import the runtime (ONNX Runtime or TensorFlow) and load + warm the
    classifier, in a fresh process."""
    code = (
        f"import time; t0=time.perf_counter(); import {RUNTIME_MODULE[backend]};"
        "t1=time.perf_counter();"
        "from thyroid_desktop.core.models.shipped import load_classifier;"
        f"load_classifier(backend={backend!r});"
        "print(t1-t0, time.perf_counter()-t1)"
    )
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    tf_s, load_s = (float(v) for v in out.stdout.split()[-2:])
    return tf_s, load_s


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median and 90th percentile (ms) of ``repeats`` warm calls of ``fn``."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))]


def fresh(image):
    """A new object with the same pixels: each timed analysis measures the frame as a new
    image does (``check_scope`` remembers the last check of an image object)."""
    return copy.copy(image)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("image", nargs="?", type=Path)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--backend", choices=sorted(RUNTIME_MODULE), default="onnx")
    parser.add_argument("--precision", choices=("float", "int8"), default=None)
    parser.add_argument("--quick", action="store_true", help="warm predict + Grad-CAM only")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.precision:  # also for the cold-load process
        os.environ["THYROID_PRECISION"] = args.precision

    from thyroid_desktop.core.io.images import from_array, open_image
    from thyroid_desktop.core.io.phantom import make_phantom
    from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter
    from thyroid_desktop.core.pipeline.estimate import (
        auto_predict,
        card_crop,
        detect_nodules,
        heatmap_to_image,
        predict,
    )
    from thyroid_desktop.core.pipeline.fov import detect_fov
    from thyroid_desktop.core.pipeline.roi import JITTERS

    if args.image:
        image, roi = open_image(args.image), None
    else:
        phantom = make_phantom()
        image, roi = from_array(phantom.pixels), phantom.nodule
    if args.quick:
        clf = load_classifier(backend=args.backend)
        median, p90 = timed(lambda: predict(fresh(image), clf, roi), args.repeats)
        print(
            f"warm predict + Grad-CAM ({clf.runtime}, {clf.precision}, {len(JITTERS)} jitters): "
            f"median {median:.1f} ms, p90 {p90:.1f} ms over {args.repeats} runs"
        )
        return 0
    lib_s, load_s = cold_import_and_load(args.backend)
    print(
        f"cold: import {RUNTIME_MODULE[args.backend]} {lib_s:.2f} s, "
        f"load + verify + warm classifier {load_s:.2f} s"
    )
    clf = load_classifier(backend=args.backend)
    print(f"runtime: {clf.runtime} ({clf.precision}) on {clf.device}")
    box = roi or detect_fov(image.gray).box

    def box_and_mirror_only():  # before jitter averaging: one crop + its mirror
        crop, window = card_crop(image, box, clf.card)
        _, _, cam = clf.gradcam(crop[None], mirror=clf.card.tta)
        heatmap_to_image(cam, window, image.width, image.height)

    for name, fn in (
        ("box + mirror only (no jitters)", box_and_mirror_only),
        (
            f"predict + Grad-CAM, box + mirror + {len(JITTERS)} jitters",
            lambda: predict(fresh(image), clf, roi),
        ),
    ):
        median, p90 = timed(fn, args.repeats)
        print(
            f"warm {name} ({clf.card.input_size} px, {clf.device}, {os.cpu_count()} cores): "
            f"median {median:.1f} ms, p90 {p90:.1f} ms over {args.repeats} runs "
            "(target <= 35 ms)"
        )
    # The jitters' cost on this machine, measured round-robin so that the machine's speed
    # drifting during the run affects every variant alike.
    crop, _ = card_crop(image, box, clf.card)
    extra = np.repeat(crop[None], 4, axis=0)
    variants = {k: (lambda k=k: clf.gradcam.run(crop[None], True, extra[:k])) for k in (0, 2, 4)}
    for fn in variants.values():
        fn()
    times: dict[int, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for k, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(1000 * (time.perf_counter() - t0))
    base = statistics.median(times[0])
    print(
        "model + Grad-CAM, interleaved: "
        + ", ".join(
            f"box + mirror + {k} jitters {statistics.median(t):.1f} ms "
            f"(x{statistics.median(t) / base:.2f})"
            for k, t in times.items()
        )
    )
    seg = load_segmenter(backend=args.backend)
    if seg is not None:
        for name, fn in (
            ("auto-ROI (FOV + segmenter + candidates)", lambda: detect_nodules(image, seg)),
            (
                "end-to-end without a box (auto-ROI + predict + Grad-CAM)",
                lambda: auto_predict(fresh(image), clf, seg),
            ),
        ):
            median, p90 = timed(fn, args.repeats)
            print(f"{name}: median {median:.1f} ms, p90 {p90:.1f} ms")
        det = detect_nodules(image, seg)
        print("  split:", {k: round(v, 1) for k, v in det.timings_ms.items()}, "ms")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
