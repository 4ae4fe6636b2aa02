"""Static int8 quantisation of the classifier's ONNX graph, and its check against the float
graph through the app's default path.

The forward pass (blocks 2 to 7 of the backbone) is quantised to int8 in the QDQ format, with
per-channel weight scales and activation ranges calibrated on real classifier crops of
development images (``training.data.load_crops``, the app's crop code; no test-split image).
The stem, block 1 and the head (top convolution, pooling, features, logit) stay in float: with
them quantised the AUROC fell by 0.06 (issue 25). Grad-CAM's reverse pass stays in float too (it
reads the quantised forward activations through their ReLU masks and the conv map).

Then both graphs score the card's held-out ddti test split and every chaouchi image (a second
site; the card's chaouchi test images are reported on their own as well) through the app's
analysis service (the segmenter's best box, else the scan area; crop, mirror and box jitters)
with the same box for both graphs, and the card records AUROC with its 95 % CI for each graph,
the calls flipped at the shipped threshold and the mean / max |difference| of the probability.
The int8 graph becomes the app's default (``onnx.int8.default``) only if the guard of issue 25
holds on every set: AUROC within 0.005 of the float graph's and at most 2 % of calls flipped.
``THYROID_PRECISION=float|int8`` overrides the card's choice at run time.

Usage: ``python -m training.quantize [--data ../shared/data] [--models resources/models]
[--calibration 96]`` (writes ``classifier.int8.onnx`` and the card's ``onnx.int8`` entry; prints
the figures). Run it after ``training.onnx_export``, which keeps the entry but makes it stale
(its ``source_sha256`` names the float graph it came from).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from thyroid_desktop.core.io.files import write_atomically
from thyroid_desktop.core.models.shipped import CARD_FILE, INT8_CARD_KEY, ONNX_CARD_KEY, sha256_file

log = logging.getLogger(__name__)

INT8_FILE = "classifier.int8.onnx"
#: Forward layers kept in float: the stem, block 1 and the head (and the input scaling).
FLOAT_LAYERS = re.compile(
    r"^t/(input|preprocess|stem_|block1[a-z]_|top_|pool_|features|feature_norm|malignancy_logit|calibrated_probability)"
)
#: The Grad-CAM reverse pass (``training.onnx_export.gradcam_nodes``), kept in float.
REVERSE_PASS = re.compile(r"^t/(grad|cam)/|^grad/")
#: The guard of issue 25: the largest AUROC change and share of flipped calls accepted.
MAX_AUROC_CHANGE = 0.005
MAX_FLIPPED = 0.02


def float_nodes(model) -> list[str]:
    """Names of the nodes the quantiser must leave in float."""
    return [
        n.name
        for n in model.graph.node
        if FLOAT_LAYERS.match(n.name) or REVERSE_PASS.match(n.name) or not n.name.startswith("t/")
    ]


class _Crops:
    """Calibration batches for ``quantize_static``."""

    def __init__(self, name: str, crops: np.ndarray, batch: int) -> None:
        self._batches = iter(
            [{name: crops[i : i + batch].astype(np.float32)} for i in range(0, len(crops), batch)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def calibration_pool(data: Path, card: dict) -> list:
    """The development images (no test-split file) of the sites the classifier trains on,
    from which calibration crops are drawn."""
    from training.app_path.cache import development_samples
    from training.app_path.recipes import SITES

    samples = development_samples(data, set(card["data"]["split"]["test_files"]))
    return [s for s in samples if s.dataset in SITES]


def calibration_picks(n_pool: int, n: int, seed: int = 0) -> list[int]:
    """Indices of the ``n`` images drawn from a pool of ``n_pool`` (sorted, seeded)."""
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(n_pool, min(n, n_pool), False).tolist())


def card_crops(samples: list, card: dict) -> np.ndarray:
    """The classifier crops of ``samples`` cut by the app's crop code as the card asks
    (input side, margin, marks step, detail limit)."""
    from training.data import load_crops

    crop = card["crop"]
    return load_crops(
        samples,
        int(card["input_size"]),
        float(crop["margin"]),
        marks=str(crop.get("marks", "keep")),
        resolution=crop.get("resolution"),
    )


def calibration_crops(data: Path, card: dict, n: int, seed: int = 0) -> np.ndarray:
    """``n`` classifier crops of development images (no test-split file), spread over the
    sites and labels, cut by the app's crop code as the card asks (marks step, detail limit)."""
    pool = calibration_pool(data, card)
    return card_crops([pool[i] for i in calibration_picks(len(pool), n, seed)], card)


