"""A study: the list of images a clinician reviews in one sitting, and its CSV export."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from thyroid_desktop.core.clinical.measure import (
    ViewMeasure,
    box_size,
    caliper_length_text,
    effective_scale,
)
from thyroid_desktop.core.clinical.tirads import TiradsChoices, recommend
from thyroid_desktop.core.io.files import write_atomically
from thyroid_desktop.core.io.images import SUPPORTED_SUFFIXES
from thyroid_desktop.core.io.scale import Scale
from thyroid_desktop.core.pipeline.tirads_ai import review_of, review_text
from thyroid_desktop.core.review.session import Estimate, Nodule

#: A folder dropped on the window is searched this deep for images.
MAX_FOLDER_DEPTH = 3


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given (any name: a wrongly named file is reported when opened) and, for each
    folder, the image files inside it (by suffix, DICOM without one too: ``IM0001``), sorted;
    duplicates once, in order of first appearance."""
    out: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw).absolute()  # recent files must work from any working folder
        if path.is_dir():
            for found in sorted(_folder_images(path, MAX_FOLDER_DEPTH), key=natural_key):
                out.setdefault(found, None)
        else:
            out.setdefault(path, None)
    return list(out)


def natural_key(path: Path) -> list:
    """Sorts as people count: ``17_1`` before ``179_1``, ``IM2`` before ``IM10``."""
    parts = re.split(r"(\d+)", str(path).lower())
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts]


def _folder_images(folder: Path, depth: int) -> Iterable[Path]:
    try:
        children = list(folder.iterdir())
    except OSError:
        return
    for child in children:
        if child.name.startswith("."):
            continue
        if child.is_dir():
            if depth > 1:
                yield from _folder_images(child, depth - 1)
        elif child.suffix.lower() in SUPPORTED_SUFFIXES or (
            not child.suffix and _looks_like_dicom(child)
        ):
            yield child


