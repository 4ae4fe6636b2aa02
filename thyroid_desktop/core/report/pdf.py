"""The PDF report a clinician signs: study, image with box, Grad-CAM, estimate, TI-RADS,
size, impression and what the model card says about the model. Written atomically."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thyroid_desktop.core.clinical.measure import (
    Caliper,
    NoduleSize,
    Plane,
    Scale,
    caliper_length_text,
    finding_size,
)
from thyroid_desktop.core.clinical.tirads import (
    GROUP_NAMES,
    TiradsChoices,
    TiradsDescriptors,
    label,
    points_of,
    recommend,
    tirads_text,
)
from thyroid_desktop.core.io.files import write_atomically
from thyroid_desktop.core.io.images import UltrasoundImage
from thyroid_desktop.core.models.gradcam import heatmap_rgba
from thyroid_desktop.core.models.shipped import ModelCard
from thyroid_desktop.core.pipeline.estimate import Finding
from thyroid_desktop.core.pipeline.tirads_ai import review_of, review_text
from thyroid_desktop.core.report.layout import (
    CONTENT_W,
    GAP,
    INK,
    MARGIN_X,
    MUTED,
    PAGE_H,
    PAGE_W,
    WARN,
    Flow,
    Mark,
    Picture,
    Rule,
    Text,
    line_height,
    reduced,
    render,
    wrap,
)

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
    zone = created.strftime("%Z")
    zone = "" if zone == offset else zone  # a bare offset (e.g. read from ISO) has no name
    return f"{created.strftime('%-d %b %Y %H:%M')} {zone} ({offset})".replace("  ", " ")


# ------------------------------------------------------------------------- drawing the views
#: A caliper line as a report draws it: its number (1, 2, 3 per nodule) and its ends.
NumberedLine = tuple[int, Caliper]

# The window's colours (``ui.image_view``): a reader of both sees the same marks; green is
# the window's thyroid-gland outline, never the nodule's.
CALIPER_COLOUR = "#00dcff"
BOX_COLOUR = "#ffdc00"
OUTLINE_COLOUR = "#ff8c00"


def calipers_text(calipers: tuple[NumberedLine, ...], scale: Scale) -> str:
    """ "1: 12.3 mm, 2: 8.1 mm" (as drawn on the image)."""
    return ", ".join(f"{n}: {caliper_length_text(c, scale)}" for n, c in calipers)


def view_marks(
    box, outline=(), calipers: tuple[NumberedLine, ...] = (), scale: Scale | None = None
) -> tuple[Mark, ...]:
    """What a report draws over a view, in the image's pixels: the nodule's box, its outline
    (contour) and each caliper line, its ends marked, labelled "number: length"."""
    marks = []
    if box is not None:
        corners = ((box.x, box.y), (box.x + box.w, box.y), (box.x + box.w, box.y + box.h))
        marks.append(Mark((*corners, (box.x, box.y + box.h)), BOX_COLOUR, 1.1, closed=True))
    if outline is not None and len(outline) >= 3:
        points = tuple((float(x), float(y)) for x, y in outline)
        marks.append(Mark(points, OUTLINE_COLOUR, 0.9, closed=True))
    for number, c in calipers:
        label = f"{number}: {caliper_length_text(c, scale or Scale.none())}"
        marks.append(Mark((c.start, c.end), CALIPER_COLOUR, 1.1, ends=True, label=label))
    return tuple(marks)


def heat_layer(heatmap: np.ndarray, width_pt: float) -> np.ndarray:
    """The heat map as an RGBA layer at the size the page shows (``heatmap_rgba``: the app's
    colours and transparency), to lie over the view."""
    return heatmap_rgba(np.clip(reduced(np.asarray(heatmap, np.float32), width_pt), 0.0, 1.0))


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


#: How the summary table says a caveat in a few words (the nodule's page has it in full).
_SHORT_CAVEATS = (
    ("outside the validated scope", "outside validated scope"),
    ("not validated at this site", "not site-validated"),
)


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
    #: The nodule's outline (contour) in image pixels; empty: the segmenter's mask outline
    #: that came with the finding, if any.
    outline: tuple[tuple[float, float], ...] = ()
    #: The nodule's tracking UID (the session's; empty: the DICOM SR makes one).
    uid: str = ""
    #: Caliper lines that may not measure this nodule (``Nodule.stray_text``), e.g. "N1:
    #: caliper 2 lies outside its box: check that it measures this nodule"; "" when none.
    caliper_check: str = ""

    @property
    def image_text(self) -> str:
        return image_text(self.image)

    @property
    def contour(self) -> tuple[tuple[float, float], ...]:
        """The outline drawn on the image: the clinician's click or stroke outline, else the
        segmenter's mask outline of the analysed box (none without an estimate)."""
        if self.outline:
            return tuple(self.outline)
        sug = self.finding.tirads_suggestion
        return tuple(sug.outline) if sug is not None and sug.outline else ()

    @property
    def tirads_choices(self) -> TiradsChoices:
        return self.choices if self.choices is not None else TiradsChoices.of(self.tirads)

    @property
    def estimate_text(self) -> str:
        """Short, for the summary table: "0.98 suspicious", "none" (no estimate)."""
        f = self.finding
        if not f.in_scope:
            return "none"
        return f"{f.shown()[0]} {f.call_text.split(' (')[0]}" + (", unstable" if f.unstable else "")

    @property
    def caveats_text(self) -> str:
        """Short, for the summary table: the estimate's caveats, or why there is none; and
        "check calipers" when a caliper line lies outside the box (the page says which)."""
        f = self.finding
        check = ["check calipers"] if self.caliper_check else []
        if not f.in_scope:
            return "; ".join([f"no estimate: {f.no_estimate_reason}", *check])
        out = []
        for caveat in f.caveats:
            out.append(next((s for k, s in _SHORT_CAVEATS if caveat.startswith(k)), caveat))
        return "; ".join(out + check) or "-"

    @property
    def size_text(self) -> str:
        """Short, for the summary table: the size TI-RADS uses and what it comes from."""
        return self.size.summary()

    @property
    def level_text(self) -> str:
        """Short: "TR4, 5 points" or "not scored"."""
        if self.tirads is None:
            return "not scored"
        return f"TR{self.tirads.level.tr}, {self.tirads.points} points"

    @property
    def recommendation(self) -> str:
        """Short, for the summary table: FNA, follow-up, no FNA or size needed."""
        if self.tirads is None:
            return "-"
        return recommend(self.tirads.level, self.size).action


