"""``ThyroidReview --selftest [FILE ...]``: proves an installation works end to end.

Loads both models (verifying their sha256 against the card), analyses the built-in
synthetic phantom (auto-detect must find its nodule) and every file given, writes a PDF
report to a temporary folder and reads it back, and opens the real window offscreen when
no display is available. Prints one summary line; exit code 0 when everything passed,
1 with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

#: The phantom's nodule must be found at least this well (IoU of the auto box).
MIN_PHANTOM_IOU = 0.5


class SelfTestError(Exception):
    """A check failed; the message says which and why."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SelfTestError(message)


#: Flag that runs only the window check, in a child process of the self-test.
GUI_CHILD_FLAG = "--selftest-gui"
#: The window check in the child must finish within this many seconds.
GUI_TIMEOUT_S = 120


def _headless_platform(env: dict[str, str]) -> None:
    if (
        sys.platform.startswith("linux")
        and not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))
        and not env.get("QT_QPA_PLATFORM")
    ):
        env["QT_QPA_PLATFORM"] = "offscreen"


def gui_child() -> int:
    """In the child: builds the real main window, renders it once, prints the Qt platform."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from thyroid_desktop.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(["ThyroidReview"])
    with tempfile.TemporaryDirectory(prefix="thyroid-selftest-gui-") as tmp:
        # Its own settings file: closing the test window must not overwrite the user's layout.
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings)
        window.show()
        app.processEvents()
        shot = window.grab()
        window.close()
        settings.sync()
    if shot.isNull() or shot.width() <= 100:
        print("the window could not be rendered", flush=True)
        return 1
    print(app.platformName(), flush=True)
    return 0


def _gui_check() -> str:
    """Opens the real window in a child process (offscreen without a display), so that a Qt
    abort (a missing system library, an unreachable display) becomes a failed check instead
    of killing the self-test. Returns the Qt platform used."""
    from thyroid_desktop.ui.preflight import check_platform

    env = dict(os.environ)
    _headless_platform(env)
    problem = check_platform(env)
    if problem is not None:
        install = "; ".join(" ".join(line.split()) for line in problem.install_lines())
        raise SelfTestError(f"GUI: {problem.reason}" + (f"; install: {install}" if install else ""))
    if getattr(sys, "frozen", False):
        cmd = [sys.executable, GUI_CHILD_FLAG]
    else:
        cmd = [sys.executable, "-m", "thyroid_desktop", GUI_CHILD_FLAG]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=GUI_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        raise SelfTestError(f"GUI: the window did not open within {GUI_TIMEOUT_S} s") from None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        qt = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()][-3:]
        detail = " | ".join(qt) or (lines[-1] if lines else "no output")
        raise SelfTestError(
            f"GUI: the window could not be opened (exit {proc.returncode}): {detail}"
        )
    return lines[-1]


def run(files: Sequence[str], gui: bool = True) -> tuple[bool, str]:
    """Runs every check; returns (passed, one-line summary)."""
    t0 = time.perf_counter()
    try:
        from thyroid_desktop.core.analysis import Action, AnalysisService
        from thyroid_desktop.core.clinical.measure import finding_size
        from thyroid_desktop.core.io.images import ImageLoadError, from_array
        from thyroid_desktop.core.io.phantom import make_phantom
        from thyroid_desktop.core.models.shipped import ModelError, load_classifier, load_segmenter
        from thyroid_desktop.core.pipeline.roi import BoxSource
        from thyroid_desktop.core.report.pdf import StudyInfo, write_report

        try:
            clf = load_classifier()
            seg = load_segmenter()
        except ModelError as err:
            raise SelfTestError(f"model: {err}") from err
        _check(seg is not None, "the model card names no segmenter")
        service = AnalysisService(clf, seg, None)  # a self-test is not an analysis to log
        phantom = make_phantom()
        image = from_array(phantom.pixels)
        finding = service.analyse(image, None, Action.SELFTEST, scan_area_fallback=True).finding
        _check(finding.roi_source is BoxSource.AUTO, "auto-detect found no nodule in the phantom")
        iou = finding.roi.iou(phantom.nodule)
        _check(iou >= MIN_PHANTOM_IOU, f"auto box on the phantom has IoU {iou:.2f}")
        _check(0.0 <= finding.probability <= 1.0, "probability outside 0..1")
        _check(finding.heatmap.shape == image.gray.shape, "Grad-CAM map has the wrong size")
        results = []
        for name in files:
            try:
                result = service.analyse_file(name, action=Action.SELFTEST, scan_area_fallback=True)
            except ImageLoadError as err:
                raise SelfTestError(str(err)) from err
            f = result.finding
            said = f"p={f.estimate:.2f}" if f.estimate is not None else "no estimate"
            frame = f" frame {result.frame}" if result.n_frames > 1 else ""
            results.append(f"{Path(name).name}{frame} {said} ({f.roi_source})")
        with tempfile.TemporaryDirectory(prefix="thyroid-selftest-") as tmp:
            pdf = write_report(
                Path(tmp) / "selftest.pdf",
                image,
                finding,
                clf.card,
                StudyInfo(patient_name="SELFTEST"),
                None,
                finding_size(finding, image.scale),
            )
            head = pdf.read_bytes()[:5]
            size_kb = pdf.stat().st_size / 1024
            _check(head == b"%PDF-", "the report is not a PDF")
        platform = _gui_check() if gui else "skipped"
    except SelfTestError as err:
        return False, f"SELFTEST FAILED: {err}"
    except Exception as err:  # anything unexpected: say what, keep the traceback on stderr
        traceback.print_exc()
        return False, f"SELFTEST FAILED: {type(err).__name__}: {err}"
    files_text = "; ".join(results) if results else "no files given"
    return True, (
        f"SELFTEST OK: models {clf.card.id} + segmenter verified (sha256); device {clf.device} ({clf.runtime}); "
        f"phantom p={finding.probability:.2f}, auto box IoU {iou:.2f}; {files_text}; "
        f"PDF {size_kb:.0f} KB; GUI {platform}; {time.perf_counter() - t0:.1f} s"
    )


#: The summary is also written here (a windowed Windows app has no console to print to).
RESULT_FILE = Path(tempfile.gettempdir()) / "ThyroidReview-selftest.txt"


def main(argv: Sequence[str]) -> int:
    files = [a for a in argv if a not in ("--selftest", "--no-gui")]
    ok, summary = run(files, gui="--no-gui" not in argv)
    if sys.stdout is not None:
        print(summary, flush=True)
    with contextlib.suppress(OSError):  # the exit code still says it
        RESULT_FILE.write_text(summary + "\n", encoding="utf-8")
    return 0 if ok else 1
