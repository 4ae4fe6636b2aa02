"""The study report's layout, read back with pypdf: on every page the patient header and
"Page x of y", every text inside the page, the impression in full with the signature after
it, one page per nodule and a summary row for each. No model needed: the findings are made
here (``sample_study`` is also what benchmarks/bench_report.py times)."""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader

from thyroid_desktop.core.clinical.measure import Caliper, Plane, ViewMeasure, finding_size
from thyroid_desktop.core.clinical.tirads import (
    Composition,
    EchogenicFoci,
    Echogenicity,
    Margin,
    Shape,
    TiradsChoices,
)
from thyroid_desktop.core.io.images import from_array
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.models.shipped import load_card
from thyroid_desktop.core.pipeline.estimate import Finding
from thyroid_desktop.core.pipeline.roi import ROI, BoxSource
from thyroid_desktop.core.pipeline.tirads_ai import Suggestion, TiradsSuggestion
from thyroid_desktop.core.report.pdf import (
    NoduleReport,
    ReportView,
    StudyInfo,
    study_report_pdf,
    write_study_report,
)

IMPRESSION = (
    "Multinodular thyroid. The dominant right upper pole nodule is solid, hypoechoic, with "
    "punctate echogenic foci; FNA is advised as per ACR TI-RADS. "
    * 12
    + "\nFollow-up of the smaller nodules in 12 months. ENDOFIMPRESSION"
)
CREATED = dt.datetime(2026, 11, 27, 14, 5, tzinfo=dt.timezone(dt.timedelta(hours=1), "CET"))


def _suggestion(outline) -> TiradsSuggestion:
    return TiradsSuggestion(
        {
            "composition": Suggestion(Composition.SOLID, 0.8, "image features"),
            "echogenicity": Suggestion(Echogenicity.HYPO, 0.6, "image features"),
            "shape": Suggestion(Shape.WIDER, None, "mask geometry"),
            "margin": Suggestion(Margin.SMOOTH, 0.7, "image features"),
            "echogenic_foci": Suggestion(EchogenicFoci.PUNCTATE, 0.55, "image features"),
        },
        outline=outline,
    )


def _ellipse(roi: ROI, n: int = 24) -> tuple[tuple[int, int], ...]:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    cx, cy = roi.x + roi.w / 2, roi.y + roi.h / 2
    return tuple(
        (int(cx + 0.45 * roi.w * np.cos(a)), int(cy + 0.45 * roi.h * np.sin(a))) for a in t
    )


def sample_study(n: int = 19, impression: str = IMPRESSION) -> tuple[list[NoduleReport], StudyInfo]:
    """``n`` nodules on phantom images, varied as a real study is: two views with calipers
    (three diameters and a volume), TI-RADS partly accepted from the AI, a site calibration
    not validated here, an estimate made outside the validated scope, and one image with no
    estimate."""
    items = []
    for i in range(n):
        phantom = make_phantom(seed=i)
        image = replace(
            from_array(phantom.pixels, spacing_mm=(0.1, 0.1)), source=Path(f"scan{i + 1}.png")
        )
        roi = phantom.nodule
        heat = np.zeros(image.pixels.shape[:2], np.float32)
        heat[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w] = np.linspace(0, 1, roi.w)[None, :]
        outline = _ellipse(roi)
        finding = Finding(
            0.35 + 0.03 * i,
            0.5,
            roi,
            BoxSource.MANUAL,
            roi,
            heat,
            model_id="thyroid-classifier",
            spread=0.04,
            calibration="shipped" if i % 3 else "Site A 2026-11",
            site_validated=i % 5 == 4,
            tirads_suggestion=_suggestion(outline),
        )
        if i % 7 == 5:
            finding = replace(finding, overridden_reason="the image is unlike the training images")
        if i % 7 == 6:
            finding = replace(
                finding,
                no_estimate_reason="the image does not look like grey-scale ultrasound: colour",
                tirads_suggestion=None,
            )
        choices = TiradsChoices(Composition.SOLID, Echogenicity.HYPO)  # two accepted
        if i % 2 == 0:  # all five set: a level; margin changed, foci chosen
            choices = replace(
                choices,
                shape=Shape.WIDER,
                margin=Margin.LOBULATED,
                foci=frozenset({EchogenicFoci.MACRO}),
            )
        w, h = roi.w, roi.h
        calipers = ((1, Caliper((roi.x, roi.y + h / 2), (roi.x + w, roi.y + h / 2))),)
        other = plane = None
        views = ()
        if i % 2 == 0:
            plane = Plane.TRANSVERSE
            other_image = replace(
                from_array(make_phantom(seed=100 + i).pixels, spacing_mm=(0.1, 0.1)),
                source=Path(f"scan{i + 1}_long.png"),
            )
            long_box = ROI(roi.x - 10, roi.y, w + 30, h)
            long_cal = ((2, Caliper((long_box.x, roi.y + h / 2), (long_box.x + w + 30, roi.y))),)
            other = ReportView(
                other_image, Plane.LONGITUDINAL, long_box, long_cal, other_image.scale
            )
            views = (
                ViewMeasure(
                    Plane.LONGITUDINAL, long_box, other_image.scale, None, (long_cal[0][1],)
                ),
            )
        size = finding_size(finding, image.scale, None, (calipers[0][1],), plane, views)
        items.append(
            NoduleReport(
                f"N{i + 1}",
                ["right lobe, upper", "left lobe, mid", "isthmus", ""][i % 4],
                image,
                finding,
                size,
                choices.descriptors,
                "Compare with the prior study." if i % 4 == 1 else "",
                choices,
                calipers,
                plane,
                other,
            )
        )
    study = StudyInfo.from_metadata(
        {
            "PatientName": "Testperson^Anna^Maria",
            "PatientID": "P-0042",
            "StudyDate": "20261127",
            "PatientBirthDate": "19610304",
            "PatientSex": "F",
            "AccessionNumber": "ACC-7",
        },
        operator="Dr Example",
        impression=impression,
    )
    return items, study


