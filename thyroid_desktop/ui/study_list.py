"""The study list beside the viewer: one row per image with thumbnail, status, probability."""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem

from thyroid_desktop.core.review.reading import ListLine, Tone
from thyroid_desktop.ui.image_view import to_qimage

THUMB = 72


def make_thumbnail(pixels: np.ndarray, side: int = THUMB) -> np.ndarray:
    """A small RGB copy (longest side ``side``) for the list; cheap enough for a worker."""
    h, w = pixels.shape[:2]
    s = side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.ascontiguousarray(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA))


class StudyList(QListWidget):
    """One line per file of the study (``Review.list_line``); arrow keys move the selection."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setUniformItemSizes(True)
        self.setMinimumWidth(200)
        self.setWordWrap(True)

    def add_line(self, line: ListLine) -> None:
        item = QListWidgetItem()
        item.setSizeHint(QSize(0, THUMB + 8))
        self.addItem(item)
        self.show_line(self.count() - 1, line)

    def show_line(self, row: int, line: ListLine, thumbnail: np.ndarray | None = None) -> None:
        item = self.item(row)
        item.setText(line.text)
        item.setToolTip(line.tooltip)
        if thumbnail is not None:
            item.setIcon(QIcon(QPixmap.fromImage(to_qimage(thumbnail))))
        if line.tone is Tone.ERROR:
            item.setForeground(QBrush(QColor(220, 60, 50)))
        elif line.tone is Tone.WARNING:
            item.setForeground(QBrush(QColor(230, 150, 0)))
        else:
            item.setData(Qt.ItemDataRole.ForegroundRole, None)  # palette colour (light/dark)
