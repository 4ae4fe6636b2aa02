"""Run by tests/ui/test_main_window.py in a process of its own: opens a frame in a new main
window sized before it is shown, accepts the detected nodule and prints where the side
panels ended up ("panels overlap: none" or the pairs that overlap), after saying how many
nodules there are and how many lines the Nodules panel's "Views" text takes (the check means
something only when the accepted nodule's text wrapped).

Usage: python tests/ui/panel_layout_probe.py IMAGE   (QT_QPA_PLATFORM=offscreen)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> int:
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from thyroid_desktop.ui.main_window import MainWindow

    window = MainWindow()
    window.resize(1500, 950)
    window.show()
    window.start_model_loading()

    def pump(done, seconds: float = 120.0) -> None:
        end = time.monotonic() + seconds
        while not done() and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)

    pump(lambda: window.classifier is not None)
    window.open_paths([Path(sys.argv[1])])
    pump(lambda: window.review.finding is not None and not window.review.awaiting)
    window.accept_proposal()
    pump(lambda: False, 1.0)
    panels = [window.panel, window.nodules, window.tirads]
    overlaps = [
        f"{type(a).__name__} bottom {a.geometry().bottom()} >= "
        f"{type(b).__name__} top {b.geometry().top()}"
        for a, b in zip(panels, panels[1:], strict=False)
        if a.geometry().bottom() >= b.geometry().top()
    ]
    label = window.nodules.views
    lines = label.height() // max(label.fontMetrics().lineSpacing(), 1)
    print(f"nodules {len(window.session.state.nodules)}, views lines {lines}")
    print("panels overlap: " + ("; ".join(overlaps) or "none"))
    window.pool.waitForDone(30000)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