@functools.cache
def _helvetica(bold: bool):
    """The core font's own metrics (Matplotlib ships the AFM files), independent of the
    layout's measure."""
    from matplotlib import _afm
    from matplotlib.font_manager import FontProperties, findfont

    weight = "bold" if bold else "medium"
    path = findfont(FontProperties(family="Helvetica", weight=weight), fontext="afm")
    with open(path, "rb") as fh:
        return _afm.AFM(fh)


def _width(text: str, size: float, base_font: str) -> float:
    """The text's width in points: exact for Helvetica; a wide 0.62 em per character for an
    embedded font."""
    if "Helvetica" not in base_font:
        return 0.62 * size * len(text)
    afm = _helvetica("Bold" in base_font)
    total = 0.0
    for ch in text:
        try:
            total += afm.get_width_char(ord(ch))
        except KeyError:
            total += 1000.0
    return total * size / 1000.0


class _Page:
    """A page's text pieces with their positions (pypdf's visitor)."""

    def __init__(self, page) -> None:
        box = page.mediabox
        self.width, self.height = float(box.width), float(box.height)
        #: text, x, y (baseline, from the bottom), font size, width
        self.pieces: list[tuple[str, float, float, float, float]] = []

        def visit(text, cm, tm, font, size):
            if text.strip():
                # The text matrix in user space: tm then cm.
                x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
                y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
                size = size * abs(tm[0] or 1.0)
                base = str((font or {}).get("/BaseFont", ""))
                self.pieces.append((text, x, y, size, _width(text.strip("\n"), size, base)))

        self.text = page.extract_text(visitor_text=visit)
        self.flat = " ".join(self.text.split())
        # The header and footer come first; what follows "(continued)" continues the text.
        created = self.flat.index("Report created")
        body = self.flat[self.flat.index(")", created) + 1 :].strip()
        self.body = re.sub(r"^\S+ \(continued\) ", "", body)

    @property
    def titles(self) -> list[str]:
        """The nodule titles on this page (set at 14 pt), e.g. "N1 — right lobe, upper"."""
        return [p[0].strip() for p in self.pieces if abs(p[3] - 14.0) < 0.1]

    def y_of(self, needle: str) -> float:
        return next(p[2] for p in self.pieces if needle in p[0])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    items, study = sample_study(7)
    path = write_study_report(
        tmp_path_factory.mktemp("r") / "study.pdf", items, load_card(), study, CREATED
    )
    return items, study, [_Page(p) for p in PdfReader(path).pages]


def test_every_page_has_the_patient_header_and_its_number(report):
    _items, _study, pages = report
    for number, page in enumerate(pages, 1):
        assert f"Page {number} of {len(pages)}" in page.flat
        assert "Testperson, Anna Maria" in page.flat and "ID P-0042" in page.flat
        assert "Study date 27 Nov 2026" in page.flat


def test_every_text_lies_inside_the_page(report):
    _items, _study, pages = report
    for page in pages:
        assert page.pieces
        for text, x, y, size, width in page.pieces:
            assert x >= 0 and x + width <= page.width, (text, x, x + width)
            assert y - 0.25 * size >= 0 and y + size <= page.height, (text, y)


