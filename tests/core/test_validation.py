"""Validation on a site's labelled folder: reading it, the figures, and a real run of the
bundled models over generated phantoms (with a broken and a missing file among them)."""

import copy
import json

import cv2
import pytest

from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.site.validation import (
    ImageResult,
    LabelledFolder,
    LabelledFolderError,
    read_labelled_folder,
    save_validation,
    summarise,
    validate,
)


def write_folder(root, n=4, extra_rows=()):
    """``n`` phantom PNGs in two-image cases, labels alternating, plus ``extra_rows``."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        cv2.imwrite(str(root / f"p{i}.png"), make_phantom(seed=i).pixels)
        rows.append(f"p{i}.png,{'malignant' if i % 2 else 'benign'},case{i // 2}")
    (root / "labels.csv").write_text("file,label,case\n" + "\n".join([*rows, *extra_rows]) + "\n")
    return root


@pytest.fixture
def shipped(classifier):
    """The bundled classifier on its shipped calibration, without the novelty check
    (phantoms may look unlike the training crops; that is not what is tested here)."""
    clf = copy.copy(classifier)
    clf.novelty, clf.profile = None, None
    return clf


@pytest.fixture
def folder(tmp_path):
    root = write_folder(
        tmp_path / "site",
        extra_rows=["broken.png,benign,case9", "missing.png,malignant,case10", "nolabel.png,,c"],
    )
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 12)
    return root


def test_reading_a_folder_takes_cases_from_labels_metadata_or_neighbouring_numbers(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    (a / "labels.csv").write_text(
        "file,label,case\nx1.png,malignant,P1\nx2.png,0,P1\nx3.png,1,P2\nx4.png,maybe,P3\n"
    )
    got = read_labelled_folder(a)
    assert [(i.file, i.label, i.case) for i in got.images] == [
        ("x1.png", 1, "P1"),
        ("x2.png", 0, "P1"),
        ("x3.png", 1, "P2"),
    ]
    assert got.skipped[0].file == "x4.png" and "maybe" in got.skipped[0].reason
    assert got.case_source == "labels.csv case"

    b = tmp_path / "b"
    b.mkdir()
    (b / "labels.csv").write_text("file,label\nimg_1.png,benign\nimg_2.png,benign\nimg_9.png,1\n")
    (b / "metadata.csv").write_text("file,group\nimg_9.png,G7\n")
    got = read_labelled_folder(b)
    cases = [i.case for i in got.images]
    assert cases[0] == cases[1] != cases[2] == "G7"  # neighbours 1, 2 are one case
    assert "metadata.csv group" in got.case_source and "neighbouring" in got.case_source


def test_a_folder_without_usable_labels_is_refused_with_a_reason(tmp_path):
    with pytest.raises(LabelledFolderError, match="no labels.csv"):
        read_labelled_folder(tmp_path)
    (tmp_path / "labels.csv").write_text("name,diagnosis\na.png,benign\n")
    with pytest.raises(LabelledFolderError, match="file and label"):
        read_labelled_folder(tmp_path)


def test_images_without_an_estimate_are_counted_not_scored(classifier):
    folder = LabelledFolder(classifier.card.directory, ())
    results = [
        ImageResult(f"{i}.png", i % 2, f"c{i}", 0.3 + 0.1 * (i % 2), 0.3, 0.0, 0.67)
        for i in range(6)
    ] + [
        ImageResult("doppler.png", 1, "c9", None, None, 1.0, 0.67, no_estimate_reason="the "
                    "image does not look like grey-scale ultrasound: colour 5 %"),
        ImageResult("cat.png", 0, "c8", None, None, 1.0, 0.67, no_estimate_reason="the image "
                    "does not look like grey-scale ultrasound: colour 9 %"),
    ]  # fmt: skip
    v = summarise(folder, results, classifier)
    assert v.metrics.n == 6 and len(v.with_estimate) == 6
    assert v.no_estimate == {"the image does not look like grey-scale ultrasound": 2}
    assert v.metrics.auroc == 1.0
    one_class = summarise(folder, results[:1], classifier)
    assert one_class.metrics is None and "both kinds" in one_class.metrics_error


def test_validate_runs_the_app_path_writes_pdf_and_json_and_survives_bad_files(
    folder, tmp_path, shipped, segmenter
):
    seen = []
    v = validate(folder, shipped, segmenter, progress=lambda d, t, f: seen.append((d, t, f)))
    assert [s[0] for s in seen] == list(range(1, 7)) and seen[-1][1:] == (6, "missing.png")
    assert len(v.results) == 6 and v.calibration == "shipped"
    assert {r.file: r.error.split(":")[0] for r in v.unreadable} == {
        "broken.png": "broken.png",
        "missing.png": "missing.png",
    }
    assert "not found" in v.unreadable[1].error
    assert [s.file for s in v.skipped] == ["nolabel.png"]
    assert v.metrics is not None and v.metrics.n == 4 and v.metrics.n_cases == 2
    ok = v.with_estimate[0]
    assert ok.roi_source in ("auto", "full") and ok.threshold == shipped.card.threshold
    assert ok.probability == pytest.approx(ok.shipped_probability)

    out = tmp_path / "out"
    files = save_validation(v, out)
    assert files.pdf.read_bytes().startswith(b"%PDF")
    data = json.loads(files.json.read_text())
    assert data["counts"] == {
        "images": 6,
        "with_estimate": 4,
        "no_estimate": 0,
        "unreadable": 2,
        "skipped_rows": 1,
        "from_training": 0,
    }
    # Checked against the training collections, none of them there, but 2 cases are few.
    assert data["training_check"] and data["training_check_error"] is None
    assert data["site_validation"]["counts"] is False
    sv = data["site_validation"]
    assert (sv["benign_cases"], sv["malignant_cases"]) == (2, 2)  # a case per label it has
    assert "NOT a site validation" in sv["statement"] and "at least 50" in sv["reason"]
    assert [r["file"] for r in data["unreadable"]] == ["broken.png", "missing.png"]
    assert data["images"][0]["probability"] == ok.probability
    assert sorted(p.name for p in out.iterdir()) == sorted([files.pdf.name, files.json.name])

    from pypdf import PdfReader

    text = PdfReader(files.pdf).pages[0].extract_text()
    assert "AUROC" in text and "missing.png" in text and "research use only" in text


def test_cancel_stops_after_the_current_image(folder, shipped, segmenter):
    done = []
    v = validate(
        folder,
        shipped,
        segmenter,
        progress=lambda d, t, f: done.append(d),
        cancel=lambda: len(done) >= 2,
    )
    assert v.cancelled and len(v.results) == 2
    assert any("cancelled" in n for n in v.notes)
