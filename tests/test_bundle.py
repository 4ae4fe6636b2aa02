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
import pydicom
import pytest

from thyroid_desktop.core.io.phantom import make_phantom

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


#: JPEG-LS, JPEG 2000 and RLE encoded DICOM files from pydicom's own test set.
DICOM_CODECS = [
    Path(pydicom.__file__).parent / "data" / "test_files" / name
    for name in ("MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "MR_small_RLE.dcm")
]


def _check_xcb_libraries_carried(bundle: Path, exe: Path, image: Path, env: dict) -> None:
    """The bundle carries the X libraries Qt's xcb plugin needs (this build machine lacks
    some of them: they come from Debian packages), so it opens a real window where the
    source tree cannot (see tests/ui/test_preflight.py). With Xvfb, the self-test then opens
    the window on that X server through xcb."""
    internal = bundle / "_internal"
    plugin = next(internal.rglob("platforms/libqxcb.so"))
    lib_env = {**env, "LD_LIBRARY_PATH": str(internal)}
    ldd = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, env=lib_env)
    assert "not found" not in ldd.stdout, ldd.stdout
    for lib in ("libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0"):
        assert (internal / lib).is_file(), f"{lib} is not in the bundle"
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        print("Xvfb not installed: the bundle's window was not opened on an X server")
        return
    display = f":{90 + os.getpid() % 9}"
    server = subprocess.Popen([xvfb, display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
    try:
        time.sleep(2)
        x_env = {k: v for k, v in env.items() if k != "QT_QPA_PLATFORM"}
        x_env["DISPLAY"] = display
        run = subprocess.run(
            [str(exe), "--selftest", str(image)],
            env=x_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        line = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:]
        assert run.returncode == 0 and "GUI xcb" in line, line
    finally:
        server.terminate()
        server.wait(timeout=30)


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
        [str(exe), "--selftest", str(image), *map(str, DICOM_CODECS)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-3000:]
    assert run.returncode == 0, summary
    assert summary.startswith("SELFTEST OK") and "phantom.png " in summary  # synthetic: no estimate
    assert "GUI offscreen" in summary
    for codec_file in DICOM_CODECS:  # the decoder plugins travel with the bundle
        assert f"{codec_file.name} no estimate" in summary  # opened; MR: not ultrasound

    if sys.platform.startswith("linux"):
        _check_xcb_libraries_carried(bundle, exe, image, env)

    # What was trimmed stays out.
    names = {p.name for p in bundle.rglob("*")}
    assert not any("WebEngine" in n for n in names)
    assert not any(n.startswith(("libQt6Quick", "libQt6Qml", "libQt63D")) for n in names)
    assert "ONNX Runtime" in summary  # the models run without TensorFlow
    assert not (bundle / "_internal" / "tensorflow").exists()
    assert not (bundle / "_internal" / "keras").exists()
    assert not list(bundle.rglob("*.keras"))  # the ONNX graphs replace the Keras files
    assert len(list(bundle.rglob("*.onnx"))) == 4  # and the int8 classifier (a setting)
    assert not (bundle / "_internal" / "sklearn").exists()  # training-only libraries
    assert not (bundle / "_internal" / "scipy").exists()
    assert not (bundle / "_internal" / "training").exists()
    assert not (bundle / "_internal" / "PySide6" / "Qt" / "translations").exists()
    size = _size_mb(bundle)
    print(f"\nbundle: {size:.0f} MB, built in {build_s:.0f} s; {summary}")
    (tmp_path.parent / "bundle_figures.txt").write_text(f"{size:.0f} MB {build_s:.0f} s\n")
