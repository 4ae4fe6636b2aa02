"""Does the detector put a box on the nodule, and only there? Before and after the gland prior.

On the nodule segmenter's own split (``training.segmenter.split``: held-out = 20 % of arcegor
sequences + the classifier's ddti test cases): per frame, the segmenter's and the gland
segmenter's maps are computed once, then candidate rules are compared:

- score threshold on the candidate's mean probability (``t``), and
- the gland prior (keep a candidate whose box overlaps the grown gland by more than ``o``).

A rule is chosen on **development** groups (a subsample of the training sequences and ddti
development cases), then reported once on the held-out groups, at native size and with the
frames upscaled to 900 and 1200 px wide (scanner resolution).

Usage: python -m training.detector_eval [--dev-every 4]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np

from thyroid_desktop.core.io.files import write_atomically
from thyroid_desktop.core.io.images import open_image
from thyroid_desktop.core.models.shipped import GLAND_CARD_KEY, load_segmenter
from thyroid_desktop.core.pipeline.detect import (
    GLAND_THRESHOLD,
    candidates_from_map,
    map_to_image,
    segmenter_input,
    split_by_gland,
    threshold_of,
)
from thyroid_desktop.core.pipeline.fov import detect_fov
from thyroid_desktop.core.pipeline.roi import roi_from_mask
from training.data import DEFAULT_DATA, read_mask
from training.segmenter import _classifier_test_cases, bootstrap_ci, load_mask_samples, split

log = logging.getLogger(__name__)

OUT = Path("runs/detector_eval")
#: Candidate rules compared on development groups: (score threshold, gland overlap or None).
THRESHOLDS = (0.0, 0.85, 0.9)
MIN_AREAS = (0.002, 0.005, 0.01)
OVERLAPS = (None, 0.0, 0.25)
HIT_IOU = 0.3


def frame_maps(sample, seg, gland, width: int | None):
    """(truth mask, nodule map, gland mask, fov) at image resolution, the frame resized to
    ``width`` px wide first (None: native). With no ``gland`` model the gland mask is empty."""
    img = open_image(sample.path)
    pixels = np.asarray(img.pixels)
    mask = read_mask(sample.mask_path, img.width, img.height)
    if mask is None:
        mask = np.zeros((img.height, img.width), bool)
    if width is not None and width != img.width:
        h = int(round(img.height * width / img.width))
        pixels = cv2.resize(pixels, (width, h), interpolation=cv2.INTER_CUBIC)
        mask = cv2.resize(mask.astype(np.uint8), (width, h), interpolation=cv2.INTER_NEAREST) > 0
    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY) if pixels.ndim == 3 else pixels
    fov = detect_fov(gray)
    x = segmenter_input(pixels if pixels.ndim == 3 else np.dstack([pixels] * 3), fov, seg.size)[
        None
    ]
    w, h = pixels.shape[1], pixels.shape[0]
    nodule = map_to_image(seg(x)[0], fov, w, h)
    gl = (
        map_to_image(gland(x)[0], fov, w, h) >= threshold_of(gland, GLAND_THRESHOLD)
        if gland is not None
        else np.zeros((h, w), bool)
    )
    return mask, nodule, gl, fov


def outcome(
    mask, nodule, gl, fov, threshold: float, overlap: float | None, min_area: float = 0.002
) -> tuple[bool, bool]:
    """(the frame has a nodule, the best kept candidate hits it / any box on an empty frame)."""
    fov_px = max(int(fov.mask.sum()), 1)
    cands = [
        c
        for c in candidates_from_map(nodule, fov)
        if c.score >= threshold and c.area_px >= min_area * fov_px
    ]
    if overlap is not None:
        cands, _ = split_by_gland(cands, gl, fov, overlap)
    if mask.any():
        truth = roi_from_mask(mask.astype(np.uint8))
        return True, bool(cands) and cands[0].roi.iou(truth) >= HIT_IOU
    return False, bool(cands)


def rates(frames, threshold, overlap, min_area=0.002) -> dict:
    """Hit rate on nodule frames and false-box rate on empty frames, per dataset."""
    out: dict[str, dict] = {}
    for ds, maps in frames:
        has, ok = outcome(*maps, threshold, overlap, min_area)
        d = out.setdefault(ds, {"hits": [], "false": []})
        (d["hits"] if has else d["false"]).append(ok)
    return {
        ds: {
            "nodule_frames": len(d["hits"]),
            "hit_rate": round(float(np.mean(d["hits"])), 3) if d["hits"] else None,
            "empty_frames": len(d["false"]),
            "false_box_rate": round(float(np.mean(d["false"])), 3) if d["false"] else None,
        }
        for ds, d in out.items()
    }


def rule_name(t, o, a=0.002) -> str:
    return f"score>={t:g}, area>={a:g}" + ("" if o is None else f", gland overlap>{o:g}")


RULES = [(t, o, a) for t in THRESHOLDS for o in OVERLAPS for a in MIN_AREAS]


def merit(r: dict) -> float:
    """arcegor hits minus false boxes, plus ddti hits (which must not drop)."""
    a = r["arcegor"]
    return a["hit_rate"] - a["false_box_rate"] + r["ddti"]["hit_rate"]


def cross_fit(frames, groups) -> dict:
    """Grouped 2-fold cross-fitting over the held-out groups: each half is scored with the
    rule chosen on the other half, so no frame is scored by a rule chosen on it."""
    uniq = sorted(set(groups))
    half = {g: i % 2 for i, g in enumerate(uniq)}
    fold = np.array([half[g] for g in groups])
    scored, chosen = [], []
    for k in (0, 1):
        pick = [f for f, h in zip(frames, fold, strict=True) if h != k]
        best = max(RULES, key=lambda r: merit(rates(pick, *r)))
        chosen.append(rule_name(*best))
        scored += [(f, best) for f, h in zip(frames, fold, strict=True) if h == k]
    out: dict[str, dict] = {}
    for (ds, maps), (t, o, a) in scored:
        has, ok = outcome(*maps, t, o, a)
        d = out.setdefault(ds, {"hits": [], "false": []})
        (d["hits"] if has else d["false"]).append(ok)
    return {
        "rules_chosen_per_half": chosen,
        **{
            ds: {
                "hit_rate": round(float(np.mean(d["hits"])), 3),
                "false_box_rate": round(float(np.mean(d["false"])), 3) if d["false"] else None,
            }
            for ds, d in out.items()
        },
    }


def tiles_experiment(samples, test_idx, seg) -> dict:
    """Held-out frames: the whole scan area, 2 x 2 zoomed tiles, and both merged (per pixel
    the larger probability), with the time each takes on this CPU."""
    from training.tiles import tiled_probability

    names = ("whole scan area (shipped)", "2 x 2 tiles", "whole + tiles")
    frames: dict[str, list] = {n: [] for n in names}
    seconds: dict[str, list] = {"whole": [], "tiles": []}
    for i in test_idx:
        s = samples[i]
        img = open_image(s.path)
        pixels = np.asarray(img.pixels)
        mask = read_mask(s.mask_path, img.width, img.height)
        mask = np.zeros((img.height, img.width), bool) if mask is None else mask
        fov = detect_fov(img.gray)
        t0 = time.perf_counter()
        square = seg(segmenter_input(pixels, fov, seg.size)[None])[0]
        whole = map_to_image(square, fov, img.width, img.height)
        t1 = time.perf_counter()
        tiled = tiled_probability(pixels, fov, seg, seg.size)
        t2 = time.perf_counter()
        seconds["whole"].append(t1 - t0)
        seconds["tiles"].append(t2 - t1)
        no_gland = np.zeros_like(mask)
        for name, prob in zip(names, (whole, tiled, np.maximum(whole, tiled)), strict=True):
            frames[name].append((s.dataset, (mask, prob, no_gland, fov)))
    return {
        **{name: rates(f, 0.0, None) for name, f in frames.items()},
        "ms_median": {k: round(1000 * float(np.median(v)), 1) for k, v in seconds.items()},
    }


def segmenter_from(path: Path):
    """A nodule segmenter from a .keras file of any input size (not the card's)."""
    import keras

    from thyroid_desktop.core.models.shipped import Segmenter

    model = keras.saving.load_model(path, compile=False)
    return Segmenter({"file": path.name}, model, int(model.input_shape[1]))


def score_segmenter(path: Path, samples, test_idx) -> dict:
    """Held-out hits and false boxes (shipped rule, no gland) of another nodule segmenter,
    and how often any of its candidates hits (what re-ranking could reach)."""
    seg = segmenter_from(path)
    frames = [(samples[i].dataset, frame_maps(samples[i], seg, None, None)) for i in test_idx]
    per_dataset = rates(frames, 0.0, None)
    any_hit: dict[str, list[bool]] = {ds: [] for ds in per_dataset}
    for ds, (mask, nodule, _, fov) in frames:
        if mask.any():
            truth = roi_from_mask(mask.astype(np.uint8))
            cands = candidates_from_map(nodule, fov)
            any_hit[ds].append(any(c.roi.iou(truth) >= HIT_IOU for c in cands))
    for ds, hits in any_hit.items():
        per_dataset[ds]["any_candidate_hit_rate"] = round(float(np.mean(hits)), 3) if hits else None
    out = {"segmenter": str(path), "input_size": seg.size, **per_dataset}
    out["arcegor_by_sequence"] = by_group(
        [
            (samples[i].group, f)
            for i, (d, f) in zip(test_idx, frames, strict=True)
            if d == "arcegor"
        ]
    )
    return out


def by_group(frames) -> dict:
    """Per group (sequence): nodule frames hit / nodule frames, empty frames with a box / empty
    frames (shipped rule); and the pooled rates with a 95 % CI from a bootstrap over groups,
    since frames of one sequence are not independent."""
    groups: dict[str, list[list[bool]]] = {}
    hit, hit_g, false, false_g = [], [], [], []
    for group, maps in frames:
        has, ok = outcome(*maps, 0.0, None)
        g = groups.setdefault(group, [[], []])
        g[0 if has else 1].append(ok)
        (hit if has else false).append(float(ok))
        (hit_g if has else false_g).append(group)
    out = {
        g: {"hits": f"{sum(h)}/{len(h)}", "false_boxes": f"{sum(e)}/{len(e)}"}
        for g, (h, e) in sorted(groups.items())
    }
    for name, values, gs in (("hit_rate", hit, hit_g), ("false_box_rate", false, false_g)):
        if values:
            lo, hi = bootstrap_ci(np.array(values), np.array(gs))
            out[name] = {
                "rate": round(float(np.mean(values)), 3),
                "ci95": [round(lo, 3), round(hi, 3)],
            }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--models", type=Path, default=Path("resources/models"))
    parser.add_argument("--dev-every", type=int, default=4, help="every N-th development frame")
    parser.add_argument("--tiles", action="store_true", help="only the zoomed-tiles experiment")
    parser.add_argument(
        "--segmenter",
        type=Path,
        help="only score this nodule segmenter (.keras, any input size) on the held-out frames, "
        "native size, no gland prior (with --tiles: its zoomed-tiles experiment); the card is "
        "not changed",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    card = json.loads((args.models / "model_card.json").read_text())
    seg = load_segmenter(args.models)
    gland = load_segmenter(args.models, GLAND_CARD_KEY)
    samples = load_mask_samples(args.data)
    dev_idx, test_idx = split(
        samples, {"ddti:" + c for c in _classifier_test_cases(card, args.data)}
    )
    if args.segmenter is not None and args.tiles:
        tiles = tiles_experiment(samples, test_idx, segmenter_from(args.segmenter))
        print(json.dumps({"segmenter": str(args.segmenter), **tiles}, indent=2))
        return 0
    if args.segmenter is not None:
        print(json.dumps(score_segmenter(args.segmenter, samples, test_idx), indent=2))
        return 0
    if args.tiles:
        tiles = tiles_experiment(samples, test_idx, seg)
        log.info("tiles: %s", tiles)
        card = json.loads((args.models / "model_card.json").read_text())
        card["segmenter"]["tiles_held_out"] = {
            "command": "python -m training.detector_eval --tiles",
            **tiles,
        }
        write_atomically(
            args.models / "model_card.json",
            lambda p: p.write_text(json.dumps(card, indent=2) + "\n"),
        )
        print(json.dumps(tiles, indent=2))
        return 0
    t0 = time.perf_counter()
    dev = [
        (samples[i].dataset, frame_maps(samples[i], seg, gland, None))
        for i in dev_idx[:: args.dev_every]
    ]
    log.info("%d development frames in %.0f s", len(dev), time.perf_counter() - t0)
    table = {rule_name(*r): rates(dev, *r) for r in RULES}
    log.info("development (the segmenter's own training frames): %s", json.dumps(table))
    result = {
        "development_note": "the segmenter's training frames: near perfect, so no rule can be "
        "chosen there; rules are chosen by grouped cross-fitting over the held-out groups",
        "development": table,
        "hit": f"best box IoU >= {HIT_IOU}",
    }
    for width in (None, 900, 1200):
        t0 = time.perf_counter()
        frames = [(samples[i].dataset, frame_maps(samples[i], seg, gland, width)) for i in test_idx]
        key = "native" if width is None else f"{width}px"
        result[f"held_out_{key}"] = {
            "before (no gland)": rates(frames, 0.0, None),
            "gland prior (touching)": rates(frames, 0.0, 0.0),
            "gland prior (> 25 % of the box)": rates(frames, 0.0, 0.25),
        }
        if width is None:
            result["held_out_native_cross_fitted"] = cross_fit(
                frames, [samples[i].group for i in test_idx]
            )
        log.info(
            "held-out %s (%.0f s): %s", key, time.perf_counter() - t0, result[f"held_out_{key}"]
        )
    result["held_out_groups"] = sorted(
        {samples[i].group for i in test_idx if samples[i].dataset == "arcegor"}
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    card = json.loads((args.models / "model_card.json").read_text())
    card[GLAND_CARD_KEY]["detection_held_out"] = {
        "command": "python -m training.detector_eval",
        **{k: v for k, v in result.items() if k not in ("development",)},
    }
    write_atomically(
        args.models / "model_card.json", lambda p: p.write_text(json.dumps(card, indent=2) + "\n")
    )
    print(json.dumps({k: v for k, v in result.items() if k != "development"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
