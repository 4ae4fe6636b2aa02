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
    ONNX_CARD_KEY,
    SEGMENTER_CARD_KEY,
    ModelError,
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
