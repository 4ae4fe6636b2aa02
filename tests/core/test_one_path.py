"""One analysis path: for the same file (and box), ``predict`` (its JSON), ``validate`` (its
per-image JSON) and the service the window uses give the same frame, box, estimate, model
score and TI-RADS suggestion (with the nodule's size), for still images and cine loops.

Built from the synthetic phantom (always runs) and from real frames of ../shared/data
(skipped without them): an arcegor sweep whose nodule is on frame 2, not frame 0.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import write_cine_dicom
from tests.core.test_dicom import make_dataset, save, us_region
from thyroid_desktop import cli
from thyroid_desktop.core.analysis import Action, AnalysisService
from thyroid_desktop.core.io.images import open_image
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.roi import ROI, BoxSource

#: arcegor sequence 12: no nodule on frames 12_0 and 12_3, the nodule on 12_9, none on 12_24.
ARCEGOR_SWEEP = ("12_0", "12_3", "12_9", "12_24")
ARCEGOR_NODULE_FRAME = 2


@pytest.fixture
def window_service(classifier, segmenter) -> AnalysisService:
    """The service as the window builds it (the bundled models; the audit log is beside the
    point here)."""
    return AnalysisService(classifier, segmenter, None)


def window_analysis(service: AnalysisService, path: Path, roi: ROI | None = None):
    """What the window shows for ``path``: a cine loop opens on the frame the detector
    scores best (``frame_scores`` in the worker, then that frame), where the nodule is
    found (A) or a box is drawn (``analyse_box``, the drawn box's path)."""
    image = open_image(path)
    if image.n_frames > 1:
        image = open_image(path, frame=service.frame_scores(path, image.n_frames).best)
    if roi is None:
        return service.analyse(image, None, Action.AUTO, scan_area_fallback=True)
    return service.analyse_box(image, roi, BoxSource.MANUAL, Action.ANALYSE)


def predict_json(path: Path, capsys, *extra: str) -> dict:
    """``python -m thyroid_desktop predict PATH --json`` (in this process)."""
    assert cli.main(["predict", str(path), "--json", "--no-audit", *extra]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    return json.loads(line)


def validate_json(path: Path, tmp_path: Path, capsys) -> dict:
    """The per-image record of ``python -m thyroid_desktop validate`` on a folder holding
    only ``path`` (one class: no figures, exit 2, but every image is analysed and written)."""
    folder = path.parent
    with open(folder / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("file", "label"), (path.name, "benign")])
    out = tmp_path / "validation"
    code = cli.main(["validate", str(folder), "--out", str(out), "--json", "--profile", "shipped"])
    assert code == 2  # one label only: the figures need both classes
    summary = json.loads(capsys.readouterr().out)
    (record,) = json.loads(Path(summary["json"]).read_text())["images"]
    return record


def same(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (
        a is not None and b is not None and round(a, 6) == round(b, 6)
    )


def assert_one_answer(window, predicted: dict, validated: dict | None = None) -> None:
    """The window's result, ``predict``'s JSON and ``validate``'s record agree on frame, box,
    estimate, score and TI-RADS suggestion (size included)."""
    f = window.finding
    suggestion = f.tirads_suggestion.to_json() if f.tirads_suggestion is not None else None
    suggestion = json.loads(json.dumps(suggestion))  # as written to JSON (tuples as lists)
    assert predicted["frame"] == window.frame and predicted["n_frames"] == window.n_frames
    assert predicted["roi"] == f.roi.as_list() and predicted["roi_source"] == f.roi_source
    assert same(predicted["probability"], f.estimate), (predicted["probability"], f.estimate)
    assert same(predicted["logit"], f.logit), (predicted["logit"], f.logit)
    assert predicted["tirads_suggestion"] == suggestion
    size = json.loads(json.dumps(window.size.to_json()))  # the one size rule, as written
    assert predicted["size"] == size
    if validated is None:
        return
    assert validated["size"] == size
    assert validated["frame"] == window.frame and validated["n_frames"] == window.n_frames
    assert validated["roi"] == f.roi.as_list() and validated["roi_source"] == f.roi_source
    assert same(validated["probability"], f.estimate)
    assert same(validated["logit"], f.logit)
    assert validated["tirads_suggestion"] == suggestion
    assert validated["no_estimate_reason"] == f.no_estimate_reason


def grown(roi: ROI, by: int, width: int, height: int) -> ROI:
    """A box drawn a little larger than the found one (a user's box, not the detector's)."""
    return ROI(roi.x - by, roi.y - by, roi.w + 2 * by, roi.h + 2 * by).clipped(width, height)


# ----------------------------------------------------------------------------- phantom (CI)


def test_phantom_cine_same_best_frame_box_and_score_everywhere(window_service, tmp_path, capsys):
    """The phantom sweep has no nodule before frame 2: validate used to score frame 0."""
    (tmp_path / "study").mkdir()
    cine = write_cine_dicom(tmp_path / "study" / "cine.dcm")
    window = window_analysis(window_service, cine)
    assert window.frame >= 2 and window.finding.roi_source == "auto"
    assert_one_answer(window, predict_json(cine, capsys), validate_json(cine, tmp_path, capsys))
    frame0 = window_service.analyse_file(cine, frame=0, action=None).finding
    assert not same(frame0.logit, window.finding.logit)  # frame 0 would be another answer


def test_phantom_cine_drawn_box_same_frame_and_numbers_in_predict_and_window(
    window_service, tmp_path, capsys
):
    """``predict --roi`` on a cine: the box on the frame the window opens (the best one),
    not on frame 0 as when predict loaded no segmenter."""
    cine = write_cine_dicom(tmp_path / "cine.dcm")
    found = window_analysis(window_service, cine)
    image = found.image
    box = grown(found.finding.roi, 6, image.width, image.height)
    window = window_analysis(window_service, cine, box)
    assert window.frame == found.frame >= 2 and window.finding.roi == box
    predicted = predict_json(cine, capsys, "--roi", ",".join(map(str, box.as_list())))
    assert predicted["roi_source"] == "manual"
    assert_one_answer(window, predicted)


def test_phantom_still_image_auto_and_drawn_box(window_service, tmp_path, capsys):
    (tmp_path / "study").mkdir()
    path = tmp_path / "study" / "phantom.png"
    phantom = make_phantom(seed=1)
    cv2.imwrite(str(path), phantom.pixels)
    window = window_analysis(window_service, path)
    assert window.finding.roi_source == "auto" and window.finding.roi.iou(phantom.nodule) > 0.5
    assert_one_answer(window, predict_json(path, capsys), validate_json(path, tmp_path, capsys))
    box = grown(phantom.nodule, 5, window.image.width, window.image.height)
    drawn = window_analysis(window_service, path, box)
    assert_one_answer(drawn, predict_json(path, capsys, "--roi", ",".join(map(str, box.as_list()))))


# ------------------------------------------------------- synthetic in-scope image (CI)
INSCOPE = Path(__file__).resolve().parents[1] / "assets" / "inscope_bmode.png"
#: A box drawn round the asset's nodule (tests/assets/make_inscope_image.py).
INSCOPE_BOX = ROI(220, 120, 130, 100)


def test_in_scope_still_same_estimate_suggestion_and_size_everywhere(
    window_service, tmp_path, capsys
):
    """The committed synthetic B-mode image gets an estimate, so the numbers compared here
    are real ones (the phantom gets none), without ../shared/data."""
    (tmp_path / "study").mkdir()
    path = tmp_path / "study" / "inscope.png"
    path.write_bytes(INSCOPE.read_bytes())
    window = window_analysis(window_service, path)
    assert window.finding.estimate is not None and window.finding.tirads_suggestion is not None
    assert window.size.basis == "mask"
    assert_one_answer(window, predict_json(path, capsys), validate_json(path, tmp_path, capsys))
    drawn = window_analysis(window_service, path, INSCOPE_BOX)
    assert drawn.finding.estimate is not None and drawn.finding.roi == INSCOPE_BOX
    roi = ",".join(map(str, INSCOPE_BOX.as_list()))
    assert_one_answer(drawn, predict_json(path, capsys, "--roi", roi))


def test_in_scope_cine_scored_on_its_best_frame_everywhere(window_service, tmp_path, capsys):
    """A calibrated cine whose frame 0 is noise and frame 1 the in-scope image: predict,
    validate and the window all analyse frame 1, with an estimate and a size in mm."""
    image = cv2.imread(str(INSCOPE), cv2.IMREAD_GRAYSCALE)
    noise = np.random.default_rng(0).integers(0, 40, image.shape, dtype=np.uint8)
    (tmp_path / "study").mkdir()
    cine = write_real_cine(tmp_path / "study" / "loop.dcm", [noise, image, noise])
    window = window_analysis(window_service, cine)
    assert window.frame == 1 and window.finding.estimate is not None
    assert window.size.max_diameter_mm is not None  # calibrated DICOM: mm
    assert_one_answer(window, predict_json(cine, capsys), validate_json(cine, tmp_path, capsys))
    frame0 = window_service.analyse_file(cine, frame=0, action=None).finding
    assert frame0.estimate is None or not same(frame0.logit, window.finding.logit)


# ----------------------------------------------------------------------------- real frames


def write_real_cine(path: Path, frames: list[np.ndarray], mm_per_px: float = 0.1) -> Path:
    """An uncompressed multi-frame ultrasound DICOM of real frames, calibrated (mm)."""
    stack = np.stack(frames)
    h, w = stack.shape[1:]
    cm = mm_per_px / 10.0
    ds = make_dataset(stack, regions=[us_region(cm, cm, box=(0, 0, w - 1, h - 1))], multiframe=True)
    ds.FrameTime = 40.0
    return save(ds, path)


@pytest.fixture
def arcegor_cine(shared_data, tmp_path) -> Path:
    images = shared_data / "arcegor" / "images"
    if not all((images / f"{n}.jpg").exists() for n in ARCEGOR_SWEEP):
        pytest.skip(f"the arcegor frames {ARCEGOR_SWEEP} are not in {images}")
    frames = [cv2.imread(str(images / f"{n}.jpg"), cv2.IMREAD_GRAYSCALE) for n in ARCEGOR_SWEEP]
    (tmp_path / "study").mkdir()
    return write_real_cine(tmp_path / "study" / "sweep.dcm", frames)


@pytest.mark.realdata
def test_real_cine_nodule_on_frame_2_same_answer_everywhere(
    window_service, arcegor_cine, tmp_path, capsys
):
    window = window_analysis(window_service, arcegor_cine)
    f = window.finding
    assert window.frame == ARCEGOR_NODULE_FRAME and f.roi_source == "auto"
    assert f.estimate is not None and f.tirads_suggestion is not None
    assert f.tirads_suggestion.size_mm is not None  # calibrated DICOM: the size in mm
    predicted = predict_json(arcegor_cine, capsys)
    assert_one_answer(window, predicted, validate_json(arcegor_cine, tmp_path, capsys))
    frame0 = window_service.analyse_file(arcegor_cine, frame=0, action=None).finding
    # Frame 0 shows no nodule: no estimate unless the scan area is asked for.
    assert frame0.roi_source == "none" and frame0.estimate is None
    area0 = window_service.analyse_file(
        arcegor_cine, frame=0, action=None, scan_area_fallback=True
    ).finding
    assert area0.roi_source == "full" and not same(area0.logit, f.logit)


@pytest.mark.realdata
def test_real_cine_drawn_box_gives_shape_and_size_in_predict_as_in_the_window(
    window_service, arcegor_cine, capsys
):
    found = window_analysis(window_service, arcegor_cine)
    image = found.image
    box = grown(found.finding.roi, 8, image.width, image.height)
    window = window_analysis(window_service, arcegor_cine, box)
    sug = window.finding.tirads_suggestion
    assert window.frame == ARCEGOR_NODULE_FRAME and sug is not None
    assert sug.groups["shape"].method == "mask geometry" and sug.size_mm is not None
    predicted = predict_json(arcegor_cine, capsys, "--roi", ",".join(map(str, box.as_list())))
    assert predicted["tirads_suggestion"]["size_mm"] == round(sug.size_mm, 1)
    assert_one_answer(window, predicted)


@pytest.mark.realdata
def test_real_still_image_auto_and_drawn_box(window_service, shared_data, tmp_path, capsys):
    with open(shared_data / "ddti" / "labels.csv", newline="") as fh:
        first = next(csv.DictReader(fh))["file"]
    (tmp_path / "study").mkdir()
    path = tmp_path / "study" / Path(first).name
    path.write_bytes((shared_data / "ddti" / first).read_bytes())
    window = window_analysis(window_service, path)
    assert window.finding.estimate is not None and window.finding.tirads_suggestion is not None
    assert_one_answer(window, predict_json(path, capsys), validate_json(path, tmp_path, capsys))
    box = grown(window.finding.roi, 8, window.image.width, window.image.height)
    drawn = window_analysis(window_service, path, box)
    assert drawn.finding.tirads_suggestion.size_px is not None  # the mask inside the box
    assert_one_answer(drawn, predict_json(path, capsys, "--roi", ",".join(map(str, box.as_list()))))
