"""The headless commands (``predict``, ``validate``, ``recalibrate``, ``profile``): the same
core services as the window, without Qt."""

from thyroid_desktop.cli.main import main

__all__ = ["main"]