def test_the_impression_is_whole_and_signed_below_it(report):
    _items, study, pages = report
    text = " ".join(p.flat for p in pages)
    assert " ".join(study.impression.split()) in text  # wrapped, never cut
    (signed,) = [p for p in pages if "Signature:" in p.flat]
    assert "ENDOFIMPRESSION" in signed.flat
    # PDF y grows upwards: the signature lies below the impression's last words.
    assert signed.y_of("Signature:") < signed.y_of("ENDOFIMPRESSION")
    assert signed.y_of("Reporting clinician") < signed.y_of("ENDOFIMPRESSION")
    assert "Reporting clinician: Dr Example" in signed.flat
    assert pages.index(signed) < next(i for i, p in enumerate(pages) if "N1" in p.flat[:400])


def _nodule_text(pages: list[_Page], nodule_id: str) -> str:
    """The text of a nodule's page and of any continuation of it."""
    out = []
    for p in pages:
        if any(t.split(" ")[0] == nodule_id for t in p.titles) or (
            f"{nodule_id} " in p.flat and "(continued)" in p.flat and nodule_id in p.flat[:400]
        ):
            out.append(p.flat)
    return " ".join(out)


def test_the_summary_lists_every_nodule_and_each_has_its_page(report):
    items, _study, pages = report
    summary = " ".join(p.flat for p in pages if "Summary of nodules" in p.flat)
    for it in items:
        assert re.search(rf"\b{it.nodule_id} {re.escape(it.location or '-')}", summary), it
        assert it.level_text in summary and it.estimate_text in summary
        assert it.caveats_text in summary
    assert "outside validated scope; not site-validated" in summary  # N6, in short
    assert "no estimate: the image does not look like grey-scale ultrasound" in summary  # N7
    # one page per nodule, in order, none on the summary's pages, none continued
    titles = [t.split(" ")[0] for p in pages for t in p.titles]
    assert titles == [it.nodule_id for it in items]
    assert [len(p.titles) for p in pages[-len(items) :]] == [1] * len(items)
    assert not any("(continued)" in p.flat for p in pages[-len(items) :])
    for it, page in zip(items, pages[-len(items) :], strict=True):
        assert f"Image {it.image_text}" in page.flat


def test_a_nodule_page_shows_views_sizes_tirads_and_the_estimate_with_its_caveats(report):
    items, _study, pages = report
    text = {it.nodule_id: _nodule_text(pages, it.nodule_id) for it in items}
    n1, n6, n7 = items[0], items[5], items[6]
    page = text["N1"]
    assert "Transverse view: scan1.png" in page and "Longitudinal view: scan1_long.png" in page
    assert "Grad-CAM heat map" in page
    assert f"{n1.size.diameters.text().removeprefix('diameters ')}" in page
    assert "Calipers 1: 13.4 mm (transverse view) 2: 17.4 mm (longitudinal view)" in page
    assert "composition solid or almost completely solid 2 AI suggestion, accepted" in page
    assert "margin lobulated or irregular 2 clinician (AI differed) smooth (70 %)" in page
    assert "echogenic foci macrocalcifications 1 clinician (AI differed)" in page
    call = n1.finding.call_text
    estimate = f"AI estimate {n1.finding.probability:.2f}: {call} (likelihood of TI-RADS 4-5"
    assert estimate in page
    beside = page[page.index(estimate) :]
    assert beside.index("Caveat not validated at this site") < beside.index("Calibration")
    assert "not validated at this site" in text["N2"]
    assert "shape open - not set" in text["N2"]
    assert n6.finding.caveats and all(c in text["N6"] for c in n6.finding.caveats)
    assert "Caveat outside the validated scope (analysed anyway: the image is unlike" in text["N6"]
    assert f"AI estimate NONE: {n7.finding.no_estimate_reason}" in text["N7"]
    assert "No heat map" in text["N7"] and "Caveat" not in text["N7"]
    assert "Calibration shipped (model card), validated at this site" in text["N5"]
    assert "not validated" not in text["N5"]  # i = 4: validated at this site


def test_long_text_flows_onto_a_continuation_page_instead_of_being_cut():
    items, study = sample_study(2, impression=IMPRESSION * 3)
    data = study_report_pdf(items, load_card(), study, CREATED)
    import io

    pages = [_Page(p) for p in PdfReader(io.BytesIO(data)).pages]
    assert "Impression (continued)" in pages[1].flat
    text = " ".join(p.body for p in pages)
    assert " ".join(study.impression.split()) in text
    signed = next(i for i, p in enumerate(pages) if "Signature:" in p.flat)
    assert signed >= 1 and [t for p in pages for t in p.titles] == [
        "N1 — right lobe, upper",
        "N2 — left lobe, mid",
    ]
    assert len(pages) == signed + 1 + 2