def _looks_like_dicom(path: Path) -> bool:
    """DICOM files from PACS often have no suffix; they carry "DICM" at byte 128."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


@dataclass
class StudyEntry:
    """One file of the study list: where it is, whether it could be read (``error`` says
    why not), and once read its ``sha256`` (the session's key for it) and the file's own
    ``scale``.
    What was found and chosen on it lives in the session (``core.review.reading``)."""

    path: Path
    error: str = ""
    sha256: str = ""
    scale: Scale = field(default_factory=Scale.none)

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class ResultRow:
    """One row of the study CSV: a nodule of an image (or an image with none) and its one
    result (``Nodule.estimate``, or the image's scan-area result)."""

    entry: StudyEntry
    status: str  # "analysed", "not analysed" or "error"
    estimate: Estimate | None = None
    frame: int | None = None  # 0-based frame of a cine loop's nodule
    user_mm_per_px: float | None = None
    nodule: Nodule | None = None
    #: The nodule's linked views (``SessionState.linked_views``), for its three diameters.
    views: tuple[ViewMeasure, ...] = ()


CSV_COLUMNS = (
    "file",
    "frame",
    "frame_number",
    "nodule",
    "location",
    "status",
    "error",
    "probability",
    "threshold",
    "calibration",
    "model_estimate",
    "spread",
    "unstable",
    "novelty",
    "no_estimate_reason",
    "caveats",
    "roi_x",
    "roi_y",
    "roi_w",
    "roi_h",
    "roi_source",
    "size",
    "max_diameter_mm",
    "size_basis",
    "diameters",
    "volume_ml",
    "calipers",
    "size_check",
    "scale",
    "tirads_level",
    "tirads_points",
    "tirads_advice",
    "ai_tirads_suggested",
    "ai_tirads_level",
    "ai_tirads_points",
    "tirads_review",
    "warnings",
    "model_id",
    "image_sha256",
)


def csv_row(r: ResultRow) -> dict[str, str]:
    entry, est, nodule = r.entry, r.estimate, r.nodule
    row = dict.fromkeys(CSV_COLUMNS, "")
    row.update(file=str(entry.path), status=r.status, error=entry.error)
    row["frame"] = "" if r.frame is None else str(r.frame)  # 0-based, as the CLI's JSON
    row["frame_number"] = "" if r.frame is None else str(r.frame + 1)  # "frame 6 of 20"
    row["nodule"] = nodule.id if nodule is not None else ""
    row["location"] = nodule.location if nodule is not None else ""
    size = None
    if est is not None or nodule is not None:
        # the analysed box's size; a confirmed nodule not analysed (yet) is sized from its
        # calipers, else its box, as the panel sizes it before an analysis
        box = est.box if est is not None else nodule.box
        suggestion = est.suggestion if est is not None else None
        calipers = nodule.calipers if nodule is not None else ()
        plane = nodule.plane if nodule is not None else None
        size = box_size(box, suggestion, entry.scale, r.user_mm_per_px, calipers, plane, r.views)
        row.update(_size_columns(size))
    if est is not None:
        shown, threshold = est.shown(4)  # in their order, as the panel
        row.update(
            probability=shown,
            threshold=threshold,
            calibration=est.calibration,  # "shipped" or the site profile that made them
            model_estimate=est.call,
            spread=f"{est.spread:.4f}",
            unstable="yes" if est.unstable else "no",
            novelty="" if est.novelty is None else f"{est.novelty:.2f}",
            no_estimate_reason=est.no_estimate_reason,
            caveats="; ".join(est.caveats),
            roi_x=str(est.box.x),
            roi_y=str(est.box.y),
            roi_w=str(est.box.w),
            roi_h=str(est.box.h),
            roi_source=str(est.roi_source),
            warnings="; ".join(est.warnings),
            model_id=est.model_id,
        )
    if nodule is not None:
        row["calipers"] = _calipers_text(nodule, entry.scale, r.user_mm_per_px, r.views)
        row["size_check"] = nodule.stray_text()
    choices = nodule.tirads if nodule is not None else TiradsChoices()
    scored = choices.descriptors
    if scored is not None:
        row.update(
            tirads_level=f"TR{scored.level.tr}",
            tirads_points=str(scored.points),
            tirads_advice=recommend(scored.level, size).text,  # as the panel and the PDF
        )
    sug = est.suggestion if est is not None and est.in_scope else None
    if sug is not None:
        row.update(
            ai_tirads_suggested=sug.text(),
            ai_tirads_level=f"TR{sug.level.tr}" + ("" if sug.complete else " (incomplete)"),
            ai_tirads_points=str(sug.points),
            tirads_review=review_text(review_of(choices, sug)),
        )
    row["image_sha256"] = entry.sha256
    return row


def _size_columns(size) -> dict[str, str]:
    """The CSV's size columns of a :class:`NoduleSize`."""
    d = size.diameters
    return {
        "size": size.text(),
        "max_diameter_mm": "" if size.max_diameter_mm is None else f"{size.max_diameter_mm:.1f}",
        "size_basis": str(size.basis),
        "diameters": "" if d is None else d.values_text(),
        "volume_ml": "" if size.volume_ml is None else f"{size.volume_ml:.2f}",
        "scale": str(size.scale.source),
    }


def _calipers_text(nodule: Nodule | None, file_scale: Scale, user_mm_per_px, views=()) -> str:
    """ "1: 12.3 mm; 2: 8.1 mm (outside the box); 3: 14.0 mm (longitudinal view)": every
    caliper line of the nodule, numbered as on the image and in the PDF, each under its
    image's scale (``views``: its linked views' ``ViewMeasure``, whose scale a view's line
    takes); a line that may not measure this nodule (``Nodule.stray_calipers``) says so."""
    if nodule is None:
        return ""
    own = effective_scale(file_scale, user_mm_per_px)
    stray = {c.number for c in nodule.stray_calipers()}
    parts = []
    for c in nodule.numbered_calipers():
        if c.view is None:
            text = caliper_length_text(c.caliper, own)
        else:
            scale = views[c.view].scale if c.view < len(views) else Scale.none()
            text = f"{caliper_length_text(c.caliper, scale)} ({nodule.views[c.view].plane} view)"
        parts.append(f"{c.number}: {text}" + " (outside the box)" * (c.number in stray))
    return "; ".join(parts)


def write_csv(path: str | os.PathLike[str], results: Iterable[ResultRow]) -> Path:
    """The study as CSV, one line per row given (the window gives one per confirmed nodule:
    ``Review.rows``), written atomically."""
    rows = [csv_row(r) for r in results]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    return write_atomically(path, write)
