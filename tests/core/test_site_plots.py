"""The Qt-free pieces the calibration wizard uses: a labels CSV of any name, the reliability
bins' intervals and the plots as PNG."""

import pytest

from thyroid_desktop.core.site.metrics import proportion_ci95
from thyroid_desktop.core.site.validation import LabelledFolderError, read_labels


def test_wilson_interval_of_a_share():
    assert proportion_ci95(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert proportion_ci95(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    low, high = proportion_ci95(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert all(v != v for v in proportion_ci95(0, 0))  # nan: an empty bin


def test_read_labels_takes_a_folder_or_a_csv_of_any_name(tmp_path):
    (tmp_path / "labels.csv").write_text("file,label,case\na.png,benign,1\nb.png,1,2\n")
    (tmp_path / "mine.csv").write_text("file,label\na.png,malignant\n")
    folder = read_labels(tmp_path)
    assert [(i.file, i.label, i.case) for i in folder.images] == [
        ("a.png", 0, "1"),
        ("b.png", 1, "2"),
    ]
    mine = read_labels(tmp_path / "mine.csv")
    assert mine.root == tmp_path and [(i.path, i.label) for i in mine.images] == [
        (tmp_path / "a.png", 1)
    ]
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(LabelledFolderError, match="not a labels CSV"):
        read_labels(tmp_path / "x.png")
    with pytest.raises(LabelledFolderError, match="does not exist"):
        read_labels(tmp_path / "gone.csv")
