"""Fine-tuning the malignancy classifier on nodule crops.

The classifier is one flat functional graph: backbone layers -> global average pool ->
dropout -> one malignancy logit, plus auxiliary heads that predict the ACR descriptor groups
where they are known (they are what the ddti TI-RADS label is scored from).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (all recorded in the model card)."""

    head: str = "finetune"
    backbone: str = "efficientnet_lite0"
    input_size: int = 224
    crop_margin: float = 0.15
    epochs: int = 14
    warmup_epochs: int = 5
    batch_size: int = 16
    head_lr: float = 3e-3
    lr: float = 1e-4
    weight_decay: float = 1e-4
    dropout: float = 0.3
    aux_weight: float = 0.3
    trainable_from: str = "block5"
    tta: bool = True
    augment: bool = True
    c: float = 0.03
    seed: int = 0
    strategy: str = "default"
    weights: str | None = "imagenet"
    datasets: list[str] = field(default_factory=lambda: ["ddti", "chaouchi"])


def set_determinism(seed: int) -> None:
    """Seeds Python, NumPy and TensorFlow and asks TF for deterministic kernels."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def get_strategy(name: str):
    """``default`` runs on one device (the GPU if there is one); ``mirrored`` on all GPUs."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "default":
        return tf.distribute.get_strategy()
    raise ValueError(f"unknown strategy {name!r} (default|mirrored)")


def build_classifier(cfg: TrainConfig, n_aux: int, n_aux_classes: int):
    """The trainable model: outputs ``malignancy`` (logit) and ``aux{i}`` descriptor logits."""
    import keras

    from training.backbones import build_backbone

    features, last_conv = build_backbone(cfg.backbone, cfg.input_size, weights=cfg.weights)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(features.output)
    # Standardises the sparse ReLU6 features, as the linear baseline's scaler does.
    x = keras.layers.BatchNormalization(name="head_bn")(x)
    x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(x)
    outputs = {"malignancy": keras.layers.Dense(1, name="malignancy_logit")(x)}
    for i in range(n_aux):
        outputs[f"aux{i}"] = keras.layers.Dense(n_aux_classes, name=f"aux{i}_logits")(x)
    model = keras.Model(features.input, outputs, name=f"thyroid_{cfg.backbone}")
    return model, last_conv


def set_trainable(model, trainable_from: str | None) -> None:
    """Freezes batch-norm everywhere (small batches), the fixed blur of an anti-aliased
    backbone, and every layer before ``trainable_from``.

    ``None`` freezes the whole backbone (head only). Layers are in graph order.
    """
    import keras

    from training.backbones import BLUR_POOL

    head = {"pool", "head_bn", "head_dropout", "malignancy_logit"}
    reached = False
    for layer in model.layers:
        if trainable_from is not None and layer.name.startswith(trainable_from):
            reached = True
        is_head = layer.name in head or layer.name.startswith("aux")
        fixed = layer.name.endswith(BLUR_POOL)  # the anti-aliasing filter is not learnt
        if (isinstance(layer, keras.layers.BatchNormalization) and not is_head) or fixed:
            layer.trainable = False
        else:
            layer.trainable = is_head or reached


def masked_sparse_ce(y_true, y_pred):
    """Cross-entropy over descriptor classes, ignoring unknown labels (-1)."""
    import keras
    from keras import ops

    y_true = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    mask = ops.cast(y_true >= 0, "float32")
    ce = keras.losses.sparse_categorical_crossentropy(
        ops.maximum(y_true, 0), y_pred, from_logits=True
    )
    return ops.sum(ce * mask) / ops.maximum(ops.sum(mask), 1.0)


def augmenter(seed: int):
    """The original study's geometric augmentation, minus vertical flips, plus ultrasound
    intensity changes (gain, gamma, multiplicative speckle noise)."""
    import keras
    import tensorflow as tf

    geometric = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(15 / 360, fill_mode="constant", seed=seed + 1),
            keras.layers.RandomTranslation(0.08, 0.08, fill_mode="constant", seed=seed + 2),
            keras.layers.RandomZoom((-0.15, 0.15), fill_mode="constant", seed=seed + 3),
            keras.layers.RandomShear(
                x_factor=0.1, y_factor=0.0, fill_mode="constant", seed=seed + 4
            ),
        ],
        name="augment",
    )
    gen = tf.random.Generator.from_seed(seed)

    def augment(x):
        x = geometric(x, training=True)
        b = tf.shape(x)[0]
        gain = gen.uniform([b, 1, 1, 1], 0.8, 1.2)
        gamma = tf.exp(gen.uniform([b, 1, 1, 1], -0.35, 0.35))
        noise = 1.0 + 0.08 * gen.normal(tf.shape(x)[:3])[..., None]
        x = 255.0 * tf.pow(tf.clip_by_value(x / 255.0, 0.0, 1.0), gamma)
        return tf.clip_by_value(x * gain * noise, 0.0, 255.0)

    return augment