SUMMARY_HEADER = [
    "Nodule",
    "Location",
    "Size",
    "TI-RADS",
    "ACR advice",
    "AI estimate",
    "Caveats",
]
#: The summary table's column widths in points (they add up to the page's text width).
SUMMARY_WIDTHS = (38.0, 72.0, 86.0, 62.0, 58.0, 78.0, CONTENT_W - 394.0)


def study_summary_rows(items: Sequence[NoduleReport]) -> list[list[str]]:
    """The summary table: one row per nodule."""
    return [
        [
            it.nodule_id,
            it.location or "-",
            it.size_text,
            it.level_text,
            it.recommendation,
            it.estimate_text,
            it.caveats_text,
        ]
        for it in items
    ]


LABELS_TEXT = (
    "AI estimate: the likelihood that the nodule would be read TI-RADS 4-5; trained on "
    "TI-RADS-derived labels (TR 4-5 vs 2-3), not pathology. The estimate and the AI's "
    "TI-RADS suggestions support the reading; they are not a diagnosis."
)

#: Who set a TI-RADS category, from ``review_of``'s word for it.
SET_BY = {
    "accepted": "AI suggestion, accepted",
    "accepted earlier": "AI suggestion (earlier box), accepted",
    "changed": "clinician (AI differed)",
    "chosen": "clinician",
    "open": "not set",
}

_TIRADS_GROUPS = ("composition", "echogenicity", "shape", "margin", "echogenic_foci")


def tirads_rows(choices: TiradsChoices, suggestion) -> list[list[str]]:
    """Per ACR category: the clinician's choice, its points, who set it (``review_of``) and
    the AI's suggestion."""
    review = review_of(choices, suggestion)
    rows = []
    for g in _TIRADS_GROUPS:
        if g == "echogenic_foci":
            chosen = sorted(choices.foci, key=lambda f: f.name) if choices.foci_set else []
            value = ", ".join(label(f) for f in chosen) if chosen else ""
            points = str(sum(points_of(f) for f in chosen)) if chosen else "-"
        else:
            choice = getattr(choices, g)
            value = label(choice) if choice is not None else ""
            points = str(points_of(choice)) if choice is not None else "-"
        s = suggestion.groups.get(g) if suggestion is not None else None
        if s is None:
            ai = "none"
        else:
            conf = s.confidence_text() or s.method
            ai = f"{label(s.value)} ({conf})"
        rows.append([GROUP_NAMES[g], value or "open", points, SET_BY[review[g]], ai])
    return rows


TIRADS_HEADER = ["Category", "Chosen", "Points", "Set by", "AI suggestion"]
TIRADS_WIDTHS = (72.0, 146.0, 40.0, 110.0, CONTENT_W - 368.0)