def quantize(
    float_graph: Path,
    dst: Path,
    crops: np.ndarray,
    batch: int = 4,
    method: str = "MinMax",
    op_types: list[str] | None = None,
    also_float: str | None = None,
) -> None:
    """Writes the QDQ int8 graph of ``float_graph`` calibrated on ``crops`` (``method``: a
    ``CalibrationMethod`` name; ``op_types``: the node types quantised, default all;
    ``also_float``: a regular expression of more node names kept in float)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Folds batch norms into the convolutions (as ONNX Runtime does at load) so that the
        # quantised weights are the ones that run.
        quant_pre_process(str(float_graph), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        keep = float_nodes(model)
        if also_float:
            keep += [n.name for n in model.graph.node if re.search(also_float, n.name)]
        name = model.graph.input[0].name
        quantize_static(
            str(prepared),
            str(dst),
            _Crops(name, crops, batch),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=keep,
            calibrate_method=CalibrationMethod[method],
            op_types_to_quantize=op_types,
        )


def _scores(data: Path, card: dict, float_clf, int8_clf, seg) -> dict[str, dict[str, Any]]:
    """Per site: labels, groups, test flags and both graphs' probabilities through the app's
    path (the same box for both)."""
    from thyroid_desktop.core.analysis import AnalysisService
    from thyroid_desktop.core.io.images import open_image
    from thyroid_desktop.core.pipeline.estimate import predict
    from training.data import load_dataset, sample_key

    service = AnalysisService(float_clf, seg, None)
    test_files = set(card["data"]["split"]["test_files"])
    sets: dict[str, Any] = {
        "ddti": [s for s in load_dataset(data / "ddti") if sample_key(s) in test_files],
        "chaouchi": load_dataset(data / "chaouchi"),
    }
    out: dict[str, dict[str, Any]] = {}
    for site, samples in sets.items():
        rows = []
        for s in samples:
            f = service.analyse_file(s.path, action=None, scan_area_fallback=True).finding
            q = predict(open_image(s.path), int8_clf, f.roi, f.roi_source)
            rows.append(
                (s.label, s.group, sample_key(s) in test_files, f.probability, q.probability)
            )
        y, g, t, pf, pq = zip(*rows, strict=True)
        out[site] = {
            "y": np.array(y),
            "groups": list(g),
            "test": np.array(t),
            "float": np.array(pf),
            "int8": np.array(pq),
        }
        log.info("%s: %d images scored", site, len(samples))
    return out


def compare(y, groups, p_float, p_int8, threshold: float) -> dict[str, Any]:
    """AUROC (95 % CI over groups) of each graph, calls flipped at ``threshold`` and the
    probability's mean / max |difference|."""
    from thyroid_desktop.core.site.metrics import compute_metrics

    a, b = (compute_metrics(y, p, groups, threshold) for p in (p_float, p_int8))
    flipped = int(np.sum((p_float >= threshold) != (p_int8 >= threshold)))
    dp = np.abs(p_int8 - p_float)
    return {
        "n": int(len(y)),
        "auroc_float": a.auroc,
        "auroc_float_ci95": list(a.auroc_ci95),
        "auroc_int8": b.auroc,
        "auroc_int8_ci95": list(b.auroc_ci95),
        "auroc_change": b.auroc - a.auroc,
        "flipped": flipped,
        "flipped_fraction": flipped / max(len(y), 1),
        "mean_abs_dp": float(dp.mean()),
        "max_abs_dp": float(dp.max()),
    }


def guard_holds(figures: dict[str, dict[str, Any]]) -> bool:
    """Issue 25's guard on every evaluated set."""
    return all(
        abs(f["auroc_change"]) <= MAX_AUROC_CHANGE and f["flipped_fraction"] <= MAX_FLIPPED
        for f in figures.values()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--models", type=Path, default=Path("resources/models"))
    parser.add_argument("--calibration", type=int, default=96, help="calibration crops")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    from thyroid_desktop.core.models.runtime import onnx_session
    from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter

    card_path = args.models / CARD_FILE
    card = json.loads(card_path.read_text())
    src = args.models / card[ONNX_CARD_KEY]["file"]
    dst = args.models / INT8_FILE
    t0 = time.perf_counter()
    crops = calibration_crops(args.data, card, args.calibration)
    write_atomically(dst, lambda p: quantize(src, p, crops))
    log.info(
        "quantised in %.0f s: %s (%.1f MB)", time.perf_counter() - t0, dst, dst.stat().st_size / 1e6
    )

    float_clf = load_classifier(args.models, backend="onnx", precision="float")
    # The new graph is not in the card yet: the float classifier with the int8 session.
    int8_clf = dataclasses.replace(float_clf, session=onnx_session(dst), precision="int8")
    seg = load_segmenter(args.models)
    scores = _scores(args.data, card, float_clf, int8_clf, seg)
    threshold = float(card["threshold"])
    figures: dict[str, dict[str, Any]] = {}
    for site, s in scores.items():
        name = "ddti_test" if site == "ddti" else "chaouchi_all"
        figures[name] = compare(s["y"], s["groups"], s["float"], s["int8"], threshold)
        if site == "chaouchi":
            t = s["test"]
            figures["chaouchi_test"] = compare(
                s["y"][t],
                [g for g, k in zip(s["groups"], t, strict=True) if k],
                s["float"][t],
                s["int8"][t],
                threshold,
            )
    default = guard_holds(figures)
    entry = {
        "file": dst.name,
        "sha256": sha256_file(dst),
        "source_sha256": sha256_file(src),
        "format": "QDQ, int8 weights per channel, uint8 activations (MinMax)",
        "float_layers": "stem, block 1, head (top conv, pooling, features, logit); the Grad-CAM reverse pass",
        "calibration": f"{len(crops)} classifier crops of development images (ddti, chaouchi)",
        "evaluation": {
            "path": "the app's analysis service, the same box for both graphs (segmenter's "
            "best candidate, else the scan area); crop, mirror and box jitters",
            "threshold": threshold,
            "guard": f"AUROC within {MAX_AUROC_CHANGE}, calls flipped <= {MAX_FLIPPED:.0%}",
            **figures,
        },
        "default": default,
        "command": "python -m training.quantize",
    }
    # Re-read right before writing: others edit other keys of the card.
    card = json.loads(card_path.read_text())
    card[ONNX_CARD_KEY][INT8_CARD_KEY] = entry
    write_atomically(card_path, lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
    print(json.dumps(entry, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
