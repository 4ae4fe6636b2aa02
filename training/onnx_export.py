"""Converts the shipped Keras models into ONNX graphs for the app's fast runtime (ONNX
Runtime: about 0.2 s to import, against 3-5 s for TensorFlow), and checks that both give the
same numbers.

The app reads these files at start-up instead of importing TensorFlow (issue 11: first result
<= 3 s after the window appears). The Keras files stay the source of truth: each ONNX file
records the sha256 of the ``.keras`` file it came from, and the app falls back to Keras when
they disagree.

Only the layer types our models use are converted (Rescaling, Conv2D, DepthwiseConv2D,
BatchNormalization, ReLU, Activation, Dropout, Add, Concatenate, GlobalAveragePooling2D,
Normalization, Dense, UpSampling2D); anything else stops the export with its name.

Grad-CAM without a gradient engine: ONNX Runtime runs forward only, so the export writes
Grad-CAM's reverse pass into the classifier's graph (``gradcam_nodes``): from the malignancy
logit back to the card's Grad-CAM layer through every layer on the way (dense, normalisation,
concatenation, pooling, ReLU6 masks, batch-norm scales, residual sums, and adjoint
convolutions: a flipped-kernel convolution at stride 1, a transposed one with TF's "same"
padding otherwise), then the position-averaged gradient times the conv map, summed over
channels (``cam`` output, before the ReLU-and-max normalisation the app applies). A layer
without a reverse rule stops the export with its name. The reverse pass runs only for the first
``cam_rows`` views of the batch (a graph input, default: all): the app asks maps for the crop
and its mirror, not for the box jitters it only scores, which saves about a third of the
reverse pass's cost in the same single run.

Usage: ``python -m training.onnx_export [--models resources/models]`` (rewrites the ``.onnx``
files and the card's ``onnx`` entries; prints the parity figures).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from thyroid_desktop.core.io.files import write_atomically
from thyroid_desktop.core.models.gradcam import FEATURES_LAYER
from thyroid_desktop.core.models.runtime import (
    ALL_ROWS,
    CAM_OUTPUT,
    CAM_ROWS_INPUT,
    FEATURES_OUTPUT,
    LOGIT_OUTPUT,
    PROBABILITY,
)
from thyroid_desktop.core.models.shipped import (
    CARD_FILE,
    GLAND_CARD_KEY,
    INT8_CARD_KEY,
    ONNX_CARD_KEY,
    SEGMENTER_CARD_KEY,
    sha256_file,
)

log = logging.getLogger(__name__)

OPSET = 18
#: The rank of each output of the converted graphs.
_RANKS = {LOGIT_OUTPUT: 2, FEATURES_OUTPUT: 2, CAM_OUTPUT: 3, PROBABILITY: 4}
#: Largest |difference| accepted between Keras and ONNX Runtime (logit; probability maps).
LOGIT_TOLERANCE = 1e-3
MAP_TOLERANCE = 1e-3


class _Graph:
    """Accumulates ONNX nodes and initialisers; tensors are NCHW inside the graph."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        #: Initialisers that are also graph inputs (defaults a caller may override).
        self.inputs: list[str] = []

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def shared(self, name: str) -> str:
        """An initialiser added earlier (the reverse pass reuses the forward kernels)."""
        if not any(init.name == name for init in self.inits):
            raise KeyError(name)
        return name

    def node(self, op: str, inputs: list[str], output: str, final: bool = False, **attrs) -> str:
        """Adds a node; its output is named ``t/<output>`` (graph outputs: ``final``)."""
        from onnx import helper

        output = output if final else f"t/{output}"
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


def _activation(g: _Graph, name: str, x: str, activation: str) -> str:
    if activation in ("linear", None):
        return x
    ops = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
    if activation not in ops:
        raise ValueError(f"{name}: activation {activation!r} is not converted")
    return g.node(ops[activation], [x], f"{name}/act")