def _estimate_rows(f: Finding, choices: TiradsChoices) -> list[tuple[str, str, str]]:
    """The AI estimate with its scope and validation status, every caveat beside it, and
    what the clinician did with the AI's TI-RADS suggestions: (key, value, colour) rows."""
    if not f.in_scope:
        return [
            ("AI estimate", f"NONE: {f.no_estimate_reason}", WARN),
            ("Heat map", "none (no estimate for this image)", INK),
        ]
    calibration = f"site profile {f.calibration}" if f.site_calibrated else "shipped (model card)"
    rows = [
        (
            "AI estimate",
            f"{f.shown()[0]}: {f.call_text} (likelihood of TI-RADS 4-5, threshold "
            f"{f.shown()[1]}; not a diagnosis)",
            INK,
        ),
        *[("Caveat", c, WARN) for c in f.caveats],
        *(
            []
            if f.overridden_reason
            else [("Scope", "thyroid B-mode ultrasound like the training images (checked)", INK)]
        ),
        (
            "Calibration",
            calibration + (", validated at this site" if f.site_validated else ""),
            INK,
        ),
        (
            "Stability",
            f"box, mirror and jitters differ by {f.spread:.2f}"
            + (": UNSTABLE, the estimate depends on where the box is" if f.unstable else ""),
            WARN if f.unstable else INK,
        ),
    ]
    sug = f.tirads_suggestion
    if sug is not None:
        review = review_text(review_of(choices, sug))
        rows.append(
            (
                "AI suggestions",
                f"{sug.level_text} (AI only; not a reading). Clinician: {review}.",
                INK,
            )
        )
    return rows


def _nodule_section(flow: Flow, it: NoduleReport, title: str, compact: bool = False) -> None:
    """A nodule's page(s): its views with box, contour and calipers, the heat map, sizes,
    TI-RADS with who set each category, and the AI estimate with its caveats (``compact``:
    smaller images and no details heading, so that a one-nodule report keeps its impression
    and signature on the first page)."""
    f = it.finding
    flow.new_page(f"{title} (continued)")
    flow.paragraph(title, size=14.0, bold=True)
    flow.paragraph(it.image_text, size=8.5, color=MUTED)
    flow.space(4)
    own = f"{str(it.plane).capitalize()} view" if it.plane else "Image"
    pixels = np.asarray(it.image.pixels)
    own_view = Picture(
        0, 0, 0, 0, pixels, view_marks(f.roi, it.contour, it.calipers, it.size.scale)
    )
    half = (CONTENT_W - GAP) / 2
    heat: Picture | str
    if f.in_scope:  # the view itself, under the coloured map (as the app shows it)
        heat = Picture(0, 0, 0, 0, pixels, view_marks(f.roi), layer=heat_layer(f.heatmap, half))
    else:
        heat = "No heat map: there is no AI estimate for this image."
    heat_caption = "Grad-CAM heat map (where the model looked)"
    height = 115.0 if compact else 165.0
    v = it.other_view
    estimate = _estimate_rows(f, it.tirads_choices)
    if v is not None:
        other = Picture(
            0, 0, 0, 0, np.asarray(v.image.pixels), view_marks(v.box, (), v.calipers, v.scale)
        )
        flow.pictures(
            [
                (f"{own}: {it.image_text}", own_view),
                (f"{str(v.plane).capitalize()} view: {v.image_text}", other),
            ],
            height,
        )
        pages, top = len(flow.pages), flow.y
        flow.pictures([(heat_caption, heat)], height, columns=2)
        bottom = flow.y
        if len(flow.pages) == pages:
            flow.y = top
        x = MARGIN_X + half + GAP
        flow.heading("AI estimate", x=x, width=half)
        for key, value, colour in estimate:
            flow.row(key, value, key_w=70.0, color=colour, x=x, width=half)
        flow.y = max(flow.y, bottom) if len(flow.pages) == pages else flow.y
    else:
        flow.pictures(
            [(f"{own}, box, contour and calipers", own_view), (heat_caption, heat)], height
        )
        flow.heading("AI estimate")
        for key, value, colour in estimate:
            flow.row(key, value, color=colour)

    flow.heading("Size")
    flow.row("Size", it.size.text())
    if it.calipers:
        where = f" ({it.plane} view)" if it.plane else ""
        flow.row("Calipers", calipers_text(it.calipers, it.size.scale) + where)
    if v is not None and v.calipers:
        key = "" if it.calipers else "Calipers"
        flow.row(key, f"{calipers_text(v.calipers, v.scale)} ({v.plane} view)")
    if it.caliper_check:
        flow.row("Check", it.caliper_check, color=WARN)

    choices = it.tirads_choices
    flow.heading("TI-RADS")
    flow.row("ACR TI-RADS", tirads_text(choices))
    scored = choices.descriptors
    if scored is not None:
        flow.row("Recommendation", recommend(scored.level, it.size).text)
    flow.space(3)
    suggestion = f.tirads_suggestion if f.in_scope else None
    flow.table(TIRADS_HEADER, tirads_rows(choices, suggestion), TIRADS_WIDTHS)

    if not compact:  # (a one-nodule report names the file under its title)
        flow.heading("Details")
        flow.row("Image", it.image_text)
    if v is not None:
        flow.row(f"{str(v.plane).capitalize()} view", v.image_text)
    flow.row("Nodule box", f"{f.roi.as_list()} px ({f.roi_source})")
    for note in f.notes:
        flow.row("Image note", note)
    if it.notes:
        flow.row("Notes", it.notes)


