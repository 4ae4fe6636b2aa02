"""Click and stroke to segment (``core.pipeline.click``): does the box find the nodule?

Simulated prompts on frames with a true nodule mask (its largest part):

- **click**: the mask's centroid when it lies inside the mask, else its inner-most point;
- **sloppy click**: a random point of the mask's inner half (pixels at least half the
  largest inner distance from its border; fixed seed);
- **stroke**: the ends of the mask's longest axis (the farthest pair of outline points).

A hit is the box's IoU with the mask's bounding box >= 0.3 (>= 0.5). The segmenter's maps are
computed once per frame and prompt on every window of a grid (``CLICK_GRID``,
``STROKE_GRID``); each setting (windows, fusion, threshold, snap radius / stroke slack) is
scored from them through the same ``core.pipeline.click`` functions the app calls.

The nodule segmenter was trained on 80 % of arcegor's sequences (and most of ddti), and is
near perfect on them, so settings are chosen and scored only on frames it never saw: its
held-out arcegor sequences (``training.segmenter.split``), with **grouped 5-fold CV over
those sequences** (each fold's setting chosen on the other folds), 95 % CIs from a bootstrap
over sequences. The setting chosen on all of them is then scored once on the segmenter's
held-out ddti cases (a second site). Scores on the segmenter's training sequences are
reported too (a few frames per sequence), marked optimistic.

Usage: python -m training.click_eval [--per-sequence 4] [--data ...]
Writes runs/click_eval/result.json and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from thyroid_desktop.core.io.images import open_image
from thyroid_desktop.core.models.shipped import load_segmenter
from thyroid_desktop.core.pipeline.click import (
    ClickSettings,
    Fusion,
    Uncertain,
    click_windows,
    guess_point,
    settle_point,
    settle_stroke,
    stroke_windows,
    window_maps,
)
from thyroid_desktop.core.pipeline.detect import detect, threshold_of
from thyroid_desktop.core.pipeline.fov import detect_fov, mask_outside
from thyroid_desktop.core.pipeline.roi import ROI
from thyroid_desktop.core.site.metrics import grouped_bootstrap
from training.data import DEFAULT_DATA, read_mask
from training.segmenter import _classifier_test_cases, load_mask_samples, split

log = logging.getLogger(__name__)

OUT = Path("runs/click_eval")
#: Window sides tried around a click (shares of the scan area's longer side; 1: all of it).
CLICK_GRID = (0.15, 0.25, 0.35, 0.5, 0.7, 1.0)
#: Window sides tried around a stroke's midpoint (multiples of its length).
STROKE_GRID = (1.5, 2.0, 3.0, 4.0)
THRESHOLDS = (0.1, 0.15, 0.2, 0.3, 0.5)
RELATIVES = (0.0, 0.5)
SNAPS = (0.0, 0.03)
SLACKS = (0.1, 0.25)
#: Fusions tried (a first run with FEATHER and SELECT too: neither was ever chosen).
FUSIONS = (Fusion.MEAN, Fusion.MAX)
STROKE_FUSIONS = FUSIONS
#: Sides of the box guessed when nothing is found at the click (share of the scan area's
#: longer side): scored without re-running, from where each setting found nothing.
DEFAULT_BOXES = (0.1, 0.15, 0.2, 0.25)
#: Runs of neighbouring grid sizes tried together (1 to this many windows).
MAX_WINDOWS = 3
HITS = (0.3, 0.5)
FOLDS = 5
SEED = 0


def runs(n: int, longest: int = MAX_WINDOWS) -> list[tuple[int, ...]]:
    """Index runs of neighbouring grid entries, 1 to ``longest`` long."""
    return [tuple(range(i, i + k)) for k in range(1, longest + 1) for i in range(n - k + 1)]


def click_settings() -> list[tuple[tuple[int, ...], ClickSettings]]:
    """Every click setting tried, with the grid indices of its windows."""
    return [
        (
            idx,
            ClickSettings(
                scales=tuple(CLICK_GRID[i] for i in idx),
                fusion=f,
                threshold=t,
                relative=q,
                snap_radius=r,
                default_box=d,
            ),
        )
        for idx in runs(len(CLICK_GRID))
        for f in FUSIONS
        for t in THRESHOLDS
        for q in RELATIVES
        for r in SNAPS
        for d in DEFAULT_BOXES
    ]


def stroke_settings() -> list[tuple[tuple[int, ...], ClickSettings]]:
    """Every stroke setting tried, with the grid indices of its windows."""
    return [
        (
            idx,
            ClickSettings(
                stroke_scales=tuple(STROKE_GRID[i] for i in idx),
                fusion=f,
                threshold=t,
                relative=q,
                stroke_slack=s,
            ),
        )
        for idx in runs(len(STROKE_GRID))
        for f in STROKE_FUSIONS
        for t in THRESHOLDS
        for q in RELATIVES
        for s in SLACKS
    ]


def largest_part(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def box_of(mask: np.ndarray) -> ROI:
    ys, xs = np.nonzero(mask)
    return ROI(
        int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)
    )


def prompts(mask: np.ndarray, rng: np.random.Generator) -> dict[str, tuple[float, ...]]:
    """The simulated click, sloppy click and stroke on a (one-part) mask."""
    ys, xs = np.nonzero(mask)
    cx, cy = float(xs.mean()), float(ys.mean())
    inner = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    if not mask[int(round(cy)), int(round(cx))]:
        iy, ix = np.unravel_index(int(np.argmax(inner)), inner.shape)
        cx, cy = float(ix), float(iy)
    py, px = np.nonzero(inner >= 0.5 * inner.max())
    k = int(rng.integers(len(px)))
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    hull = cv2.convexHull(np.concatenate(contours).reshape(-1, 2)).reshape(-1, 2).astype(float)
    d = ((hull[:, None] - hull[None]) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmax(d)), d.shape)
    return {
        "click": (cx, cy),
        "sloppy": (float(px[k]), float(py[k])),
        "stroke": (*hull[i], *hull[j]),
    }


@dataclass
class Frame:
    dataset: str
    group: str
    file: str
    #: per prompt kind: IoU of each setting's box with the truth box
    iou: dict[str, np.ndarray]
    #: per prompt kind: whether each setting marked the size uncertain
    uncertain: dict[str, np.ndarray]


def score_frame(sample, seg, click_cfgs, stroke_cfgs, rng) -> Frame | None:
    """Every setting's IoU for one frame (None: no usable mask)."""
    img = open_image(sample.path)
    mask = read_mask(sample.mask_path, img.width, img.height)
    if mask is None or not mask.any():
        return None
    part = largest_part(mask)
    truth = box_of(part)
    pixels = np.asarray(img.pixels)
    fov = detect_fov(img.gray)
    masked = mask_outside(pixels, fov)
    iou: dict[str, np.ndarray] = {}
    unsure: dict[str, np.ndarray] = {}
    for kind, prompt in prompts(part, rng).items():
        if kind == "stroke":
            maps = window_maps(masked, fov, stroke_windows(fov, prompt, STROKE_GRID), seg, seg.size)
            cfgs, settle = stroke_cfgs, settle_stroke
        else:
            maps = window_maps(masked, fov, click_windows(fov, *prompt, CLICK_GRID), seg, seg.size)
            cfgs, settle = click_cfgs, settle_point
        values, flags, cache, settled = [], [], {}, {}
        for idx, cfg in cfgs:
            key = (idx, cfg.fusion)
            if key not in cache:
                sub = maps.subset(idx)
                cache[key] = (
                    sub,
                    None if cfg.fusion is Fusion.SELECT else sub.fused(cfg.fusion, fov),
                )
            sub, fused = cache[key]
            # The guessed box's size only matters where nothing was found: settle once.
            once = (idx, replace(cfg, default_box=DEFAULT_BOXES[0]))
            if once not in settled:
                settled[once] = settle(sub, fov, prompt, cfg, cfg.threshold, fused)
            r = settled[once]
            if r.reason == Uncertain.NOTHING_AT_CLICK:
                r = guess_point(fov, prompt, cfg)
            values.append(r.roi.iou(truth))
            flags.append(r.size_uncertain)
        iou[kind], unsure[kind] = np.array(values, np.float32), np.array(flags, bool)
    return Frame(sample.dataset, sample.group, str(sample.path), iou, unsure)


