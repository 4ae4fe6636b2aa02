"""``python -m thyroid_desktop predict`` as a user runs it, with the real bundled model."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.roi import ROI


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "thyroid_desktop", "predict", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_predict_json_lines_with_a_bad_file_among_good_ones(tmp_path):
    phantom = make_phantom()
    good = tmp_path / "phantom.png"
    cv2.imwrite(str(good), phantom.pixels)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    roi = ",".join(map(str, phantom.nodule.as_list()))
    result = run_cli(good, bad, good, "--roi", roi, "--json")
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in lines] == [str(good), str(bad), str(good)]
    ok, err = lines[0], lines[1]
    assert set(ok) >= {"file", "probability", "no_estimate_reason", "spread", "novelty", "roi"}
    # The thyroid-like phantom passes the scope check: a number, marked not site-validated;
    # the novelty distance is still reported (it no longer refuses on its own).
    assert ok["scope"]["in_scope"] and ok["no_estimate_reason"] is None
    assert 0 <= ok["probability"] <= 1 and ok["label"] in ("benign", "malignant")
    assert ok["caveats"] == ["not validated at this site"]
    assert ok["novelty"] > 0 and 0 <= ok["spread"] <= 1
    assert ok["roi"] == phantom.nodule.as_list() and ok["roi_source"] == "manual"
    assert lines[2]["probability"] == ok["probability"]  # same file, same box: same answer
    assert lines[2]["novelty"] == ok["novelty"] and lines[2]["spread"] == ok["spread"]
    assert "broken.jpg" in err["error"] and "probability" not in err


def test_predict_without_roi_finds_the_nodule_and_lists_candidates(tmp_path):
    phantom = make_phantom(seed=1)
    path = tmp_path / "p.png"
    cv2.imwrite(str(path), phantom.pixels)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), phantom.pixels * 0)
    empty_file = tmp_path / "empty.dcm"
    empty_file.write_bytes(b"")
    result = run_cli(path, blank, empty_file, "--json", "--candidates")
    assert result.returncode == 1, result.stderr
    found, empty, failed = (json.loads(line) for line in result.stdout.splitlines())
    assert "empty.dcm" in failed["error"] and "empty" in failed["error"].lower()
    assert found["roi_source"] == "auto"
    assert found["candidates"][0]["roi"] == found["roi"]
    assert found["candidates"][0]["probability"] == found["probability"]
    x, y, w, h = found["roi"]
    n = phantom.nodule
    assert abs(x + w / 2 - (n.x + n.w / 2)) < n.w / 4 and abs(y + h / 2 - (n.y + n.h / 2)) < n.h / 4
    assert found["preliminary"] is True  # the detector's proposal, not a confirmed nodule
    assert found["scope"]["in_scope"] and found["probability"] is not None
    # A black frame: refused before detection (not B-mode ultrasound), so nothing found,
    # no candidates listed, nothing analysed, and it says why; not even --force may analyse it.
    assert empty["roi_source"] == "none" and not empty.get("candidates")
    assert empty["roi"] is None and empty["probability"] is None and empty["logit"] is None
    assert "blank" in empty["no_estimate_reason"]
    assert not empty["scope"]["in_scope"] and not empty["scope"]["can_force"]


def test_bad_roi_argument_is_a_usage_error(tmp_path):
    result = run_cli(tmp_path / "x.png", "--roi", "1,2,3")
    assert result.returncode == 2 and "four numbers" in result.stderr


def test_one_files_memory_error_does_not_lose_the_others(tmp_path, monkeypatch, capsys):
    from thyroid_desktop import cli
    from thyroid_desktop.core import analysis
    from thyroid_desktop.core.pipeline import estimate as inference

    phantom = make_phantom()
    files = [tmp_path / f"{name}.png" for name in ("a", "huge", "c")]
    for f in files:
        cv2.imwrite(str(f), phantom.pixels)
    real = inference.detect_nodules

    def flaky(image, seg):
        if image.source is not None and image.source.name == "huge.png":
            raise MemoryError
        return real(image, seg)

    monkeypatch.setattr(analysis, "detect_nodules", flaky)  # where the service calls it
    assert cli.main(["predict", "--json", *map(str, files)]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file"] for line in lines] == [str(f) for f in files]
    assert "probability" in lines[0] and "probability" in lines[2]
    assert "not enough memory" in lines[1]["error"] and "huge.png" in lines[1]["error"]


def test_predict_on_a_real_thyroid_image_gives_a_calibrated_estimate(shared_data):
    import csv

    with open(shared_data / "ddti" / "labels.csv", newline="") as fh:
        first = next(csv.DictReader(fh))["file"]
    result = run_cli(shared_data / "ddti" / first, "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.splitlines()[0])
    assert record["no_estimate_reason"] is None and record["roi_source"] == "auto"
    assert 0 <= record["probability"] <= 1 and record["label"] in ("benign", "malignant")
    assert 0 <= record["spread"] <= 1 and record["novelty"] > 0
    assert "TI-RADS 4-5" in record["output"]
    # AI TI-RADS suggestions: every group listed (null where no head is offered), shape from
    # the nodule's mask, AI-only points and level.
    sug = record["tirads_suggestion"]
    groups = ("composition", "echogenicity", "shape", "margin", "echogenic_foci")
    assert set(groups) <= set(sug) and sug["level"] == f"TR{sug['level'][2]}"
    assert (
        sug["shape"]["value"] in ("WIDER", "TALLER") and sug["shape"]["method"] == "mask geometry"
    )
    assert sug["shape"]["confidence"] is None and sug["size_mm"] is None  # a PNG: no mm
    for g in groups:
        if sug[g] is not None and g != "shape":
            assert 0 < sug[g]["confidence"] <= 1 and set(sug[g]) >= {"value", "confidence"}
    assert isinstance(sug["points"], int) and sug["size_px"] > 0


def test_cine_best_frame_chosen_frame_and_every_frame(cine_dicom, tmp_path):
    """A JPEG-compressed multi-frame DICOM: the best frame by default, ``--frame N``,
    ``--all-frames``; every analysis lands in the audit log unless ``--no-audit``."""
    import os

    audit = tmp_path / "audit.jsonl"
    os.environ["THYROID_AUDIT_LOG"] = str(audit)  # the autouse fixture restores it
    best = json.loads(run_cli(cine_dicom, "--json").stdout)
    assert best["n_frames"] == 12 and best["frame"] >= 2 and best["roi_source"] == "auto"
    assert best["frame_scores"][0] == 0.0 and len(best["frame_scores"]) == 12
    assert best["frame"] == max(range(12), key=lambda i: best["frame_scores"][i])
    chosen = json.loads(run_cli(cine_dicom, "--frame", 0, "--json").stdout)
    assert chosen["frame"] == 0 and "frame_scores" not in chosen
    out = run_cli(cine_dicom, "--all-frames", "--json", "--no-audit")
    assert [json.loads(line)["frame"] for line in out.stdout.splitlines()] == list(range(12))
    logged = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [r["frame"] for r in logged] == [best["frame"], 0]
    assert {r["action"] for r in logged} == {"cli-predict"}
    # the text counts from 1, as the window and the report do (the JSON is an index)
    assert "frame 1 of 12 (index 0):" in run_cli(cine_dicom, "--frame", 0, "--no-audit").stdout
    text = run_cli(cine_dicom, "--frame", 99)
    assert text.returncode == 1 and "frame 99" in text.stdout.lower()


def test_a_word_that_is_neither_a_command_nor_a_file_is_refused_without_opening_the_window(
    tmp_path,
):
    """``python -m thyroid_desktop report x.dcm`` (a mistyped command) says so, lists the
    commands and exits 2 at once, with no display, instead of starting the GUI."""
    import os

    from thyroid_desktop.cli.main import commands

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['thyroid_desktop', 'reprot', 'x.dcm']\n"
        "try:\n"
        "    runpy.run_module('thyroid_desktop', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    qt = sorted(m for m in sys.modules if m.startswith(('PySide6', 'thyroid_desktop.ui')))\n"
        "    print('exit', e.code, 'qt', qt)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert result.stdout.strip() == "exit 2 qt []", result.stderr
    assert "'reprot' is neither a command nor a file" in result.stderr
    for name in commands():
        assert f"  {name} " in result.stderr
    assert set(commands()) == {"predict", "validate", "recalibrate", "profile", "report", "outbox"}
    plain = subprocess.run(
        [sys.executable, "-m", "thyroid_desktop", "prdict"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert plain.returncode == 2 and "'prdict' is neither" in plain.stderr


def test_an_existing_file_or_an_option_still_goes_to_the_window(tmp_path):
    from thyroid_desktop.__main__ import COMMANDS, unknown_word
    from thyroid_desktop.cli.main import commands

    image = tmp_path / "report"  # a file may be called like a word
    image.write_bytes(b"")
    assert unknown_word([str(image)]) is None and unknown_word([str(tmp_path)]) is None
    assert unknown_word(["--some-qt-option"]) is None and unknown_word([]) is None
    assert unknown_word([str(tmp_path / "missing.dcm")]) == str(tmp_path / "missing.dcm")
    assert unknown_word(["reprot", str(image)]) == "reprot"
    assert tuple(commands()) == COMMANDS  # the words __main__ sends to the CLI


# ----------------------------------------------------------------------------- prompts

INSCOPE = Path(__file__).resolve().parent / "assets" / "inscope_bmode.png"
#: The nodule drawn into the in-scope image (tests/assets/make_inscope_image.py, NODULE).
INSCOPE_NODULE = ROI(220, 120, 130, 100)


def predict_lines(capsys, *args) -> tuple[int, list[str]]:
    """``predict`` in this process: (exit code, stdout lines)."""
    from thyroid_desktop import cli

    code = cli.main(["predict", "--no-audit", *map(str, args)])
    return code, capsys.readouterr().out.splitlines()


def test_predict_point_and_stroke_give_the_outlined_box(capsys, tmp_path):
    phantom = make_phantom()
    path = tmp_path / "phantom.png"
    cv2.imwrite(str(path), phantom.pixels)
    n = phantom.nodule
    code, lines = predict_lines(
        capsys, path, "--point", f"{n.x + n.w / 2},{n.y + n.h / 2}", "--json"
    )
    assert code == 0
    clicked = json.loads(lines[0])
    assert clicked["roi_source"] == "point" and clicked["preliminary"] is False
    assert ROI(*clicked["roi"]).iou(n) >= 0.5 and clicked["size_uncertain"] is False
    outline = np.array(clicked["contour"])  # a small outline is printed
    assert outline.shape[1] == 2 and 4 <= len(outline) <= 200
    x, y, w, h = clicked["roi"]
    assert outline[:, 0].min() >= x and outline[:, 0].max() < x + w
    stroke = f"{n.x + 3},{n.y + n.h // 2},{n.x + n.w - 3},{n.y + n.h // 2}"
    code, lines = predict_lines(capsys, path, "--stroke", stroke, "--json")
    drawn = json.loads(lines[0])
    assert code == 0 and drawn["roi_source"] == "stroke" and ROI(*drawn["roi"]).iou(n) >= 0.5
    assert drawn["roi"][0] <= n.x + 3 and drawn["roi"][0] + drawn["roi"][2] >= n.x + n.w - 3
    # On background, in the in-scope image: a guessed box, an estimate, and the doubt said.
    code, lines = predict_lines(capsys, INSCOPE, "--point", "100,300")
    assert code == 0 and "point, size uncertain: nothing found at the click" in lines[0]


def test_predict_without_a_nodule_found_gives_no_estimate_and_says_what_to_give(
    capsys, monkeypatch
):
    from thyroid_desktop.core.models import shipped

    class NothingSeen:
        size, threshold = 64, 0.5

        def __call__(self, batch):
            return np.zeros((len(batch), 64, 64), np.float32)

    monkeypatch.setattr(shipped, "load_segmenter", lambda *a, **k: NothingSeen())
    code, lines = predict_lines(capsys, INSCOPE, "--json")
    record = json.loads(lines[0])
    assert code == 0 and record["probability"] is None and record["roi"] is None
    assert record["no_estimate_reason"] == "no nodule found: give --point, --stroke or --roi"
    assert record["roi_source"] == "none" and record["call"] == "no estimate"
    code, lines = predict_lines(capsys, INSCOPE)
    assert lines == [f"{INSCOPE}: no estimate (no nodule found: give --point, --stroke or --roi)"]
    code, lines = predict_lines(capsys, INSCOPE, "--scan-area", "--json")
    record = json.loads(lines[0])
    assert code == 0 and record["roi_source"] == "full" and record["probability"] is not None
    assert record["preliminary"] is False


def test_predict_proposal_is_marked_preliminary_in_text(capsys):
    code, lines = predict_lines(capsys, INSCOPE)
    assert code == 0 and "auto, preliminary (proposal)" in lines[0]


def test_prompts_are_usage_errors_when_malformed_or_combined(tmp_path):
    result = run_cli(tmp_path / "x.png", "--point", "1,2,3")
    assert result.returncode == 2 and "two numbers" in result.stderr
    result = run_cli(tmp_path / "x.png", "--stroke", "1,2,a,4")
    assert result.returncode == 2 and "four numbers" in result.stderr
    result = run_cli(tmp_path / "x.png", "--point", "1,2", "--roi", "1,2,3,4")
    assert result.returncode == 2 and "not allowed with" in result.stderr
