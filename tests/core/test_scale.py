"""One Scale and one size rule: DICOM regions, the user's line, none; the CSV, the PDF and
the TI-RADS suggestions give the same size for the same nodule."""

import csv
from dataclasses import replace

import cv2
import numpy as np
import pytest
from pypdf import PdfReader

from tests.core.test_dicom import make_dataset, save, speckle, us_region
from thyroid_desktop.core.clinical.measure import (
    Caliper,
    Scale,
    ScaleSource,
    SizeBasis,
    effective_scale,
    finding_size,
    nodule_size,
)
from thyroid_desktop.core.clinical.tirads import LEVELS, recommend
from thyroid_desktop.core.io.images import from_array, open_image
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.estimate import predict
from thyroid_desktop.core.pipeline.roi import ROI, BoxSource
from thyroid_desktop.core.pipeline.tirads_ai import DescriptorHeads, TiradsSuggestion, mask_outline
from thyroid_desktop.core.report.pdf import NoduleReport, StudyInfo, write_report
from thyroid_desktop.core.review.session import Estimate, Nodule
from thyroid_desktop.core.review.study import ResultRow, StudyEntry, write_csv


def rectangle_mask(shape=(100, 100)) -> np.ndarray:
    """A 40 x 30 px nodule at x 30-69, y 20-49: its longest axis is the diagonal, 49.6 px
    (48.6 between the corner pixels' centres, plus one pixel)."""
    mask = np.zeros(shape, bool)
    mask[20:50, 30:70] = True
    return mask


# ----------------------------------------------------------------------------- the scale
def test_dicom_regions_give_the_scale_and_the_users_line_does_not_override_it(tmp_path):
    region = us_region(delta_x=0.01, delta_y=0.02)  # cm: columns 0.1 mm, rows 0.2 mm
    image = open_image(save(make_dataset(speckle((48, 64)), regions=[region]), tmp_path / "r.dcm"))
    assert image.scale == Scale(0.2, 0.1, ScaleSource.DICOM_REGIONS)
    scale = effective_scale(image.scale, 0.5)  # a line drawn anyway: the file wins
    assert scale == image.scale
    size = nodule_size(ROI(0, 0, 30, 20), scale)
    assert size.box_mm == pytest.approx((3.0, 4.0))  # each axis at its own size
    assert size.text() == "box 3.0 x 4.0 mm (DICOM ultrasound regions)"


def test_dicom_pixel_spacing_is_the_fallback_source(tmp_path):
    ds = make_dataset(speckle((48, 64)))
    ds.PixelSpacing = [0.3, 0.3]
    image = open_image(save(ds, tmp_path / "ps.dcm"))
    assert effective_scale(image.scale, 0.1).source is ScaleSource.DICOM_PIXEL_SPACING
    assert nodule_size(ROI(0, 0, 10, 10), image.scale).max_diameter_mm == pytest.approx(3.0)


def test_the_users_line_calibrates_an_uncalibrated_image():
    image = from_array(speckle((48, 64)))
    assert not image.scale.calibrated
    scale = effective_scale(image.scale, 0.25)
    assert scale == Scale(0.25, 0.25, ScaleSource.USER_LINE)
    size = nodule_size(ROI(0, 0, 40, 20), scale)
    assert size.max_diameter_mm == pytest.approx(10.0)
    assert size.text() == "box 10.0 x 5.0 mm (user scale)"
    assert effective_scale(image.scale, None) == Scale.none()  # the line removed


def test_no_scale_gives_pixels_and_no_size_based_advice():
    size = nodule_size(ROI(0, 0, 40, 20), effective_scale(Scale.none()))
    assert size.max_diameter_mm is None and size.max_diameter_px == 40
    assert size.summary() == "40 px (box; uncalibrated)"
    assert recommend(LEVELS[5], size).action == "size needed"


def test_scale_values_are_checked():
    with pytest.raises(ValueError):
        Scale(0.1, None, ScaleSource.DICOM_REGIONS)
    with pytest.raises(ValueError):
        Scale(0.1, 0.1)  # uncalibrated, yet with a pixel size
    with pytest.raises(ValueError):
        Scale(float("inf"), 0.1, ScaleSource.USER_LINE)
    with pytest.raises(ValueError):
        Scale.user_line(0.0)


