"""The study list beside the viewer: one row per image with thumbnail, status, probability."""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem

from thyroid_desktop.core.review.study import StudyEntry
from thyroid_desktop.ui.image_view import to_qimage

THUMB = 72


def make_thumbnail(pixels: np.ndarray, side: int = THUMB) -> np.ndarray:
    """A small RGB copy (longest side ``side``) for the list; cheap enough for a worker."""
    h, w = pixels.shape[:2]
    s = side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.ascontiguousarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA))


class StudyList(QListWidget):
    """Rows mirror ``StudyEntry`` objects held by the window; arrow keys move the selection."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setUniformItemSizes(True)
        self.setMinimumWidth(200)
        self.setWordWrap(True)

    def add_entry(self, entry: StudyEntry) -> None:
        item = QListWidgetItem()
        item.setSizeHint(QSize(0, THUMB + 8))
        self.addItem(item)
        self.update_entry(self.count() - 1, entry)

    def update_entry(
        self, row: int, entry: StudyEntry, thumbnail: np.ndarray | None = None
    ) -> None:
        item = self.item(row)
        item.setText(entry.summary())
        item.setToolTip(f"{entry.path}\n{entry.error}" if entry.error else str(entry.path))
        if thumbnail is not None:
            item.setIcon(QIcon(QPixmap.fromImage(to_qimage(thumbnail))))
        if entry.status == "error":
            item.setForeground(QBrush(QColor(220, 60, 50)))
        elif entry.finding is not None and not entry.finding.in_scope:
            item.setForeground(QBrush(QColor(230, 150, 0)))
        else:
            item.setData(Qt.ItemDataRole.ForegroundRole, None)  # palette colour (light/dark)
