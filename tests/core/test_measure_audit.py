import json
import math

import pytest

from thyroid_desktop.core.clinical.measure import (
    Scale,
    ScaleSource,
    SizeBasis,
    effective_scale,
    nodule_size,
)
from thyroid_desktop.core.pipeline.roi import ROI
from thyroid_desktop.core.report.audit import AuditLog, record_for

DICOM = Scale(0.1, 0.125, ScaleSource.DICOM_REGIONS)  # rows 0.1 mm, columns 0.125 mm


def test_box_in_mm_only_with_a_scale():
    roi = ROI(0, 0, 120, 80)
    dicom = nodule_size(roi, DICOM)
    assert dicom.box_mm == pytest.approx((15.0, 8.0)) and dicom.basis is SizeBasis.BOX
    assert dicom.max_diameter_mm == pytest.approx(15.0)
    assert dicom.text() == "box 15.0 x 8.0 mm (DICOM ultrasound regions)"
    user = nodule_size(roi, effective_scale(Scale.none(), 0.2))
    assert user.box_mm == pytest.approx((24.0, 16.0)) and user.scale.source == "user scale"
    none = nodule_size(roi, Scale.none())
    assert none.box_mm is None and none.max_diameter_mm is None
    assert none.max_diameter_px == 120
    assert none.text() == "box 120 x 80 px (uncalibrated: no mm)"
    with pytest.raises(ValueError):
        effective_scale(Scale.none(), 0.0)


def test_audit_log_appends_whole_lines(tmp_path):
    log = AuditLog(tmp_path / "sub" / "audit.jsonl")
    log.append(
        record_for(
            "analyse",
            "ab" * 32,
            ROI(1, 2, 3, 4),
            roi_source="manual",
            model_id="m",
            probability=0.3,
        )
    )
    log.append(
        record_for(
            "auto-detect", "cd" * 32, None, roi_source="full", model_id="m", probability=None
        )
    )
    lines = (tmp_path / "sub" / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert (
        first["roi"] == [1, 2, 3, 4]
        and first["probability"] == 0.3
        and first["time"].endswith("+00:00")
    )
    assert log.read()[1]["action"] == "auto-detect"


def test_calipers_in_mm_only_where_calibrated_and_per_axis():
    segs = ((30.0, 40.0), (10.0, 0.0))
    box = ROI(0, 0, 20, 20)
    dicom = nodule_size(box, Scale(0.2, 0.1, ScaleSource.DICOM_PIXEL_SPACING), None, segs)
    assert dicom.calipers_mm == pytest.approx((math.hypot(3.0, 8.0), 1.0))
    assert dicom.max_diameter_mm == pytest.approx(math.hypot(3.0, 8.0))
    assert dicom.basis is SizeBasis.CALIPERS
    assert dicom.text().startswith("calipers 8.5 x 1.0 mm (DICOM pixel spacing); box")
    user = nodule_size(box, Scale.user_line(0.1), None, segs)
    assert user.calipers_mm == pytest.approx((5.0, 1.0))
    assert "calipers 5.0 x 1.0 mm (user scale)" in user.text()
    none = nodule_size(box, Scale.none(), None, segs)
    assert none.max_diameter_mm is None and none.max_diameter_px == pytest.approx(50.0)
    assert none.text().startswith("calipers 50 x 10 px (uncalibrated: no mm)")
