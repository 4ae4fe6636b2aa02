"""What the model looks at: marks, pixel scale, box placement and strata, on the held-out split.

Every estimate goes through the app's default path, ``core.analysis.AnalysisService``: the
segmenter's best candidate (the auto box), else the whole scan area (``scan_area_fallback``,
as ``python -m training.app_path test`` scores the card's test split); never the expert box.
The expert mask (ddti) is used only to place pasted marks on the nodule and to split ddti by
nodule size. Each check runs for every model folder named by ``--models`` (default: the
shipped one), each with the crop step its card asks for (``crop.marks``,
``core.pipeline.marks``), so a previous model can be compared with today's on the same images:
``git worktree add /tmp/before c33ef32`` and then
``--models before=/tmp/before/resources/models after=resources/models``. ``--marks-step``
forces one crop step on every model (how the step alone was checked on v1.1.1).

(a) marks: 2 calipers (``+`` or ``x``) at the ends of the nodule's long axis, a dotted line
    between them (half the images) and a label ("N1", "d1", "1.2 cm") beside it, drawn in
    white-grey or a colour, at random (fixed seed); the auto box and detection of the clean
    image are kept, so the shift is the classifier's: mean |p(marked) - p(clean)|.
    The same pixels painted out on the *unmarked* image (Telea, as the crop step paints:
    ``painted``) say how much of that shift is the painted patch itself rather than marks
    the detector missed; ``detector recall``: the share of the drawn pixels that
    ``core.pipeline.marks.find_marks`` finds (within a pixel).
(b) scale: the image resampled by 0.75 and 1.33 and analysed from scratch (detection
    included); AUROC per site and pooled, with the 95 % case-grouped bootstrap interval of the
    difference from 1x.
(c) box: each edge of the auto box moved by 1-3 px (``--box-changes`` random boxes per image,
    fixed seed); max and 95th percentile of |shift|.
(d) Spearman correlation of the estimate with the auto box's area (pooled and per site).
(e) AUROC per stratum: ddti single vs two-panel frame (scan-area box wider than 1.55 x its
    height), nodule-size terciles (expert mask area in ddti, auto box area in chaouchi; per
    site), site.
(f) compression: the frame re-encoded as a JPEG of quality 50 and 30 (``JPEG_QUALITIES``;
    ``training.compression``), the auto box and detection of the clean frame kept: mean and
    95th percentile of |p(re-encoded) - p(clean)| (a frame exported at another quality, as
    another hospital's PACS or a screen capture does, must not change the estimate).

By default a seeded subsample of 50 of the 149 test images (``--limit 0``: all of them) and
3 changed boxes per image, so that a run takes about 8 minutes on a 2-core CPU.

Usage: python benchmarks/bench_what_it_looks_at.py [--data ../shared/data] [--limit 50]
       [--box-changes 3] [--json benchmarks/what_it_looks_at.json]
       [--models LABEL=DIR ...] [--marks-step keep|inpaint]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SITES = ("ddti", "chaouchi")
SCALES = (0.75, 1.33)
#: JPEG qualities of the compression check (f).
JPEG_QUALITIES = (50, 30)
SEED = 2026
#: Default subsample of the 149 test images (seeded), so a run stays under ~8 min on 2 cores.
LIMIT = 50
JSON_OUT = ROOT / "benchmarks" / "what_it_looks_at.json"
#: Scan-area boxes wider than this many heights hold two panels side by side (ddti).
TWO_PANEL_ASPECT = 1.55
LABELS = ("N1", "d1", "d2", "1.2cm", "0.8 cm", "L", "S1")
COLOURS = ((250, 250, 250), (235, 235, 235), (230, 230, 60), (80, 230, 80), (80, 220, 230))


def draw_marks(pixels: np.ndarray, roi, mask: np.ndarray | None, rng) -> np.ndarray:
    """A copy of ``pixels`` with calipers, maybe a dotted line, and a label on the nodule."""
    out = np.array(pixels, copy=True)
    if mask is not None and mask.any():
        ys, xs = np.nonzero(mask)
        x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    else:
        x0, x1, y0, y1 = roi.x, roi.x + roi.w - 1, roi.y, roi.y + roi.h - 1
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    ends = [(int(x0), int(cy)), (int(x1), int(cy))]
    if rng.random() < 0.5:
        ends = [(int(cx), int(y0)), (int(cx), int(y1))]
    colour = tuple(int(c) for c in COLOURS[rng.integers(len(COLOURS))])
    arm = int(rng.integers(4, 8))
    diagonal = rng.random() < 0.3
    for x, y in ends:
        if diagonal:
            cv2.line(out, (x - arm, y - arm), (x + arm, y + arm), colour, 1)
            cv2.line(out, (x - arm, y + arm), (x + arm, y - arm), colour, 1)
        else:
            cv2.line(out, (x - arm, y), (x + arm, y), colour, 1)
            cv2.line(out, (x, y - arm), (x, y + arm), colour, 1)
    if rng.random() < 0.5:
        (ax, ay), (bx, by) = ends
        n = max(int(np.hypot(bx - ax, by - ay) // 6), 2)
        for t in np.linspace(0, 1, n + 1)[1:-1]:
            px, py = int(ax + t * (bx - ax)), int(ay + t * (by - ay))
            out[py : py + 2, px : px + 2] = colour
    text = LABELS[rng.integers(len(LABELS))]
    tx = int(np.clip(cx + rng.integers(-10, 10), 0, out.shape[1] - 30))
    ty = int(np.clip(y0 + rng.integers(8, 20), 12, out.shape[0] - 1))
    cv2.putText(out, text, (tx, ty), cv2.FONT_HERSHEY_PLAIN, 0.9, colour, 1, cv2.LINE_AA)
    return out


def drawn_and_found(clean: np.ndarray, marked: np.ndarray, inside: np.ndarray):
    """(uint8 mask of the pixels ``draw_marks`` changed, grown by a pixel; the share of
    the changed pixels that ``find_marks`` finds within a pixel)."""
    from thyroid_desktop.core.pipeline.marks import find_marks

    changed = np.abs(marked.astype(np.int16) - np.asarray(clean, np.int16)).max(axis=-1) > 20
    grow = np.ones((3, 3), np.uint8)
    found = cv2.dilate(find_marks(marked, inside).astype(np.uint8), grow) > 0
    recall = float((changed & found).sum()) / max(int(changed.sum()), 1)
    return cv2.dilate(changed.astype(np.uint8), grow), recall


def box_changes(roi, n: int, rng, width: int, height: int) -> list:
    """``n`` boxes whose edges each move by 0-3 px (at least one edge by 1-3 px)."""
    from thyroid_desktop.core.pipeline.roi import ROI

    out = []
    while len(out) < n:
        d = rng.integers(-3, 4, 4)
        if not np.any(d):
            continue
        x0, y0 = roi.x + d[0], roi.y + d[1]
        x1, y1 = roi.x + roi.w + d[2], roi.y + roi.h + d[3]
        if x1 - x0 < 4 or y1 - y0 < 4:
            continue
        out.append(ROI(int(x0), int(y0), int(x1 - x0), int(y1 - y0)).clipped(width, height))
    return out


def forced_finding(service, image, roi, det):
    """The default path's finding for ``roi`` (None, nothing found: the scan area, as the card's
    test split is scored), analysed even where the scope check refuses (``force``), so that
    every check compares estimates of the same images."""
    from thyroid_desktop.core.pipeline.roi import BoxSource

    if roi is None:
        return service.analyse_box(image, None, BoxSource.FULL, None, force=True).finding
    return service.analyse(image, roi, None, detection=det, force=True).finding


def with_marks_step(classifier, step: str | None):
    """The same classifier, its card's crop step set to ``step`` (``core.pipeline.marks``;
    None: as the card says)."""
    from thyroid_desktop.core.models.shipped import ModelCard

    if step is None:
        return classifier
    raw = dict(classifier.card.raw)
    raw["crop"] = {**raw.get("crop", {}), "marks": step}
    return dataclasses.replace(classifier, card=ModelCard(raw, classifier.card.directory))


def auroc_ci(y, p, groups) -> dict:
    from thyroid_desktop.core.site.metrics import auroc, bootstrap_auroc_ci

    y, p = np.asarray(y), np.asarray(p, float)
    keep = np.isfinite(p)  # an analysis that gave no estimate is left out
    y, p, groups = y[keep], p[keep], np.asarray(groups)[keep]
    if len(set(y.tolist())) < 2:
        return {"auroc": None, "ci95": None, "n": int(len(y))}
    lo, hi = bootstrap_auroc_ci(y, p, groups)
    return {"auroc": auroc(y, p), "ci95": [lo, hi], "n": int(len(y))}


def delta_ci(y, p1, p0, groups) -> dict:
    """AUROC(p1) - AUROC(p0), with its 95 % case-grouped bootstrap interval (paired)."""
    from thyroid_desktop.core.site.metrics import auroc, grouped_bootstrap

    y, p1, p0 = np.asarray(y), np.asarray(p1, float), np.asarray(p0, float)
    keep = np.isfinite(p1) & np.isfinite(p0)
    y, p1, p0, groups = y[keep], p1[keep], p0[keep], np.asarray(groups)[keep]
    if len(set(y.tolist())) < 2:
        return {"delta": None, "ci95": None}

    def stat(idx):
        if not 0 < y[idx].sum() < len(idx):
            return None
        return auroc(y[idx], p1[idx]) - auroc(y[idx], p0[idx])

    lo, hi = grouped_bootstrap(stat, groups)
    return {"delta": auroc(y, p1) - auroc(y, p0), "ci95": [lo, hi]}


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def score_images(args) -> dict:
    """Runs every check on every test image; returns per-image arrays per mode."""
    from thyroid_desktop.core.analysis import AnalysisService
    from thyroid_desktop.core.io.images import from_array, open_image
    from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter
    from thyroid_desktop.core.pipeline.marks import paint_out
    from thyroid_desktop.core.pipeline.roi import BoxSource
    from training.app_path.cache import resampled, scaled_box
    from training.compression import reencode
    from training.data import read_mask, samples_in

    services, tests = {}, set()
    for label, folder in args.models:
        clf = with_marks_step(load_classifier(folder), args.marks_step)
        # each folder's own segmenter: the default path (1x and resampled, detected again)
        # is each model's; the checks that compare the same crops use the first one's box
        services[label] = AnalysisService(clf, load_segmenter(folder), None)
        tests.add(frozenset(clf.card.raw["data"]["split"]["test_files"]))
        print(f"{label}: {clf.card.raw['id']} v{clf.card.raw['version']} from {folder}, "
              f"crop.marks {clf.card.raw.get('crop', {}).get('marks', 'keep')}")  # fmt: skip
    if len(tests) != 1:
        raise SystemExit("the models' cards name different test splits")
    detector = next(iter(services.values()))
    test = set(next(iter(tests)))
    samples = [s for site in SITES for s in samples_in(args.data, site, test)]
    if args.limit:
        pick = np.random.default_rng(SEED).permutation(len(samples))[: args.limit]
        samples = [samples[i] for i in sorted(pick)]
    rng = np.random.default_rng(SEED)
    rows: dict = {"site": [], "label": [], "group": [], "found": [], "area": [], "size": []}
    rows["two_panel"] = []
    rows["recall"] = []
    per_mode = {
        m: {k: [] for k in ("p", "marked", "painted", "scaled", "scaled_box", "box", "jpeg")}
        for m in services
    }

    refused = {"n": 0}

    def estimate(service, image, roi, det):
        finding = forced_finding(service, image, roi, det)
        refused["n"] += bool(finding.overridden_reason)  # refused by scope, analysed anyway
        p = finding.probability
        if p is None:  # refused outright (not overridable): left out of the figures, counted
            refused["none"] = refused.get("none", 0) + 1
            return float("nan")
        return p

    t0 = time.perf_counter()
    for k, s in enumerate(samples):
        image = open_image(s.path)
        det = detector.detect(image)
        roi = det.best.roi if det.best is not None else None
        box = roi or det.fov.box
        mask = read_mask(s.mask_path, image.width, image.height) if s.mask_path else None
        rows["site"].append(s.dataset)
        rows["label"].append(s.label)
        rows["group"].append(f"{s.dataset}:{s.group}")
        rows["found"].append(roi is not None)
        rows["area"].append(box.w * box.h)
        rows["size"].append(float(mask.sum()) if mask is not None else box.w * box.h)
        rows["two_panel"].append(det.fov.box.w > TWO_PANEL_ASPECT * det.fov.box.h)
        marked_px = draw_marks(image.pixels, box, mask, rng)
        drawn, recall = drawn_and_found(image.pixels, marked_px, det.fov.mask)
        rows["recall"].append(recall)
        marked = from_array(marked_px)
        painted = from_array(paint_out(image.pixels, drawn))  # as the marks step paints
        changed = box_changes(box, args.box_changes, rng, image.width, image.height)
        scaled = [resampled(image, f) for f in SCALES]
        pressed = [from_array(reencode(image.pixels, q)) for q in JPEG_QUALITIES]
        scaled_det = [detector.detect(im) for im in scaled]  # detection from scratch, once
        for mode, service in services.items():
            out = per_mode[mode]
            own = det if service.segmenter is detector.segmenter else service.detect(image)
            own_roi = own.best.roi if own.best is not None else None
            out["p"].append(estimate(service, image, own_roi, own))
            out["marked"].append(estimate(service, marked, box, det))
            out["painted"].append(estimate(service, painted, box, det))
            out["box"].append([estimate(service, image, b, det) for b in changed])
            out["jpeg"].append([estimate(service, im, box, det) for im in pressed])
            if service.segmenter is not detector.segmenter:
                dets = [service.detect(im) for im in scaled]
            else:
                dets = scaled_det
            out["scaled"].append(
                [
                    estimate(service, im, d.best.roi if d.best is not None else None, d)
                    for im, d in zip(scaled, dets, strict=True)
                ]
            )
            # the classifier alone: the same box, scaled with the image (no new detection)
            out["scaled_box"].append(
                [
                    service.analyse_box(
                        im, scaled_box(box, f, im), BoxSource.AUTO, None, force=True
                    ).finding.probability
                    for im, f in zip(scaled, SCALES, strict=True)
                ]
            )
        if (k + 1) % 10 == 0:
            print(f"  {k + 1}/{len(samples)} images, {time.perf_counter() - t0:.0f} s", flush=True)
    return {
        "rows": {k: np.asarray(v) for k, v in rows.items()},
        "modes": per_mode,
        "scope_refused_analyses": refused["n"],
        "no_estimate_analyses": refused.get("none", 0),
    }


def summarise(scored: dict) -> dict:
    rows = scored["rows"]
    y, site, groups = rows["label"], rows["site"], rows["group"]
    result: dict = {"n": int(len(y)), "found_share": float(rows["found"].mean()), "modes": {}}
    result["scope_refused_analyses"] = int(scored.get("scope_refused_analyses", 0))
    result["no_estimate_analyses"] = int(scored.get("no_estimate_analyses", 0))
    result["per_image"] = {
        **{k: v.tolist() for k, v in rows.items()},
        **{f"p_{m}": np.asarray(o["p"]).tolist() for m, o in scored["modes"].items()},
    }
    for mode, out in scored["modes"].items():
        p = np.asarray(out["p"])
        marked, scaled, box = (np.asarray(out[k], float) for k in ("marked", "scaled", "box"))
        scaled_box = np.asarray(out["scaled_box"], float)
        shift = marked - p  # nan where an analysis gave no estimate (left out, counted)
        painted = np.asarray(out["painted"], float) - p
        box_shift = np.abs(box - p[:, None]).ravel()
        box_shift = box_shift[np.isfinite(box_shift)]
        jpeg = np.asarray(out["jpeg"], float)
        jpeg_shift = np.abs(jpeg - p[:, None])
        r: dict = {
            "marks": {
                "mean_abs_shift": float(np.nanmean(np.abs(shift))),
                "mean_shift": float(np.nanmean(shift)),
                "mean_abs_shift_benign": float(np.nanmean(np.abs(shift[y == 0]))),
                "mean_abs_shift_malignant": float(np.nanmean(np.abs(shift[y == 1]))),
                "painted_only_mean_abs_shift": float(np.nanmean(np.abs(painted))),
                "detector_recall": float(np.mean(rows["recall"])),
            },
            "box": {
                "max_abs_shift": float(box_shift.max()),
                "p95_abs_shift": float(np.percentile(box_shift, 95)),
                "median_abs_shift": float(np.median(box_shift)),
            },
            "jpeg": {
                f"q{q}": {
                    name: {
                        "mean_abs_shift": float(np.nanmean(jpeg_shift[sel, i])),
                        "p95_abs_shift": float(np.nanpercentile(jpeg_shift[sel, i], 95)),
                        "mean_shift_benign": float(np.nanmean((jpeg[:, i] - p)[sel & (y == 0)])),
                        "mean_shift_malignant": float(np.nanmean((jpeg[:, i] - p)[sel & (y == 1)])),
                        **auroc_ci(y[sel], jpeg[sel, i], groups[sel]),
                        "vs_1x": delta_ci(y[sel], jpeg[sel, i], p[sel], groups[sel]),
                    }
                    for name, sel in [("pooled", np.ones(len(y), bool))]
                    + [(s, site == s) for s in SITES]
                }
                for i, q in enumerate(JPEG_QUALITIES)
            },
            "spearman_area": {"pooled": spearman(p, rows["area"])},
            "auroc": {},
            "scale": {},
            "scale_same_box": {},
            "strata": {},
        }
        for name, sel in [("pooled", np.ones(len(y), bool))] + [(s, site == s) for s in SITES]:
            r["auroc"][name] = auroc_ci(y[sel], p[sel], groups[sel])
            r["scale"][name] = {
                f"{f}x": {
                    **auroc_ci(y[sel], scaled[sel, i], groups[sel]),
                    "vs_1x": delta_ci(y[sel], scaled[sel, i], p[sel], groups[sel]),
                }
                for i, f in enumerate(SCALES)
            }
            r["scale_same_box"][name] = {
                f"{f}x": {
                    **auroc_ci(y[sel], scaled_box[sel, i], groups[sel]),
                    "vs_1x": delta_ci(y[sel], scaled_box[sel, i], p[sel], groups[sel]),
                }
                for i, f in enumerate(SCALES)
            }
            if name != "pooled":
                r["spearman_area"][name] = spearman(p[sel], rows["area"][sel])
        ddti = site == "ddti"
        strata = {
            "ddti single panel": ddti & ~rows["two_panel"],
            "ddti two panels": ddti & rows["two_panel"],
        }
        for s in SITES:
            sel = site == s
            cuts = np.percentile(rows["size"][sel], [100 / 3, 200 / 3])
            tercile = np.digitize(rows["size"], cuts)
            for t, name in enumerate(("small", "middle", "large")):
                strata[f"{s} size {name}"] = sel & (tercile == t)
        for name, sel in strata.items():
            r["strata"][name] = auroc_ci(y[sel], p[sel], groups[sel])
        result["modes"][mode] = r
    return result


def fmt_auc(entry: dict) -> str:
    if entry["auroc"] is None:
        return f"n/a (n={entry['n']})"
    lo, hi = entry["ci95"]
    return f"{entry['auroc']:.3f} [{lo:.2f}-{hi:.2f}] n={entry['n']}"


def fmt_delta(entry: dict) -> str:
    """AUROC with its difference from 1x and that difference's interval."""
    if entry["auroc"] is None or entry["vs_1x"]["delta"] is None:
        return "n/a"
    lo, hi = entry["vs_1x"]["ci95"]
    return f"{entry['auroc']:.3f} ({entry['vs_1x']['delta']:+.3f} [{lo:+.2f}, {hi:+.2f}])"


