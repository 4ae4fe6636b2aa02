"""Grad-CAM on a flat functional Keras graph.

Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017 (arXiv:1610.02391). The map is the ReLU of the last conv layer's
channels weighted by the spatially averaged gradient of the malignancy logit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from thyroid_desktop.core.site.calibration import sigmoid

_EPS = 1e-7


#: The pooled-feature layer of the exported classifier (its novelty score is computed there).
FEATURES_LAYER = "features"


@dataclass(frozen=True)
class ModelOutput:
    """What one compiled pass gives for a crop and its extra views.

    Attributes:
        logits: Pre-calibration logit of every view: the crop, its mirror (with ``mirror``),
            then each extra view.
        cam: Grad-CAM map of the crop (averaged with its mirror's), 0..1 on the conv grid.
        features: Pooled features of the crop (averaged with its mirror's), or None when the
            model has no ``features`` layer.
    """

    logits: np.ndarray
    cam: np.ndarray
    features: np.ndarray | None


class Explainer:
    """Logits, features and the Grad-CAM map of a crop, its mirror and extra views (box
    jitters) of the same nodule, in one batch. Subclasses give the forward pass: ``GradCAM``
    (Keras, gradients by TensorFlow) and ``core.runtime.OnnxGradCAM`` (ONNX Runtime, the
    reverse pass built into the graph at export)."""

    #: Whether the model gives pooled features (its novelty score is computed there).
    has_features: bool = False

    def __init__(self, platt: tuple[float, float]) -> None:
        self._platt = (float(platt[0]), float(platt[1]))

    def _forward(
        self, x: np.ndarray, cam_rows: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``N x S x S x 3`` float32 -> (logits ``N``, maps 0..1 of the first ``cam_rows``
        views (all: None) ``cam_rows x h x w``, features ``N x D`` or None)."""
        raise NotImplementedError

    @property
    def platt(self) -> tuple[float, float]:
        """The graph's frozen calibration (a, b): probability = sigmoid(a * logit + b). The
        app reads it as ``Classifier.shipped_calibration``."""
        return self._platt

    def run(
        self, crops: np.ndarray, mirror: bool = False, views: np.ndarray | None = None
    ) -> ModelOutput:
        """Explains one crop, and scores extra views of it.

        Args:
            crops: ``1 x S x S x 3`` RGB crop, 0..255.
            mirror: also run the crop's horizontal mirror (test-time augmentation).
            views: ``N x S x S x 3`` more crops of the same nodule (jittered boxes), or None.
        """
        x = np.asarray(crops, dtype=np.float32)
        if mirror:
            x = np.concatenate([x, x[:, :, ::-1, :]], axis=0)
        own = len(x)  # the crop (and its mirror): their maps and features are used
        if views is not None and len(views):
            # One batch, one graph (one trace, one warm-up); the extra views are only scored:
            # their maps are not computed where the runtime allows (ONNX's ``cam_rows``).
            x = np.concatenate([x, np.asarray(views, dtype=np.float32)], axis=0)
        logits, cams, features = self._forward(x, own)
        cam = cams[0] if not mirror else (cams[0] + cams[1][:, ::-1]) / 2.0
        feats = features[:own].mean(axis=0) if features is not None else None
        return ModelOutput(
            np.asarray(logits, np.float64).reshape(-1), cam.astype(np.float32), feats
        )

    def __call__(self, crops: np.ndarray, mirror: bool = False) -> tuple[float, float, np.ndarray]:
        """Explains one crop: (the graph's calibrated probability of the mean logit, that
        logit, map)."""
        out = self.run(crops, mirror)
        logit = float(np.mean(out.logits))
        a, b = self._platt
        return float(sigmoid(a * logit + b)), logit, out.cam

    def warm_up(self, size: int, n_views: int = 0) -> None:
        """Runs the app's batch (crop, mirror and ``n_views`` jitters) once so the first real
        call is fast; other batch sizes are prepared on first use."""
        blank = np.zeros((1, size, size, 3), np.float32)
        self.run(blank, mirror=True, views=np.zeros((n_views, size, size, 3), np.float32))


def normalised_cam(cam: np.ndarray) -> np.ndarray:
    """ReLU, then each map divided by its maximum (``N x h x w``)."""
    cam = np.maximum(cam, 0.0)
    return cam / (cam.max(axis=(1, 2), keepdims=True) + _EPS)


class GradCAM(Explainer):
    """Grad-CAM by TensorFlow's gradients, in one compiled forward/backward pass.

    Args:
        model: the exported classifier (image -> calibrated probability), one flat graph.
        conv_layer: name of the last convolutional activation (the card's ``last_conv_layer``).
        logit_layer: name of the pre-calibration malignancy logit (the card's ``logit_layer``).
    """

    def __init__(self, model: Any, conv_layer: str, logit_layer: str) -> None:
        import keras
        import tensorflow as tf

        names = {layer.name for layer in model.layers}
        self.has_features = FEATURES_LAYER in names
        features = [model.get_layer(FEATURES_LAYER).output] if self.has_features else []
        self._graph = keras.Model(
            model.inputs,
            [model.get_layer(conv_layer).output, model.get_layer(logit_layer).output, *features],
        )
        calibration = model.get_layer("calibrated_probability").get_weights()
        a, b = (np.asarray(w, dtype=np.float64).ravel()[0] for w in calibration)
        super().__init__((float(a), float(b)))
        # Straight-line code: no AutoGraph needed (it also needs the source, absent in a bundle).
        self._fn = tf.function(self._compute, reduce_retracing=True, autograph=False)

    def _compute(self, x):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            conv, logit, *features = self._graph(x, training=False)
            tape.watch(conv)
            target = tf.reduce_sum(logit)
        grads = tape.gradient(target, conv)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * conv, axis=-1))
        cam = cam / (tf.reduce_max(cam, axis=(1, 2), keepdims=True) + _EPS)
        return logit[:, 0], cam, *features

    def _forward(self, x: np.ndarray, cam_rows: int | None = None):
        logits, cams, *features = (t.numpy() for t in self._fn(x))
        return logits, cams[:cam_rows], (features[0] if features else None)


def heatmap_rgba(heatmap: np.ndarray, max_alpha: float = 0.6) -> np.ndarray:
    """Colours a 0..1 map (JET) with transparency that grows with the value, for overlays.

    Returns:
        ``H x W x 4`` uint8 RGBA; zero where the map is zero.
    """
    import cv2

    h8 = np.clip(heatmap * 255.0, 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(h8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    alpha = np.clip(heatmap * 1.5, 0, 1) * max_alpha * 255.0
    return np.ascontiguousarray(np.dstack([rgb, alpha.astype(np.uint8)]))
