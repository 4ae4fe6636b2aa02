"""The installation self-test (``--selftest``), in process and as a command."""

import shutil
import subprocess
import sys

import cv2
import numpy as np

from thyroid_desktop import selftest
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.models.shipped import models_dir


def _png(tmp_path):
    path = tmp_path / "scan.png"
    cv2.imwrite(str(path), np.asarray(make_phantom(seed=5).pixels))
    return path


def test_selftest_passes_with_the_shipped_models_and_a_file(tmp_path, qapp):
    ok, summary = selftest.run([str(_png(tmp_path))], gui=True)
    assert ok, summary
    assert summary.startswith("SELFTEST OK") and "verified (sha256)" in summary
    assert "device CPU" in summary or "GPU" in summary
    assert "scan.png " in summary and "GUI offscreen" in summary


def test_selftest_fails_clearly_on_a_damaged_model(tmp_path, monkeypatch):
    damaged = tmp_path / "models"
    shutil.copytree(models_dir(), damaged)
    weights = damaged / "classifier.keras"
    weights.write_bytes(weights.read_bytes()[:-100])
    monkeypatch.setenv("THYROID_MODELS_DIR", str(damaged))
    ok, summary = selftest.run([], gui=False)
    assert not ok and summary.startswith("SELFTEST FAILED: model:")
    assert "classifier.keras" in summary


def test_selftest_fails_on_an_unreadable_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    ok, summary = selftest.run([str(bad)], gui=False)
    assert not ok and "bad.png" in summary


def test_selftest_command_exit_codes(tmp_path):
    good = subprocess.run(
        [sys.executable, "-m", "thyroid_desktop", "--selftest", "--no-gui", str(_png(tmp_path))],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.strip().splitlines()[-1].startswith("SELFTEST OK")
    assert selftest.RESULT_FILE.read_text().startswith("SELFTEST OK")
    bad = subprocess.run(
        [sys.executable, "-m", "thyroid_desktop", "--selftest", "--no-gui", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert bad.returncode == 1 and "SELFTEST FAILED" in bad.stdout
