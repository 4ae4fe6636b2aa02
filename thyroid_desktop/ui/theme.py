"""Light or dark, following the system (Qt 6.5+ reports the system colour scheme);
``THYROID_THEME=light|dark`` overrides it."""

from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette


def dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor(30, 30, 32), QColor(45, 45, 48), QColor(225, 225, 225)
    for role, color in (
        (QPalette.ColorRole.Window, window),
        (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base),
        (QPalette.ColorRole.AlternateBase, window),
        (QPalette.ColorRole.ToolTipBase, window),
        (QPalette.ColorRole.ToolTipText, text),
        (QPalette.ColorRole.Text, text),
        (QPalette.ColorRole.Button, window),
        (QPalette.ColorRole.ButtonText, text),
        (QPalette.ColorRole.BrightText, QColor(255, 90, 90)),
        (QPalette.ColorRole.Highlight, QColor(42, 110, 200)),
        (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)),
        (QPalette.ColorRole.Link, QColor(90, 160, 255)),
        (QPalette.ColorRole.Mid, QColor(90, 90, 95)),
        (QPalette.ColorRole.PlaceholderText, QColor(140, 140, 140)),
    ):
        p.setColor(role, color)
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.WindowText,
    ):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(120, 120, 120))
    return p


def wanted_scheme(app: QGuiApplication) -> Qt.ColorScheme:
    forced = os.environ.get("THYROID_THEME", "").lower()
    if forced == "dark":
        return Qt.ColorScheme.Dark
    if forced == "light":
        return Qt.ColorScheme.Light
    return app.styleHints().colorScheme()


def apply_theme(app) -> bool:
    """Fusion style with a dark palette when the system (or the override) is dark; keeps
    following the system while the app runs. Returns True when dark."""
    app.setStyle("Fusion")
    light = app.style().standardPalette()

    def update(*_args) -> bool:
        dark = wanted_scheme(app) == Qt.ColorScheme.Dark
        app.setPalette(dark_palette() if dark else light)
        return dark

    app.styleHints().colorSchemeChanged.connect(update)
    return update()