def _conv(g: _Graph, layer, x: str, depthwise: bool) -> str:
    cfg = layer.get_config()
    if cfg["data_format"] != "channels_last" or tuple(cfg["dilation_rate"]) != (1, 1):
        raise ValueError(f"{layer.name}: only channels_last, undilated convolutions are converted")
    weights = [np.asarray(w) for w in layer.get_weights()]
    kernel = weights[0]
    if depthwise:  # kh x kw x C x M -> C*M x 1 x kh x kw
        kh, kw, c, m = kernel.shape
        w = kernel.reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None]
        group = c
    else:  # kh x kw x Cin x Cout -> Cout x Cin x kh x kw
        w = kernel.transpose(3, 2, 0, 1)
        group = 1
    inputs = [x, g.const(f"{layer.name}/W", w.astype(np.float32))]
    if cfg["use_bias"]:
        inputs.append(g.const(f"{layer.name}/B", weights[1].astype(np.float32)))
    pad = {"same": "SAME_UPPER", "valid": "VALID"}[cfg["padding"]]  # SAME_UPPER == TF "same"
    out = g.node(
        "Conv",
        inputs,
        f"{layer.name}/conv",
        kernel_shape=list(w.shape[2:]),
        strides=list(cfg["strides"]),
        auto_pad=pad,
        group=group,
    )
    return _activation(g, layer.name, out, cfg["activation"])


def _convert_layer(g: _Graph, layer, inputs: list[str]) -> str:
    kind = type(layer).__name__
    cfg = layer.get_config()
    name = layer.name
    x = inputs[0]
    if kind == "Rescaling":
        scale = np.asarray(cfg["scale"], np.float32).reshape(1, -1, 1, 1)
        offset = np.asarray(cfg["offset"], np.float32).reshape(1, -1, 1, 1)
        y = g.node("Mul", [x, g.const(f"{name}/scale", scale)], f"{name}/mul")
        return g.node("Add", [y, g.const(f"{name}/offset", offset)], name)
    if kind in ("Conv2D", "DepthwiseConv2D"):
        if kind == "DepthwiseConv2D" and cfg["depth_multiplier"] != 1:
            raise ValueError(f"{name}: depth multiplier {cfg['depth_multiplier']} not converted")
        return _conv(g, layer, x, depthwise=kind == "DepthwiseConv2D")
    if kind == "BatchNormalization":
        if cfg["axis"] not in (-1, 3, [-1], [3]) or not (cfg["center"] and cfg["scale"]):
            raise ValueError(f"{name}: only channels-last, centred and scaled BN is converted")
        gamma, beta, mean, var = (np.asarray(w, np.float32) for w in layer.get_weights())
        return g.node(
            "BatchNormalization",
            [
                x,
                g.const(f"{name}/gamma", gamma),
                g.const(f"{name}/beta", beta),
                g.const(f"{name}/mean", mean),
                g.const(f"{name}/var", var),
            ],
            name,
            epsilon=float(cfg["epsilon"]),
        )
    if kind == "ReLU":
        if cfg.get("negative_slope", 0.0) or cfg.get("threshold", 0.0):
            raise ValueError(f"{name}: leaky or thresholded ReLU is not converted")
        if cfg.get("max_value") is None:
            return g.node("Relu", [x], name)
        lo = g.const(f"{name}/lo", np.float32(0.0))
        hi = g.const(f"{name}/hi", np.float32(cfg["max_value"]))
        return g.node("Clip", [x, lo, hi], name)
    if kind == "Activation":
        return _activation(g, name, x, cfg["activation"])
    if kind == "Dropout":
        return x
    if kind == "Add":
        out = x
        for i, other in enumerate(inputs[1:]):
            out = g.node("Add", [out, other], f"{name}/{i}")
        return out
    if kind == "Concatenate":
        if cfg["axis"] not in (-1,):
            raise ValueError(f"{name}: only the last (channel) axis is concatenated")
        return g.node("Concat", inputs, name, axis=1)  # channels: axis 1 in NCHW and in N x C
    if kind == "GlobalAveragePooling2D":
        if cfg.get("keepdims"):
            raise ValueError(f"{name}: keepdims is not converted")
        pooled = g.node("GlobalAveragePool", [x], f"{name}/pool")
        return g.node("Flatten", [pooled], name, axis=1)
    if kind == "Normalization":
        if getattr(layer, "invert", False):
            raise ValueError(f"{name}: inverted normalisation is not converted")
        mean = np.asarray(layer.mean, np.float32).reshape(1, -1)
        # Keras: (x - mean) / max(sqrt(variance), epsilon)
        std = np.maximum(np.sqrt(np.asarray(layer.variance, np.float32)), 1e-7).reshape(1, -1)
        y = g.node("Sub", [x, g.const(f"{name}/mean", mean)], f"{name}/sub")
        return g.node("Div", [y, g.const(f"{name}/std", std.astype(np.float32))], name)
    if kind == "Dense":
        w, *b = (np.asarray(v, np.float32) for v in layer.get_weights())
        y = g.node("MatMul", [x, g.const(f"{name}/W", w)], f"{name}/matmul")
        if b:
            y = g.node("Add", [y, g.const(f"{name}/B", b[0])], f"{name}/bias")
        return _activation(g, name, y, cfg["activation"])
    if kind == "UpSampling2D":
        interpolation = cfg["interpolation"]
        sy, sx = cfg["size"]
        scales = g.const(f"{name}/scales", np.array([1, 1, sy, sx], np.float32))
        if interpolation == "bilinear":  # tf.image.resize: half-pixel centres
            attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
        elif interpolation == "nearest":  # Keras repeats each pixel
            attrs = {
                "mode": "nearest",
                "coordinate_transformation_mode": "asymmetric",
                "nearest_mode": "floor",
            }
        else:
            raise ValueError(f"{name}: {interpolation} upsampling is not converted")
        return g.node("Resize", [x, "", scales], name, **attrs)
    raise ValueError(f"layer {name} ({kind}) has no ONNX conversion")


