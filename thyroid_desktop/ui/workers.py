"""Running core calls off the GUI thread."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Signal

log = logging.getLogger(__name__)


class _Signals(QObject):
    finished = Signal(object)
    failed = Signal(object)


class Task(QRunnable):
    """Runs ``fn()`` in the global thread pool; ``finished(result)`` or ``failed(exception)``
    arrive on the GUI thread through queued signals."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__()
        self.fn = fn
        self.signals = _Signals()

    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as err:  # reported to the GUI, never raised into Qt
            log.debug("task failed: %s", traceback.format_exc())
            self.signals.failed.emit(err)
        else:
            self.signals.finished.emit(result)
