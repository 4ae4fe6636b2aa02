"""Nothing lost (issue 24): the real app, in a subprocess, makes scripted edits on three
images through its window actions; once the session file holds them it is killed (``kill
-9``: no close, no clean exit); a restart, again in a subprocess, restores the open study,
and what it holds is compared with what was done, without opening the images again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from thyroid_desktop.core.review.session import SessionStore

ROOT = Path(__file__).resolve().parents[2]
INSCOPE = ROOT / "tests" / "assets" / "inscope_bmode.png"
CHILD = "tests.ui.kill_restore_child"
#: Where the synthetic in-scope image's nodule is (tests/assets/make_inscope_image.py).
NODULE = "280,334"


def _three_images(tmp_path) -> list[Path]:
    """Three different files (the same bytes would be one image, by content): the in-scope
    image mirrored, shifted, and as it is (its nodule where the child clicks)."""
    image = cv2.imread(str(INSCOPE), cv2.IMREAD_GRAYSCALE)
    variants = {"left.png": image[:, ::-1], "shifted.png": np.roll(image, 30, axis=1)}
    variants["scan.png"] = image
    paths = []
    for name, pixels in variants.items():
        paths.append(tmp_path / name)
        cv2.imwrite(str(paths[-1]), np.ascontiguousarray(pixels))
    return paths


def _env(tmp_path) -> dict[str, str]:
    return {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "PYTHONPATH": str(ROOT),
        "THYROID_USER_DATA": str(tmp_path / "user-data"),
        "THYROID_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }


def _line(proc: subprocess.Popen, prefix: str) -> dict:
    """The JSON after ``prefix`` on the child's output (it gives up by itself if stuck)."""
    said = []
    for line in proc.stdout:
        if line.startswith(prefix):
            return json.loads(line[len(prefix) :])
        said.append(line)
    proc.kill()
    raise AssertionError(f"the child said no {prefix.strip()}: {''.join(said)[-3000:]}")


def test_a_killed_app_restarts_with_everything_that_was_done(qtbot, tmp_path):
    files = _three_images(tmp_path)
    env = _env(tmp_path)
    edit = subprocess.Popen(
        [sys.executable, "-m", CHILD, "edit", "--click", NODULE, *map(str, files)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        done = _line(edit, "EDITED ")
        store = SessionStore(tmp_path / "user-data" / "sessions")
        session = done["review"]["session"]
        # the session file on disk holds every edit before the kill
        qtbot.waitUntil(
            lambda: (
                (state := store.open_study()) is not None
                and [len(n.calipers) for n in state.nodules] == [1, 0, 0]
                and state.study.report.signed
            ),
            timeout=30000,
        )
        edit.send_signal(signal.SIGKILL)  # no closeEvent, no clean exit
        assert edit.wait(30) == -signal.SIGKILL
    finally:
        if edit.poll() is None:
            edit.kill()

    assert [n["id"] for n in session["nodules"]] == ["N1", "N2", "N3"]

    dump = subprocess.run(
        [sys.executable, "-m", CHILD, "dump"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert dump.returncode == 0, dump.stderr[-3000:]
    (line,) = [x for x in dump.stdout.splitlines() if x.startswith("RESTORED ")]
    restored = json.loads(line.removeprefix("RESTORED "))
    assert restored["restored"]
    assert restored["review"] == done["review"]  # the whole study, every field, as it was
    assert restored["review"]["rows"] == ["N1", "N2", "N3"]  # the CSV and report hold all
    assert restored["list"] == done["list"]  # the study list says what it said
    assert "no patient data" in restored["title"]
    _matches_what_was_done(restored["review"]["session"], done["done"])


def _matches_what_was_done(session: dict, done: dict) -> None:
    """The restored session against the script's own notes of what it did (so that a field
    the session file forgot cannot pass by being forgotten on both sides)."""
    n1, n2, n3 = session["nodules"]
    assert [e["path"] for e in session["images"]] == done["files"]
    assert n1["box"] == done["N1"]["box"] and n1["source"] in ("auto", "manual")
    assert [[c["start"], c["end"]] for c in n1["calipers"]] == [done["N1"]["caliper"]]
    assert (n1["lobe"], n1["pole"]) == ("RIGHT", "UPPER")
    assert (n1["tirads"]["composition"], n1["tirads"]["echogenicity"]) == ("SOLID", "HYPO")
    assert n2["box"] == done["N2"]["box"] and n2["source"] == "manual"
    assert [r["box"] for r in session["rejected"]] == done["rejected"]
    assert session["images"][1]["user_mm_per_px"] == 0.1
    assert n3["box"] == done["N3"]["box"] and n3["source"] == "point"
    assert len(n3["outline"]) == done["N3"]["outline"] and n3["tirads"]["composition"] == "MIXED"
    assert all(n["estimate"] and n["estimate"]["probability"] is not None for n in (n1, n2, n3))
    report = session["study"]["report"]
    assert (report["operator"], report["impression"]) == ("Dr. Test", "Three nodules.")
    assert (report["signed_by"], report["signed_at"]) == ("Dr. Test", "2026-12-04T10:00:00+00:00")


@pytest.mark.parametrize("n_images", [3])
def test_real_images_of_a_killed_app_come_back(qtbot, tmp_path, shared_data, n_images):
    """The same with real DDTI images (where ../shared/data exists): the study's images and
    their keys come back without the files being opened."""
    images = sorted((shared_data / "ddti" / "images").glob("*.png"))[:n_images]
    env = _env(tmp_path)
    edit = subprocess.Popen(
        [sys.executable, "-m", CHILD, "edit", *map(str, images)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        done = _line(edit, "EDITED ")
        edit.send_signal(signal.SIGKILL)
        assert edit.wait(30) == -signal.SIGKILL
    finally:
        if edit.poll() is None:
            edit.kill()
    dump = subprocess.run(
        [sys.executable, "-m", CHILD, "dump"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    (line,) = [x for x in dump.stdout.splitlines() if x.startswith("RESTORED ")]
    restored = json.loads(line.removeprefix("RESTORED "))
    assert restored["review"] == done["review"]
    _matches_what_was_done(restored["review"]["session"], done["done"])
    assert [Path(p).name for p, _ in restored["review"]["entries"]] == [p.name for p in images]
