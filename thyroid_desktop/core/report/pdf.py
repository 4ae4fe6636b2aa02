"""The PDF report a clinician signs: study, image with box, Grad-CAM, estimate, TI-RADS,
size, impression and what the model card says about the model. Written atomically."""

from __future__ import annotations

import datetime as dt
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thyroid_desktop.core.clinical.measure import (
    Caliper,
    NoduleSize,
    Plane,
    Scale,
    caliper_length_text,
)
from thyroid_desktop.core.clinical.tirads import (
    TiradsChoices,
    TiradsDescriptors,
    recommend,
    tirads_text,
)
from thyroid_desktop.core.io.files import write_atomically
from thyroid_desktop.core.io.images import UltrasoundImage
from thyroid_desktop.core.models.gradcam import heatmap_rgba
from thyroid_desktop.core.models.shipped import ModelCard
from thyroid_desktop.core.pipeline.estimate import Finding
from thyroid_desktop.core.pipeline.tirads_ai import review_of, review_text

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

    @property
    def patient_text(self) -> str:
        """Name, ID, date of birth and sex on one line (those given)."""
        parts = [self.patient_name or "-", f"ID {self.patient_id or '-'}"]
        parts += [f"born {self.birth_date}"] if self.birth_date else []
        parts += [f"sex {self.sex}"] if self.sex else []
        return "   ".join(parts)

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
    image, finding, card, study, tirads, size: NoduleSize | None, created, nodule, choices=None
) -> list[tuple[str, str]]:
    raw = card.raw
    frame = f"   frame {image.frame_index + 1} of {image.n_frames}" if image.n_frames > 1 else ""
    rows = [
        ("Patient", study.patient_text),
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
            + (f", site calibration {finding.calibration}" if finding.site_calibrated else "")
            + f") -> {finding.call_text}",
        ),
        *[("Image note", note) for note in finding.notes],
        ("Nodule box", f"{finding.roi.as_list()} px ({finding.roi_source})"),
        ("Size", size.text() if size is not None else "not measured"),
    ]
    choices = choices if choices is not None else TiradsChoices.of(tirads)
    scored = choices.descriptors
    rows.append(("ACR TI-RADS", tirads_text(choices)))  # the panel's words, the same function
    if scored is not None:
        rows.append(("Recommendation", recommend(scored.level, size).text))
    sug = finding.tirads_suggestion if finding.in_scope else None
    if sug is not None:
        review = review_of(choices, sug)
        rows.append(
            (
                "AI suggestions",
                f"{sug.text()} (AI-only {sug.level_text}; not a reading). "
                f"Clinician: {review_text(review)}.",
            )
        )
    rows += [
        ("Impression", study.impression or "-"),
        ("Model", f"{card.id} v{card.version}   sha256 {str(raw.get('sha256', ''))[:16]}…"),
        ("Model performance", card.performance_text()),
        ("Labels", "trained on TI-RADS-derived labels (TR 4-5 vs 2-3), not pathology"),
    ]
    return rows


#: A caliper line as a report draws it: its number (1, 2, 3 per nodule) and its ends.
NumberedLine = tuple[int, Caliper]

CALIPER_COLOUR = "#00dcff"


def _draw_calipers(ax, calipers: tuple[NumberedLine, ...], scale: Scale) -> None:
    """Each caliper line on the image, its ends marked, labelled "number: length"."""
    for number, c in calipers:
        (x1, y1), (x2, y2) = c.start, c.end
        ax.plot([x1, x2], [y1, y2], color=CALIPER_COLOUR, lw=1.2, marker="+", ms=6)
        x, y = (x2, y2) if x2 >= x1 else (x1, y1)
        ax.annotate(
            f"{number}: {caliper_length_text(c, scale)}",
            (x, y),
            xytext=(3, 3),
            textcoords="offset points",
            color=CALIPER_COLOUR,
            fontsize=6.5,
        )


def calipers_text(calipers: tuple[NumberedLine, ...], scale: Scale) -> str:
    """ "1: 12.3 mm, 2: 8.1 mm" (as drawn on the image)."""
    return ", ".join(f"{n}: {caliper_length_text(c, scale)}" for n, c in calipers)


def _write_rows(fig, rows: list[tuple[str, str]], y: float) -> float:
    """Writes ``key: value`` rows down the page from height ``y``; returns where it ended."""
    for key, value in rows:
        wrapped = textwrap.wrap(value, 88) or ["-"]
        fig.text(0.06, y, key, fontsize=9, weight="bold", va="top")
        fig.text(0.27, y, "\n".join(wrapped), fontsize=9, va="top")
        y -= 0.02 + 0.0145 * (len(wrapped) - 1)
    return y