def table(summary: dict) -> str:
    modes = summary["modes"]
    lines = ["| check | " + " | ".join(modes) + " |", "|---" * (len(modes) + 1) + "|"]

    def add(name, *cells):
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    def each(fn):
        return [fn(m) for m in modes.values()]

    for key, label in (
        ("mean_abs_shift", "pasted marks: mean abs shift (target <= 0.01)"),
        ("mean_shift", "pasted marks: mean signed shift"),
        ("mean_abs_shift_benign", "pasted marks: mean abs shift, benign"),
        ("mean_abs_shift_malignant", "pasted marks: mean abs shift, malignant"),
        ("painted_only_mean_abs_shift", "same pixels painted out, no marks: mean abs shift"),
        ("detector_recall", "drawn mark pixels the marks detector finds (mean over images)"),
    ):
        if key == "detector_recall":
            add(label, *each(lambda m, key=key: f"{100 * m['marks'][key]:.1f} %"))
        else:
            add(label, *each(lambda m, key=key: f"{m['marks'][key]:+.3f}"))
    for key, label in (
        ("max_abs_shift", "1-3 px box change: max abs shift (target <= 0.02)"),
        ("p95_abs_shift", "1-3 px box change: 95th pct abs shift"),
        ("median_abs_shift", "1-3 px box change: median abs shift"),
    ):
        add(label, *each(lambda m, key=key: f"{m['box'][key]:.3f}"))
    for q in JPEG_QUALITIES:
        for s in ("pooled", *SITES):
            add(f"re-encoded as JPEG q{q}: mean / 95th pct abs shift, {s}",
                *each(lambda m, q=q, s=s: "{mean_abs_shift:.3f} / {p95_abs_shift:.3f}".format(
                    **m["jpeg"][f"q{q}"][s]) if "jpeg" in m else "n/a"))  # fmt: skip
            add(f"re-encoded as JPEG q{q}: mean signed shift benign / malignant, {s}",
                *each(lambda m, q=q, s=s: "{mean_shift_benign:+.3f} / {mean_shift_malignant:+.3f}"
                      .format(**m["jpeg"][f"q{q}"][s]) if "jpeg" in m else "n/a"))  # fmt: skip
            add(f"AUROC re-encoded as JPEG q{q} (vs 1x), {s}",
                *each(lambda m, q=q, s=s: fmt_delta(m["jpeg"][f"q{q}"][s]) if "jpeg" in m else "n/a"))  # fmt: skip
    for s in ("pooled", *SITES):
        add(f"Spearman(estimate, box area), {s}",
            *each(lambda m, s=s: f"{m['spearman_area'][s]:+.2f}"))  # fmt: skip
    for s in ("pooled", *SITES):
        add(f"AUROC 1x, {s}", *each(lambda m, s=s: fmt_auc(m["auroc"][s])))
        for f in SCALES:
            add(
                f"AUROC {f}x (vs 1x), {s}",
                *each(lambda m, s=s, f=f: fmt_delta(m["scale"][s][f"{f}x"])),
            )
            add(f"AUROC {f}x, same box (vs 1x), {s}",
                *each(lambda m, s=s, f=f: fmt_delta(m["scale_same_box"][s][f"{f}x"])))  # fmt: skip
    for name in next(iter(modes.values()))["strata"]:
        add(f"AUROC {name}", *each(lambda m, name=name: fmt_auc(m["strata"][name])))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument(
        "--limit", type=int, default=LIMIT, help=f"a seeded subsample of N images ({LIMIT}; 0: all)"
    )
    parser.add_argument("--box-changes", type=int, default=3, help="changed boxes per image")
    parser.add_argument("--json", type=Path, default=JSON_OUT, help="also write the figures here")
    parser.add_argument(
        "--models",
        nargs="+",
        default=[f"shipped={ROOT / 'resources' / 'models'}"],
        help="LABEL=DIR model folders to compare (each with its card's crop step)",
    )
    parser.add_argument(
        "--marks-step", choices=("keep", "inpaint"), help="force this crop step on every model"
    )
    args = parser.parse_args()
    args.models = [
        (label, Path(folder)) for label, folder in (m.split("=", 1) for m in args.models)
    ]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not all((args.data / s).exists() for s in SITES):
        print(f"no data at {args.data}")
        return 1
    t0 = time.perf_counter()
    summary = summarise(score_images(args))
    summary["seconds"] = time.perf_counter() - t0
    summary["command"] = "python benchmarks/bench_what_it_looks_at.py " + " ".join(sys.argv[1:])
    print(table(summary))
    labels = list(summary["modes"])
    for a, b in zip(labels, labels[1:], strict=False):
        pa, pb = (np.asarray(summary["per_image"][f"p_{m}"]) for m in (a, b))
        print(f"{b} against {a} on the unmarked images: mean |dp| {np.abs(pb - pa).mean():.3f}")
    print(f"n = {summary['n']} held-out images (card's test split), auto box found for "
          f"{summary['found_share']:.0%}; {summary['scope_refused_analyses']} analyses refused by "
          f"the scope check were analysed anyway, {summary['no_estimate_analyses']} gave no "
          f"estimate (left out); {summary['seconds']:.0f} s")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
