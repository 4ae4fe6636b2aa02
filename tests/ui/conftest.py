import pytest

from thyroid_desktop.ui.main_window import MainWindow


@pytest.fixture
def window(qtbot):
    """The real main window loading the real bundled models in its worker."""
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    w.start_model_loading()
    yield w
    w.pool.waitForDone(30000)
    qtbot.wait(50)  # deliver queued results while the window still exists
