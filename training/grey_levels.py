"""Experimental grey-level normalisation of classifier crops (CV and cross-site only; the app
does not do it): does taking each scanner's gain and dynamic range out of the crop help a head
trained on one collection rank another? (Not the descriptor heads' grey-level *features*,
``core.pipeline.tirads_ai.intensity_features``.)

``stretch``: each crop's grey levels are mapped linearly so that its 1st and 99th percentiles,
over the pixels inside the scan area (non-zero: the field-of-view mask and the padding are 0),
become 0 and 255. The nodule's contrast with the tissue around it is kept, the absolute level
is not. The resampled training views (``training.app_path`` ``SCALED_VIEWS``) are cut without
the field-of-view mask, so burned-in text beside the scan area counts towards their
percentiles.
"""

from __future__ import annotations

import enum

import numpy as np

#: The percentiles mapped to 0 and 255.
LOW_PERCENTILE, HIGH_PERCENTILE = 1.0, 99.0
#: Fewer non-zero pixels than this (an all-black crop): left as it is.
MIN_PIXELS = 64


class GreyLevels(enum.StrEnum):
    """What is done to a crop's grey levels before the backbone (a cache's ``grey_levels``)."""

    NONE = "none"
    STRETCH = "stretch"


def stretch(crop: np.ndarray) -> np.ndarray:
    """One ``S x S x 3`` crop, normalised; float32 in 0..255, black (masked) pixels stay 0."""
    grey = crop.astype(np.float32)
    inside = grey[..., 0] > 0
    if inside.sum() < MIN_PIXELS:
        return grey
    lo, hi = np.percentile(grey[..., 0][inside], [LOW_PERCENTILE, HIGH_PERCENTILE])
    if hi - lo < 1.0:
        return grey
    out = np.clip((grey - lo) * (255.0 / (hi - lo)), 0.0, 255.0)  # float64 (lo, hi are)
    out[~inside] = 0.0
    return out.astype(np.float32)


def apply(crops: np.ndarray, step: GreyLevels | str) -> np.ndarray:
    """``N x S x S x 3`` crops through ``step`` (``none``: unchanged).

    Raises:
        ValueError: ``step`` is not a :class:`GreyLevels`.
    """
    step = GreyLevels(step)
    if step is GreyLevels.NONE:
        return crops
    return np.stack([stretch(c) for c in crops]) if len(crops) else crops
