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
from thyroid_desktop.core.tirads import EchogenicFoci, TiradsDescriptors, label, recommend

NOTICE = "For research use only. Not for use in diagnostic procedures."


_SEXES = {"M": "male", "F": "female", "O": "other"}


def person_name(value: str) -> str:
    """A DICOM person name for people: "Testperson^Anna^Maria" -> "Testperson, Anna Maria"
    (family name, given and middle names; prefix and suffix kept)."""
    if "^" not in value:
        return value.strip()
    alphabetic = value.split("=")[0]  # ideographic / phonetic forms are not printed
    family, given, middle, prefix, suffix = (alphabetic.split("^") + [""] * 5)[:5]
    first = " ".join(p for p in (prefix, given, middle) if p.strip())
    name = ", ".join(p for p in (family.strip(), first.strip()) if p)
    return f"{name}, {suffix.strip()}" if suffix.strip() else name


def human_date(value: str) -> str:
    """A DICOM date for people: "20261120" -> "20 Nov 2026"; anything else as given."""
    text = value.strip()
    try:
        return dt.datetime.strptime(text, "%Y%m%d").strftime("%-d %b %Y")
    except ValueError:
        return text


def human_sex(value: str) -> str:
    return _SEXES.get(value.strip().upper(), value.strip())


@dataclass(frozen=True)
class StudyInfo:
    """Patient and study fields for people to read: from DICOM where present (names and
    dates formatted), else typed (all optional)."""

    patient_name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    sex: str = ""
    study_date: str = ""
    accession: str = ""
    operator: str = ""
    impression: str = ""

    @classmethod
    def from_metadata(cls, meta: dict[str, str], **typed: str) -> StudyInfo:
        return cls(
            patient_name=typed.get("patient_name") or person_name(meta.get("PatientName", "")),
            patient_id=typed.get("patient_id") or meta.get("PatientID", ""),
            birth_date=typed.get("birth_date") or human_date(meta.get("PatientBirthDate", "")),
            sex=typed.get("sex") or human_sex(meta.get("PatientSex", "")),
            study_date=typed.get("study_date") or human_date(meta.get("StudyDate", "")),
            accession=typed.get("accession") or meta.get("AccessionNumber", ""),
            operator=typed.get("operator", ""),
            impression=typed.get("impression", ""),
        )


def overlay(pixels: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """The image with the Grad-CAM map blended over it (as the app shows it)."""
    rgba = heatmap_rgba(heatmap).astype(np.float32)
    alpha = rgba[..., 3:4] / 255.0
    return (pixels * (1.0 - alpha) + rgba[..., :3] * alpha).astype(np.uint8)


def created_text(created: dt.datetime) -> str:
    """Local time with its zone and UTC offset, e.g. "29 Nov 2026 20:15 CET (UTC+01:00)"."""
    offset = created.strftime("%z")
    offset = f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC offset unknown"
    return f"{created.strftime('%-d %b %Y %H:%M')} {created.strftime('%Z')} ({offset})".replace(
        "  ", " "
    )


def _lines(
    image, finding, card, study, tirads, measurement, created, nodule
) -> list[tuple[str, str]]:
    raw = card.raw
    size = measurement.text() if measurement else "not measured"
    frame = f"   frame {image.frame_index + 1} of {image.n_frames}" if image.n_frames > 1 else ""
    patient = [study.patient_name or "-", f"ID {study.patient_id or '-'}"]
    patient += [f"born {study.birth_date}"] if study.birth_date else []
    patient += [f"sex {study.sex}"] if study.sex else []
    rows = [
        ("Patient", "   ".join(patient)),
        ("Study", f"date {study.study_date or '-'}   accession {study.accession or '-'}"),
        (
            "Image",
            f"{image.source.name if image.source else 'in-memory image'}{frame}   "
            f"sha256 {image.sha256[:16]}…",
        ),
        *([("Nodule", nodule)] if nodule else []),
        ("Report created", created_text(created)),
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
        kinds = tirads.foci - {EchogenicFoci.NONE} or tirads.foci  # "none" only when alone
        foci = ", ".join(sorted(label(f) for f in kinds))
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
    nodule: str = "",
) -> Path:
    """Writes a one-page A4 PDF to a temporary file, then renames it to ``path``.
    ``nodule`` names and locates it (e.g. "N1, right lobe, upper")."""
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
    for key, value in _lines(image, finding, card, study, tirads, measurement, created, nodule):
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
