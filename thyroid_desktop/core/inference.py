"""One analysis: image + nodule box -> :class:`Finding`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from thyroid_desktop.core.images import UltrasoundImage
from thyroid_desktop.core.models import Classifier
from thyroid_desktop.core.roi import ROI, crop_square

RoiSource = Literal["manual", "auto", "full"]


@dataclass(frozen=True)
class Finding:
    """The model's estimate for one nodule box, with what is needed to explain and audit it."""

    probability: float
    threshold: float
    roi: ROI
    roi_source: RoiSource
    window: ROI
    heatmap: np.ndarray = field(repr=False)
    model_id: str = ""
    model_version: str = ""
    device: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> Literal["benign", "malignant"]:
        """The model's call at the shipped threshold (a model estimate, not a diagnosis)."""
        return "malignant" if self.probability >= self.threshold else "benign"


def heatmap_to_image(cam: np.ndarray, window: ROI, width: int, height: int) -> np.ndarray:
    """Places a crop-grid Grad-CAM map back onto the image: ``H x W`` float32 in 0..1,
    zero outside the window the classifier saw."""
    full = np.zeros((height, width), dtype=np.float32)
    up = cv2.resize(cam, (window.w, window.h), interpolation=cv2.INTER_LINEAR)
    x0, y0 = max(window.x, 0), max(window.y, 0)
    x1, y1 = min(window.x + window.w, width), min(window.y + window.h, height)
    full[y0:y1, x0:x1] = up[y0 - window.y : y1 - window.y, x0 - window.x : x1 - window.x]
    return np.clip(full, 0.0, 1.0)


def predict(
    image: UltrasoundImage,
    classifier: Classifier,
    roi: ROI | None = None,
    roi_source: RoiSource | None = None,
) -> Finding:
    """Calibrated malignancy probability and Grad-CAM for the box ``roi`` (whole image if None).

    Deterministic: the same image and box give the same numbers.
    """
    t0 = time.perf_counter()
    card = classifier.card
    if roi is None:
        roi, roi_source = ROI.full(image.width, image.height), roi_source or "full"
    roi = roi.clipped(image.width, image.height)
    crop, window = crop_square(image.pixels, roi, card.input_size, card.crop_margin)
    t1 = time.perf_counter()
    prob, _, cam = classifier.gradcam(crop[None], mirror=card.tta)
    t2 = time.perf_counter()
    heat = heatmap_to_image(cam, window, image.width, image.height)
    t3 = time.perf_counter()
    return Finding(
        probability=prob,
        threshold=card.threshold,
        roi=roi,
        roi_source=roi_source or "manual",
        window=window,
        heatmap=heat,
        model_id=card.id,
        model_version=card.version,
        device=classifier.device,
        timings_ms={
            "crop": 1000 * (t1 - t0),
            "model": 1000 * (t2 - t1),
            "heatmap": 1000 * (t3 - t2),
            "total": 1000 * (t3 - t0),
        },
    )
