"""Starting the GUI: the window first, the model in the background."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

#: Exit code when the window cannot be opened on this machine (instead of Qt's abort, 134).
PLATFORM_EXIT_CODE = 4


def run(argv: Sequence[str]) -> int:
    """Shows the window with the given files (or the demo phantom) and runs the event loop.

    Returns 4 without starting Qt when it could not open a window here (missing system
    libraries, no display), after printing what to install."""
    from thyroid_desktop.ui.preflight import check_platform

    problem = check_platform()
    if problem is not None:
        print(problem.message(), file=sys.stderr, flush=True)
        return PLATFORM_EXIT_CODE
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from thyroid_desktop.core.io.images import from_array
    from thyroid_desktop.core.io.phantom import make_phantom
    from thyroid_desktop.core.models.shipped import resources_dir
    from thyroid_desktop.ui.main_window import MainWindow
    from thyroid_desktop.ui.theme import apply_theme

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # pydicom logs every decoder's failure with its traceback; the app says why in one line.
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    # matplotlib's PDF font subsetting logs every table it writes (about 1,200 lines a report)
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    app.setApplicationName("Thyroid Review")
    app.setOrganizationName("ThyroidReview")
    apply_theme(app)
    icon = resources_dir() / "icons" / "thyroid-review.png"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    window = MainWindow()
    window.show()
    restored = window.restore_open_study()  # after a crash or a kill too
    paths = [Path(a) for a in argv if not a.startswith("-")]
    opened = (bool(paths) and window.open_paths(paths)) or restored
    if not opened:
        phantom = make_phantom()
        window.show_image(from_array(phantom.pixels), phantom.nodule)
    window.start_model_loading()
    return app.exec()
