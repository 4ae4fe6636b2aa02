"""The image viewer: zoom, pan, the nodule box drawn with the mouse, Grad-CAM overlay."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsRectItem, QGraphicsScene, QGraphicsView

from thyroid_desktop.core.roi import ROI


def to_qimage(pixels: np.ndarray) -> QImage:
    """RGB or RGBA uint8 array -> an owned QImage."""
    h, w, c = pixels.shape
    fmt = QImage.Format.Format_RGBA8888 if c == 4 else QImage.Format.Format_RGB888
    data = np.ascontiguousarray(pixels)
    return QImage(data.data, w, h, c * w, fmt).copy()


class ImageView(QGraphicsView):
    """Shows one image; dragging with the left button draws the nodule box, with the right
    button changes window/level (up/down: brightness, left/right: contrast).

    Signals:
        roiDrawn(ROI): the user finished drawing a box (image pixels).
    """

    roiDrawn = Signal(object)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(QColor(20, 20, 20))
        self._image = QGraphicsPixmapItem()
        self._overlay = QGraphicsPixmapItem()
        self._overlay.setZValue(1)
        self._box = QGraphicsRectItem()
        self._box.setZValue(2)
        pen = QPen(QColor(255, 220, 0), 2)
        pen.setCosmetic(True)
        self._box.setPen(pen)
        self._box.hide()
        for item in (self._image, self._overlay, self._box):
            self.scene().addItem(item)
        self._drag_start: QPointF | None = None
        self._wl_start: tuple[QPointF, float, float] | None = None
        self._size = (0, 0)
        self._pixels: np.ndarray | None = None
        self.level, self.width = 127.5, 255.0

    # -- content ---------------------------------------------------------------------------
    def set_image(self, pixels: np.ndarray) -> None:
        self._pixels = pixels
        self.level, self.width = 127.5, 255.0
        self._image.setPixmap(QPixmap.fromImage(to_qimage(pixels)))
        self._size = (pixels.shape[1], pixels.shape[0])
        self.scene().setSceneRect(QRectF(0, 0, *self._size))
        self.set_overlay(None)
        self.set_roi(None)
        self.fit()

    def set_window_level(self, level: float, width: float) -> None:
        """Display brightness (level) and contrast (width); the analysed pixels never change."""
        if self._pixels is None:
            return
        self.level, self.width = float(level), max(float(width), 1.0)
        lut = np.clip((np.arange(256) - (self.level - self.width / 2)) * 255.0 / self.width, 0, 255)
        shown = lut.astype(np.uint8)[self._pixels]
        self._image.setPixmap(QPixmap.fromImage(to_qimage(shown)))

    def reset_window_level(self) -> None:
        self.set_window_level(127.5, 255.0)

    def set_overlay(self, rgba: np.ndarray | None) -> None:
        if rgba is None:
            self._overlay.setPixmap(QPixmap())
        else:
            self._overlay.setPixmap(QPixmap.fromImage(to_qimage(rgba)))

    def set_overlay_opacity(self, value: float) -> None:
        self._overlay.setOpacity(value)

    def set_overlay_visible(self, visible: bool) -> None:
        self._overlay.setVisible(visible)

    def set_roi(self, roi: ROI | None) -> None:
        if roi is None:
            self._box.hide()
            return
        self._box.setRect(QRectF(roi.x, roi.y, roi.w, roi.h))
        self._box.show()

    def fit(self) -> None:
        if self._size[0]:
            self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def zoom(self, factor: float) -> None:
        self.scale(factor, factor)

    def actual_size(self) -> None:
        self.resetTransform()

    # -- mouse -----------------------------------------------------------------------------
    def wheelEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.zoom(1.25 if event.angleDelta().y() > 0 else 0.8)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.RightButton and self._size[0]:
            self._wl_start = (event.position(), self.level, self.width)
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton and self._size[0]:
            self._drag_start = self.mapToScene(event.position().toPoint())
            self._box.setRect(QRectF(self._drag_start, self._drag_start))
            self._box.show()
            event.accept()
        else:
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._wl_start is not None:
            start, level, width = self._wl_start
            d = event.position() - start
            self.set_window_level(level - d.y(), width + d.x())
            return
        if self._drag_start is not None:
            end = self.mapToScene(event.position().toPoint())
            self._box.setRect(QRectF(self._drag_start, end).normalized())
        else:
            super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._wl_start is not None and event.button() == Qt.MouseButton.RightButton:
            self._wl_start = None
            return
        if self._drag_start is None:
            super().mouseReleaseEvent(event)
            return
        self._drag_start = None
        r = self._box.rect().intersected(self.scene().sceneRect())
        if r.width() >= 4 and r.height() >= 4:
            roi = ROI(int(r.x()), int(r.y()), int(r.width()), int(r.height()))
            self.set_roi(roi)
            self.roiDrawn.emit(roi)
        else:
            self._box.hide()