def _sources(layer) -> list[str]:
    """The names of the layers feeding ``layer`` (flat graphs only)."""
    if len(layer._inbound_nodes) != 1:
        raise ValueError(f"layer {layer.name} is shared; only flat graphs are converted")
    return [t._keras_history.operation.name for t in layer._inbound_nodes[0].input_tensors]


def _grad_layer(g: _Graph, layer, dy: str, inputs: list[str], shapes: list[tuple]) -> list[str]:
    """The gradients (ONNX tensors) of a layer's inputs, given that of its output ``dy``, for
    the layer types between the classifier's Grad-CAM layer and its logit."""
    kind = type(layer).__name__
    cfg = layer.get_config()
    name = f"grad/{layer.name}"
    if kind in ("Dropout",):
        return [dy]
    if kind == "Add":
        return [dy] * len(inputs)
    if kind == "Dense":
        if cfg["activation"] not in ("linear", None):
            raise ValueError(f"{layer.name}: gradient through {cfg['activation']} not built")
        w = np.asarray(layer.get_weights()[0], np.float32)
        return [g.node("MatMul", [dy, g.const(f"{name}/Wt", w.T.copy())], name)]
    if kind == "Normalization":
        std = np.maximum(np.sqrt(np.asarray(layer.variance, np.float32)), 1e-7).reshape(1, -1)
        return [g.node("Div", [dy, g.const(f"{name}/std", std.astype(np.float32))], name)]
    if kind == "Concatenate":
        sizes = np.array([s[-1] for s in shapes], np.int64)
        outs = [f"{name}/{i}" for i in range(len(inputs))]
        from onnx import helper

        g.nodes.append(
            helper.make_node("Split", [dy, g.const(f"{name}/sizes", sizes)], outs, axis=1)
        )
        return outs
    if kind == "GlobalAveragePooling2D":
        _, hh, ww, cc = shapes[0]
        axes = g.const(f"{name}/axes", np.array([2, 3], np.int64))
        col = g.node("Unsqueeze", [dy, axes], f"{name}/u")
        scaled = g.node(
            "Mul", [col, g.const(f"{name}/k", np.float32(1.0 / (hh * ww)))], f"{name}/s"
        )
        shape = g.const(f"{name}/shape", np.array([1, cc, hh, ww], np.int64))
        return [g.node("Expand", [scaled, shape], name)]
    if kind in ("ReLU", "Activation"):
        x = inputs[0]
        act = cfg.get("activation", "relu")
        if act == "linear":
            return [dy]
        if act != "relu" or cfg.get("negative_slope", 0.0) or cfg.get("threshold", 0.0):
            raise ValueError(f"{layer.name}: gradient through {act} not built")
        zero = g.const(f"{name}/zero", np.float32(0.0))
        mask = g.node("Greater", [x, zero], f"{name}/pos")
        if cfg.get("max_value") is not None:
            # Keras runs relu6 for 6 (TF's Relu6Grad: 0 < x < 6), else relu then a clip
            # (whose gradient also passes at x == max).
            top = g.const(f"{name}/top", np.float32(cfg["max_value"]))
            below = "Less" if float(cfg["max_value"]) == 6.0 else "LessOrEqual"
            mask = g.node("And", [mask, g.node(below, [x, top], f"{name}/low")], f"{name}/in")
        mask = g.node("Cast", [mask], f"{name}/mask", to=1)  # float
        return [g.node("Mul", [dy, mask], name)]
    if kind == "BatchNormalization":
        gamma, _, _, var = (np.asarray(v, np.float32) for v in layer.get_weights())
        k = (gamma / np.sqrt(var + float(cfg["epsilon"]))).reshape(
            (1, -1) + (1,) * (len(shapes[0]) - 2)  # N x C (a head) or N x C x H x W
        )
        return [g.node("Mul", [dy, g.const(f"{name}/k", k.astype(np.float32))], name)]
    if kind in ("Conv2D", "DepthwiseConv2D"):
        if cfg["activation"] not in ("linear", None):
            raise ValueError(f"{layer.name}: gradient through a fused activation not built")
        kernel = np.asarray(layer.get_weights()[0], np.float32)
        kh, kw, cin, _ = kernel.shape
        group = cin if kind == "DepthwiseConv2D" else 1
        if (
            tuple(cfg["strides"]) == (1, 1)
            and kh % 2
            and kw % 2
            and (cfg["padding"] == "same" or (kh, kw) == (1, 1))
        ):
            # Stride 1, centred kernel: the adjoint is a convolution with the kernel flipped
            # (and, across channels, transposed), which runs much faster than ConvTranspose.
            # Made from the forward kernel by nodes that ONNX Runtime folds at load, so the
            # file holds each kernel once.
            w = g.shared(f"{layer.name}/W")  # Cout x Cin x kh x kw (depthwise: C x 1 x ..)
            if kind != "DepthwiseConv2D":
                w = g.node("Transpose", [w], f"{name}/Wt", perm=[1, 0, 2, 3])
            if (kh, kw) != (1, 1):
                w = g.node(
                    "Slice",
                    [
                        w,
                        g.const(f"{name}/start", np.array([-1, -1], np.int64)),
                        g.const(f"{name}/end", np.array([-(2**62), -(2**62)], np.int64)),
                        g.const(f"{name}/axes", np.array([2, 3], np.int64)),
                        g.const(f"{name}/steps", np.array([-1, -1], np.int64)),
                    ],
                    f"{name}/Wflip",
                )
            return [
                g.node(
                    "Conv",
                    [dy, w],
                    name,
                    kernel_shape=[kh, kw],
                    pads=[kh // 2, kw // 2, kh // 2, kw // 2],
                    group=group,
                )
            ]
        # The adjoint of the convolution: a transposed convolution with the same kernel and
        # TF's "same" padding (extra row/column at the end), cropped to the input's size.
        pads, extra = [0, 0, 0, 0], [0, 0]
        for axis, (n, k, st) in enumerate(
            zip(shapes[0][1:3], (kh, kw), cfg["strides"], strict=True)
        ):
            out = -(-n // st) if cfg["padding"] == "same" else (n - k) // st + 1
            total = max((out - 1) * st + k - n, 0) if cfg["padding"] == "same" else 0
            pads[axis], pads[axis + 2] = total // 2, total - total // 2
            extra[axis] = n - (st * (out - 1) + k - total)
        return [
            g.node(
                "ConvTranspose",
                [dy, g.shared(f"{layer.name}/W")],  # ConvTranspose reads Conv's layout
                name,
                kernel_shape=[kh, kw],
                strides=list(cfg["strides"]),
                pads=pads,
                output_padding=extra,
                group=group,
            )
        ]
    raise ValueError(f"layer {layer.name} ({kind}): no gradient built")


def _cam_rows_input(g: _Graph) -> str:
    """The graph input ``cam_rows`` (int64, shape [1]): how many leading rows of the batch get
    a map. It defaults to every row (an initialiser the caller may override), so a caller that
    does not feed it gets the maps of all views, as before."""
    g.const("cam/zero", np.zeros(1, np.int64))
    g.const("cam/batch_axis", np.zeros(1, np.int64))
    g.inputs.append(CAM_ROWS_INPUT)
    return g.const(CAM_ROWS_INPUT, np.array([ALL_ROWS], np.int64))


def gradcam_nodes(
    g: _Graph, model, names: dict[str, str], conv_layer: str, logit_layer: str
) -> str:
    """Adds the Grad-CAM weighting (reverse pass from the logit to the conv layer, gradient
    averaged over positions, weighted sum of channels) and returns the ``N x H x W`` map before
    ReLU and normalisation."""
    layers = {layer.name: layer for layer in model.layers}
    rows = _cam_rows_input(g)
    cut: dict[str, str] = {}

    def first_rows(tensor: str) -> str:
        """The first ``cam_rows`` rows of a forward tensor (the views whose maps are used)."""
        if tensor not in cut:
            cut[tensor] = g.node(
                "Slice",
                [tensor, g.shared("cam/zero"), rows, g.shared("cam/batch_axis")],
                f"cam/rows/{tensor}",
            )
        return cut[tensor]

    parents = {
        n: _sources(layer) for n, layer in layers.items() if type(layer).__name__ != "InputLayer"
    }
    # Layers on a path from the conv layer to the logit.
    below: set[str] = set()
    stack = [logit_layer]
    while stack:
        n = stack.pop()
        if n in below or n == conv_layer:
            continue
        below.add(n)
        stack.extend(parents.get(n, []))
    above = {conv_layer}
    for layer in model.layers:
        if any(p in above for p in parents.get(layer.name, [])):
            above.add(layer.name)
    path = [layer for layer in reversed(model.layers) if layer.name in below & above]
    if not path:
        raise ValueError(f"{logit_layer} does not depend on {conv_layer}")
    logit = first_rows(names[logit_layer])
    shape = g.node("Shape", [logit], "grad/shape")
    from onnx import helper, numpy_helper

    g.nodes.append(
        helper.make_node(
            "ConstantOfShape",
            [shape],
            ["grad/seed"],
            value=numpy_helper.from_array(np.ones(1, np.float32)),
        )
    )
    grads: dict[str, str] = {logit_layer: "grad/seed"}
    for layer in path:
        dy = grads.pop(layer.name)
        srcs = parents[layer.name]
        shapes = [tuple(layers[s].output.shape) for s in srcs]
        # Only the ReLU masks read forward values; they are cut to the mapped rows.
        masked = type(layer).__name__ in ("ReLU", "Activation")
        inputs = [first_rows(names[s]) if masked else names[s] for s in srcs]
        for src, dx in zip(srcs, _grad_layer(g, layer, dy, inputs, shapes), strict=True):
            if src not in above:
                continue
            grads[src] = (
                g.node("Add", [grads[src], dx], f"grad/sum/{src}/{layer.name}")
                if src in grads
                else dx
            )
    dconv = grads[conv_layer]
    weights = g.node(
        "ReduceMean",
        [dconv, g.const("cam/axes", np.array([2, 3], np.int64))],
        "cam/weights",
        keepdims=1,
    )
    weighted = g.node("Mul", [weights, first_rows(names[conv_layer])], "cam/weighted")
    return g.node(
        "ReduceSum",
        [weighted, g.const("cam/channel", np.array([1], np.int64))],
        "cam/sum",
        keepdims=0,
    )


def convert(model, outputs: dict[str, str], nhwc: set[str], extra=None):
    """One flat Keras functional model -> an ONNX model with the named outputs.

    Args:
        model: the Keras model (NHWC float input, 0..255 RGB).
        outputs: ONNX output name -> Keras layer name.
        nhwc: output names transposed back to channels-last.
        extra: called as ``extra(graph, names)`` (Keras layer name -> ONNX tensor) to add
            nodes; returns more ``{output name: tensor}``.
    """
    import onnx
    from onnx import TensorProto, helper

    g = _Graph()
    (inp,) = model.inputs
    _, h, w, c = inp.shape
    names: dict[str, str] = {}
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            names[layer.name] = g.node("Transpose", [layer.name], "input/nchw", perm=[0, 3, 1, 2])
            input_name = layer.name
            continue
        names[layer.name] = _convert_layer(g, layer, [names[s] for s in _sources(layer)])
    tensors = {out: names[src] for out, src in outputs.items()}
    if extra is not None:
        tensors.update(extra(g, names))
    graph_outputs = []
    for out, tensor in tensors.items():
        if out in nhwc:
            tensor = g.node("Transpose", [tensor], f"{out}/nhwc", perm=[0, 2, 3, 1])
        g.node("Identity", [tensor], out, final=True)
        dims = [f"{out}_{i}" for i in range(_RANKS[out])]
        graph_outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, dims))
    graph_inputs = [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", h, w, c])]
    for name in g.inputs:
        (init,) = (i for i in g.inits if i.name == name)
        graph_inputs.append(helper.make_tensor_value_info(name, init.data_type, list(init.dims)))
    graph = helper.make_graph(g.nodes, model.name, graph_inputs, graph_outputs, g.inits)
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="thyroid-review"
    )
    proto.ir_version = 8  # readable by every ONNX Runtime >= 1.14
    onnx.checker.check_model(proto)
    return proto


