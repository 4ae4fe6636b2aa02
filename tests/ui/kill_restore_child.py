"""Test-only driver of the real window for tests/ui/test_kill_restore.py (not part of the app).

``python -m tests.ui.kill_restore_child edit [--click X,Y] FILES...`` starts the window as ``ui.app.run``
does (the open study restored, the files opened, the models loaded), makes the scripted edits
through the window's own actions (accept, reject, draw, click, TI-RADS, location, caliper,
scale, report text, signature), prints ``EDITED {json}`` (what was done: ``Review.to_json``
and the study list) and waits to be killed. ``... dump`` starts it again, restores the open
study and prints ``RESTORED {json}`` without loading a model or opening the files again.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from PySide6.QtCore import QDeadlineTimer, QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from thyroid_desktop.core.clinical.tirads import Composition, Echogenicity
from thyroid_desktop.core.pipeline.roi import ROI
from thyroid_desktop.core.report.pdf import StudyInfo
from thyroid_desktop.core.review.session import Lobe, Pole
from thyroid_desktop.ui.main_window import MainWindow

#: The child gives up (exit 3) after this long, so a hang cannot outlive the test.
GIVE_UP_MS = 280_000
SIGNED_AT = "2026-12-04T10:00:00+00:00"


def wait_until(condition, timeout_ms: int = 180_000) -> None:
    """Runs the event loop until ``condition()`` holds (as pytest-qt's waitUntil)."""
    deadline = QDeadlineTimer(timeout_ms)
    while not condition():
        if deadline.hasExpired():
            raise TimeoutError("the window did not get there in time")
        loop = QEventLoop()
        QTimer.singleShot(20, loop.quit)
        loop.exec()


def settled(window: MainWindow) -> bool:
    review = window.review
    return (
        window.service is not None
        and (review.finding is not None or review.nothing_found)
        and not review.awaiting
    )


def centre_box(window: MainWindow) -> ROI:
    h, w = window.review.image.pixels.shape[:2]
    return ROI(w // 3, h // 3, w // 4, h // 4)


def summary(window: MainWindow, done: dict | None = None) -> dict:
    """What the window holds (``Review.to_json``, the study list) and, after the edits,
    ``done``: what the script did, noted as it did it (not read back from the session)."""
    items = [window.study_list.item(i).text() for i in range(window.study_list.count())]
    return {"review": window.review.to_json(), "list": items, "done": done or {}}


def edit(window: MainWindow, files: list[Path], click: tuple[float, float] | None) -> None:
    """The edits; ``click``: where the third image's nodule is (default: its centre)."""
    review = window.review
    done: dict = {}
    window.restore_open_study()
    window.open_paths(files)
    window.start_model_loading()
    # image 1: the detector's proposal accepted, described, located and measured
    wait_until(lambda: settled(window))
    if review.proposal is not None:
        window.accept_proposal()
    else:
        window.set_roi(centre_box(window))
    wait_until(lambda: review.nodule() is not None and not review.awaiting)
    window.tirads.select(Composition.SOLID)
    window.tirads.select(Echogenicity.HYPO)
    window.nodules.locationChanged.emit(Lobe.RIGHT, Pole.UPPER)
    box = review.roi
    window.measure_nodule()
    y = box.y + box.h / 2
    window.view.lineDrawn.emit((box.x + 2.0, y), (box.x + box.w - 2.0, y))
    done["N1"] = {"box": box.as_list(), "caliper": [[box.x + 2.0, y], [box.x + box.w - 2.0, y]]}
    # image 2: a proposal rejected, the clinician's own box drawn, a scale line given
    window.step(1)
    wait_until(lambda: review.current == 1 and settled(window))
    done["rejected"] = []
    if review.proposal is not None:
        done["rejected"].append(review.proposal.as_list())
        window.reject_proposal()
        wait_until(lambda: not review.awaiting)
    window.set_roi(centre_box(window))
    done["N2"] = {"box": centre_box(window).as_list()}
    wait_until(lambda: len(window.session.state.nodules) == 2 and settled(window))
    window.set_user_scale(0.1)
    # image 3: a click on the nodule, outlined by the segmenter
    window.step(1)
    wait_until(lambda: review.current == 2 and settled(window))
    h, w = review.image.pixels.shape[:2]
    window.view.pointClicked.emit(*(click or (w / 2, h / 2)))
    wait_until(lambda: len(window.session.state.nodules) == 3 and settled(window))
    window.tirads.select(Composition.MIXED)
    done["N3"] = {"box": review.roi.as_list(), "outline": len(review.nodule().outline)}
    # the report: typed, then signed
    window.keep_report_details(StudyInfo(operator="Dr. Test", impression="Three nodules."))
    window.session.sign("Dr. Test", SIGNED_AT)
    done["files"] = [str(f) for f in files]
    nodules = window.session.state.nodules
    wait_until(lambda: all(n.estimate is not None for n in window.session.state.nodules))
    assert len(nodules) == 3, nodules
    print("EDITED " + json.dumps(summary(window, done)), flush=True)


def main(argv: list[str]) -> int:
    app = QApplication.instance() or QApplication([sys.argv[0]])
    QTimer.singleShot(GIVE_UP_MS, lambda: os._exit(3))
    window = MainWindow()
    window.show()
    if argv[0] == "dump":
        restored = window.restore_open_study()
        out = {"restored": restored, "title": window.windowTitle(), **summary(window)}
        print("RESTORED " + json.dumps(out), flush=True)
        window.close()
        return 0
    args, click = argv[1:], None
    if args[0] == "--click":
        click = tuple(float(v) for v in args[1].split(","))
        args = args[2:]
    try:
        edit(window, [Path(a) for a in args], click)
    except Exception as err:  # the parent shows why
        print(f"FAILED {type(err).__name__}: {err}", flush=True)
        os._exit(2)
    return app.exec()  # until killed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
