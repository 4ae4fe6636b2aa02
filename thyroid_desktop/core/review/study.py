"""A study: the list of images a clinician reviews in one sitting, and its CSV export."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from thyroid_desktop.core.clinical.measure import Scale, finding_size
from thyroid_desktop.core.clinical.tirads import TiradsChoices, TiradsDescriptors
from thyroid_desktop.core.io.files import write_atomically
from thyroid_desktop.core.io.images import SUPPORTED_SUFFIXES
from thyroid_desktop.core.pipeline.estimate import Finding
from thyroid_desktop.core.pipeline.tirads_ai import review_of, review_text

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
    """One image of the study: where it is, what happened to it, what the model said.

    ``status`` is "not analysed", "analysed" or "error" (``error`` then says why);
    ``scale`` (the file's own) and ``sha256`` are filled in when the image is read;
    ``user_mm_per_px`` is a scale the user calibrated on this image, ``calipers_px`` the
    caliper lines drawn across its nodule and ``tirads`` the descriptors chosen.
    """

    path: Path
    status: str = "not analysed"
    error: str = ""
    finding: Finding | None = None
    scale: Scale = field(default_factory=Scale.none)
    user_mm_per_px: float | None = None
    calipers_px: tuple[tuple[float, float], ...] = ()
    sha256: str = ""
    tirads: TiradsDescriptors | None = None
    frame: int | None = None  # 0-based frame the finding is for (cine loops)
    #: The clinician's TI-RADS choices so far (also partial ones), for the AI review column.
    choices: TiradsChoices | None = None

    @property
    def name(self) -> str:
        return self.path.name

    def summary(self) -> str:
        """One line for the study list."""
        if self.status == "error":
            return f"{self.name}\n{self.error.removeprefix(self.name + ': ')}"
        if self.finding is None:
            return f"{self.name}\nnot analysed"
        f = self.finding
        tr = f" · TR{self.tirads.level.tr}" if self.tirads else ""  # the clinician's score
        if not f.in_scope:
            return f"{self.name}\n⚠ no estimate{tr}"
        shaky = " · unstable" if f.unstable else ""
        return f"{self.name}\n{f.probability:.2f} · {f.call_text} · {f.roi_source} box{tr}{shaky}"


CSV_COLUMNS = (
    "file",
    "frame",
    "status",
    "error",
    "probability",
    "threshold",
    "model_estimate",
    "spread",
    "unstable",
    "novelty",
    "no_estimate_reason",
    "roi_x",
    "roi_y",
    "roi_w",
    "roi_h",
    "roi_source",
    "size",
    "max_diameter_mm",
    "size_basis",
    "scale",
    "tirads_level",
    "tirads_points",
    "ai_tirads_suggested",
    "ai_tirads_level",
    "ai_tirads_points",
    "tirads_review",
    "warnings",
    "model_id",
    "image_sha256",
)


def csv_row(entry: StudyEntry) -> dict[str, str]:
    row = dict.fromkeys(CSV_COLUMNS, "")
    row.update(file=str(entry.path), status=entry.status, error=entry.error)
    row["frame"] = "" if entry.frame is None else str(entry.frame)
    f = entry.finding
    if f is not None:
        size = finding_size(f, entry.scale, entry.user_mm_per_px, entry.calipers_px)
        row.update(
            probability="" if f.estimate is None else f"{f.estimate:.4f}",
            threshold=f"{f.threshold:.4f}",
            model_estimate=f.call_text,
            spread=f"{f.spread:.4f}",
            unstable="yes" if f.unstable else "no",
            novelty="" if f.novelty is None else f"{f.novelty:.2f}",
            no_estimate_reason=f.no_estimate_reason,
            roi_x=str(f.roi.x),
            roi_y=str(f.roi.y),
            roi_w=str(f.roi.w),
            roi_h=str(f.roi.h),
            roi_source=f.roi_source,
            size=size.text(),
            max_diameter_mm="" if size.max_diameter_mm is None else f"{size.max_diameter_mm:.1f}",
            size_basis=str(size.basis),
            scale=str(size.scale.source),
            warnings="; ".join(f.warnings),
            model_id=f.model_id,
        )
    if entry.tirads is not None:
        row.update(
            tirads_level=f"TR{entry.tirads.level.tr}", tirads_points=str(entry.tirads.points)
        )
    sug = f.tirads_suggestion if f is not None and f.in_scope else None
    if sug is not None:
        row.update(
            ai_tirads_suggested=sug.text(),
            ai_tirads_level=f"TR{sug.level.tr}" + ("" if sug.complete else " (incomplete)"),
            ai_tirads_points=str(sug.points),
            tirads_review=review_text(
                review_of(entry.choices or TiradsChoices.of(entry.tirads), sug)
            ),
        )
    row["image_sha256"] = entry.sha256
    return row


def write_csv(path: str | os.PathLike[str], entries: Iterable[StudyEntry]) -> Path:
    """The study list as CSV (one row per image, analysed or not), written atomically."""
    rows = [csv_row(e) for e in entries]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    return write_atomically(path, write)