def classifier_onnx(model, conv_layer: str, logit_layer: str):
    """The classifier's ONNX graph: ``logit`` (N x 1), ``features`` (N x D) and ``cam``
    (N x H x W, the Grad-CAM weighting before ReLU and max-normalisation)."""

    def add_cam(g: _Graph, names: dict[str, str]) -> dict[str, str]:
        return {CAM_OUTPUT: gradcam_nodes(g, model, names, conv_layer, logit_layer)}

    outputs = {LOGIT_OUTPUT: logit_layer}
    if any(layer.name == FEATURES_LAYER for layer in model.layers):
        outputs[FEATURES_OUTPUT] = FEATURES_LAYER
    return convert(model, outputs, set(), add_cam)


def segmenter_onnx(model):
    """The segmenter's ONNX graph: ``probability`` (N x H x W x 1)."""
    return convert(model, {PROBABILITY: model.layers[-1].name}, {PROBABILITY})


def _save(proto, path: Path) -> None:
    write_atomically(path, lambda p: p.write_bytes(proto.SerializeToString()))


def parity_inputs(size: int, n: int = 4, seed: int = 1) -> np.ndarray:
    """Test inputs: the demo phantom's pixels and random noise, 0..255 RGB."""
    import cv2

    from thyroid_desktop.core.io.phantom import make_phantom

    phantom = cv2.resize(make_phantom().pixels, (size, size), interpolation=cv2.INTER_AREA)
    if phantom.ndim == 2:
        phantom = np.dstack([phantom] * 3)
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (n - 1, size, size, 3))
    return np.concatenate([phantom[None].astype(np.float32), noise.astype(np.float32)])


