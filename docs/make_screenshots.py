"""Screenshots of the main states of the real app with the real bundled models.

Usage: QT_QPA_PLATFORM=offscreen python docs/make_screenshots.py [--real FOLDER]
Writes docs/screenshot_*.png from synthetic phantoms only (no patient image is committed).
With --real, also writes /tmp/thyroid_screens/real_*.png from a folder of real images, to
look at (never commit those).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# A throw-away user data folder: no saved session of the user's is restored or overwritten.
_DATA = tempfile.mkdtemp(prefix="thyroid-shots-data-")
INSCOPE = Path(__file__).resolve().parents[1] / "tests" / "assets" / "inscope_bmode.png"
os.environ["THYROID_USER_DATA"] = _DATA
os.environ["THYROID_AUDIT_LOG"] = str(Path(_DATA) / "audit.jsonl")

from PySide6.QtWidgets import QApplication  # noqa: E402

from tests.conftest import write_cine_dicom  # noqa: E402
from thyroid_desktop.core.analysis import ROI  # noqa: E402
from thyroid_desktop.core.clinical.tirads import (  # noqa: E402
    Composition,
    EchogenicFoci,
    Echogenicity,
    Margin,
    Shape,
)
from thyroid_desktop.core.io.phantom import make_phantom  # noqa: E402
from thyroid_desktop.core.report.pdf import StudyInfo  # noqa: E402
from thyroid_desktop.core.review.session import Lobe, Pole  # noqa: E402
from thyroid_desktop.ui.main_window import MainWindow  # noqa: E402
from thyroid_desktop.ui.theme import apply_theme  # noqa: E402
from training.data import DEFAULT_DATA  # noqa: E402

OUT = Path(__file__).resolve().parent


def wait_until(app, predicate, timeout=180.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise TimeoutError("the app did not reach the expected state")
        app.processEvents()
        time.sleep(0.02)
    for _ in range(5):
        app.processEvents()


def study_folder(root: Path) -> Path:
    """Five phantoms, a damaged file and a pure-noise frame."""
    for i in range(5):
        cv2.imwrite(str(root / f"phantom_{i}.png"), np.asarray(make_phantom(seed=i).pixels))
    (root / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    noise = np.random.default_rng(0).integers(0, 256, (360, 500), dtype=np.uint8)
    cv2.imwrite(str(root / "noise.png"), noise)
    return root


def shoot(window, name: str, out: Path = OUT) -> None:
    path = out / f"screenshot_{name}.png"
    window.grab().save(str(path))
    print(path)


def render(pdf: Path, name: str) -> None:
    """The PDF's first page as docs/screenshot_<name>.png (needs poppler's pdftoppm)."""
    try:
        subprocess.run(
            [
                "pdftoppm",
                "-png",
                "-r",
                "60",
                "-singlefile",
                str(pdf),
                str(OUT / f"screenshot_{name}"),
            ],
            check=True,
        )
        print(OUT / f"screenshot_{name}.png")
    except (OSError, subprocess.CalledProcessError) as err:
        print(f"{name} not rendered (pdftoppm: {err})")


def shoot_suggestions(app, window, data: Path = DEFAULT_DATA) -> None:
    """The TI-RADS panel alone (no image pixels: real images are never committed) with the
    AI's suggestions for a real ddti nodule, then after "Accept" and one override."""
    metadata = data / "ddti" / "metadata.csv"
    if not metadata.exists():
        print(f"TI-RADS suggestion screenshots skipped: {metadata} not found")
        return
    with metadata.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["composition"] and r["tirads"] == "4b"]
    window.open_paths([data / "ddti" / rows[0]["file"]])
    wait_until(app, lambda: window.review.finding is not None and not window.review.awaiting)
    wait_until(app, lambda: window.tirads.suggestion() is not None)
    window.tirads.grab().save(str(OUT / "screenshot_tirads_suggestions.png"))
    window.accept_ai_tirads()
    shape = window.tirads.choices().shape
    window.tirads.select(Shape.TALLER if shape is Shape.WIDER else Shape.WIDER)
    app.processEvents()
    window.tirads.grab().save(str(OUT / "screenshot_tirads_accepted.png"))
    print(OUT / "screenshot_tirads_suggestions.png", OUT / "screenshot_tirads_accepted.png")


