import json
import math

import pytest

from thyroid_desktop.core.clinical.measure import measure
from thyroid_desktop.core.pipeline.roi import ROI
from thyroid_desktop.core.report.audit import AuditLog, record_for


def test_mm_only_with_a_scale():
    roi = ROI(0, 0, 120, 80)
    dicom = measure(roi, (0.1, 0.125))
    assert dicom.width_mm == pytest.approx(15.0) and dicom.height_mm == pytest.approx(8.0)
    assert dicom.max_diameter_mm == pytest.approx(15.0) and "DICOM" in dicom.text()
    user = measure(roi, None, 0.2)
    assert user.width_mm == pytest.approx(24.0) and user.scale_source == "user scale"
    none = measure(roi, None)
    assert none.width_mm is None and none.max_diameter_mm is None
    assert none.text() == "120 x 80 px (uncalibrated: no mm)"
    with pytest.raises(ValueError):
        measure(roi, None, 0.0)


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
    from thyroid_desktop.core.clinical.measure import measure_calipers

    segs = ((30.0, 40.0), (10.0, 0.0))
    dicom = measure_calipers(segs, (0.2, 0.1))  # rows 0.2 mm, columns 0.1 mm
    assert dicom.lengths_mm == pytest.approx((math.hypot(3.0, 8.0), 1.0))
    assert dicom.max_diameter_mm == pytest.approx(math.hypot(3.0, 8.0))
    assert "DICOM calibration" in dicom.text()
    user = measure_calipers(segs, None, 0.1)
    assert user.lengths_mm == pytest.approx((5.0, 1.0)) and "user scale" in user.text()
    none = measure_calipers(segs, None)
    assert none.max_diameter_mm is None and "50 x 10 px (uncalibrated" in none.text()
