"""Screenshots of the real app with the real bundled model, for the README.

Usage: QT_QPA_PLATFORM=offscreen python docs/make_screenshots.py
Uses the synthetic demo phantom only (no patient images leave ../shared/data).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from thyroid_desktop.core.images import from_array  # noqa: E402
from thyroid_desktop.core.phantom import make_phantom  # noqa: E402
from thyroid_desktop.ui.main_window import MainWindow  # noqa: E402

OUT = Path(__file__).resolve().parent


def main() -> int:
    app = QApplication([])
    window = MainWindow()
    window.resize(1280, 900)
    window.show()
    window.grab().save(str(OUT / "screenshot_loading.png"))
    phantom = make_phantom()
    window.show_image(from_array(phantom.pixels))  # no box: the app finds the nodule
    window.start_model_loading()

    def check() -> None:
        if window.finding is not None:
            window.grab().save(str(OUT / "screenshot_result.png"))
            app.quit()

    timer = QTimer()
    timer.timeout.connect(check)
    timer.start(100)
    QTimer.singleShot(120000, app.quit)
    app.exec()
    return 0


if __name__ == "__main__":
    sys.exit(main())
