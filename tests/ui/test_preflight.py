"""Start-up checks: a machine that lacks the X libraries Qt needs gets the exact install line
instead of Qt's abort (exit 134), from ``make run`` and from ``--selftest``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from thyroid_desktop import selftest
from thyroid_desktop.ui import preflight
from thyroid_desktop.ui.app import PLATFORM_EXIT_CODE

LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007ffc)
\tlibQt6XcbQpa.so.6 => /x/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f8b)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007f8b)
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
"""


def test_ldd_output_gives_each_missing_library_once():
    assert preflight.parse_ldd_missing(LDD_OUTPUT) == ("libxcb-icccm.so.4", "libxcb-keysyms.so.1")
    assert preflight.parse_ldd_missing("\tlibc.so.6 => /lib/libc.so.6 (0x1)\n") == ()


def test_missing_libraries_map_to_exact_install_lines():
    problem = preflight.PlatformProblem("x", ("libxcb-icccm.so.4", "libxcb-keysyms.so.1"))
    debian, fedora = problem.install_lines()
    assert (
        " ".join(debian.split()) == "Debian/Ubuntu: sudo apt install libxcb-icccm4 libxcb-keysyms1"
    )
    assert " ".join(fedora.split()) == "Fedora: sudo dnf install xcb-util-keysyms xcb-util-wm"
    assert "libxcb-cursor0" not in problem.message()  # Qt's own message wrongly names it


def test_unknown_library_is_named_in_the_install_line():
    problem = preflight.PlatformProblem("x", ("libfoo.so.9",))
    assert "libfoo.so.9" in problem.install_lines()[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux platform plugins")
def test_which_plugin_qt_would_use():
    assert preflight.platform_plugin_name({"QT_QPA_PLATFORM": "offscreen"}) == "offscreen"
    assert preflight.platform_plugin_name({"DISPLAY": ":0"}) == "xcb"
    assert preflight.platform_plugin_name({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}) == (
        "wayland"
    )
    assert preflight.check_platform({"QT_QPA_PLATFORM": "offscreen"}) is None
    no_display = preflight.check_platform({})
    assert no_display is not None and "DISPLAY" in no_display.reason


def _xcb_missing() -> tuple[str, ...]:
    plugin = preflight.plugin_path("xcb")
    if plugin is None:
        pytest.skip("PySide6 has no xcb plugin here")
    missing = preflight.missing_libraries(plugin)
    if missing is None:
        pytest.skip("ldd is not available")
    return missing


def _env_with_display() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env["DISPLAY"] = ":97"  # the check comes before any connection to it
    return env


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux platform plugins")
def test_make_run_without_the_xcb_libraries_says_what_to_install():
    missing = _xcb_missing()
    if not missing:
        pytest.skip(
            "every library of Qt's xcb plugin is installed here; nothing is missing to report "
            "(stock Debian 12 and this project's CI machines lack libxcb-icccm4 and libxcb-keysyms1)"
        )
    run = subprocess.run(
        [sys.executable, "-m", "thyroid_desktop"],
        env=_env_with_display(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == PLATFORM_EXIT_CODE, run.stderr[-2000:]
    assert "sudo apt install" in run.stderr and "sudo dnf install" in run.stderr
    for lib in missing:
        assert lib in run.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux platform plugins")
def test_selftest_reports_a_window_that_cannot_open(monkeypatch):
    """Whatever makes Qt abort in the window check (here: a display nobody serves), the
    self-test says SELFTEST FAILED with the reason instead of dying."""
    monkeypatch.setattr(preflight, "check_platform", lambda env=None: None)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", ":97")
    with pytest.raises(selftest.SelfTestError, match="GUI: the window could not be opened"):
        selftest._gui_check()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux platform plugins")
def test_selftest_line_names_the_missing_libraries():
    missing = _xcb_missing()
    if not missing:
        pytest.skip("every library of Qt's xcb plugin is installed here")
    run = subprocess.run(
        [sys.executable, "-m", "thyroid_desktop", "--selftest"],
        env=_env_with_display(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    line = run.stdout.strip().splitlines()[-1]
    assert run.returncode == 1 and line.startswith("SELFTEST FAILED: GUI:"), line
    assert "sudo apt install" in line and all(lib in line for lib in missing)
