"""The nodule detector under another pixel size: does it find the same nodule when the frame
is resampled by 0.75 or 1.33 (as another scanner's pixel size would show the same anatomy)?

On the segmenter's held-out frames (the classifier's ddti test cases and 10 held-out arcegor
sequences, ``training.detector_eval``'s split), each frame is analysed from scratch at 1x,
0.75x and 1.33x through the app's detection (``AnalysisService.detect``: field of view,
segmenter, presence model, gland as the card says). Per scale: the best box hits the expert's
nodule (IoU >= 0.3 with the mask's box, on frames with a nodule) and a box on an empty frame
(arcegor); and how often the best box at 0.75x / 1.33x is another box than at 1x (IoU < 0.5
with the 1x box scaled, frames where both found one).

``--tta`` also scores test-time augmentation of the segmenter (its map averaged with the map
of a changed input), an experiment for the scale question, not what the app does:
``flip`` (the mirrored input, mapped back) and ``blur`` (the input resampled to 0.75 of the
segmenter's size and back).

Usage: python benchmarks/bench_detector_scale.py [--data ../shared/data] [--tta flip blur]
       [--json benchmarks/detector_scale.json]
About 4 minutes on a 2-core CPU without ``--tta``, 4 more per TTA variant.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCALES = (1.0, 0.75, 1.33)
HIT_IOU = 0.3
SAME_BOX_IOU = 0.5
JSON_OUT = ROOT / "benchmarks" / "detector_scale.json"


def with_tta(segmenter, mode: str):
    """A segmenter whose map is averaged with the map of ``mode``'s changed input."""
    if mode == "none":
        return segmenter

    class Averaged:
        def __init__(self, inner) -> None:
            self.inner = inner

        def __getattr__(self, name):  # threshold, presence, gland, size: the inner one's
            return getattr(self.inner, name)

        def __call__(self, batch):
            batch = np.asarray(batch)
            if mode == "flip":
                other = self.inner(batch[:, :, ::-1])[:, :, ::-1]
            else:  # blur: a coarser sampling of the same view
                side = batch.shape[1]
                small = round(0.75 * side)
                other = self.inner(
                    np.stack(
                        [
                            cv2.resize(
                                cv2.resize(x, (small, small), interpolation=cv2.INTER_AREA),
                                (side, side),
                                interpolation=cv2.INTER_LINEAR,
                            )
                            for x in batch
                        ]
                    )
                )
            return (self.inner(batch) + other) / 2.0

    return Averaged(segmenter)


def score(samples, service) -> dict:
    from thyroid_desktop.core.io.images import open_image
    from thyroid_desktop.core.pipeline.roi import roi_from_mask
    from training.app_path.cache import resampled, scaled_box
    from training.data import read_mask

    per_site: dict = {}
    for s in samples:
        image = open_image(s.path)
        mask = read_mask(s.mask_path, image.width, image.height) if s.mask_path else None
        truth = roi_from_mask(mask.astype(np.uint8)) if mask is not None and mask.any() else None
        out = per_site.setdefault(
            s.dataset,
            {"nodule_frames": 0, "empty_frames": 0}
            | {f"hits_{f}": 0 for f in SCALES}
            | {f"boxes_on_empty_{f}": 0 for f in SCALES}
            | {f"other_box_{f}": 0 for f in SCALES[1:]}
            | {f"both_found_{f}": 0 for f in SCALES[1:]},
        )
        out["nodule_frames" if truth is not None else "empty_frames"] += 1
        base = None
        for f in SCALES:
            im = image if f == 1.0 else resampled(image, f)
            best = service.detect(im).best
            if truth is not None:
                out[f"hits_{f}"] += bool(best and best.roi.iou(scaled_box(truth, f, im)) >= HIT_IOU)
            else:
                out[f"boxes_on_empty_{f}"] += best is not None
            if f == 1.0:
                base = best
            elif base is not None and best is not None:
                out[f"both_found_{f}"] += 1
                out[f"other_box_{f}"] += best.roi.iou(scaled_box(base.roi, f, im)) < SAME_BOX_IOU
    return per_site


def main() -> int:
    from thyroid_desktop.core.analysis import AnalysisService
    from thyroid_desktop.core.models.shipped import load_segmenter
    from training.data import DEFAULT_DATA
    from training.segmenter import _classifier_test_cases, load_mask_samples, split

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--models", type=Path, default=ROOT / "resources" / "models")
    parser.add_argument("--tta", nargs="*", default=[], choices=("flip", "blur"))
    parser.add_argument("--json", type=Path, default=JSON_OUT)
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"no data at {args.data}")
    card = json.loads((args.models / "model_card.json").read_text())
    samples = load_mask_samples(args.data)
    _, test_idx = split(samples, {"ddti:" + c for c in _classifier_test_cases(card, args.data)})
    held_out = [samples[i] for i in test_idx]
    segmenter = load_segmenter(args.models)
    result: dict = {"frames": len(held_out), "hit": f"best box IoU >= {HIT_IOU}"}
    for mode in ["none", *args.tta]:
        t0 = time.perf_counter()
        service = AnalysisService(None, with_tta(segmenter, mode), None)
        result[mode] = score(held_out, service)
        print(f"{mode} ({time.perf_counter() - t0:.0f} s)")
        for site, r in result[mode].items():
            n, e = r["nodule_frames"], r["empty_frames"]
            hits = " / ".join(f"{100 * r[f'hits_{f}'] / max(n, 1):.1f}" for f in SCALES)
            line = f"  {site}: hits 1x / 0.75x / 1.33x {hits} % of {n}"
            if e:
                empty = " / ".join(f"{100 * r[f'boxes_on_empty_{f}'] / e:.1f}" for f in SCALES)
                line += f"; a box on empty frames {empty} % of {e}"
            other = " / ".join(f"{r[f'other_box_{f}']}/{r[f'both_found_{f}']}" for f in SCALES[1:])
            print(line + f"; another box than at 1x (0.75x / 1.33x) {other}")
    result["command"] = "python benchmarks/bench_detector_scale.py" + (
        f" --tta {' '.join(args.tta)}" if args.tta else ""
    )
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