def merit(frames: list[Frame], kinds: tuple[str, ...]) -> np.ndarray:
    """Per setting: mean over ``kinds`` of (hit rate at 0.3 + hit rate at 0.5)."""
    total = 0.0
    for kind in kinds:
        table = np.stack([f.iou[kind] for f in frames])
        total = total + sum((table >= h).mean(axis=0) for h in HITS)
    return total / len(kinds)


def rates(values: np.ndarray, groups: list[str]) -> dict:
    """Hit rates with 95 % CIs from a bootstrap over sequences."""
    out = {"n_frames": int(len(values)), "n_groups": len(set(groups))}
    for h in HITS:
        hit = (values >= h).astype(float)
        lo, hi = grouped_bootstrap(lambda idx, hit=hit: float(hit[idx].mean()), groups)
        out[f"iou>={h}"] = {
            "rate": round(float(hit.mean()), 3),
            "ci95": [round(lo, 3), round(hi, 3)],
        }
    return out


def folds_of(groups: list[str], k: int = FOLDS) -> dict[str, int]:
    """Each sequence's fold (sequences shuffled with a fixed seed, dealt round-robin)."""
    uniq = sorted(set(groups))
    order = np.random.default_rng(SEED).permutation(len(uniq))
    return {uniq[j]: i % k for i, j in enumerate(order)}