def export_all(models: Path) -> dict[str, Any]:
    """Writes ``classifier.onnx``, ``segmenter.onnx`` and ``gland.onnx`` beside their Keras
    files, checks each against Keras, and records them in the card."""
    import keras

    from thyroid_desktop.core.models.gradcam import GradCAM
    from thyroid_desktop.core.models.runtime import OnnxGradCAM, onnx_session

    card_path = models / CARD_FILE
    card = json.loads(card_path.read_text())
    report: dict[str, Any] = {}

    src = models / card["file"]
    model = keras.saving.load_model(src, compile=False)
    proto = classifier_onnx(model, card["last_conv_layer"], card["logit_layer"])
    dst = src.with_suffix(".onnx")
    _save(proto, dst)
    x = parity_inputs(int(card["input_size"]))
    reference = GradCAM(model, card["last_conv_layer"], card["logit_layer"])
    ref = reference.run(x[:1], True, x[1:])
    got = OnnxGradCAM(onnx_session(dst), reference.platt).run(x[:1], True, x[1:])
    gaps = {
        "max_abs_logit_gap": float(np.max(np.abs(ref.logits - got.logits))),
        "max_abs_cam_gap": float(np.max(np.abs(ref.cam - got.cam))),
    }
    if ref.features is not None:
        gaps["max_abs_feature_gap"] = float(np.max(np.abs(ref.features - got.features)))
    if gaps["max_abs_logit_gap"] > LOGIT_TOLERANCE or gaps["max_abs_cam_gap"] > MAP_TOLERANCE:
        raise SystemExit(f"classifier: ONNX differs from Keras: {gaps}")
    # The int8 graph (training.quantize) is kept: its source_sha256 tells whether it is stale.
    kept = {k: v for k, v in (card.get(ONNX_CARD_KEY) or {}).items() if k == INT8_CARD_KEY}
    card[ONNX_CARD_KEY] = {**_entry(dst, src, gaps), "platt": list(reference.platt), **kept}
    report["classifier"] = gaps

    for key in (SEGMENTER_CARD_KEY, GLAND_CARD_KEY):
        info = card.get(key)
        if not info:
            continue
        src = models / info["file"]
        model = keras.saving.load_model(src, compile=False)
        dst = src.with_suffix(".onnx")
        _save(segmenter_onnx(model), dst)
        size = int(info["input_size"])
        x = parity_inputs(size)
        want = np.asarray(model(x, training=False))
        session = onnx_session(dst)
        have = session.run([PROBABILITY], {session.get_inputs()[0].name: x})[0]
        gap = {"max_abs_map_gap": float(np.max(np.abs(want - have)))}
        if gap["max_abs_map_gap"] > MAP_TOLERANCE:
            raise SystemExit(f"{key}: ONNX differs from Keras: {gap}")
        info[ONNX_CARD_KEY] = _entry(dst, src, gap)
        report[key] = gap
    write_atomically(card_path, lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
    return report


def _entry(dst: Path, src: Path, gaps: dict[str, float]) -> dict[str, Any]:
    return {
        "file": dst.name,
        "sha256": sha256_file(dst),
        "source_sha256": sha256_file(src),
        "opset": OPSET,
        "parity": gaps,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=Path, default=Path("resources/models"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    print(json.dumps(export_all(args.models), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