def make_dataset(
    crops, labels, aux, weights, batch_size: int, training: bool, seed: int, augment: bool = True
):
    """A cached ``tf.data`` pipeline of (image, targets, sample weight) batches."""
    import tensorflow as tf

    targets = {"malignancy": labels.astype("float32")[:, None]}
    for i in range(aux.shape[1]):
        targets[f"aux{i}"] = aux[:, i : i + 1].astype("int32")
    ds = tf.data.Dataset.from_tensor_slices((crops, targets, weights.astype("float32"))).cache()
    if training:
        ds = ds.shuffle(len(crops), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=training)
    ds = ds.map(lambda x, y, w: (tf.cast(x, tf.float32), y, w), num_parallel_calls=2)
    if training and augment:
        aug = augmenter(seed)
        ds = ds.map(lambda x, y, w: (aug(x), y, w), num_parallel_calls=1)
    return ds.prefetch(2)


def balanced_weights(labels: np.ndarray, sites: np.ndarray) -> np.ndarray:
    """Sample weights that make every (site, class) cell weigh the same in the loss.

    The two sites differ in malignancy rate (78 % vs 48 %); balancing within each site takes
    that away as a signal, so the model has no reason to learn which site an image is from.
    """
    w = np.zeros(len(labels), dtype=float)
    cells = {(s, y) for s, y in zip(sites, labels, strict=True)}
    for s, y in cells:
        sel = (sites == s) & (labels == y)
        w[sel] = 1.0 / sel.sum()
    return w * len(labels) / w.sum()


def train_classifier(cfg: TrainConfig, crops, labels, aux, sites, log_dir=None):
    """Trains one classifier; returns the model and the name of its Grad-CAM layer.

    ``cfg.head`` picks the recipe: ``finetune`` (backbone top blocks + heads, augmented) or
    ``linear`` (frozen backbone, multi-scale features, logistic regression).
    """
    import keras

    set_determinism(cfg.seed)
    if cfg.head == "linear":
        from training.linear_head import train_linear

        return train_linear(cfg, crops, labels, sites)
    if cfg.head != "finetune":
        raise ValueError(f"unknown head {cfg.head!r} (finetune|linear)")
    strategy = get_strategy(cfg.strategy)
    weights = balanced_weights(labels, sites)
    ds = make_dataset(crops, labels, aux, weights, cfg.batch_size, True, cfg.seed, cfg.augment)
    steps = len(crops) // cfg.batch_size
    losses = {"malignancy": keras.losses.BinaryCrossentropy(from_logits=True)}
    loss_weights = {"malignancy": 1.0}
    for i in range(aux.shape[1]):
        losses[f"aux{i}"] = masked_sparse_ce
        loss_weights[f"aux{i}"] = cfg.aux_weight
    callbacks = []
    if log_dir is not None:
        callbacks.append(keras.callbacks.CSVLogger(str(log_dir / "history.csv"), append=True))
    with strategy.scope():
        model, last_conv = build_classifier(cfg, aux.shape[1], int(aux.max(initial=0)) + 1 or 1)
        phases = [(None, cfg.warmup_epochs, cfg.head_lr), (cfg.trainable_from, cfg.epochs, cfg.lr)]
        for trainable_from, epochs, lr in phases:
            if epochs <= 0:
                continue
            set_trainable(model, trainable_from)
            schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=epochs * steps)
            model.compile(
                optimizer=keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay),
                loss=losses,
                loss_weights=loss_weights,
                jit_compile=False,
            )
            t0 = time.perf_counter()
            model.fit(ds, epochs=epochs, verbose=2, callbacks=callbacks)
            log.info(
                "phase from %s: %d epochs in %.0f s",
                trainable_from,
                epochs,
                time.perf_counter() - t0,
            )
    return model, last_conv


def predict_logits(model, crops: np.ndarray, tta: bool, batch_size: int = 32) -> np.ndarray:
    """Malignancy logits; with ``tta`` the mean over the crop and its horizontal mirror."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def step(x):
        return model(x, training=False)["malignancy"][:, 0]

    out = []
    for i in range(0, len(crops), batch_size):
        x = tf.cast(crops[i : i + batch_size], tf.float32)
        z = step(x)
        if tta:
            z = (z + step(x[:, :, ::-1, :])) / 2.0
        out.append(z.numpy())
    return np.concatenate(out) if out else np.zeros(0)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))
