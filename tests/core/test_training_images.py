"""The training collections' image hashes: the shipped list, what matches it (a copy, a
lossless re-save, a DICOM wrapping) and what does not, and ``validate`` refusing to count
training images as a site's (synthetic folders, and real ddti/chaouchi images when
../shared/data is there)."""

import copy
import dataclasses
import gzip
import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from thyroid_desktop import cli
from thyroid_desktop.core.io.images import open_image
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.models.shipped import load_card
from thyroid_desktop.core.site.training_images import (
    CARD_KEY,
    TrainingHashes,
    TrainingHashesError,
    load_training_hashes,
)
from thyroid_desktop.core.site.validation import validate
from training.training_hashes import COLLECTIONS

ROOT = Path(__file__).resolve().parents[2]


def save_png(path, pixels):
    cv2.imwrite(str(path), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    return path


def dicom_of(path, grey: np.ndarray):
    """A minimal ultrasound DICOM holding ``grey`` (MONOCHROME2, uncompressed)."""
    from tests.core.test_dicom import make_dataset, save

    save(make_dataset(grey), path)
    return path


@pytest.fixture
def training_folder(tmp_path):
    """Two "training" images (grey PNG phantoms) and their hash list."""
    folder = tmp_path / "train"
    folder.mkdir()
    paths = [save_png(folder / f"t{i}.png", make_phantom(seed=i).pixels) for i in range(2)]
    hashes = TrainingHashes.of_images(("set-a", open_image(p)) for p in paths)
    return paths, hashes


def test_a_copy_and_lossless_resaves_match_and_other_images_do_not(tmp_path, training_folder):
    paths, hashes = training_folder
    assert hashes.images == {"set-a": 2} and len(hashes.hashes) == 4
    copy_ = tmp_path / "renamed.bin"
    shutil.copy(paths[0], copy_)
    assert hashes.match(open_image(copy_)) == "set-a"  # the same bytes, another name
    pixels = open_image(paths[1]).pixels
    bmp = tmp_path / "resaved.bmp"
    cv2.imwrite(str(bmp), cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2BGR))
    assert hashes.match(open_image(bmp)) == "set-a"  # other bytes, the same pixels
    grey = tmp_path / "grey.tiff"
    cv2.imwrite(str(grey), np.ascontiguousarray(pixels[:, :, 0]))
    assert hashes.match(open_image(grey)) == "set-a"  # grey instead of RGB
    dcm = dicom_of(tmp_path / "wrapped.dcm", np.ascontiguousarray(pixels[:, :, 0]))
    assert hashes.match(open_image(dcm)) == "set-a"  # a DICOM wrapping the same pixels
    # Not matched (documented): another image, a lossy re-encode, a crop.
    other = save_png(tmp_path / "other.png", make_phantom(seed=7).pixels)
    assert hashes.match(open_image(other)) == ""
    jpeg = tmp_path / "lossy.jpg"
    cv2.imwrite(str(jpeg), np.ascontiguousarray(pixels[:, :, 0]), [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert hashes.match(open_image(jpeg)) == ""
    crop = save_png(tmp_path / "crop.png", np.ascontiguousarray(pixels[1:, 1:]))
    assert hashes.match(open_image(crop)) == ""


def test_the_list_round_trips_byte_for_byte_and_a_mangled_one_is_refused(tmp_path, training_folder):
    _, hashes = training_folder
    path = hashes.save(tmp_path / "h.txt.gz")
    again = TrainingHashes.load(path)
    assert again == hashes
    assert hashes.save(tmp_path / "h2.txt.gz").read_bytes() == path.read_bytes()
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"hello\n"))
    with pytest.raises(TrainingHashesError, match="known format"):
        TrainingHashes.load(tmp_path / "bad.gz")
    (tmp_path / "notgz").write_bytes(b"plain")
    with pytest.raises(TrainingHashesError, match="cannot be read"):
        TrainingHashes.load(tmp_path / "notgz")


def test_the_shipped_list_is_small_named_by_the_card_and_bundled(tmp_path):
    card = load_card()
    entry = card.raw[CARD_KEY]
    path = card.directory / entry["file"]
    data = path.read_bytes()
    assert len(data) < 1_000_000 and hashlib.sha256(data).hexdigest() == entry["sha256"]
    hashes = load_training_hashes(card)
    assert set(hashes.collections) == set(COLLECTIONS) == set(entry["collections"])
    assert {k: v["images"] for k, v in entry["collections"].items()} == dict(hashes.images)
    assert "training.training_hashes" in entry["command"]
    spec = (ROOT / "build.spec").read_text()
    assert '"resources" / "models").iterdir()' in spec  # every side file but the Keras ones
    assert path.suffix != ".keras"
    # An altered copy is refused, not trusted.
    altered = tmp_path / "models"
    shutil.copytree(card.directory, altered, ignore=shutil.ignore_patterns("*.keras", "*.onnx"))
    (altered / entry["file"]).write_bytes(gzip.compress(b"x"))
    with pytest.raises(TrainingHashesError, match="sha256 differs"):
        load_training_hashes(dataclasses.replace(card, directory=altered))