def _model_section(flow: Flow, card: ModelCard) -> None:
    raw = card.raw
    flow.heading("About the AI")
    flow.row("Model", f"{card.id} v{card.version}   sha256 {str(raw.get('sha256', ''))[:16]}...")
    flow.row("Performance", card.performance_text())
    flow.row("Labels", LABELS_TEXT)


SIGNATURE_LINE = "Signature: ______________________________      Date: ________________"


def signed_text(signed_by: str, signed_at: str) -> str:
    """ "Signed electronically by Dr Example, 27 Nov 2026 14:05 CET (UTC+01:00)" (``signed_at``
    an ISO time, as the session keeps it)."""
    try:
        when = created_text(dt.datetime.fromisoformat(signed_at))
    except ValueError:
        when = signed_at
    return f"Signed electronically by {signed_by}, {when}"


def _impression_and_signature(
    flow: Flow, study: StudyInfo, signed_by: str = "", signed_at: str = ""
) -> None:
    """The impression, then the signature block on the same page as (at least) the
    impression's last lines: the signature is never above or apart from what it signs.
    Signed (``signed_by`` and ``signed_at``): who signed it and when, instead of the line to
    sign on."""
    signature_h = 10 + line_height(9.5) * 3 + 16
    lines = wrap(study.impression or "-", CONTENT_W, 9.5)
    heading_h = line_height(10.5) + 7
    if len(lines) <= 4:  # short: the heading, the impression and the signature together
        flow.need(heading_h + line_height(9.5) * len(lines) + signature_h)
    flow.continued = ""  # a page break here starts with the heading itself
    flow.heading("Impression")
    flow.continued = "Impression (continued)"
    flow.lines(lines, size=9.5, keep_last=2, keep_after=signature_h)
    flow.need(signature_h)
    flow.space(16)
    # Signed: the clinician who signed reports it (the operator may be the sonographer,
    # or not typed at all).
    reporter = signed_by if signed_by and signed_at else study.operator
    flow.add(Text(MARGIN_X, flow.y, f"Reporting clinician: {reporter or '-'}", 9.5))
    flow.y += line_height(9.5) + 10
    if signed_by and signed_at:
        flow.paragraph(signed_text(signed_by, signed_at), size=9.5, bold=True)
    else:
        flow.add(Text(MARGIN_X, flow.y, SIGNATURE_LINE, 9.5))
        flow.y += line_height(9.5)


def _header_ops(title: str, study: StudyInfo, created: dt.datetime, number: int, total: int):
    """Every page's header (title, patient, study, "Page x of y") and footer."""
    ops: list = [Text(MARGIN_X, 26.0, title, 13.0, True)]
    ops.append(Text(PAGE_W - MARGIN_X, 28.0, f"Page {number} of {total}", 9.0, align="right"))
    y = 26.0 + line_height(13.0) + 2
    for line in _header_lines(study):
        ops.append(Text(MARGIN_X, y, line, 8.5))
        y += line_height(8.5)
    ops.append(Rule(MARGIN_X, y + 3, PAGE_W - MARGIN_X, y + 3, INK, 0.8))
    ops.append(Text(MARGIN_X, PAGE_H - 36.0, NOTICE, 7.5, color=WARN))
    ops.append(
        Text(MARGIN_X, PAGE_H - 26.0, f"Report created {created_text(created)}", 7.0, color=MUTED)
    )
    return ops


def _header_lines(study: StudyInfo) -> list[str]:
    study_line = f"Study date {study.study_date or '-'}   accession {study.accession or '-'}"
    return wrap(f"Patient {study.patient_text}", CONTENT_W, 8.5) + wrap(study_line, CONTENT_W, 8.5)


