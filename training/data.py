"""Labelled ultrasound folders -> samples, grouped splits and classifier crops.

A dataset is a folder with ``labels.csv`` (columns ``file,label``; label ``benign`` or
``malignant``) and optionally ``metadata.csv`` with ``case`` (or ``group``), ``mask`` and the
ACR descriptor columns. Paths are relative to the folder. Without a case column, files whose
names differ only by a neighbouring number (``benign.41.jpg``, ``benign.42.jpg``) are grouped
together, since consecutive ids are often the same nodule.

Images are read and cropped with :mod:`thyroid_desktop.core`, exactly as the app does.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from thyroid_desktop.core.io.images import open_image
from thyroid_desktop.core.pipeline.roi import CROP_MARGIN, ROI, roi_from_mask
from thyroid_desktop.core.site.validation import neighbour_groups  # the one grouping rule

log = logging.getLogger(__name__)

#: ../shared/data beside the repository: where the real images live (absent on a fresh clone).
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

LABELS = {"benign": 0, "malignant": 1, "0": 0, "1": 1}

#: Auxiliary heads: ACR descriptor groups folded into a few classes each. The ddti label is
#: derived from TI-RADS, which is itself scored from these descriptors.
DESCRIPTORS: dict[str, dict[str, int]] = {
    "composition": {
        "cystic": 0,
        "spongiform": 0,
        "predominantly cystic": 1,
        "predominantly solid": 1,
        "predominantly-solid": 1,
        "solid": 2,
        "dense": 2,
    },
    "echogenicity": {
        "hyperechogenicity": 0,
        "isoechogenicity": 0,
        "hypoechogenicity": 1,
        "marked hypoechogenicity": 2,
        "marked-hypoechogenicity": 2,
    },
    "margins": {
        "well defined": 0,
        "well defined smooth": 0,
        "well-defined": 0,
        "ill- defined": 1,
        "ill-defined": 1,
        "ill defined": 1,
        "microlobulated": 2,
        "macrolobulated": 2,
        "spiculated": 2,
    },
    "calcifications": {
        "non": 0,
        "macrocalcification": 1,
        "macrocalcifications": 1,
        "microcalcification": 2,
        "microcalcifications": 2,
    },
}
N_DESCRIPTOR_CLASSES = 3


@dataclass(frozen=True)
class Sample:
    """One labelled image. ``group`` is the split unit (patient/case/sequence)."""

    path: Path
    label: int
    group: str
    dataset: str
    mask_path: Path | None = None
    descriptors: tuple[int, ...] = field(default=(-1,) * len(DESCRIPTORS))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def sample_key(sample: Sample) -> str:
    """``dataset/images/name``: how the model card lists split files."""
    return f"{sample.dataset}/{sample.path.parent.name}/{sample.path.name}"


def samples_in(data: str | Path, dataset: str, keys: set[str]) -> list[Sample]:
    """The samples of one dataset whose :func:`sample_key` is in ``keys``."""
    return [s for s in load_dataset(Path(data) / dataset) if sample_key(s) in keys]


def load_dataset(root: str | Path, name: str | None = None) -> list[Sample]:
    """Reads a labelled folder.

    Rows with an empty or unknown label are skipped, and so are rows without a mask in a
    folder that has masks: those images would be seen whole, not as nodule crops.
    """
    root = Path(root)
    name = name or root.name
    rows = _read_csv(root / "labels.csv")
    meta_path = root / "metadata.csv"
    meta = {r["file"]: r for r in _read_csv(meta_path)} if meta_path.exists() else {}
    rows = [r for r in rows if r.get("label", "").strip().lower() in LABELS]
    fallback_groups = neighbour_groups([r["file"] for r in rows])
    has_masks = any(m.get("mask") for m in meta.values()) or any(r.get("mask") for r in rows)
    samples, unmasked = [], 0
    for row, fallback in zip(rows, fallback_groups, strict=True):
        info = {**row, **meta.get(row["file"], {})}
        group = info.get("case") or info.get("group") or fallback
        mask = info.get("mask") or ""
        if has_masks and not mask:
            unmasked += 1  # a whole frame among nodule crops would reintroduce layout shortcuts
            continue
        desc = tuple(DESCRIPTORS[k].get(info.get(k, "").strip().lower(), -1) for k in DESCRIPTORS)
        samples.append(
            Sample(
                path=root / row["file"],
                label=LABELS[row["label"].strip().lower()],
                group=f"{name}:{group}",
                dataset=name,
                mask_path=(root / mask) if mask else None,
                descriptors=desc,
            )
        )
    log.info(
        "%s: %d labelled images in %d groups (%d without a mask skipped)",
        name,
        len(samples),
        len({s.group for s in samples}),
        unmasked,
    )
    return samples


def read_mask(path: Path | None, width: int, height: int) -> np.ndarray | None:
    """A nodule mask as ``height x width`` bool (resized to the image if needed), or None."""
    if path is None or not path.exists():
        return None
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        return None
    if mask.shape != (height, width):
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
    return mask > 0


def sample_roi(sample: Sample, width: int, height: int, fallback: ROI | None = None) -> ROI:
    """The nodule box from the sample's mask (largest component); without one, ``fallback``
    (the scan area's box, as the app uses when nothing is found) or the whole image."""
    mask = read_mask(sample.mask_path, width, height)
    roi = roi_from_mask(mask) if mask is not None else None
    return roi or fallback or ROI.full(width, height)


def load_crops(
    samples: Sequence[Sample],
    size: int,
    margin: float = CROP_MARGIN,
    marks: str = "keep",
    resolution: int | None = None,
) -> np.ndarray:
    """The classifier crops of all samples as an ``N x size x size x 3`` uint8 array, cut by the
    app's ``classifier_crop``; ``marks`` "inpaint" paints out calipers and text inside the
    scan area as the app does for a card with ``crop.marks`` "inpaint"; ``resolution``: the
    card's ``crop.resolution`` (``roi.crop_square``)."""
    from thyroid_desktop.core.pipeline.estimate import classifier_crop
    from thyroid_desktop.core.pipeline.fov import detect_fov
    from thyroid_desktop.core.pipeline.marks import MarksStep

    out = np.empty((len(samples), size, size, 3), dtype=np.uint8)
    for i, s in enumerate(samples):
        img = open_image(s.path)
        fov = detect_fov(img.gray)
        roi = sample_roi(s, img.width, img.height, fov.box)
        out[i], _ = classifier_crop(img, roi, size, margin, fov, MarksStep(marks), resolution)
    return out


def grouped_folds(
    samples: Sequence[Sample], n_folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds that never split a group; stratified per dataset as well."""
    from sklearn.model_selection import StratifiedGroupKFold

    strata = [f"{s.dataset}:{s.label}" for s in samples]
    groups = [s.group for s in samples]
    skf = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(skf.split(np.zeros(len(samples)), strata, groups))


def holdout_split(
    samples: Sequence[Sample], test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """One grouped, stratified development/test split (test ~ ``test_fraction``)."""
    n_folds = max(2, int(round(1.0 / test_fraction)))
    dev, test = grouped_folds(samples, n_folds, seed)[0]
    return dev, test