def describe(cfg: ClickSettings, stroke: bool) -> dict:
    d = asdict(cfg)
    keep = (
        ("stroke_scales", "fusion", "threshold", "relative", "stroke_slack")
        if stroke
        else ("scales", "fusion", "threshold", "relative", "snap_radius", "default_box")
    )
    return {k: (str(d[k]) if k == "fusion" else d[k]) for k in keep}


def cross_validated(frames: list[Frame], cfgs, kinds: tuple[str, ...]) -> dict:
    """Grouped k-fold: each fold scored with the setting chosen on the others."""
    groups = [f.group for f in frames]
    fold = folds_of(groups)
    chosen = {}
    picked = np.zeros(len(frames), int)
    for k in range(FOLDS):
        train = [f for f in frames if fold[f.group] != k]
        best = int(np.argmax(merit(train, kinds)))
        chosen[k] = best
        for i, f in enumerate(frames):
            if fold[f.group] == k:
                picked[i] = best
    out = {
        "settings_per_fold": [
            describe(cfgs[chosen[k]][1], kinds == ("stroke",)) for k in range(FOLDS)
        ]
    }
    for kind in kinds:
        values = np.array([f.iou[kind][picked[i]] for i, f in enumerate(frames)])
        out[kind] = rates(values, groups)
    return out


def scored_with(frames: list[Frame], setting: int, kinds: tuple[str, ...]) -> dict:
    groups = [f.group for f in frames]
    out = {}
    for kind in kinds:
        values = np.array([f.iou[kind][setting] for f in frames])
        out[kind] = rates(values, groups)
        flags = np.array([f.uncertain[kind][setting] for f in frames])
        out[kind]["size_uncertain_share"] = round(float(flags.mean()), 3)
    return out


def index_of(cfgs, target: ClickSettings, stroke: bool, threshold: float = 0.5) -> int:
    """The grid entry of a setting (its threshold None: the segmenter's, ``threshold``)."""
    if target.threshold is None:
        target = replace(target, threshold=threshold)
    keys = describe(target, stroke)
    return next(i for i, (_, c) in enumerate(cfgs) if describe(c, stroke) == keys)


def no_proposal_count(card: dict, data: Path, seg) -> dict:
    """How many of the classifier's ddti test images get no detector proposal (what
    ``predict`` without a prompt now answers "no nodule found" for)."""
    files = [
        f.split("/", 1)[1] for f in card["data"]["split"]["test_files"] if f.startswith("ddti/")
    ]
    none = []
    for rel in files:
        img = open_image(data / "ddti" / rel)
        if detect(np.asarray(img.pixels), img.gray, seg, seg.size).best is None:
            none.append(rel)
    return {"images": len(files), "no_proposal": len(none), "files": none}


def pick(samples, idx, per_sequence: int) -> list[int]:
    """Frames with a nodule mask, at most ``per_sequence`` evenly spread per arcegor
    sequence (0: all)."""
    by_group: dict[str, list[int]] = {}
    for i in idx:
        if samples[i].mask_path is not None:
            by_group.setdefault(samples[i].group, []).append(i)
    out = []
    for members in by_group.values():
        if (
            per_sequence
            and len(members) > per_sequence
            and samples[members[0]].dataset == "arcegor"
        ):
            members = [
                members[int(round(v))] for v in np.linspace(0, len(members) - 1, per_sequence)
            ]
        out += members
    return out


