"""The right-hand column of panels, scrolled vertically, never cutting a wrapped line off."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QScrollArea, QVBoxLayout, QWidget


class SideColumn(QScrollArea):
    """Panels stacked in a vertical scroll area.

    A scroll area that resizes its widget only gives it its minimum size hint, which counts
    one line per word-wrapped label; when a label's text grows to more lines (a "no
    estimate" reason, the model's figures) the column is squeezed and lines are cut off.
    Here the column's minimum height follows its layout's height for the width it has, and
    the column is as wide as the viewport, so no horizontal scroll bar hides the panels'
    right edge.
    """

    def __init__(
        self, panels: list[QWidget], min_width: int = 380, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.base_width = min_width
        self._watched: list[QWidget] = []
        self.column = QWidget()
        layout = QVBoxLayout(self.column)
        for panel in panels:
            layout.addWidget(panel)
        layout.addStretch(1)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(self.column)
        # a label's new text re-lays out the panel holding it, not the column: watch both
        self._watched = [self.column] + [w for w in self.column.findChildren(QWidget) if w.layout()]
        for widget in self._watched:
            widget.installEventFilter(self)
        self._fit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if watched in self._watched and event.type() in (
            QEvent.Type.LayoutRequest,
            QEvent.Type.Resize,
        ):
            self._fit()
        return super().eventFilter(watched, event)

    def _fit(self) -> None:
        widest = self.column.minimumSizeHint().width()
        outer = widest + self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()
        if self.minimumWidth() != max(self.base_width, outer):
            self.setMinimumWidth(max(self.base_width, outer))
        layout = self.column.layout()
        height = layout.totalHeightForWidth(max(self.viewport().width(), widest))
        if height != self.column.minimumHeight():
            self.column.setMinimumHeight(height)
            # Lay the panels out again for it: without this the panel below one that grew
            # (its label wrapped to more lines) sometimes kept its old place and the two
            # overlapped (the Nodules panel's "Views" text over the TI-RADS title, seen in
            # 3 of 4 starts under Xvfb).
            layout.invalidate()