# ----------------------------------------------------------------------------- the size rule
def test_size_comes_from_the_calipers_else_the_mask_else_the_box():
    outline = mask_outline(rectangle_mask())
    box = ROI(20, 10, 60, 50)  # drawn looser than the nodule
    scale = Scale.user_line(0.25)
    by_box = nodule_size(box, scale)
    by_mask = nodule_size(box, scale, outline)
    by_calipers = nodule_size(box, scale, outline, ((30.0, 0.0), (0.0, 20.0)))
    assert by_box.basis is SizeBasis.BOX and by_box.max_diameter_mm == pytest.approx(15.0)
    assert by_mask.basis is SizeBasis.MASK
    assert by_mask.max_diameter_mm == pytest.approx(49.6 * 0.25, abs=0.05)
    assert by_calipers.basis is SizeBasis.CALIPERS
    assert by_calipers.max_diameter_mm == pytest.approx(7.5)
    # TR4: FNA from 1.5 cm, follow-up from 1.0 cm; the advice follows the size rule.
    tr4 = LEVELS[4]
    assert [recommend(tr4, s).action for s in (by_box, by_mask, by_calipers)] == [
        "FNA",
        "follow-up",
        "no FNA",
    ]
    assert by_calipers.text() == (
        "calipers 7.5 x 5.0 mm (user scale); mask's longest axis 12.4 mm; box 15.0 x 12.5 mm"
    )


# ----------------------------------------------------------------------------- TI-RADS
def test_tirads_suggestion_size_honours_the_users_line():
    mask = rectangle_mask()
    sug = DescriptorHeads({}).suggest(None, ROI(20, 10, 60, 50), mask, from_array(mask).scale)
    assert sug.size_mm is None and sug.size_px == pytest.approx(49.6, abs=0.05)
    user = effective_scale(Scale.none(), 0.1)
    assert sug.under(user).size_mm == pytest.approx(4.96, abs=0.01)
    finding = _Finding(ROI(20, 10, 60, 50), sug)
    assert finding_size(finding, Scale.none(), 0.1).max_diameter_mm == pytest.approx(4.96, abs=0.01)
    # A file's calibration is kept: the user's line does not change it.
    dicom = Scale(0.2, 0.2, ScaleSource.DICOM_REGIONS)
    on_dicom = DescriptorHeads({}).suggest(None, ROI(20, 10, 60, 50), mask, dicom)
    assert on_dicom.size_mm == pytest.approx(9.92, abs=0.01)
    assert on_dicom.under(effective_scale(dicom, 0.1)).size_mm == pytest.approx(on_dicom.size_mm)


def test_suggestion_keeps_its_outline_and_scale_when_saved():
    sug = DescriptorHeads({}).suggest(
        None, ROI(20, 10, 60, 50), rectangle_mask(), Scale.user_line(0.1)
    )
    back = TiradsSuggestion.from_json(sug.to_json())
    assert back.outline == sug.outline and back.scale == sug.scale
    assert back.size_mm == pytest.approx(sug.size_mm, abs=0.05)


class _Finding:
    """What the size function reads of a finding: the box and the suggestion's mask."""

    def __init__(self, roi, suggestion):
        self.roi, self.tirads_suggestion = roi, suggestion


# ----------------------------------------------------------------------------- CSV = PDF
@pytest.mark.parametrize(
    ("user_mm_per_px", "calipers"),
    [(None, ()), (0.1, ()), (0.1, (Caliper((100.0, 100.0), (200.0, 130.0)),))],
)
def test_csv_and_pdf_give_the_same_size_for_the_same_nodule(
    tmp_path, classifier, user_mm_per_px, calipers
):
    phantom = make_phantom()
    image = from_array(phantom.pixels)
    r = phantom.nodule
    mask = np.zeros(image.gray.shape, np.uint8)
    centre, axes = (r.x + r.w // 2, r.y + r.h // 2), (r.w // 2 - 8, r.h // 2 - 12)
    cv2.ellipse(mask, centre, axes, 30, 0, 360, 1, -1)  # an oblique nodule inside its box
    finding = replace(predict(image, classifier, r, "manual"), no_estimate_reason="")
    sug = DescriptorHeads({}).suggest(None, r, mask.astype(bool), image.scale)
    finding = replace(finding, tirads_suggestion=sug)

    entry = StudyEntry(tmp_path / "one.png", sha256=image.sha256, scale=image.scale)
    nodule = Nodule(
        "N1",
        image.sha256,
        0,
        r,
        BoxSource.MANUAL,
        estimate=Estimate.of(finding),
        calipers=calipers,
    )
    row = ResultRow(entry, "analysed", nodule.estimate, None, user_mm_per_px, nodule)
    with open(write_csv(tmp_path / "study.csv", [row]), newline="") as fh:
        (csv_line,) = list(csv.DictReader(fh))
    size = finding_size(finding, image.scale, user_mm_per_px, calipers)  # as the PDF is given
    pdf = write_report(tmp_path / "r.pdf", image, finding, classifier.card, StudyInfo(), None, size)
    text = " ".join(PdfReader(pdf).pages[0].extract_text().split())

    assert csv_line["size"] in text
    assert csv_line["size_basis"] == ("calipers" if calipers else "mask")
    summary = NoduleReport("N1", "", image, finding, size, None).size_text
    if user_mm_per_px is None:
        assert csv_line["max_diameter_mm"] == "" and csv_line["scale"] == "uncalibrated"
        assert "uncalibrated" in summary
    else:
        assert csv_line["scale"] == "user scale"
        assert summary.startswith(f"{csv_line['max_diameter_mm']} mm")
