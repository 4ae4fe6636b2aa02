"""The PDF report a clinician signs: study, image with box, Grad-CAM, estimate, TI-RADS,
size, impression and what the model card says about the model. Written atomically."""

from __future__ import annotations

import datetime as dt
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thyroid_desktop.core.files import write_atomically
from thyroid_desktop.core.gradcam import heatmap_rgba
from thyroid_desktop.core.images import UltrasoundImage
from thyroid_desktop.core.inference import Finding
from thyroid_desktop.core.measure import Measurement
from thyroid_desktop.core.models import ModelCard
from thyroid_desktop.core.tirads import TiradsDescriptors, label, recommend

NOTICE = "For research use only. Not for use in diagnostic procedures."


@dataclass(frozen=True)
class StudyInfo:
    """Patient and study fields: from DICOM where present, else typed (all optional)."""

    patient_name: str = ""
    patient_id: str = ""
    study_date: str = ""
    accession: str = ""
    operator: str = ""
    impression: str = ""

    @classmethod
    def from_metadata(cls, meta: dict[str, str], **typed: str) -> StudyInfo:
        return cls(
            patient_name=typed.get("patient_name") or meta.get("PatientName", ""),
            patient_id=typed.get("patient_id") or meta.get("PatientID", ""),
            study_date=typed.get("study_date") or meta.get("StudyDate", ""),
            accession=typed.get("accession") or meta.get("AccessionNumber", ""),
            operator=typed.get("operator", ""),
            impression=typed.get("impression", ""),
        )


def overlay(pixels: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """The image with the Grad-CAM map blended over it (as the app shows it)."""
    rgba = heatmap_rgba(heatmap).astype(np.float32)
    alpha = rgba[..., 3:4] / 255.0
    return (pixels * (1.0 - alpha) + rgba[..., :3] * alpha).astype(np.uint8)


def _lines(image, finding, card, study, tirads, measurement, created) -> list[tuple[str, str]]:
    raw = card.raw
    size = measurement.text() if measurement else "not measured"
    rows = [
        ("Patient", f"{study.patient_name or '-'}   ID {study.patient_id or '-'}"),
        ("Study", f"date {study.study_date or '-'}   accession {study.accession or '-'}"),
        (
            "Image",
            f"{image.source.name if image.source else 'in-memory image'}   sha256 {image.sha256[:16]}…",
        ),
        ("Report created", created.strftime("%Y-%m-%d %H:%M %Z")),
        ("Operator", study.operator or "-"),
        (
            card.output_name.split(":")[0],
            f"NONE: {finding.no_estimate_reason}"
            if not finding.in_scope
            else f"{finding.probability:.2f} (likelihood of TI-RADS 4-5; views differ by "
            f"{finding.spread:.2f}{', UNSTABLE' if finding.unstable else ''}; threshold "
            f"{finding.threshold:.2f}"
            + (f", site calibration {finding.profile}" if finding.profile else "")
            + f") -> {finding.call_text}",
        ),
        *[("Image note", note) for note in finding.notes],
        ("Nodule box", f"{finding.roi.as_list()} px ({finding.roi_source})"),
        ("Size", size),
    ]
    if tirads is not None:
        level = tirads.level
        rec = recommend(level, measurement.max_diameter_mm if measurement else None)
        foci = ", ".join(sorted(label(f) for f in tirads.foci))
        rows += [
            (
                "ACR TI-RADS",
                f"TR{level.tr} ({level.name}), {tirads.points} points: {label(tirads.composition)}; "
                f"{label(tirads.echogenicity)}; {label(tirads.shape)}; {label(tirads.margin)}; {foci}",
            ),
            ("Recommendation", rec.text),
        ]
    else:
        rows.append(("ACR TI-RADS", "not scored"))
    rows += [
        ("Impression", study.impression or "-"),
        ("Model", f"{card.id} v{card.version}   sha256 {str(raw.get('sha256', ''))[:16]}…"),
        ("Model performance", card.performance_text()),
        ("Labels", "trained on TI-RADS-derived labels (TR 4-5 vs 2-3), not pathology"),
    ]
    return rows


def write_report(
    path: str | os.PathLike[str],
    image: UltrasoundImage,
    finding: Finding,
    card: ModelCard,
    study: StudyInfo,
    tirads: TiradsDescriptors | None = None,
    measurement: Measurement | None = None,
    created: dt.datetime | None = None,
) -> Path:
    """Writes a one-page A4 PDF to a temporary file, then renames it to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.patches import Rectangle

    path = Path(path)
    created = created or dt.datetime.now().astimezone()
    fig = plt.figure(figsize=(8.27, 11.69))
    fig.text(0.06, 0.965, "Thyroid Review — nodule report", fontsize=16, weight="bold")
    fig.text(0.06, 0.945, NOTICE, fontsize=9, color="#b00020")
    pixels = np.asarray(image.pixels)
    for i, (title, shown) in enumerate(
        (
            ("Image and nodule box", pixels),
            ("Grad-CAM (model attention)", overlay(pixels, finding.heatmap)),
        )
    ):
        ax = fig.add_axes((0.06 + i * 0.46, 0.66, 0.42, 0.26))
        ax.imshow(shown)
        r = finding.roi
        ax.add_patch(Rectangle((r.x, r.y), r.w, r.h, fill=False, edgecolor="#ffd400", lw=1.5))
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    y = 0.63
    for key, value in _lines(image, finding, card, study, tirads, measurement, created):
        wrapped = textwrap.wrap(value, 88) or ["-"]
        fig.text(0.06, y, key, fontsize=9, weight="bold", va="top")
        fig.text(0.27, y, "\n".join(wrapped), fontsize=9, va="top")
        y -= 0.02 + 0.0145 * (len(wrapped) - 1)
    fig.text(0.06, 0.07, "Signature: ______________________________", fontsize=10)
    fig.text(0.06, 0.04, NOTICE, fontsize=8, color="#b00020")
    try:
        with matplotlib.rc_context({"pdf.fonttype": 42}):
            write_atomically(path, lambda tmp: fig.savefig(tmp, format="pdf"))
    finally:
        plt.close(fig)
    return path
