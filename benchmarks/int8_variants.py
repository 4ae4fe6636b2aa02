"""How far each way of quantising the classifier moves its logit, on development crops.

``training.quantize`` writes one int8 graph (MinMax ranges from 96 calibration crops; the
stem, block 1, the head and the Grad-CAM reverse pass in float) and checks it through the
app's path on the test split; it fails issue 25's guard (at most 2 % of calls flipped). This
script asks whether another post-training recipe would pass, without reading the test
split: each variant is quantised from the shipped float graph and run, like the float
graph, on classifier crops of development images the calibration did not use (cut by the
app's crop code as the card asks; one crop each, no mirror or jitters), and compared with
the float graph on the same crops:

- mean and 95th percentile |logit change| (the shipped head's logit; the spread of the float
  logits between images is printed for scale), mean |change| of the calibrated probability
  and the share of calls flipped at the card's threshold;
- ms of one app batch (4 views, 2 maps), one run after the other in this process (a rough
  guide only: time speed with ``bench_predict.py --quick``, alternated, in separate processes).

Variants: the shipped recipe re-run (its file compared with the shipped int8 graph's sha256);
Percentile calibration (Entropy is not offered: as ``quantize_static`` runs it, with 128 bins
and 128 quantised bins, it reduces to MinMax); 296 calibration crops
instead of 96; blocks 6-7 or 7 also in float; and, on the shipped recipe's features, the
head corrected per feature (a least-squares map from each int8 feature to the float one,
fitted on the calibration crops): if the int8 error were a systematic bias or scale of the
features, that would remove it. With the development feature cache (``--cache``), R4's head
is also refitted with R6's penalty on the int8-minus-float feature differences of the 296
calibration crops and their mirrors (592 rows): if the noise lay in a few directions, the
head could learn to ignore them.

At one crop per image, calls flipped on 240 crops (1 % = 2-3 crops) cannot decide the guard;
the logit change is the figure to compare.

Usage: python benchmarks/int8_variants.py [--data ../shared/data] [--models resources/models]
[--eval 240] [--cache runs/app_path_v2] [--only NAME ...] [--json out.json]   (2-4 minutes here)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: name -> keyword arguments of ``training.quantize.quantize`` (and ``crops``: "more" for the
#: 96 + 200 calibration crops).
VARIANTS: dict[str, dict] = {
    "shipped recipe (MinMax, 96 crops)": {},
    "Percentile calibration": {"method": "Percentile"},
    "296 calibration crops": {"crops": "more"},
    "block 7 also in float": {"also_float": r"^t/block7"},
    "blocks 6-7 also in float": {"also_float": r"^t/block[67]"},
}
CALIBRATION, MORE_CALIBRATION, SEED = 96, 200, 0


def crops_of(data: Path, card: dict, n_eval: int) -> dict[str, np.ndarray]:
    """The shipped calibration crops (``training.quantize.calibration_crops``' draw), 200
    more development crops for calibration and ``n_eval`` others for evaluation."""
    from training.quantize import calibration_picks, calibration_pool, card_crops

    pool = calibration_pool(data, card)
    calib = calibration_picks(len(pool), CALIBRATION, SEED)
    rest = np.array(sorted(set(range(len(pool))) - set(calib)))
    order = np.random.default_rng(SEED + 1).permutation(rest)
    groups = {
        "calibration": calib,
        "more": sorted(order[:MORE_CALIBRATION].tolist()),
        "eval": sorted(order[MORE_CALIBRATION : MORE_CALIBRATION + n_eval].tolist()),
    }
    return {k: card_crops([pool[i] for i in idx], card) for k, idx in groups.items()}


def run_graph(path: Path, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Logits and pooled features of ``crops`` (no maps), and the median ms of one app batch
    (4 views, 2 maps)."""
    from thyroid_desktop.core.models.runtime import CAM_ROWS_INPUT, onnx_session

    session = onnx_session(path)
    name = session.get_inputs()[0].name
    logits, feats = [], []
    for i in range(0, len(crops), 8):
        feed = {name: crops[i : i + 8].astype(np.float32), CAM_ROWS_INPUT: np.array([0], np.int64)}
        lg, f = session.run(["logit", "features"], feed)
        logits.append(lg[:, 0])
        feats.append(f)
    batch = {name: crops[:4].astype(np.float32), CAM_ROWS_INPUT: np.array([2], np.int64)}
    outputs = [o.name for o in session.get_outputs()]
    session.run(outputs, batch)
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        session.run(outputs, batch)
        times.append(1000 * (time.perf_counter() - t0))
    return np.concatenate(logits), np.concatenate(feats), statistics.median(times)


def compare(ref: np.ndarray, got: np.ndarray, card: dict) -> dict:
    """Logit and probability changes of ``got`` against the float graph's ``ref``."""
    from thyroid_desktop.core.site.calibration import sigmoid

    a, b = (float(v) for v in card["onnx"]["platt"])
    threshold = float(card["threshold"])
    pf, pq = sigmoid(a * ref + b), sigmoid(a * got + b)
    d = np.abs(got - ref)
    return {
        "mean_abs_dlogit": float(d.mean()),
        "p95_abs_dlogit": float(np.quantile(d, 0.95)),
        "mean_abs_dp": float(np.abs(pq - pf).mean()),
        "flipped_share": float(np.mean((pf >= threshold) != (pq >= threshold))),
    }


def head_weights(float_graph: Path) -> tuple[np.ndarray, float]:
    """The graph's head as one weight per pooled feature and an offset."""
    import onnx
    from onnx import numpy_helper

    init = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(float_graph)).graph.initializer}
    mean, std = init["feature_norm/mean"].ravel(), init["feature_norm/std"].ravel()
    w = init["malignancy_logit/W"].ravel()
    return w / std, float(init["malignancy_logit/B"].ravel()[0] - (mean / std) @ w)


