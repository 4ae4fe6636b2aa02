"""The PDF report with the real model: written atomically, text read back with pypdf."""

from dataclasses import replace

import numpy as np
import pytest
from pypdf import PdfReader

from thyroid_desktop.core.clinical.measure import finding_size
from thyroid_desktop.core.clinical.tirads import (
    Composition,
    EchogenicFoci,
    Echogenicity,
    Margin,
    Shape,
    TiradsDescriptors,
)
from thyroid_desktop.core.io.images import from_array
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.estimate import predict
from thyroid_desktop.core.report.pdf import NOTICE, StudyInfo, write_report


def test_report_holds_every_field(tmp_path, classifier):
    phantom = make_phantom()
    image = from_array(phantom.pixels, spacing_mm=(0.1, 0.1))
    # The layout of an estimate and of the clinician's TI-RADS choices is what is checked
    # here: no AI suggestion (its column would name the AI's foci, e.g. "none or ...").
    finding = replace(
        predict(image, classifier, phantom.nodule, "manual"),
        no_estimate_reason="",
        tirads_suggestion=None,
    )
    tirads = TiradsDescriptors(
        Composition.SOLID,
        Echogenicity.HYPO,
        Shape.WIDER,
        Margin.SMOOTH,
        frozenset({EchogenicFoci.PUNCTATE}),
    )
    study = StudyInfo.from_metadata(
        {
            "PatientName": "Testperson^Anna^Maria",
            "PatientID": "P-001",
            "StudyDate": "20261127",
            "PatientBirthDate": "19610304",
            "PatientSex": "F",
        },
        operator="Dr Example",
        impression="Solid hypoechoic nodule with punctate foci.",
    )
    out = write_report(
        tmp_path / "report.pdf",
        image,
        finding,
        classifier.card,
        study,
        tirads,
        finding_size(finding, image.scale),
    )
    assert out.exists() and not list(tmp_path.glob(".*tmp*"))
    pages = PdfReader(out).pages
    text = " ".join(" ".join(p.extract_text() for p in pages).split())
    for expected in (
        NOTICE,
        "Testperson, Anna Maria",
        "P-001",
        "27 Nov 2026",
        "born 4 Mar 1961",
        "sex female",
        "Dr Example",
        f"{finding.probability:.2f}",
        f"threshold {finding.threshold:.2f}",
        "TR5",
        "FNA recommended",
        "13.4 x 11.5 mm",
        classifier.card.id,
        "Solid hypoechoic nodule",
        "not pathology",
    ):
        assert expected in text, expected
    assert "^" not in text and "none or large comet-tail" not in text
    # one page, numbered, the impression whole and the signature after it
    assert len(pages) == 1 and "Page 1 of 1" in text
    assert text.index("Solid hypoechoic nodule with punctate foci.") < text.index("Signature:")
    assert "Reporting clinician: Dr Example" in text
    # signed with no operator typed: the signer is the reporting clinician, not "-"
    unnamed = replace(study, operator="")
    signed = write_report(
        tmp_path / "signed.pdf",
        image,
        finding,
        classifier.card,
        unnamed,
        tirads,
        signed_by="Dr Cine",
        signed_at="2026-12-05T10:00:00+00:00",
    )
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(signed).pages).split())
    assert "Reporting clinician: Dr Cine" in text and "Reporting clinician: -" not in text


def test_failed_write_leaves_no_file(tmp_path, classifier, monkeypatch):
    phantom = make_phantom()
    image = from_array(phantom.pixels)
    finding = predict(image, classifier, phantom.nodule, "manual")
    import matplotlib.figure

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", boom)
    target = tmp_path / "r.pdf"
    with pytest.raises(OSError, match="disk full"):
        write_report(target, image, finding, classifier.card, StudyInfo())
    assert not target.exists() and list(tmp_path.iterdir()) == []
    assert np.isfinite(finding.probability)


def test_names_dates_sex_and_time_for_people():
    import datetime as dt

    from thyroid_desktop.core.report.pdf import created_text, human_date, human_sex, person_name

    assert person_name("Testperson^Anna^Maria") == "Testperson, Anna Maria"
    assert person_name("Doe^John^^Dr^Jr") == "Doe, Dr John, Jr"
    assert person_name("Plain Name") == "Plain Name"
    assert person_name("Yamada^Tarou=山田^太郎") == "Yamada, Tarou"
    assert human_date("20261120") == "20 Nov 2026" and human_date("unknown") == "unknown"
    assert human_sex("F") == "female" and human_sex("") == ""
    cet = dt.timezone(dt.timedelta(hours=1), "CET")
    assert created_text(dt.datetime(2026, 11, 29, 20, 5, tzinfo=cet)) == (
        "29 Nov 2026 20:05 CET (UTC+01:00)"
    )


def test_report_sizes_by_the_longest_caliper(tmp_path, classifier):
    from pypdf import PdfReader

    phantom = make_phantom()
    image = from_array(phantom.pixels, spacing_mm=(0.1, 0.1))
    finding = replace(predict(image, classifier, phantom.nodule, "manual"), no_estimate_reason="")
    tirads = TiradsDescriptors(
        Composition.SOLID, Echogenicity.HYPO, Shape.WIDER, Margin.SMOOTH, frozenset()
    )
    size = finding_size(finding, image.scale, None, ((160.0, 0.0), (0.0, 90.0)))
    out = write_report(
        tmp_path / "r.pdf", image, finding, classifier.card, StudyInfo(), tirads, size
    )
    text = " ".join(PdfReader(out).pages[0].extract_text().split())
    assert "calipers 16.0 x 9.0 mm (given with the image); box 13.4 x 11.5 mm" in text
    assert "TR4, 16.0 mm: FNA recommended" in text  # 16 mm by caliper, 13.4 by the box
    assert "Check" not in text
    check = "N1: caliper 1 lies outside its box: check that it measures this nodule"
    out = write_report(
        tmp_path / "r2.pdf", image, finding, classifier.card, StudyInfo(), tirads, size,
        caliper_check=check,
    )  # fmt: skip
    text = " ".join(PdfReader(out).pages[0].extract_text().split())
    assert f"Check {check}" in text
    from thyroid_desktop.core.report.pdf import NoduleReport

    item = NoduleReport("N1", "", image, finding, size, tirads, caliper_check=check)
    assert item.caveats_text.endswith("check calipers")  # the study summary's column
