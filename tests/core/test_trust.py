"""When not to give an estimate, and how stable the estimate is: the Modality rule, the
novelty score on the classifier's features, and averaging over box jitters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, UltrasoundImageStorage, generate_uid

from thyroid_desktop.core.io.images import from_array, open_image
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.estimate import (
    box_in_scan,
    classifier_crop,
    heatmap_to_image,
    no_estimate_reason,
    predict,
)
from thyroid_desktop.core.pipeline.fov import detect_fov
from thyroid_desktop.core.pipeline.roi import JITTERS, ROI
from thyroid_desktop.core.pipeline.scope import modality_reason

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _dicom(path: Path, modality: str | None, sop: str) -> Path:
    grey = np.asarray(make_phantom(seed=4).pixels)[..., 0].copy()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID = sop
    if modality is not None:
        ds.Modality = modality
    ds.Rows, ds.Columns = grey.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = grey.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_modality_rule(tmp_path):
    us = open_image(_dicom(tmp_path / "us.dcm", "US", UltrasoundImageStorage))
    ct = open_image(_dicom(tmp_path / "ct.dcm", "CT", CTImageStorage))
    no_modality_ct = open_image(_dicom(tmp_path / "ct2.dcm", None, CTImageStorage))
    assert modality_reason(us) == ""
    assert modality_reason(ct) == "not an ultrasound image: Modality CT"
    assert "CT Image Storage" in modality_reason(no_modality_ct)
    assert modality_reason(from_array(np.asarray(make_phantom().pixels))) == ""


def test_a_non_ultrasound_dicom_gets_no_estimate_but_is_shown(tmp_path, classifier):
    image = open_image(_dicom(tmp_path / "ct.dcm", "CT", CTImageStorage))
    finding = predict(image, classifier, ROI(100, 80, 120, 90), "manual")
    assert not finding.in_scope and finding.estimate is None
    assert finding.no_estimate_reason == "not an ultrasound image: Modality CT"
    assert finding.call_text == "no estimate"
    assert finding.heatmap.shape == image.gray.shape  # the viewer still has what it shows


def test_cli_json_has_null_probability_and_the_reason(tmp_path):
    nm = PYDICOM_FILES / "JPEG2000.dcm"  # a nuclear-medicine whole-body scan
    us = _dicom(tmp_path / "us.dcm", "US", UltrasoundImageStorage)
    run = subprocess.run(
        [sys.executable, "-m", "thyroid_desktop", "predict", "--json", str(nm), str(us)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    nm_rec, us_rec = (json.loads(line) for line in run.stdout.splitlines())
    assert nm_rec["probability"] is None and nm_rec["no_estimate_reason"].endswith("Modality NM")
    assert {"spread", "novelty", "unstable", "output"} <= set(us_rec)
    assert "TI-RADS 4-5" in us_rec["output"]


def test_the_one_rule_for_no_estimate():
    assert no_estimate_reason("", (), 1.0, 2.0) == ""
    assert no_estimate_reason("", (), None, None) == ""
    assert "unlike the images" in no_estimate_reason("", (), 3.0, 2.0)
    assert no_estimate_reason("not an ultrasound image: Modality CT", ("x",), 3.0, 2.0).startswith(
        "not an ultrasound"
    )
    assert "grey-scale" in no_estimate_reason("", ("blank",), 0.0, 2.0)
    assert no_estimate_reason("", (), 1.0, 2.0, in_scan=0.5) == ""
    assert no_estimate_reason("", (), 1.0, 2.0, in_scan=0.49).startswith(
        "the box lies mostly outside the scan area (49% inside)"
    )


def test_a_box_over_the_margin_gets_no_estimate(classifier, monkeypatch):
    """A GUI trial dragged a confirmed box off the nodule onto the black margin and a body
    marker: it got 0.91 "suspicious" with TI-RADS suggestions. A box mostly outside the scan
    area now gets no estimate, with the reason; one on the scan area, as before."""
    from thyroid_desktop.core.pipeline import estimate

    phantom = make_phantom()
    image = from_array(np.asarray(phantom.pixels))
    fov = detect_fov(image.gray)  # x 39-499 of 560 px
    margin_box = ROI(450, 100, 110, 100)
    assert box_in_scan(fov, margin_box) < 0.5
    for source in ("manual", None, "point"):  # None: a box given is a manual one
        margin = predict(image, classifier, margin_box, source)
        assert margin.no_estimate_reason.startswith("the box lies mostly outside the scan area")
        assert not margin.in_scope and margin.tirads_suggestion is None
        assert not margin.heatmap.any()  # no estimate, no heat map
    inside = predict(image, classifier, phantom.nodule, "manual")
    assert box_in_scan(fov, phantom.nodule) == 1.0
    assert "scan area" not in inside.no_estimate_reason
    # the scan area itself is not judged as a box: with a limit no box could meet, it still
    # gets its (in-scope) result, while the same area given as a box does not
    monkeypatch.setattr(estimate, "MIN_BOX_IN_SCAN", 1.01)
    whole = predict(image, classifier)
    assert "outside the scan area" not in whole.no_estimate_reason
    as_box = predict(image, classifier, fov.box, "manual")
    assert as_box.no_estimate_reason.startswith("the box lies mostly outside the scan area")


def test_estimate_averages_views_deterministically(classifier):
    phantom = make_phantom(seed=7)
    image = from_array(np.asarray(phantom.pixels))
    a = predict(image, classifier, phantom.nodule, "manual")
    b = predict(image, classifier, phantom.nodule, "manual")
    assert (a.probability, a.spread, a.logit) == (b.probability, b.spread, b.logit)
    assert 0.0 <= a.spread <= 1.0
    assert a.probability == pytest.approx(classifier.shipped_calibration.apply(a.logit), abs=1e-6)
    # the heat map is the central box's own, not an average over the jitters
    from thyroid_desktop.core.pipeline.marks import marks_step

    crop, window = classifier_crop(
        image,
        phantom.nodule,
        classifier.card.input_size,
        classifier.card.crop_margin,
        marks=marks_step(classifier.card.raw),  # the card's crop step (v1.2.0: inpaint)
    )
    _, _, cam = classifier.gradcam(crop[None], mirror=classifier.card.tta)
    # (equal up to float rounding: the jitters share the batch, which oneDNN may sum in
    # another order)
    expected = heatmap_to_image(cam, window, image.width, image.height)
    np.testing.assert_allclose(a.heatmap, expected, atol=1e-5)


def test_jittered_boxes_stay_inside_the_image():
    box = ROI(5, 5, 100, 60)
    for dx, dy, scale, _ in JITTERS:
        j = box.jittered(dx, dy, scale, 120, 80)
        assert j.x >= 0 and j.y >= 0 and j.x + j.w <= 120 and j.y + j.h <= 80
    assert ROI(10, 10, 10, 10).jittered(0.0, 0.0, 1.0, 100, 100) == ROI(10, 10, 10, 10)


@pytest.mark.parametrize("kind", ["photo", "ct"])
def test_what_is_not_thyroid_ultrasound_is_refused_and_novelty_still_reported(
    classifier, segmenter, kind
):
    """Through the app's one path (AnalysisService): a colour photo is refused by the B-mode
    check (not overridable), a CT slice's pixels without its header by the scope model
    (overridable: "Analyse anyway"). The novelty distance no longer refuses on its own once
    the scope model is loaded (issue 23: it did not separate other organs and flagged 12 % of
    biopsy-proven thyroid images), but ``predict`` still computes and reports it."""
    from thyroid_desktop.core.analysis import AnalysisService
    from thyroid_desktop.core.pipeline.scope import NOT_THYROID

    if classifier.novelty is None:
        pytest.fail("the model card names no novelty reference (python -m training.reliability)")
    if classifier.scope is None:
        pytest.fail("the model card names no scope model (python -m training.scope)")
    if kind == "photo":
        import skimage.data

        image = from_array(skimage.data.astronaut())
    else:  # a 512 x 512 CT slice's pixels without its header: only the scope model can tell.
        # (Not every one: 10 of pydicom's 36 non-ultrasound slices pass it, among them, since
        # v1.3.0, the round head CT 693_J2KI.dcm; docs/model-card.md, the scope check.)
        image = from_array(open_image(PYDICOM_FILES / "J2K_pixelrep_mismatch.dcm").pixels)
    result = AnalysisService(classifier, segmenter, None).analyse(
        image, None, None, scan_area_fallback=True
    )
    finding = result.finding
    assert result.refused and not finding.in_scope and finding.estimate is None
    assert result.detection is None and finding.tirads_suggestion is None
    assert not finding.heatmap.any()
    if kind == "photo":
        assert "grey-scale ultrasound" in finding.no_estimate_reason and not result.can_force
    else:
        assert finding.no_estimate_reason.startswith(NOT_THYROID) and result.can_force
    alone = predict(image, classifier, None, "full")
    assert alone.novelty is not None and alone.novelty > classifier.novelty.limit


def test_novelty_accepts_the_synthetic_phantom_or_says_why(classifier):
    phantom = make_phantom(seed=1)
    finding = predict(from_array(np.asarray(phantom.pixels)), classifier, phantom.nodule, "manual")
    assert finding.novelty is not None and np.isfinite(finding.novelty)


def test_an_estimate_just_below_its_threshold_never_prints_at_or_above_it():
    """A GUI trial's site profile (threshold 0.32924) and an estimate of 0.32905: the panel
    read "0.33 · not suspicious, below the site threshold (0.33)" and the SR 0.3291 against
    "threshold 0.329". Printed together, the two numbers now keep their order."""
    from thyroid_desktop.core.pipeline.estimate import shown_numbers

    assert shown_numbers(0.32905, 0.32924) == ("0.3291", "0.3292")
    assert shown_numbers(0.81, 0.592) == ("0.81", "0.59")  # the usual case: 2 decimals
    assert shown_numbers(0.5921, 0.592) == ("0.59", "0.59")  # at or above, and reads so
    assert shown_numbers(0.32905, 0.32924, 4) == ("0.3291", "0.3292")
    for p in np.linspace(0.3, 0.35, 501):
        a, b = shown_numbers(float(p), 0.32924)
        assert (float(a) >= float(b)) == (p >= 0.32924), p