def write_report(
    path: str | os.PathLike[str],
    image: UltrasoundImage,
    finding: Finding,
    card: ModelCard,
    study: StudyInfo,
    tirads: TiradsDescriptors | None = None,
    size: NoduleSize | None = None,
    created: dt.datetime | None = None,
    nodule: str = "",
    choices: TiradsChoices | None = None,
    calipers: tuple[NumberedLine, ...] = (),
) -> Path:
    """Writes a one-page A4 PDF to a temporary file, then renames it to ``path``.
    ``size`` is the nodule's (``core.clinical.measure.finding_size``: the same as the panel
    and the CSV); ``nodule`` names and locates it (e.g. "N1, right lobe, upper");
    ``choices`` are the clinician's TI-RADS choices so far (what they did with the AI's
    suggestions); ``calipers``: the caliper lines on this frame, drawn with their lengths
    (under ``size``'s scale)."""
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
        if i == 0 and calipers:
            _draw_calipers(ax, calipers, size.scale if size is not None else Scale.none())
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    rows = _lines(image, finding, card, study, tirads, size, created, nodule, choices)
    if calipers:
        scale = size.scale if size is not None else Scale.none()
        rows.insert(
            rows.index(next(r for r in rows if r[0] == "Size")) + 1,
            ("Calipers", calipers_text(calipers, scale)),
        )
    _write_rows(fig, rows, 0.63)
    fig.text(0.06, 0.07, "Signature: ______________________________", fontsize=10)
    fig.text(0.06, 0.04, NOTICE, fontsize=8, color="#b00020")
    try:
        with matplotlib.rc_context({"pdf.fonttype": 42}):
            write_atomically(path, lambda tmp: fig.savefig(tmp, format="pdf"))
    finally:
        plt.close(fig)
    return path


# ------------------------------------------------------------------------- study report
def image_text(image: UltrasoundImage) -> str:
    """The file (and a cine loop's frame, 1-based) as the report names it."""
    name = image.source.name if image.source else "in-memory image"
    if image.n_frames > 1:
        return f"{name}, frame {image.frame_index + 1} of {image.n_frames}"
    return name


@dataclass(frozen=True)
class ReportView:
    """A nodule's other view as the study report draws it: the frame, the plane, the box,
    its caliper lines and the scale their lengths use."""

    image: UltrasoundImage
    plane: Plane
    box: object  # ROI
    calipers: tuple[NumberedLine, ...] = ()
    scale: Scale = Scale()

    @property
    def image_text(self) -> str:
        return image_text(self.image)


@dataclass(frozen=True)
class NoduleReport:
    """One nodule of the study as the study report shows it: the frame it is seen on, the
    model's finding for its box (with the heat map), its size (``finding_size``) and the
    clinician's choices."""

    nodule_id: str
    location: str
    image: UltrasoundImage
    finding: Finding
    size: NoduleSize
    tirads: TiradsDescriptors | None
    notes: str = ""
    choices: TiradsChoices | None = None
    #: The caliper lines on this frame, drawn on the image with their lengths.
    calipers: tuple[NumberedLine, ...] = ()
    #: The nodule's plane on this image, and its other view (when linked).
    plane: Plane | None = None
    other_view: ReportView | None = None

    @property
    def image_text(self) -> str:
        return image_text(self.image)

    @property
    def estimate_text(self) -> str:
        """Short, for the summary table: "0.98 suspicious", "none" (no estimate)."""
        f = self.finding
        if not f.in_scope:
            return "none"
        return f"{f.probability:.2f} {f.call_text.split(' (')[0]}" + (
            ", unstable" if f.unstable else ""
        )

    @property
    def size_text(self) -> str:
        """Short, for the summary table: the size TI-RADS uses and what it comes from."""
        return self.size.summary()

    @property
    def level_text(self) -> str:
        return "not scored" if self.tirads is None else f"TR{self.tirads.level.tr}"

    @property
    def recommendation(self) -> str:
        """Short, for the summary table: FNA, follow-up, no FNA or size needed."""
        if self.tirads is None:
            return "-"
        return recommend(self.tirads.level, self.size).action


def study_summary_rows(items: list[NoduleReport]) -> list[list[str]]:
    """The summary table: one row per nodule."""
    return [
        [
            it.nodule_id,
            it.location or "-",
            it.size_text,
            it.level_text,
            it.recommendation,
            it.estimate_text,
        ]
        for it in items
    ]


SUMMARY_HEADER = ["Nodule", "Location", "Size", "TI-RADS", "Recommendation", "AI estimate"]