def table_line(name: str, r: dict) -> str:
    cells = []
    for h in HITS:
        v = r[f"iou>={h}"]
        cells.append(
            f"{100 * v['rate']:5.1f} % [{100 * v['ci95'][0]:.0f}-{100 * v['ci95'][1]:.0f}]"
        )
    return (
        f"  {name:<44} {cells[0]:>18} {cells[1]:>18}   n={r['n_frames']} ({r['n_groups']} groups)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--models", type=Path, default=None)
    parser.add_argument(
        "--per-sequence",
        type=int,
        default=4,
        help="frames per arcegor sequence the segmenter was trained on (the optimistic "
        "reference; held-out sequences are scored on every frame with a nodule)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--limit", type=int, default=0, help="score only N frames (smoke runs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from thyroid_desktop.core.models.shipped import load_card

    card = load_card(args.models).raw
    seg = load_segmenter(args.models)
    samples = load_mask_samples(args.data)
    train_idx, test_idx = split(
        samples, {"ddti:" + c for c in _classifier_test_cases(card, args.data)}
    )
    click_cfgs, stroke_cfgs = click_settings(), stroke_settings()
    rng = np.random.default_rng(SEED)
    sets: dict[str, list[Frame]] = {"arcegor": [], "ddti": [], "arcegor_seen": []}
    t0 = time.perf_counter()
    chosen = [
        (i, "arcegor" if samples[i].dataset == "arcegor" else "ddti")
        for i in pick(samples, test_idx, 0)
    ]
    chosen += [
        (i, "arcegor_seen")
        for i in pick(samples, train_idx, args.per_sequence)
        if samples[i].dataset == "arcegor"
    ]
    if args.limit:
        chosen = chosen[:: max(len(chosen) // args.limit, 1)][: args.limit]
    for n, (i, name) in enumerate(chosen):
        frame = score_frame(samples[i], seg, click_cfgs, stroke_cfgs, rng)
        if frame is not None:
            sets[name].append(frame)
        if n % 50 == 0:
            log.info("%d / %d frames (%.0f s)", n, len(chosen), time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    held = sets["arcegor"]
    best_click = int(np.argmax(merit(held, ("click", "sloppy"))))
    best_stroke = int(np.argmax(merit(held, ("stroke",))))
    own = threshold_of(seg)
    shipped_click = index_of(click_cfgs, ClickSettings(), False, own)
    shipped_stroke = index_of(stroke_cfgs, ClickSettings(), True, own)
    detector_only = index_of(
        click_cfgs,
        ClickSettings(scales=(1.0,), fusion=Fusion.MEAN, threshold=0.3, snap_radius=0.0),
        False,
    )
    result = {
        "command": f"python -m training.click_eval --per-sequence {args.per_sequence}",
        "hit": "IoU of the box with the true mask's bounding box (its largest part)",
        "seconds": round(seconds, 1),
        "held_out_arcegor_groups": sorted({f.group for f in held}),
        "cv_arcegor_held_out": {
            "click": cross_validated(held, click_cfgs, ("click", "sloppy")),
            "stroke": cross_validated(held, stroke_cfgs, ("stroke",)),
        },
        "chosen_on_all_held_out_arcegor": {
            "click": describe(click_cfgs[best_click][1], False),
            "stroke": describe(stroke_cfgs[best_stroke][1], True),
        },
        "shipped": {
            "click": describe(click_cfgs[shipped_click][1], False),
            "stroke": describe(stroke_cfgs[shipped_stroke][1], True),
        },
    }
    for name, frames in sets.items():
        if not frames:
            continue
        result[name] = {
            "shipped": {
                **scored_with(frames, shipped_click, ("click", "sloppy")),
                **scored_with(frames, shipped_stroke, ("stroke",)),
            },
            "chosen": {
                **scored_with(frames, best_click, ("click", "sloppy")),
                **scored_with(frames, best_stroke, ("stroke",)),
            },
            "detector_map_only": scored_with(frames, detector_only, ("click", "sloppy")),
        }
    result["no_proposal_ddti_test"] = no_proposal_count(card, args.data, seg)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    np.savez_compressed(
        args.out / "iou.npz",
        **{
            f"{name}_{kind}": np.stack([f.iou[kind] for f in frames])
            for name, frames in sets.items()
            if frames
            for kind in ("click", "sloppy", "stroke")
        },
    )
    with open(args.out / "frames.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["set", "group", "file"])
        for name, frames in sets.items():
            w.writerows([name, f.group, f.file] for f in frames)
    print_table(result)
    return 0


def print_table(result: dict) -> None:
    print(f"\n{'':<46} {'IoU >= 0.3':>18} {'IoU >= 0.5':>18}")
    cv = result["cv_arcegor_held_out"]
    print("arcegor, the segmenter's held-out sequences, grouped 5-fold CV:")
    for kind in ("click", "sloppy"):
        print(table_line(kind, cv["click"][kind]))
    print(table_line("stroke", cv["stroke"]["stroke"]))
    for name, title in (
        ("arcegor", "arcegor held-out, shipped setting"),
        ("ddti", "ddti held-out cases (second site), shipped setting"),
        ("arcegor_seen", "arcegor sequences the segmenter saw (optimistic)"),
    ):
        if name not in result:
            continue
        print(title + ":")
        for kind in ("click", "sloppy", "stroke"):
            print(table_line(kind, result[name]["shipped"][kind]))
        for kind in ("click", "sloppy"):
            print(
                table_line(f"{kind}, detector's map only", result[name]["detector_map_only"][kind])
            )
    print("chosen on all held-out arcegor:", json.dumps(result["chosen_on_all_held_out_arcegor"]))
    npf = result["no_proposal_ddti_test"]
    print(f"ddti test images without a proposal: {npf['no_proposal']} of {npf['images']}")


if __name__ == "__main__":
    raise SystemExit(main())
