"""Frozen ImageNet backbone, multi-scale pooled features and a logistic-regression head,
exported as one flat Keras graph.

Grouped cross-validation on these data (docs/model-card.md, "The classifier") found this better than fine-tuning
the backbone: about 600 development images are too few to move 4-6 M weights without
losing what ImageNet taught them. Mid-level texture (stages 5 and 6) adds to the last
stage's features, and training on the crop and its mirror image helps; rotations, shifts
and zooms of the crop did not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: Backbone stages whose outputs are average-pooled into the feature vector (plus the top).
TAP_STAGES = (5, 6)


@dataclass(frozen=True)
class LinearHead:
    """Standardisation and logistic-regression weights, as fitted by scikit-learn."""

    mean: np.ndarray
    var: np.ndarray
    coef: np.ndarray
    intercept: float


def stage_outputs(model, stages: tuple[int, ...]) -> list[str]:
    """Names of the last layer of each ``block{k}`` stage, in graph order."""
    names = [layer.name for layer in model.layers]
    out = []
    for k in stages:
        hits = [n for n in names if n.startswith(f"block{k}")]
        if not hits:
            raise ValueError(f"the backbone has no stage block{k}")
        out.append(hits[-1])
    return out


def feature_graph(backbone: str, size: int, weights: str | None = "imagenet"):
    """Flat graph: image -> concatenated pooled features of the tapped stages and the top.

    Returns:
        (model whose output is the feature vector, name of the first tapped stage output:
        every feature depends on it, so Grad-CAM there explains the whole logit).
    """
    import keras

    from training.backbones import BACKBONES, build_backbone

    features, _ = build_backbone(backbone, size, weights=weights)
    if BACKBONES[backbone].family != "efficientnet_lite":
        taps = [features.output]
        first = BACKBONES[backbone].last_conv_layer
    else:
        names = stage_outputs(features, TAP_STAGES)
        taps = [features.get_layer(n).output for n in names] + [features.output]
        first = names[0]
    pooled = [keras.layers.GlobalAveragePooling2D(name=f"pool_{i}")(t) for i, t in enumerate(taps)]
    vec = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="features")(pooled)
    return keras.Model(features.input, vec, name=f"features_{backbone}"), first


def extract(model, crops: np.ndarray, mirror: bool = False, batch_size: int = 32) -> np.ndarray:
    """Feature vectors of uint8 crops (optionally of their horizontal mirror images)."""
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    out = []
    for i in range(0, len(crops), batch_size):
        x = tf.cast(crops[i : i + batch_size], tf.float32)
        if mirror:
            x = x[:, :, ::-1, :]
        out.append(fn(x).numpy())
    return np.concatenate(out)


def fit_head(x: np.ndarray, y: np.ndarray, weights: np.ndarray, c: float) -> LinearHead:
    """Standardised L2 logistic regression with per-sample weights."""
    from sklearn.linear_model import LogisticRegression

    mean, var = x.mean(axis=0), x.var(axis=0) + 1e-6
    lr = LogisticRegression(C=c, max_iter=5000)
    lr.fit((x - mean) / np.sqrt(var), y, sample_weight=weights)
    return LinearHead(mean, var, lr.coef_[0], float(lr.intercept_[0]))


def classifier_graph(features, head: LinearHead):
    """image -> features -> standardise -> ``malignancy_logit``; output dict like the
    fine-tuned model's, so prediction, calibration and export are shared."""
    import keras

    norm = keras.layers.Normalization(mean=head.mean, variance=head.var, name="feature_norm")
    dense = keras.layers.Dense(1, name="malignancy_logit")
    logit = dense(norm(features.output))
    dense.set_weights([head.coef[:, None].astype("float32"), np.array([head.intercept], "float32")])
    return keras.Model(
        features.input, {"malignancy": logit}, name=features.name.replace("features", "thyroid")
    )


def train_linear(cfg, crops: np.ndarray, labels: np.ndarray, sites: np.ndarray):
    """Fits the head on the crops and their mirror images, each (site, class) cell weighted
    equally. Returns the classifier graph and its Grad-CAM layer."""
    from training.train import balanced_weights

    features, cam_layer = feature_graph(cfg.backbone, cfg.input_size, cfg.weights)
    x = np.concatenate([extract(features, crops), extract(features, crops, mirror=True)])
    y = np.concatenate([labels, labels])
    w = np.concatenate([balanced_weights(labels, sites)] * 2)
    head = fit_head(x, y, w, cfg.c)
    log.info("linear head on %d features from %d crops (x2 mirrored)", x.shape[1], len(crops))
    return classifier_graph(features, head), cam_layer