def settled(window) -> bool:
    """The shown frame's analysis is over: a result (a proposal's), or nothing found."""
    review = window.review
    return (review.finding is not None or review.nothing_found) and not review.awaiting


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--real", type=Path, help="also shoot a folder of real images to /tmp")
    args = parser.parse_args()
    app = QApplication([])
    apply_theme(app)
    window = MainWindow()
    window.resize(1400, 900)
    window.show()
    tmp = Path(tempfile.mkdtemp(prefix="thyroid-shots-"))
    folder = study_folder(tmp)
    window.open_paths([folder / "phantom_0.png"])
    app.processEvents()
    shoot(window, "loading")
    window.start_model_loading()
    wait_until(app, lambda: window.review.finding is not None)
    shoot(window, "result")

    # The committed synthetic in-scope image (tests/assets): the detector's proposal with its
    # preliminary estimate and heat map, then accepted, measured and outlined by a click.
    inscope = tmp / "inscope.png"
    inscope.write_bytes(INSCOPE.read_bytes())
    window.open_paths([inscope])
    wait_until(app, lambda: settled(window) and window.review.image.source == inscope)
    shoot(window, "proposal")
    window.accept_proposal()
    box = window.review.roi
    window.measure_nodule()
    y = box.y + box.h / 2
    window.view.lineDrawn.emit((box.x + 3.0, y), (box.x + box.w - 3.0, y))  # as a drag does
    window.point_at(60.0, 60.0)  # a click on speckle: outlined, size uncertain
    wait_until(app, lambda: len(window.session.state.nodules) == 2 and not window.review.awaiting)
    window.pick_nodule("N1")
    wait_until(app, lambda: not window.review.awaiting)
    shoot(window, "calipers")

    window.open_paths([folder])
    wait_until(app, lambda: window.review.finding is not None)
    done = []
    window.batchFinished.connect(done.append)
    window.analyse_all()
    wait_until(app, lambda: done)
    window.study_list.setCurrentRow(
        window.review.entries.index(next(e for e in window.review.entries if e.name == "noise.png"))
    )
    wait_until(app, lambda: settled(window))  # a proposal, or "No nodule found"
    shoot(window, "study_batch_warning")

    window.study_list.setCurrentRow(
        window.review.entries.index(
            next(e for e in window.review.entries if e.name == "damaged.png")
        )
    )
    app.processEvents()
    shoot(window, "unreadable")

    window.study_list.setCurrentRow(0)
    wait_until(app, lambda: window.review.finding is not None)
    window.set_user_scale(0.08)
    window.side_action.trigger()
    app.processEvents()
    shoot(window, "side_by_side_calibrated")
    window.side_action.trigger()

    os.environ["THYROID_THEME"] = "dark"
    apply_theme(app)
    window.study_list.setCurrentRow(3)
    wait_until(app, lambda: settled(window))
    for choice in (Composition.SOLID, Echogenicity.HYPO, Shape.WIDER, Margin.SMOOTH):
        window.tirads.select(choice)  # describing the proposal accepts it
    window.tirads.set_focus(EchogenicFoci.NONE, True)
    shoot(window, "dark")
    os.environ["THYROID_THEME"] = "light"
    apply_theme(app)

    cine = write_cine_dicom(tmp / "cine_loop.dcm", n_frames=20)
    window.open_paths([cine])
    wait_until(
        app, lambda: window.review.image.frame_index > 0 and window.review.finding is not None
    )
    wait_until(app, lambda: not window.review.awaiting)
    shoot(window, "cine")

    window.study_list.setCurrentRow(
        window.review.entries.index(
            next(e for e in window.review.entries if e.name == "phantom_1.png")
        )
    )
    wait_until(app, lambda: window.review.finding is not None and not window.review.awaiting)
    window.accept_proposal()  # the proposal confirmed: a nodule
    window._location_changed(Lobe.RIGHT, Pole.MID)
    window.start_new_nodule()
    window.set_roi(ROI(70, 60, 70, 60))
    wait_until(app, lambda: not window.review.awaiting)
    window._location_changed(Lobe.RIGHT, Pole.LOWER)
    for choice in (Composition.MIXED, Echogenicity.HYPER_ISO, Shape.WIDER, Margin.SMOOTH):
        window.tirads.select(choice)
    window.tirads.set_focus(EchogenicFoci.NONE, True)
    app.processEvents()
    shoot(window, "nodules")
    study_pdf = tmp / "study.pdf"
    window.export_study_report(
        study_pdf, StudyInfo(patient_name="Phantom, Demo", patient_id="DEMO-0", operator="Dr Demo")
    )
    wait_until(app, study_pdf.exists)
    render(study_pdf, "study_report")

    pdf = tmp / "report.pdf"
    window.export_report(
        pdf,
        StudyInfo(
            patient_name="Demo^Phantom",
            patient_id="DEMO-0",
            operator="Dr Demo",
            impression="Synthetic phantom; screenshot of the report layout.",
        ),
    )
    wait_until(app, pdf.exists)
    render(pdf, "report")

    shoot_suggestions(app, window)

    if args.real:
        real_out = Path("/tmp/thyroid_screens")
        real_out.mkdir(exist_ok=True)
        window.open_paths([args.real])
        wait_until(app, lambda: settled(window))
        done.clear()
        window.analyse_all()
        wait_until(app, lambda: done, timeout=600)
        real_rows = [i for i, e in enumerate(window.review.entries) if e.path.parent == args.real]
        for row in real_rows[:4]:
            window.study_list.setCurrentRow(row)
            wait_until(app, lambda: settled(window) or window.review.image is None)
            shoot(window, f"real_{row}", real_out)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
