"""The app's runtime: the shipped ONNX graphs are current, load without TensorFlow, and give
the Keras models' numbers through the app's own default path on real images."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from thyroid_desktop.core.models.runtime import requested_backend
from thyroid_desktop.core.models.shipped import (
    CARD_FILE,
    GLAND_CARD_KEY,
    INT8_CARD_KEY,
    ONNX_CARD_KEY,
    SEGMENTER_CARD_KEY,
    ModelError,
    int8_entry,
    load_card,
    load_classifier,
    load_segmenter,
    onnx_entry,
    sha256_file,
)

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_graphs_are_converted_from_the_shipped_keras_files():
    card = load_card()
    sections = [card.raw, card.raw[SEGMENTER_CARD_KEY], card.raw[GLAND_CARD_KEY]]
    for section in sections:
        entry = onnx_entry(section)
        assert entry is not None, f"{section['file']}: no current ONNX graph (training.onnx_export)"
        assert sha256_file(card.directory / entry["file"]) == entry["sha256"]
        assert sha256_file(card.directory / section["file"]) == entry["source_sha256"]
        assert all(gap < 1e-3 for gap in entry["parity"].values())
    assert len(card.onnx["platt"]) == 2


def test_the_app_runs_onnx_by_default(classifier, segmenter):
    assert classifier.runtime == "ONNX Runtime" and classifier.model is None
    assert segmenter.session is not None and segmenter.gland.session is not None


def test_start_up_path_never_imports_tensorflow():
    code = (
        "import sys\n"
        "from thyroid_desktop.core.io.images import from_array\n"
        "from thyroid_desktop.core.pipeline.estimate import auto_predict\n"
        "from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter\n"
        "from thyroid_desktop.core.io.phantom import make_phantom\n"
        "finding, _ = auto_predict(from_array(make_phantom().pixels), load_classifier(),"
        " load_segmenter())\n"
        "print(finding.roi_source, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["auto", "False", "False"]


def test_backend_choice(monkeypatch):
    monkeypatch.delenv("THYROID_BACKEND", raising=False)
    assert requested_backend() == "onnx"
    monkeypatch.setenv("THYROID_BACKEND", "Keras")
    assert requested_backend() == "keras"
    monkeypatch.setenv("THYROID_BACKEND", "tflite")
    assert requested_backend() == "onnx"


def test_a_graph_from_other_weights_is_not_used():
    section = {"sha256": "a" * 64, ONNX_CARD_KEY: {"file": "x.onnx", "source_sha256": "b" * 64}}
    assert onnx_entry(section) is None
    section[ONNX_CARD_KEY]["source_sha256"] = "a" * 64
    assert onnx_entry(section)["file"] == "x.onnx"
    assert onnx_entry({"sha256": "a" * 64}) is None


def _models_copy(tmp_path: Path) -> Path:
    out = tmp_path / "models"
    shutil.copytree(load_card().directory, out)
    return out


def test_a_damaged_graph_is_reported_not_run(tmp_path):
    models = _models_copy(tmp_path)
    graph = models / json.loads((models / CARD_FILE).read_text())[ONNX_CARD_KEY]["file"]
    graph.write_bytes(graph.read_bytes()[:1000])
    with pytest.raises(ModelError, match="corrupted"):
        load_classifier(models, backend="onnx")
    seg_graph = models / "segmenter.onnx"
    seg_graph.write_bytes(b"not a graph")
    with pytest.raises(ModelError, match="corrupted"):
        load_segmenter(models, backend="onnx")


def test_a_stale_graph_runs_the_keras_file_and_a_replaced_keras_file_is_refused(tmp_path):
    models = _models_copy(tmp_path)
    card = json.loads((models / CARD_FILE).read_text())
    card[SEGMENTER_CARD_KEY][ONNX_CARD_KEY]["source_sha256"] = (
        "0" * 64
    )  # retrained, not re-exported
    (models / CARD_FILE).write_text(json.dumps(card))
    seg = load_segmenter(models)
    assert seg.session is None and seg.model is not None  # Keras runs it
    assert seg.gland.session is not None  # the gland's graph is current
    with open(models / card["file"], "r+b") as fh:  # the classifier's Keras file replaced
        fh.seek(100)
        fh.write(b"\x00other\x00")
    with pytest.raises(ModelError, match="corrupted"):
        load_classifier(models, backend="onnx")


def test_without_keras_a_stale_graph_says_so(tmp_path, monkeypatch):
    models = _models_copy(tmp_path)
    card = json.loads((models / CARD_FILE).read_text())
    card[ONNX_CARD_KEY]["source_sha256"] = "0" * 64
    (models / CARD_FILE).write_text(json.dumps(card))
    (models / card["file"]).unlink()  # as in the bundle: no Keras files
    monkeypatch.setitem(sys.modules, "keras", None)  # and no Keras
    with pytest.raises(ModelError, match="no current ONNX graph"):
        load_classifier(models)
    monkeypatch.setenv("THYROID_BACKEND", "keras")  # asked for, absent: the graph runs
    assert load_segmenter(models).session is not None


def test_the_graphs_calibration_must_be_the_cards(tmp_path):
    models = _models_copy(tmp_path)
    card = json.loads((models / CARD_FILE).read_text())
    card[ONNX_CARD_KEY]["platt"][1] += 0.1
    (models / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="calibration"):
        load_classifier(models, backend="onnx")


@pytest.fixture(scope="module")
def keras_models():
    """The same shipped models run by Keras (imports TensorFlow)."""
    return load_classifier(backend="keras"), load_segmenter(backend="keras")


@pytest.mark.realdata
def test_onnx_and_keras_agree_through_the_default_path_on_real_images(
    shared_data, classifier, segmenter, keras_models
):
    from thyroid_desktop.core.analysis import AnalysisService

    with open(shared_data / "ddti" / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[::40][:8]
    fast = AnalysisService(classifier, segmenter, None)
    slow = AnalysisService(*keras_models, None)
    assert keras_models[0].runtime == "Keras" and keras_models[1].session is None
    for row in rows:
        path = shared_data / "ddti" / row["file"]
        a, b = (s.analyse_file(path, scan_area_fallback=True).finding for s in (fast, slow))
        assert a.roi == b.roi, row["file"]  # the same detected box
        assert a.probability == pytest.approx(b.probability, abs=1e-3), row["file"]
        assert a.spread == pytest.approx(b.spread, abs=1e-3)
        assert np.abs(a.heatmap - b.heatmap).max() < 1e-2
        assert (a.tirads_suggestion is None) == (b.tirads_suggestion is None)
        if a.tirads_suggestion is not None:
            assert a.tirads_suggestion.points == b.tirads_suggestion.points


def test_the_shipped_graph_maps_only_the_views_that_use_them(classifier):
    """The box jitters are only scored: their maps are not computed, and neither the logits nor
    the crop's and mirror's maps change."""
    from thyroid_desktop.core.models.runtime import CAM_OUTPUT, CAM_ROWS_INPUT, LOGIT_OUTPUT
    from training.onnx_export import parity_inputs

    session = load_classifier(backend="onnx", precision="float").session
    size = classifier.card.input_size
    x = parity_inputs(size, n=6)
    name = session.get_inputs()[0].name
    every_logit, every_map = session.run([LOGIT_OUTPUT, CAM_OUTPUT], {name: x})
    assert every_map.shape[0] == 6  # a caller that does not ask gets every map, as before
    logit, maps = session.run(
        [LOGIT_OUTPUT, CAM_OUTPUT], {name: x, CAM_ROWS_INPUT: np.array([2], np.int64)}
    )
    assert maps.shape[0] == 2
    np.testing.assert_allclose(logit, every_logit, atol=1e-5)
    np.testing.assert_allclose(maps, every_map[:2], atol=1e-4)


def test_precision_choice(monkeypatch):
    from thyroid_desktop.core.models.runtime import requested_precision

    monkeypatch.delenv("THYROID_PRECISION", raising=False)
    assert requested_precision() == "float" and requested_precision("int8") == "int8"
    monkeypatch.setenv("THYROID_PRECISION", "INT8")
    assert requested_precision() == "int8"
    monkeypatch.setenv("THYROID_PRECISION", "fp16")
    assert requested_precision("float") == "float"


def test_the_int8_graph_is_current_and_selectable(tmp_path, monkeypatch):
    card = load_card()
    entry = int8_entry(card.onnx)
    assert entry is not None, "no current int8 graph (python -m training.quantize)"
    assert sha256_file(card.directory / entry["file"]) == entry["sha256"]
    assert (card.directory / entry["file"]).stat().st_size < 50e6
    for name in ("ddti_test", "chaouchi_all"):
        figures = entry["evaluation"][name]
        assert figures["n"] > 50 and "auroc_int8_ci95" in figures
    monkeypatch.setenv("THYROID_PRECISION", "float")
    assert load_classifier(backend="onnx").precision == "float"
    monkeypatch.setenv("THYROID_PRECISION", "int8")
    quantised = load_classifier(backend="onnx")
    assert quantised.precision == "int8"
    # Re-exported float graph without re-quantising: the stale int8 graph is not run.
    models = _models_copy(tmp_path)
    raw = json.loads((models / CARD_FILE).read_text())
    raw[ONNX_CARD_KEY][INT8_CARD_KEY]["source_sha256"] = "0" * 64
    (models / CARD_FILE).write_text(json.dumps(raw))
    assert load_classifier(models, backend="onnx").precision == "float"


@pytest.mark.realdata
def test_the_int8_graph_scores_like_the_float_graph_through_the_app_path(shared_data, segmenter):
    """A few ddti images (development and test): the same box, probabilities within the
    card's max |dp|."""
    from thyroid_desktop.core.analysis import AnalysisService
    from thyroid_desktop.core.io.images import open_image
    from thyroid_desktop.core.pipeline.estimate import predict

    fp, q = (load_classifier(backend="onnx", precision=p) for p in ("float", "int8"))
    assert q.precision == "int8"
    # the largest |dp| the card measured on any of its sets (development images included)
    evaluation = int8_entry(fp.card.onnx)["evaluation"]
    limit = max(v["max_abs_dp"] for v in evaluation.values() if isinstance(v, dict))
    service = AnalysisService(fp, segmenter, None)
    with open(shared_data / "ddti" / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[5::60][:5]
    for row in rows:
        path = shared_data / "ddti" / row["file"]
        a = service.analyse_file(path, action=None, scan_area_fallback=True).finding
        b = predict(open_image(path), q, a.roi, a.roi_source)
        assert abs(a.probability - b.probability) <= max(limit, 0.05), row["file"]
        assert b.heatmap.shape == a.heatmap.shape and b.heatmap.max() > 0
