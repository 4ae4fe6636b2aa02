"""The double-click bundle: built by PyInstaller from a clean checkout (``git archive HEAD``,
so only committed files), then its ``--selftest`` run offscreen. Slow (minutes)."""

import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from thyroid_desktop.core.phantom import make_phantom

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 45 * 60


def _clean_checkout(dest: Path) -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: cannot make a clean copy of HEAD to build from")
    archive = dest.parent / "head.tar"
    subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), "HEAD"],
        check=True,
    )
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest


def _size_mb(folder: Path) -> float:
    files = (f for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
    return sum(f.stat().st_size for f in files) / 1e6


@pytest.mark.slow
def test_bundle_builds_from_a_clean_checkout_and_passes_its_selftest(tmp_path):
    pyinstaller = Path(sys.executable).with_name(
        "pyinstaller.exe" if os.name == "nt" else "pyinstaller"
    )
    assert pyinstaller.exists(), "pyinstaller is installed by the dev extra"
    src = _clean_checkout(tmp_path / "src")
    t0 = time.perf_counter()
    build = subprocess.run(
        [str(pyinstaller), "--noconfirm", "--clean", "--log-level", "WARN", "build.spec"],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    build_s = time.perf_counter() - t0
    assert build.returncode == 0, build.stderr[-5000:]
    bundle = src / "dist" / "ThyroidReview"
    exe = bundle / ("ThyroidReview.exe" if os.name == "nt" else "ThyroidReview")
    assert exe.exists()

    image = tmp_path / "phantom.png"
    cv2.imwrite(str(image), np.asarray(make_phantom(seed=2).pixels))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("THYROID_", "PYTHON"))}
    env["QT_QPA_PLATFORM"] = "offscreen"
    run = subprocess.run(
        [str(exe), "--selftest", str(image)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-3000:]
    assert run.returncode == 0, summary
    assert summary.startswith("SELFTEST OK") and "phantom.png p=" in summary
    assert "GUI offscreen" in summary

    # What was trimmed stays out.
    names = {p.name for p in bundle.rglob("*")}
    assert not any("WebEngine" in n for n in names)
    assert not any(n.startswith(("libQt6Quick", "libQt6Qml", "libQt63D")) for n in names)
    assert not (bundle / "_internal" / "tensorflow" / "include").exists()
    assert not (bundle / "_internal" / "sklearn").exists()  # training-only libraries
    assert not (bundle / "_internal" / "scipy").exists()
    assert not (bundle / "_internal" / "training").exists()
    assert not (bundle / "_internal" / "PySide6" / "Qt" / "translations").exists()
    size = _size_mb(bundle)
    print(f"\nbundle: {size:.0f} MB, built in {build_s:.0f} s; {summary}")
    (tmp_path.parent / "bundle_figures.txt").write_text(f"{size:.0f} MB {build_s:.0f} s\n")
