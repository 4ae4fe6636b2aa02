"""Grad-CAM on a flat functional Keras graph.

Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017 (arXiv:1610.02391). The map is the ReLU of the last conv layer's
channels weighted by the spatially averaged gradient of the malignancy logit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_EPS = 1e-7


class GradCAM:
    """Probability, logit and Grad-CAM map in one compiled forward/backward pass.

    Args:
        model: the exported classifier (image -> calibrated probability), one flat graph.
        conv_layer: name of the last convolutional activation (the card's ``last_conv_layer``).
        logit_layer: name of the pre-calibration malignancy logit (the card's ``logit_layer``).
    """

    def __init__(self, model: Any, conv_layer: str, logit_layer: str) -> None:
        import keras
        import tensorflow as tf

        self._graph = keras.Model(
            model.inputs,
            [model.get_layer(conv_layer).output, model.get_layer(logit_layer).output],
        )
        self._calibrate = model.get_layer("calibrated_probability")
        # Straight-line code: no AutoGraph needed (it also needs the source, absent in a bundle).
        self._fn = tf.function(self._compute, reduce_retracing=True, autograph=False)

    def _compute(self, x):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            conv, logit = self._graph(x, training=False)
            tape.watch(conv)
            target = tf.reduce_sum(logit)
        grads = tape.gradient(target, conv)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * conv, axis=-1))
        cam = cam / (tf.reduce_max(cam, axis=(1, 2), keepdims=True) + _EPS)
        return logit[:, 0], cam

    def __call__(self, crops: np.ndarray, mirror: bool = False) -> tuple[float, float, np.ndarray]:
        """Explains one crop.

        Args:
            crops: ``1 x S x S x 3`` RGB crop, 0..255.
            mirror: also run the horizontal mirror and average (test-time augmentation),
                as the card's calibration was fitted that way when ``tta`` is set.

        Returns:
            (calibrated probability, logit, Grad-CAM map in 0..1 at the conv grid's size).
        """
        x = np.asarray(crops, dtype=np.float32)
        if mirror:
            x = np.concatenate([x, x[:, :, ::-1, :]], axis=0)
        logits, cams = self._fn(x)
        logits, cams = logits.numpy(), cams.numpy()
        cam = cams[0]
        if mirror:
            cam = (cam + cams[1][:, ::-1]) / 2.0
        logit = float(np.mean(logits))
        prob = float(np.asarray(self._calibrate(np.array([[logit]], dtype=np.float32)))[0, 0])
        return prob, logit, cam.astype(np.float32)

    def warm_up(self, size: int) -> None:
        """Traces the compiled function so the first real call is fast."""
        self(np.zeros((1, size, size, 3), np.float32), mirror=False)
        self(np.zeros((1, size, size, 3), np.float32), mirror=True)


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
