"""The frame re-encoded as a JPEG: a training augmentation tried (recipe R5) and the probe of
how far the estimate moves when a frame is compressed harder.

How hard a frame was compressed says nothing about the nodule, but it can tell the label in
one collection: in chaouchi the benign images carry stronger JPEG 8x8 block edges
(``benchmarks/bench_confounds.py``, AUROC 0.62 as the only predictor), and other hospitals
export at other qualities (PACS exports, screen captures, teaching files). A model that
learns the artefacts moves when the same frame is compressed differently. Recipe R5 cuts
two training views from the frame re-encoded at a random quality, benign and malignant
alike, so that the block structure carries no label; it did not make the estimate steadier
and is not shipped (docs/experiments.md). The app does not re-encode anything: the cache's
quality-50 probe (``training.app_path``'s ``jpeg_shift``) and
``benchmarks/bench_what_it_looks_at.py`` measure the estimate's shift when a frame is
re-encoded.
"""

from __future__ import annotations

import cv2
import numpy as np


def reencode(pixels: np.ndarray, quality: int) -> np.ndarray:
    """``pixels`` (H x W x 3 RGB uint8, as ``UltrasoundImage.pixels``) after a JPEG round trip
    at ``quality`` (1-100; OpenCV's encoder: 4:2:0 chroma, standard tables)."""
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"expected H x W x 3 uint8 RGB, got {pixels.shape} {pixels.dtype}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality {quality} is not in 1-100")
    ok, buf = cv2.imencode(".jpg", pixels[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("OpenCV could not encode the frame as JPEG")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])