def phantom_site(root, n=4):
    """``n`` phantom PNGs of the site's own, labels alternating, one case each."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        save_png(root / f"site{i}.png", make_phantom(seed=20 + i).pixels)
        rows.append(f"site{i}.png,{i % 2},s{i}")
    return rows


@pytest.fixture
def shipped(classifier):
    clf = copy.copy(classifier)
    clf.novelty, clf.profile = None, None
    return clf


def test_validate_on_a_synthetic_folder_excludes_and_reports_training_images(
    tmp_path, training_folder, shipped, segmenter
):
    paths, hashes = training_folder
    root = tmp_path / "site"
    rows = phantom_site(root)
    for i, p in enumerate(paths):
        shutil.copy(p, root / f"from_training_{i}.png")
        rows.append(f"from_training_{i}.png,{i % 2},t{i}")
    (root / "labels.csv").write_text("file,label,case\n" + "\n".join(rows) + "\n")
    v = validate(root, shipped, segmenter, training=hashes)
    assert {r.file for r in v.from_training} == {"from_training_0.png", "from_training_1.png"}
    assert all(r.training_collection == "set-a" for r in v.from_training)
    assert v.metrics is not None and v.metrics.n == len(v.site_results) <= 4
    sv = v.site_validation
    assert not sv.counts and sv.training_images == {"set-a": 2}
    text = "\n".join(v.summary_lines())
    assert "2 images are from the model's training collections (set-a 2): excluded" in text
    assert "Site validation: NOT a site validation" in text
    data = v.to_dict()
    assert data["counts"]["from_training"] == 2
    assert data["site_validation"]["training_images_excluded"] == 2
    assert [r["training_collection"] for r in data["images"]][-2:] == ["set-a", "set-a"]


def test_validate_says_when_the_training_check_could_not_run(tmp_path, shipped, segmenter):
    root = tmp_path / "site"
    rows = phantom_site(root, 2)
    (root / "labels.csv").write_text("file,label,case\n" + "\n".join(rows) + "\n")
    clf = copy.copy(shipped)
    raw = {k: v for k, v in shipped.card.raw.items() if k != CARD_KEY}
    clf.card = dataclasses.replace(shipped.card, raw=raw)
    v = validate(root, clf, segmenter)
    assert v.training_check == "" and "lists no training-image hashes" in v.training_check_error
    assert v.site_validation.validated_cases == (0, 0)
    assert "could not be checked" in v.site_validation.statement()


# -- real images -----------------------------------------------------------------------------
def test_every_ddti_and_chaouchi_file_is_in_the_shipped_list(shared_data):
    hashes = load_training_hashes(load_card())
    for name in ("ddti", "chaouchi"):
        files = sorted((shared_data / name / "images").iterdir())
        assert len(files) == hashes.images[name]
        missing = [
            f.name
            for f in files
            if ("file", hashlib.sha256(f.read_bytes()).hexdigest()[:16]) not in hashes.hashes
        ]
        assert missing == []


def test_a_resaved_chaouchi_jpeg_matches_by_its_pixels(shared_data, tmp_path):
    hashes = load_training_hashes(load_card())
    original = sorted((shared_data / "chaouchi" / "images").glob("*.jpg"))[0]
    image = open_image(original)
    png = save_png(tmp_path / "resaved.png", np.ascontiguousarray(image.pixels))
    assert hashes.match(open_image(png)) == "chaouchi"


def test_validate_on_real_ddti_images_is_not_a_site_figure(
    shared_data, tmp_path, classifier, segmenter, monkeypatch, capsys
):
    """The issue's case: a labelled folder of ddti images (the model's training data)
    reported AUROC 0.731 as if it were a site's. Now: excluded, no figures, not validated."""
    from thyroid_desktop.core.models import shipped as models

    monkeypatch.setattr(models, "load_classifier", lambda directory=None: classifier)
    monkeypatch.setattr(models, "load_segmenter", lambda directory=None: segmenter)
    ddti = shared_data / "ddti"
    labels = [line.split(",")[:2] for line in (ddti / "labels.csv").read_text().splitlines()[1:]]
    chosen = [next(r for r in labels if r[1] == k) for k in ("benign", "malignant")]
    chosen += [r for r in labels if r[1] == "benign"][1:3]
    root = tmp_path / "clinic"
    root.mkdir()
    rows = []
    for i, (file, label) in enumerate(chosen):
        shutil.copy(ddti / file, root / f"case_{i}.png")  # renamed: the hash still finds it
        rows.append(f"case_{i}.png,{label},c{i}")
    (root / "labels.csv").write_text("file,label,case\n" + "\n".join(rows) + "\n")

    code = cli.main(["validate", str(root), "--out", str(tmp_path / "out"), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 2  # no figures: nothing of the site's own
    assert summary["metrics"] is None and "training collections" in summary["metrics_error"]
    sv = summary["site_validation"]
    assert sv["counts"] is False and sv["training_collections"] == {"ddti": 4}
    assert "4 images are from the model's training collections (ddti 4): excluded" in sv["reason"]
    assert cli.main(["validate", str(root), "--out", str(tmp_path / "out")]) == 2
    printed = capsys.readouterr().out
    assert "Site validation: NOT a site validation" in printed and "AUROC" not in printed