def _content_top(study: StudyInfo) -> float:
    return 26.0 + line_height(13.0) + 2 + line_height(8.5) * len(_header_lines(study)) + 14


def _pdf(
    title: str,
    study: StudyInfo,
    created: dt.datetime,
    sections: Callable[[Flow], None],
) -> bytes:
    flow = Flow(_content_top(study))
    sections(flow)
    return render(
        flow.pages,
        lambda number, total: _header_ops(title, study, created, number, total),
        {"Title": title, "Creator": "Thyroid Review"},
    )


STUDY_TITLE = "Thyroid Review — study report"
NODULE_TITLE = "Thyroid Review — nodule report"


def study_report_pdf(
    items: Sequence[NoduleReport],
    card: ModelCard,
    study: StudyInfo,
    created: dt.datetime | None = None,
    *,
    signed_by: str = "",
    signed_at: str = "",
) -> bytes:
    """The study report as PDF bytes (e.g. to embed as DICOM Encapsulated PDF).

    Page 1: the patient and study, a summary table with one row per nodule, what the model
    is, the impression, then the signature block. Then one page per nodule (flowing onto a
    continuation page only when its text does not fit): both views with box, contour and
    numbered calipers, the heat map, sizes, TI-RADS with who set each category, and the AI
    estimate with every caveat. Every page carries the patient header and "Page x of y".
    ``signed_by`` and ``signed_at`` (an ISO time): the report's signature, when signed
    (``core.review.session.ReportText``); else a line to sign on.

    Raises:
        ValueError: ``items`` is empty.
    """
    if not items:
        raise ValueError("the study has no nodule to report")
    created = created or dt.datetime.now().astimezone()

    def sections(flow: Flow) -> None:
        flow.new_page("Study summary (continued)")
        flow.row("Operator", study.operator or "-")
        flow.row("Report created", created_text(created))
        flow.row("Nodules", str(len(items)))
        flow.heading("Summary of nodules")
        flow.table(SUMMARY_HEADER, study_summary_rows(items), SUMMARY_WIDTHS)
        _model_section(flow, card)
        _impression_and_signature(flow, study, signed_by, signed_at)
        for it in items:
            title = it.nodule_id + (f" — {it.location}" if it.location else "")
            _nodule_section(flow, it, title)

    return _pdf(STUDY_TITLE, study, created, sections)


def write_study_report(
    path: str | os.PathLike[str],
    items: Sequence[NoduleReport],
    card: ModelCard,
    study: StudyInfo,
    created: dt.datetime | None = None,
    *,
    signed_by: str = "",
    signed_at: str = "",
) -> Path:
    """Writes :func:`study_report_pdf` to ``path`` atomically (a temporary file renamed
    over it); returns ``path``."""
    data = study_report_pdf(items, card, study, created, signed_by=signed_by, signed_at=signed_at)
    return write_atomically(Path(path), lambda tmp: tmp.write_bytes(data))


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
    signed_by: str = "",
    signed_at: str = "",
    caliper_check: str = "",
) -> Path:
    """A one-nodule report (the shown image's), laid out as a study report's nodule page
    followed by the model, the impression and the signature (``signed_by``, ``signed_at``:
    the study's, when it is signed and this is one of its nodules); written atomically.
    ``size`` is the nodule's (``core.clinical.measure.finding_size``: the same as the panel
    and the CSV); ``nodule`` names and locates it (e.g. "N1, right lobe, upper");
    ``choices`` are the clinician's TI-RADS choices so far (what they did with the AI's
    suggestions); ``calipers``: the caliper lines on this frame, drawn with their lengths
    (under ``size``'s scale); ``caliper_check``: which of the nodule's lines lie outside
    its box (``Nodule.stray_text``)."""
    created = created or dt.datetime.now().astimezone()
    size = size if size is not None else finding_size(finding, image.scale)
    if choices is not None:
        tirads = choices.descriptors
    item = NoduleReport(
        nodule.split(",")[0] if nodule else "Nodule",
        "",
        image,
        finding,
        size,
        tirads,
        choices=choices if choices is not None else TiradsChoices.of(tirads),
        calipers=calipers,
        caliper_check=caliper_check,
    )

    def sections(flow: Flow) -> None:
        _nodule_section(flow, item, nodule or "Nodule", compact=True)
        _model_section(flow, card)
        _impression_and_signature(flow, study, signed_by, signed_at)

    data = _pdf(NODULE_TITLE, study, created, sections)
    return write_atomically(Path(path), lambda tmp: tmp.write_bytes(data))