def write_study_report(
    path: str | os.PathLike[str],
    items: list[NoduleReport],
    card: ModelCard,
    study: StudyInfo,
    created: dt.datetime | None = None,
) -> Path:
    """A study report: page 1 has the patient, a summary table with one row per nodule and
    the model's performance; then one page per nodule with its image, Grad-CAM and details.
    Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.patches import Rectangle

    if not items:
        raise ValueError("the study has no nodule to report")
    path = Path(path)
    created = created or dt.datetime.now().astimezone()
    figures = []
    first = plt.figure(figsize=(8.27, 11.69))
    first.text(0.06, 0.965, "Thyroid Review — study report", fontsize=16, weight="bold")
    first.text(0.06, 0.945, NOTICE, fontsize=9, color="#b00020")
    header = [
        ("Patient", study.patient_text),
        ("Study", f"date {study.study_date or '-'}   accession {study.accession or '-'}"),
        ("Report created", created_text(created)),
        ("Operator", study.operator or "-"),
        ("Nodules", str(len(items))),
    ]
    y = _write_rows(first, header, 0.915)
    ax = first.add_axes((0.06, y - 0.03 - 0.035 * (len(items) + 1), 0.88, 0.035 * (len(items) + 1)))
    ax.axis("off")
    rows = [[textwrap.fill(c, 22) for c in r] for r in study_summary_rows(items)]
    table = ax.table(
        cellText=rows,
        colLabels=SUMMARY_HEADER,
        colWidths=[0.09, 0.2, 0.2, 0.12, 0.17, 0.22],
        loc="upper left",
        cellLoc="left",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    table.scale(1.0, 2.2)
    footer = [
        ("Impression", study.impression or "-"),
        ("Model", f"{card.id} v{card.version}"),
        ("Model performance", card.performance_text()),
        (
            "Labels",
            "AI estimate: likelihood of TI-RADS 4-5, trained on TI-RADS-derived labels, not pathology",
        ),
    ]
    _write_rows(first, footer, y - 0.08 - 0.035 * (len(items) + 1))
    first.text(0.06, 0.07, "Signature: ______________________________", fontsize=10)
    first.text(0.06, 0.04, NOTICE, fontsize=8, color="#b00020")
    figures.append(first)
    for it in items:
        fig = plt.figure(figsize=(8.27, 11.69))
        title = f"{it.nodule_id}" + (f" — {it.location}" if it.location else "")
        fig.text(0.06, 0.965, title, fontsize=15, weight="bold")
        fig.text(0.06, 0.945, it.image_text, fontsize=9)
        pixels = np.asarray(it.image.pixels)
        own = f"{it.plane} view" if it.plane else "Image"
        panels = [
            (f"{own}, box and calipers", pixels, it.finding.roi, it.calipers, it.size.scale),
            ("Grad-CAM", overlay(pixels, it.finding.heatmap), it.finding.roi, (), None),
        ]
        v = it.other_view
        if v is not None:
            title = f"{v.plane} view: {v.image_text}"
            panels.append((title, np.asarray(v.image.pixels), v.box, v.calipers, v.scale))
        width = 0.42 if len(panels) == 2 else 0.285
        for i, (name, shown, r, lines, scale) in enumerate(panels):
            ax = fig.add_axes((0.06 + i * (width + 0.04), 0.62, width, 0.3))
            ax.imshow(shown)
            ax.add_patch(Rectangle((r.x, r.y), r.w, r.h, fill=False, edgecolor="#ffd400", lw=1.5))
            if lines:
                _draw_calipers(ax, lines, scale)
            ax.set_title(textwrap.fill(name, 40), fontsize=8)
            ax.axis("off")
        lines = _lines(
            it.image,
            it.finding,
            card,
            study,
            it.tirads,
            it.size,
            created,
            "",
            it.choices,
        )
        skip = {
            "Patient",
            "Study",
            "Report created",
            "Operator",
            "Impression",
            "Model",
            "Model performance",
            "Labels",
        }
        lines = [(k, v) for k, v in lines if k not in skip]
        lines += [("Calipers", calipers_text(it.calipers, it.size.scale))] if it.calipers else []
        if v is not None and v.calipers:
            lines.append((f"Calipers ({v.plane})", calipers_text(v.calipers, v.scale)))
        lines += [("Notes", it.notes)] if it.notes else []
        _write_rows(fig, lines, 0.59)
        fig.text(0.06, 0.04, NOTICE, fontsize=8, color="#b00020")
        figures.append(fig)

    def write(tmp: Path) -> None:
        with matplotlib.rc_context({"pdf.fonttype": 42}), PdfPages(tmp) as pdf:
            for fig in figures:
                pdf.savefig(fig)

    try:
        write_atomically(path, write)
    finally:
        for fig in figures:
            plt.close(fig)
    return path
