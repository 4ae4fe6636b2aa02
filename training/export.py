"""Writes the shipped classifier and its model card into ``resources/models``.

The exported graph takes a raw RGB crop (0..255) and returns the calibrated probability;
the Platt calibration is a frozen ``Dense(1, sigmoid)`` on the malignancy logit, so the app
cannot forget to apply it. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from thyroid_desktop.core.io.files import write_atomically
from thyroid_desktop.core.models.shipped import (
    CARD_FILE,
    CLASSIFIER_FILE,
    GLAND_CARD_KEY,
    SEGMENTER_CARD_KEY,
    sha256_file,
)

LABEL_DEFINITION = (
    "ddti: benign = radiologist ACR TI-RADS 2-3, malignant = TI-RADS 4a/4b/4c/5 (from the DDTI "
    "XML; NOT pathology). chaouchi: benign/malignant folder labels of a second collection whose "
    "provenance is undocumented (weak labels). The model therefore estimates how likely an "
    "expert would score the nodule as suspicious (TI-RADS >= 4), not a biopsy result."
)


def calibrated_model(model, a: float, b: float):
    """The inference graph: image -> calibrated probability (no auxiliary heads)."""
    import keras
    import numpy as np

    logit = model.get_layer("malignancy_logit").output
    calib = keras.layers.Dense(1, activation="sigmoid", name="calibrated_probability")
    prob = calib(logit)
    calib.set_weights([np.array([[a]], dtype="float32"), np.array([b], dtype="float32")])
    calib.trainable = False
    return keras.Model(model.input, prob, name=model.name)


def export(
    model,
    last_conv: str,
    calibration: tuple[float, float],
    threshold: float,
    card_fields: dict,
    out_dir: Path,
) -> Path:
    """Saves ``classifier.keras`` and ``model_card.json``; returns the card path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    final = calibrated_model(model, *calibration)
    weights_path = out_dir / CLASSIFIER_FILE
    write_atomically(weights_path, lambda p: final.save(p))
    created = dt.datetime.now(dt.UTC).replace(microsecond=0)
    card = {
        "name": "Thyroid nodule malignancy classifier",
        "id": f"thyroid-{card_fields['backbone']}-{created:%Y%m%d}",
        "version": card_fields.get("version", "1.0.0"),
        "created": created.isoformat(),
        "file": CLASSIFIER_FILE,
        "sha256": sha256_file(weights_path),
        "backbone": card_fields["backbone"],
        "input_size": int(final.input_shape[1]),
        "crop": {
            "margin": card_fields["training"]["crop_margin"],
            "shape": "square around the nodule box, black outside",
            # core.pipeline.marks: "inpaint" when the crops were trained with marks painted out
            "marks": card_fields["training"].get("marks", "keep"),
            # roi.crop_square: the crop's detail limit in pixels (None: none)
            "resolution": card_fields["training"].get("crop_resolution"),
        },
        "input": "RGB crop 0..255 float; scaling is inside the model",
        "last_conv_layer": last_conv,
        "logit_layer": "malignancy_logit",
        "calibration": {
            "method": "Platt scaling, sigmoid(a*logit + b), fitted on out-of-fold logits of the ddti development images (grouped 5-fold CV)",
            "a": calibration[0],
            "b": calibration[1],
        },
        "threshold": threshold,
        "label_definition": LABEL_DEFINITION,
        "intended_use": "For research use only. Not for use in diagnostic procedures.",
        **{k: v for k, v in card_fields.items() if k not in {"backbone", "version"}},
    }
    card_path = out_dir / CARD_FILE
    if card_path.exists():  # keep the segmenter's section, trained separately
        previous = json.loads(card_path.read_text())
        for key in (SEGMENTER_CARD_KEY, GLAND_CARD_KEY):
            if key in previous:
                card[key] = previous[key]
    write_atomically(card_path, lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
    return card_path