def penalised_heads(args, card: dict, differences, float_feats, int8_feats) -> dict:
    """R4's head refitted on every development image's rows, plain and with R6's penalty
    (``training.app_path.invariant``) on ``differences`` (int8-minus-float features of the
    calibration crops and their mirrors); per head, the held-back crops' mean |logit change| from float to int8
    features as a share of the float logits' SD between images."""
    import training.app_path as A
    from training.app_path.cv import design, head_logits
    from training.app_path.invariant import fit_invariant_head

    samples = A.development_samples(args.data, set(card["data"]["split"]["test_files"]))
    cache = A.load_cache(args.cache, samples)
    x, y, w = design(cache, np.arange(len(cache)), A.RECIPES["R4"])
    out = {}
    for strength in (0.0, 1.0, 10.0, 100.0):
        head = fit_invariant_head(x, y, w, A.C_SHIPPED, differences, strength)
        lf, lq = head_logits(head, float_feats), head_logits(head, int8_feats)
        out[f"strength {strength:g}"] = float(np.abs(lq - lf).mean() / lf.std())
        print(
            f"head penalised for the int8 differences, strength {strength:g}: "
            f"mean |logit change| / SD {out[f'strength {strength:g}']:.3f}",
            flush=True,
        )
    return out


def main(argv: list[str] | None = None) -> int:
    from thyroid_desktop.core.models.shipped import sha256_file
    from training.data import DEFAULT_DATA
    from training.quantize import quantize

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--models", type=Path, default=ROOT / "resources" / "models")
    parser.add_argument("--eval", type=int, default=240, help="evaluation crops")
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run")
    parser.add_argument(
        "--cache",
        type=Path,
        default=ROOT / "runs" / "app_path_v2",
        help="development feature cache for the noise-penalised heads (skipped when absent)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    card = json.loads((args.models / "model_card.json").read_text())
    float_graph = args.models / card["onnx"]["file"]
    t0 = time.perf_counter()
    crops = crops_of(args.data, card, args.eval)
    ref, ref_feats, float_ms = run_graph(float_graph, crops["eval"])
    out: dict = {
        "eval_crops": len(crops["eval"]),
        "float": {"ms_app_batch": float_ms, "logit_sd_between_images": float(ref.std())},
        "variants": {},
    }
    print(f"float graph: {float_ms:.1f} ms a batch; logit SD between images {ref.std():.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, kwargs in VARIANTS.items():
            if args.only and name not in args.only:
                continue
            kwargs = dict(kwargs)
            calib = crops["calibration"]
            if kwargs.pop("crops", None) == "more":
                calib = np.concatenate([calib, crops["more"]])
            dst = Path(tmp) / "variant.onnx"
            quantize(float_graph, dst, calib, **kwargs)
            logits, feats, ms = run_graph(dst, crops["eval"])
            row = compare(ref, logits, card) | {"ms_app_batch": ms}
            cos = (feats * ref_feats).sum(1) / (
                np.linalg.norm(feats, axis=1) * np.linalg.norm(ref_feats, axis=1)
            )
            rel = np.linalg.norm(feats - ref_feats, axis=1) / np.linalg.norm(ref_feats, axis=1)
            row |= {
                "feature_cosine_median": float(np.median(cos)),
                "feature_relative_error_median": float(np.median(rel)),
            }
            if name.startswith("shipped"):
                shipped_sha = card["onnx"].get("int8", {}).get("sha256")
                row["same_file_as_shipped_int8"] = sha256_file(dst) == shipped_sha
                print(
                    f"re-run shipped recipe == shipped int8 file: {row['same_file_as_shipped_int8']}"
                )
                # The same graph's features, corrected per feature by a least-squares map
                # fitted on the calibration crops.
                _, cal_q, _ = run_graph(dst, calib)
                _, cal_f, _ = run_graph(float_graph, calib)
                cq, cf = cal_q - cal_q.mean(0), cal_f - cal_f.mean(0)
                slope = (cq * cf).sum(0) / ((cq * cq).sum(0) + 1e-12)
                offset = cal_f.mean(0) - slope * cal_q.mean(0)
                w, b = head_weights(float_graph)
                fixed = (feats * slope + offset) @ w + b
                out["variants"]["shipped recipe, head corrected per feature"] = compare(
                    ref, fixed, card
                )
                if args.cache.exists():
                    both = np.concatenate([calib, crops["more"]])
                    both = np.concatenate([both, both[:, :, ::-1]])
                    _, pen_q, _ = run_graph(dst, both)
                    _, pen_f, _ = run_graph(float_graph, both)
                    out["noise_penalised_heads"] = penalised_heads(
                        args, card, pen_q - pen_f, ref_feats, feats
                    )
            out["variants"][name] = row
            print(
                f"{name}: |dlogit| mean {row['mean_abs_dlogit']:.2f} p95 {row['p95_abs_dlogit']:.2f}, "
                f"|dp| {row['mean_abs_dp']:.3f}, flipped {100 * row['flipped_share']:.1f} %, "
                f"features: cosine {row['feature_cosine_median']:.4f}, relative error "
                f"{row['feature_relative_error_median']:.3f}; {ms:.1f} ms a batch",
                flush=True,
            )
    if "shipped recipe, head corrected per feature" in out["variants"]:
        row = out["variants"]["shipped recipe, head corrected per feature"]
        print(
            f"shipped recipe, head corrected per feature: |dlogit| mean "
            f"{row['mean_abs_dlogit']:.2f} p95 {row['p95_abs_dlogit']:.2f}, |dp| "
            f"{row['mean_abs_dp']:.3f}, flipped {100 * row['flipped_share']:.1f} %"
        )
    out["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