def test_names_that_helvetica_cannot_write_are_kept(tmp_path):
    items, study = sample_study(1, impression="Überprüft. Узел справа ≥ 1 cm.")
    study = replace(study, patient_name="Ørsted, Δήμητρα")
    pages = PdfReader(write_study_report(tmp_path / "r.pdf", items, load_card(), study)).pages
    text = " ".join(pages[0].extract_text().split())
    assert "Ørsted, Δήμητρα" in text and "Узел справа ≥ 1 cm" in text


def test_no_nodule_no_report(tmp_path):
    with pytest.raises(ValueError, match="no nodule"):
        write_study_report(tmp_path / "r.pdf", [], load_card(), StudyInfo())
    assert list(tmp_path.iterdir()) == []


def test_the_default_file_name_names_the_patient_the_study_date_and_thyroid():
    from thyroid_desktop.core.report.names import report_file_name

    today = dt.date(2026, 12, 1)
    assert report_file_name("P-0042", "20261127") == "P-0042_20261127_thyroid.pdf"
    assert report_file_name("P-0042", "27 Nov 2026") == "P-0042_20261127_thyroid.pdf"
    assert report_file_name("", "", today) == "no-patient-id_20261201_thyroid.pdf"
    assert report_file_name("../../etc/passwd", "junk", today) == "etc_passwd_20261201_thyroid.pdf"
    assert report_file_name("Müller 12/3", "20261127") == "Muller_12_3_20261127_thyroid.pdf"
    assert report_file_name("...", "20261127") == "no-patient-id_20261127_thyroid.pdf"
    assert len(report_file_name("x" * 200, "20261127")) == 64 + len("_20261127_thyroid.pdf")


def test_a_nodule_whose_text_does_not_fit_continues_on_the_next_page():
    items, study = sample_study(2, impression="Short.")
    notes = "Seen on the prior study of 2025; unchanged. " * 60 + "ENDOFNOTES"
    location = "right lobe, upper pole, posterior, abutting the capsule " * 3
    items[0] = replace(items[0], notes=notes, location=location.strip())
    data = study_report_pdf(items, load_card(), study, CREATED)
    import io

    pages = [_Page(p) for p in PdfReader(io.BytesIO(data)).pages]
    assert len(pages) == 4  # the summary, N1 and its continuation, N2
    assert pages[2].flat.count("(continued)") == 1 and "ENDOFNOTES" in pages[2].flat
    text = " ".join(p.body for p in pages)
    assert " ".join(notes.split()) in text
    for page in pages:
        for piece, x, y, _size, width in page.pieces:
            assert x >= 0 and x + width <= page.width and 0 <= y <= page.height, piece


def test_the_cli_names_the_report_after_the_patient_and_the_study_date(tmp_path, classifier):
    import pydicom

    from tests.core.test_dicom_out import phantom_dicom
    from thyroid_desktop.cli.main import main
    from thyroid_desktop.core.report.names import report_file_name

    dcm = phantom_dicom(tmp_path / "a.dcm", "P-042")
    box = make_phantom().nodule
    folder = tmp_path / "reports"
    folder.mkdir()
    roi = f"{box.x},{box.y},{box.w},{box.h}"
    assert main(["report", str(dcm), "--pdf", str(folder), "--roi", roi]) == 0
    expected = report_file_name("P-042", pydicom.dcmread(dcm).StudyDate)
    assert expected.startswith("P-042_") and expected.endswith("_thyroid.pdf")
    assert [p.name for p in folder.iterdir()] == [expected]
    assert "Page 1 of 2" in PdfReader(folder / expected).pages[0].extract_text()


def test_a_signed_report_says_who_signed_it_and_when_below_the_impression():
    items, study = sample_study(1, impression="Agree with FNA. ENDOFIMPRESSION")
    data = study_report_pdf(
        items, load_card(), study, CREATED, signed_by="Dr Example", signed_at=CREATED.isoformat()
    )
    import io

    (first, _nodule) = [_Page(p) for p in PdfReader(io.BytesIO(data)).pages]
    signed = "Signed electronically by Dr Example, 27 Nov 2026 14:05 (UTC+01:00)"
    assert signed in first.flat and "Signature: ___" not in first.flat
    assert first.y_of("Signed electronically") < first.y_of("ENDOFIMPRESSION")
