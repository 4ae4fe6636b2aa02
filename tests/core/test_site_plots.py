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
    # a GUI trial's site validation stopped on a negative error bar: in floating point the
    # interval of 0 of 7 started at 3e-17, that of 10 of 10 ended below 1
    for n in range(1, 101):
        for k in range(n + 1):
            low, high = proportion_ci95(k, n)
            assert 0.0 <= low <= k / n <= high <= 1.0, (k, n)
        assert proportion_ci95(0, n)[0] == 0.0 and proportion_ci95(n, n)[1] == 1.0


def test_a_reliability_plot_of_bins_all_benign_or_all_malignant_is_drawn(tmp_path):
    """The plot the trial's crash came from, with bins of 0 of 7 and 13 of 13 malignant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from thyroid_desktop.core.site.metrics import compute_metrics
    from thyroid_desktop.core.site.validation import Validation, plot_reliability

    y = np.array([0] * 7 + [1] * 13 + [0, 1] * 5)
    p = np.array([0.05] * 7 + [0.95] * 13 + [0.45, 0.55] * 5)
    m = compute_metrics(y, p, [str(i) for i in range(len(y))], 0.5)
    assert {(b.n, round(b.observed * b.n)) for b in m.bins} >= {(7, 0), (13, 13)}
    v = Validation(tmp_path, "2026-12-07T00:00:00", "m", "1", "x", "shipped", 0.5, 0.5, (),
                   metrics=m)  # fmt: skip
    fig, ax = plt.subplots()
    plot_reliability(ax, v)  # raised "'yerr' must not contain negative values"
    plt.close(fig)


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


def test_an_auroc_interval_the_bootstrap_cannot_estimate_is_not_printed_as_certain():
    """A trial's 5 + 5 cases separated perfectly read "AUROC 1.000 (95 % CI 1.000–1.000)"."""
    import numpy as np

    from thyroid_desktop.core.site.metrics import compute_metrics
    from thyroid_desktop.core.site.validation import auroc_ci_text

    y = np.array([0] * 5 + [1] * 5)
    perfect = compute_metrics(y, np.linspace(0.1, 0.9, 10), [str(i) for i in range(10)], 0.5)
    assert perfect.auroc == 1.0
    assert auroc_ci_text(perfect, 3) == (
        "no 95 % CI: every bootstrap resample of these 10 cases gives the same"
    )
    mixed = compute_metrics(y, np.array([0.1, 0.6, 0.3, 0.2, 0.5, 0.4, 0.9, 0.7, 0.35, 0.8]),
                            [str(i) for i in range(10)], 0.5)  # fmt: skip
    assert auroc_ci_text(mixed, 2).startswith("95 % CI 0.")
