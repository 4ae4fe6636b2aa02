"""The image viewer: zoom, pan, window/level, the nodule box drawn, moved and resized with
the mouse, a measuring line (calibration, calipers), the caliper lines that stay (numbered,
with their lengths; an end dragged moves one, Delete removes the selected one), and the
Grad-CAM overlay (on the image or in a second copy beside it)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QPolygonF,
    QTransform,
)
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsLineItem,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QMenu,
)

from thyroid_desktop.core.analysis import ROI

#: How close (in screen pixels) the mouse must be to a box edge to grab it.
HANDLE_PX = 7
#: Gap between the image and its Grad-CAM copy in side-by-side view (image pixels).
SIDE_GAP = 12
#: Smallest box the mouse can make (image pixels).
MIN_BOX = 4
#: Caliper lines: their colour, and the colour of the selected one.
CALIPER_COLOR = QColor(0, 220, 255)
#: The nodule's box and outline; the study PDF draws them in the same colours.
BOX_COLOR = QColor(255, 220, 0)
CONTOUR_COLOR = QColor(255, 140, 0)
CALIPER_SELECTED = QColor(255, 120, 220)
#: Radius of a caliper line's end marks (screen pixels).
CALIPER_END_PX = 4


class CaliperItem(QGraphicsLineItem):
    """A caliper line that stays: its ends marked, its number and length beside it. Knows
    whose it is (``nodule_id``) and its ``number`` there."""

    def __init__(self, nodule_id: str, number: int, line: QLineF, label: str) -> None:
        super().__init__(line)
        self.nodule_id, self.number, self.label_text = nodule_id, number, label
        self.setZValue(6)
        self._ends = []
        for _ in range(2):
            end = QGraphicsEllipseItem(
                -CALIPER_END_PX, -CALIPER_END_PX, 2 * CALIPER_END_PX, 2 * CALIPER_END_PX, self
            )
            end.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            self._ends.append(end)
        self.label = QGraphicsSimpleTextItem(label, self)
        self.label.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        # beside the end, above the line: not under the end's handle nor on the box edge
        # the line usually ends at (screen pixels, whatever the zoom)
        lift = self.label.boundingRect().height() + 2
        self.label.setTransform(QTransform.fromTranslate(CALIPER_END_PX + 4, -lift))
        self.setToolTip(f"Caliper {number} of {nodule_id}: {label.split(': ', 1)[-1]}")
        self.set_selected(False)
        self.set_line(line)

    def set_line(self, line: QLineF) -> None:
        self.setLine(line)
        self._ends[0].setPos(line.p1())
        self._ends[1].setPos(line.p2())
        self.label.setPos(line.p2() if line.p2().x() >= line.p1().x() else line.p1())

    def set_selected(self, selected: bool) -> None:
        self.selected = selected
        color = CALIPER_SELECTED if selected else CALIPER_COLOR
        self.setPen(_pen(color, 2.5 if selected else 1.8))
        for end in self._ends:
            end.setPen(_pen(color, 1.5))
            end.setBrush(QBrush(color))
        self.label.setBrush(color)

    @property
    def ends(self) -> tuple[tuple[float, float], tuple[float, float]]:
        line = self.line()
        return (line.x1(), line.y1()), (line.x2(), line.y2())


_CURSORS = {
    "move": Qt.CursorShape.SizeAllCursor,
    "l": Qt.CursorShape.SizeHorCursor,
    "r": Qt.CursorShape.SizeHorCursor,
    "t": Qt.CursorShape.SizeVerCursor,
    "b": Qt.CursorShape.SizeVerCursor,
    "lt": Qt.CursorShape.SizeFDiagCursor,
    "rb": Qt.CursorShape.SizeFDiagCursor,
    "rt": Qt.CursorShape.SizeBDiagCursor,
    "lb": Qt.CursorShape.SizeBDiagCursor,
}


def to_qimage(pixels: np.ndarray) -> QImage:
    """RGB or RGBA uint8 array -> an owned QImage."""
    h, w, c = pixels.shape
    fmt = QImage.Format.Format_RGBA8888 if c == 4 else QImage.Format.Format_RGB888
    data = np.ascontiguousarray(pixels)
    return QImage(data.data, w, h, c * w, fmt).copy()


def _pen(color: QColor, width: float, style=Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(color, width, style)
    pen.setCosmetic(True)
    return pen


class ImageView(QGraphicsView):
    """Shows one image.

    Left-drag on empty image draws the nodule box; dragging inside the box moves it and
    dragging its edges or corners resizes it; a click in another detected candidate's
    (dashed) box picks it. Right-drag changes window/level (up/down: brightness,
    left/right: contrast); middle-drag pans. In measuring mode the next left-drag draws a
    line. A caliper line is selected by a click on it, moved by dragging one of its ends,
    and deleted with Delete (or its right-click menu).

    Signals:
        roiDrawn(ROI): the user drew, moved or resized the box (image pixels).
        candidatePicked(int): the user clicked inside candidate box number ``i``.
        pointClicked(float, float): a click (no drag) on the image outside every box: the
            nodule is there (image pixels).
        nodulePicked(str): a click inside another nodule's box, or a linked view's box: show
            that nodule (never a new one).
        strokeDrawn(float, float, float, float): a Shift+drag along the nodule's long axis:
            its ends x1, y1, x2, y2 (image pixels).
        lineDrawn(object, object): the user drew a measuring line: its start and end (x, y)
            in image pixels.
        caliperMoved(str, int, object, object): an end of caliper ``number`` of nodule
            ``id`` was dragged: its new start and end (x, y).
        caliperDeleteRequested(str, int): delete caliper ``number`` of nodule ``id``.
        stepRequested(int): Up/Down arrow: previous (-1) or next (+1) image of the study.
    """

    roiDrawn = Signal(object)
    candidatePicked = Signal(int)
    pointClicked = Signal(float, float)
    nodulePicked = Signal(str)
    strokeDrawn = Signal(float, float, float, float)
    lineDrawn = Signal(object, object)
    caliperMoved = Signal(str, int, object, object)
    caliperDeleteRequested = Signal(str, int)
    stepRequested = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(QColor(20, 20, 20))
        self.viewport().setMouseTracking(True)
        self._image = QGraphicsPixmapItem()
        self._overlay = QGraphicsPixmapItem()
        self._twin_image = QGraphicsPixmapItem()
        self._twin_overlay = QGraphicsPixmapItem()
        self._box = QGraphicsRectItem()
        self._twin_box = QGraphicsRectItem()
        self._line = QGraphicsLineItem()
        self._box.setPen(_pen(BOX_COLOR, 2))
        self._twin_box.setPen(_pen(BOX_COLOR, 1.5, Qt.PenStyle.DashLine))
        self._line.setPen(_pen(CALIPER_COLOR, 2))
        #: The box is a proposal (dashed, labelled) until the clinician confirms it.
        self._box_label = QGraphicsSimpleTextItem("proposal", self._box)
        self._box_label.setBrush(BOX_COLOR)
        self._box_label.setFlag(self._box_label.GraphicsItemFlag.ItemIgnoresTransformations)
        self._box_label.hide()
        self._contour = QGraphicsPathItem()
        self._contour.setPen(_pen(CONTOUR_COLOR, 1.5))
        self._contour.setZValue(4.5)
        self.scene().addItem(self._contour)
        for z, item in enumerate(
            (
                self._image,
                self._overlay,
                self._twin_image,
                self._twin_overlay,
                self._box,
                self._twin_box,
                self._line,
            )
        ):
            item.setZValue(z)
            self.scene().addItem(item)
        for item in (self._box, self._twin_box, self._line, self._twin_image):
            item.hide()
        self._drag: tuple[str, QPointF, QRectF] | None = None
        self._wl_start: tuple[QPointF, float, float] | None = None
        self._pan_start: QPointF | None = None
        self._before: tuple[QRectF, bool] = (QRectF(), False)
        self._candidates: list[QGraphicsRectItem] = []
        self._others: list[QGraphicsRectItem] = []
        self._deselecting = False  # the press only deselected a caliper: no click
        self._calipers: list[CaliperItem] = []
        self._views: list[QGraphicsRectItem] = []
        self._caliper_drag: tuple[CaliperItem, int] | None = None
        self._right_press: QPointF | None = None
        self._gland = QGraphicsPathItem()
        self._gland.setPen(_pen(QColor(120, 230, 120), 1.5, Qt.PenStyle.DotLine))
        self._gland.setZValue(3.2)
        self.scene().addItem(self._gland)
        self.gland_visible = True
        self._size = (0, 0)
        #: The user zoomed (wheel, +/-, 1:1): resizing the window then keeps their zoom;
        #: otherwise the image is fitted to the window on every resize.
        self.user_zoomed = False
        self._pixels: np.ndarray | None = None
        self._overlay_on = True
        self.side_by_side = False
        self.measuring = False
        self.level, self.width = 127.5, 255.0

    # -- content ---------------------------------------------------------------------------
    def set_image(self, pixels: np.ndarray) -> None:
        self._end_measuring()
        self._pixels = pixels
        self.level, self.width = 127.5, 255.0
        self._size = (pixels.shape[1], pixels.shape[0])
        self._show_pixels(pixels)
        self._layout()
        self.set_overlay(None)
        self.set_roi(None)
        self.set_contour(None)
        self.set_candidates([])
        self.set_gland(None)
        self.set_calipers([])
        self.set_views([])
        self.fit()

    def clear(self) -> None:
        """No image (e.g. the selected file could not be read)."""
        self._end_measuring()
        self._pixels, self._size = None, (0, 0)
        self._image.setPixmap(QPixmap())
        self._twin_image.setPixmap(QPixmap())
        self.set_overlay(None)
        self.set_roi(None)
        self.set_candidates([])
        self.set_other_nodules([])
        self.set_gland(None)
        self.set_calipers([])
        self.set_views([])
        self._line.hide()
        # An empty view has nothing to scroll: a fixed, tiny scene (an automatic one keeps
        # the extent of items hidden since) and no zoom left from the image before.
        self.scene().setSceneRect(QRectF(0, 0, 1, 1))
        self.resetTransform()
        self.user_zoomed = False

    def _show_pixels(self, pixels: np.ndarray) -> None:
        pixmap = QPixmap.fromImage(to_qimage(pixels))
        self._image.setPixmap(pixmap)
        self._twin_image.setPixmap(pixmap)

    def image_rect(self) -> QRectF:
        return QRectF(0, 0, *self._size)

    def _layout(self) -> None:
        w, h = self._size
        offset = w + SIDE_GAP
        self._twin_image.setPos(offset, 0)
        self._twin_overlay.setPos(offset, 0)
        self._twin_box.setPos(offset, 0)
        width = 2 * w + SIDE_GAP if self.side_by_side else w
        self.scene().setSceneRect(QRectF(0, 0, width, h))
        self._twin_image.setVisible(self.side_by_side)
        self._twin_box.setVisible(self.side_by_side and self._box.isVisible())
        self._overlay.setVisible(self._overlay_on and not self.side_by_side)
        self._twin_overlay.setVisible(self._overlay_on and self.side_by_side)

    def set_side_by_side(self, on: bool) -> None:
        """Grad-CAM over the image (off) or on a copy beside the plain image (on)."""
        self.side_by_side = bool(on)
        self._layout()
        self.fit()

    def set_window_level(self, level: float, width: float) -> None:
        """Display brightness (level) and contrast (width); the analysed pixels never change."""
        if self._pixels is None:
            return
        self.level, self.width = float(level), max(float(width), 1.0)
        lut = np.clip((np.arange(256) - (self.level - self.width / 2)) * 255.0 / self.width, 0, 255)
        self._show_pixels(lut.astype(np.uint8)[self._pixels])

    def reset_window_level(self) -> None:
        self.set_window_level(127.5, 255.0)

    def set_overlay(self, rgba: np.ndarray | None) -> None:
        pixmap = QPixmap() if rgba is None else QPixmap.fromImage(to_qimage(rgba))
        self._overlay.setPixmap(pixmap)
        self._twin_overlay.setPixmap(pixmap)

    def set_overlay_opacity(self, value: float) -> None:
        self._overlay.setOpacity(value)
        self._twin_overlay.setOpacity(value)

    def set_overlay_visible(self, visible: bool) -> None:
        self._overlay_on = bool(visible)
        self._layout()

    def set_roi(self, roi: ROI | None, proposal: bool = False) -> None:
        """The box on screen: the nodule's (solid), or a ``proposal`` (dashed, labelled
        "proposal") that is not a nodule until the clinician confirms it."""
        if roi is None:
            self._box.hide()
            self._twin_box.hide()
            self._box_label.hide()
            return
        rect = QRectF(roi.x, roi.y, roi.w, roi.h)
        style = Qt.PenStyle.DashLine if proposal else Qt.PenStyle.SolidLine
        self._box.setPen(_pen(BOX_COLOR, 2, style))
        self._box_label.setPos(rect.left(), rect.bottom() + 2)
        self._box_label.setVisible(proposal)
        self._box.setRect(rect)
        self._twin_box.setRect(rect)
        self._box.show()
        self._twin_box.setVisible(self.side_by_side)

    def box_is_proposal(self) -> bool:
        """The box drawn is a proposal (dashed, labelled)."""
        return self._box.isVisible() and self._box_label.isVisible()

    def set_contour(self, contour: np.ndarray | None) -> None:
        """The nodule's outline (N x 2 image pixels) from the segmenter, or None."""
        path = QPainterPath()
        if contour is not None and len(contour) > 2:
            path.addPolygon(QPolygonF([QPointF(float(x), float(y)) for x, y in contour]))
            path.closeSubpath()
        self._contour.setPath(path)
        self._contour.setVisible(not path.isEmpty())

    def contour(self) -> QPainterPath:
        return self._contour.path()

    def set_candidates(self, rois: list[ROI]) -> None:
        """Dashed boxes for the other detected candidates (the chosen one is the box)."""
        for item in self._candidates:
            self.scene().removeItem(item)
        self._candidates = []
        for r in rois:
            item = QGraphicsRectItem(QRectF(r.x, r.y, r.w, r.h))
            item.setPen(_pen(QColor(0, 200, 255), 1.5, Qt.PenStyle.DashLine))
            item.setZValue(3.5)
            self.scene().addItem(item)
            self._candidates.append(item)

    def set_other_nodules(self, boxes: list[tuple[str, ROI]]) -> None:
        """Thin white boxes, each labelled with its id (e.g. "N2"), for the session's other
        nodules on this frame; the nodule being edited is the yellow box."""
        for item in self._others:
            self.scene().removeItem(item)
        self._others = []
        for name, r in boxes:
            box = QGraphicsRectItem(QRectF(r.x, r.y, r.w, r.h))
            box.setPen(_pen(QColor(235, 235, 235), 1.2))
            label = QGraphicsSimpleTextItem(name, box)
            label.setBrush(QColor(235, 235, 235))
            label.setFlag(label.GraphicsItemFlag.ItemIgnoresTransformations)
            label.setPos(r.x, r.y)
            box.setToolTip(f"{name}: pick it in the Nodules list to edit it")
            box.setZValue(3.4)
            self.scene().addItem(box)
            self._others.append(box)

    def set_calipers(self, shown: list) -> None:
        """The caliper lines on this frame (``core.review.reading.CaliperShown``: whose,
        number, ends, length), each drawn with its ends and its label ("1: 12.3 mm";
        another nodule's "N1 · 1: 12.3 mm"); the selection is kept when the same line is
        drawn again."""
        selected = self.selected_caliper()
        for item in self._calipers:
            self.scene().removeItem(item)
        self._calipers = []
        for c in shown:
            line = QLineF(QPointF(*c.caliper.start), QPointF(*c.caliper.end))
            item = CaliperItem(c.nodule_id, c.number, line, c.label)
            item.set_selected(selected == (c.nodule_id, c.number))
            self.scene().addItem(item)
            self._calipers.append(item)

    def calipers(self) -> list[CaliperItem]:
        """The caliper lines drawn."""
        return list(self._calipers)

    def selected_caliper(self) -> tuple[str, int] | None:
        """(nodule id, number) of the selected caliper line, if any."""
        return next(((c.nodule_id, c.number) for c in self._calipers if c.selected), None)

    def select_caliper(self, item: CaliperItem | None) -> None:
        for c in self._calipers:
            c.set_selected(c is item)

    def set_views(self, views: list[tuple[str, ROI]]) -> None:
        """Boxes of nodules' linked views on this frame, labelled, e.g. "N1 longitudinal"."""
        for item in self._views:
            self.scene().removeItem(item)
        self._views = []
        for name, r in views:
            box = QGraphicsRectItem(QRectF(r.x, r.y, r.w, r.h))
            box.setPen(_pen(BOX_COLOR, 1.5, Qt.PenStyle.DashDotLine))
            label = QGraphicsSimpleTextItem(name, box)
            label.setBrush(BOX_COLOR)
            label.setFlag(label.GraphicsItemFlag.ItemIgnoresTransformations)
            label.setPos(r.x, r.y + r.h)
            box.setZValue(3.4)
            self.scene().addItem(box)
            self._views.append(box)

    def view_labels(self) -> list[str]:
        return [item.childItems()[0].text() for item in self._views]

    def _caliper_at(self, p: QPointF) -> tuple[CaliperItem, int | None] | None:
        """The caliper line under scene point ``p``: with the end grabbed (0, 1) or None
        (on the line itself)."""
        tol = HANDLE_PX / max(self.transform().m11(), 1e-6)
        for item in reversed(self._calipers):
            line = item.line()
            for which, end in enumerate((line.p1(), line.p2())):
                if QLineF(p, end).length() <= tol:
                    return item, which
            if _distance_to_segment(p, line) <= tol:
                return item, None
        return None

    def caliper_menu(self, item: CaliperItem) -> QMenu:
        """The right-click menu of a caliper line."""
        menu = QMenu(self)
        act = menu.addAction(f"Delete caliper {item.number} ({item.label_text.split(': ')[-1]})")
        act.triggered.connect(lambda: self.caliperDeleteRequested.emit(item.nodule_id, item.number))
        return menu

    def marked_boxes(self) -> list[tuple[str, QRectF]]:
        """(nodule id, box) of every other nodule and linked view drawn on this frame."""
        views = [(item.childItems()[0].text().split()[0], item.rect()) for item in self._views]
        return self.other_nodules() + views

    def other_nodules(self) -> list[tuple[str, QRectF]]:
        """(id, box) of the other nodules drawn."""
        return [(item.childItems()[0].text(), item.rect()) for item in self._others]

    def set_gland(self, contours: list[np.ndarray] | None) -> None:
        """The thyroid gland's outline (image-pixel contours, each N x 2), or None."""
        path = QPainterPath()
        for c in contours or []:
            path.addPolygon(QPolygonF([QPointF(float(x), float(y)) for x, y in c]))
            path.closeSubpath()
        self._gland.setPath(path)
        self._gland.setVisible(self.gland_visible and bool(contours))

    def set_gland_visible(self, visible: bool) -> None:
        self.gland_visible = bool(visible)
        self._gland.setVisible(self.gland_visible and not self._gland.path().isEmpty())

    def gland_outline(self) -> QPainterPath:
        return self._gland.path()

    def candidate_rects(self) -> list[QRectF]:
        return [item.rect() for item in self._candidates]

    def roi(self) -> ROI | None:
        """The box on screen, clipped to the image, or None."""
        if not self._box.isVisible():
            return None
        r = self._box.rect().intersected(self.image_rect())
        if r.width() < MIN_BOX or r.height() < MIN_BOX:
            return None
        return ROI(round(r.x()), round(r.y()), round(r.width()), round(r.height()))

    def start_measuring(self) -> None:
        """The next left-drag draws a measuring line (for scale calibration); Esc cancels."""
        self.measuring = True
        self.viewport().setCursor(Qt.CursorShape.CrossCursor)

    def fit(self) -> None:
        self.user_zoomed = False
        if self._size[0]:
            self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def zoom(self, factor: float) -> None:
        self.user_zoomed = True
        self.scale(factor, factor)

    def actual_size(self) -> None:
        self.user_zoomed = True
        self.resetTransform()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        if not self.user_zoomed:
            self.fit()

    # -- mouse and keys --------------------------------------------------------------------
    def _hit(self, p: QPointF) -> str | None:
        """What a left press at scene point ``p`` grabs: edges ("l", "rb", ...), "move" or
        None (draw a new box)."""
        if not self._box.isVisible():
            return None
        r = self._box.rect()
        tol = HANDLE_PX / max(self.transform().m11(), 1e-6)
        in_x = r.left() - tol <= p.x() <= r.right() + tol
        in_y = r.top() - tol <= p.y() <= r.bottom() + tol
        edges = ""
        if in_y and abs(p.x() - r.left()) <= tol:
            edges += "l"
        elif in_y and abs(p.x() - r.right()) <= tol:
            edges += "r"
        if in_x and abs(p.y() - r.top()) <= tol:
            edges += "t"
        elif in_x and abs(p.y() - r.bottom()) <= tol:
            edges += "b"
        if edges:
            return edges
        return "move" if r.contains(p) else None

    def wheelEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.zoom(1.25 if event.angleDelta().y() > 0 else 0.8)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            self.stepRequested.emit(-1 if event.key() == Qt.Key.Key_Up else 1)
        elif event.key() == Qt.Key.Key_Escape and self.measuring:
            self._end_measuring()
        elif event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and (
            self.selected_caliper() is not None
        ):
            self.caliperDeleteRequested.emit(*self.selected_caliper())
        else:
            super().keyPressEvent(event)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if not self._size[0]:
            super().mousePressEvent(event)
            return
        p = self.mapToScene(event.position().toPoint())
        grabbed = self._caliper_at(p) if not self.measuring else None
        if event.button() == Qt.MouseButton.RightButton:
            self._wl_start = (event.position(), self.level, self.width)
            self._right_press = event.position()
        elif event.button() == Qt.MouseButton.LeftButton and grabbed is not None:
            item, which = grabbed
            self.select_caliper(item)
            self._caliper_drag = (item, which) if which is not None else None
        elif event.button() == Qt.MouseButton.MiddleButton:
            self._pan_start = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
        elif event.button() == Qt.MouseButton.LeftButton and (
            self.measuring
            or (
                event.modifiers() & Qt.KeyboardModifier.ShiftModifier
                and self.image_rect().contains(p)
            )
        ):
            self._drag = ("line" if self.measuring else "stroke", p, QRectF())
            self._line.setLine(QLineF(p, p))
            self._line.show()
        elif event.button() == Qt.MouseButton.LeftButton and self.image_rect().contains(p):
            self._deselecting = any(c.selected for c in self._calipers)
            self.select_caliper(None)
            mode = self._hit(p) or "new"
            self._before = (self._box.rect(), self._box.isVisible())
            if mode == "new":
                self._box.setRect(QRectF(p, p))
                self._box.show()
            self._drag = (mode, p, self._box.rect())
        else:
            super().mousePressEvent(event)
            return
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._wl_start is not None:
            start, level, width = self._wl_start
            d = event.position() - start
            self.set_window_level(level - d.y(), width + d.x())
            return
        if self._pan_start is not None:
            d = event.position() - self._pan_start
            self._pan_start = event.position()
            h, v = self.horizontalScrollBar(), self.verticalScrollBar()
            h.setValue(h.value() - round(d.x()))
            v.setValue(v.value() - round(d.y()))
            return
        p = self.mapToScene(event.position().toPoint())
        if self._caliper_drag is not None:
            item, which = self._caliper_drag
            line = item.line()
            item.set_line(QLineF(p, line.p2()) if which == 0 else QLineF(line.p1(), p))
            return
        if self._drag is None:
            if not self.measuring and self._caliper_at(p) is not None:
                self.viewport().setCursor(Qt.CursorShape.PointingHandCursor)
            elif not self.measuring:
                hit = self._hit(p)
                self.viewport().setCursor(_CURSORS.get(hit, Qt.CursorShape.CrossCursor))
            super().mouseMoveEvent(event)
            return
        mode, start, rect = self._drag
        if mode in ("line", "stroke"):
            self._line.setLine(QLineF(start, p))
            return
        if mode == "new":
            rect = QRectF(start, p).normalized()
        elif mode == "move":
            rect = rect.translated(p - start)
            bounds = self.image_rect()
            dx = min(max(rect.left(), 0.0), bounds.width() - rect.width()) - rect.left()
            dy = min(max(rect.top(), 0.0), bounds.height() - rect.height()) - rect.top()
            rect = rect.translated(dx, dy)
        else:
            rect = QRectF(rect)
            if "l" in mode:
                rect.setLeft(p.x())
            if "r" in mode:
                rect.setRight(p.x())
            if "t" in mode:
                rect.setTop(p.y())
            if "b" in mode:
                rect.setBottom(p.y())
            rect = rect.normalized()
        self._box.setRect(rect)
        self._twin_box.setRect(rect)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._wl_start is not None and event.button() == Qt.MouseButton.RightButton:
            self._wl_start = None
            press, self._right_press = self._right_press, None
            moved = press is None or (event.position() - press).manhattanLength() > 3
            hit = self._caliper_at(self.mapToScene(event.position().toPoint()))
            if not moved and hit is not None:
                self.select_caliper(hit[0])
                self.caliper_menu(hit[0]).popup(event.globalPosition().toPoint())
            return
        if self._caliper_drag is not None and event.button() == Qt.MouseButton.LeftButton:
            item, _ = self._caliper_drag
            self._caliper_drag = None
            start, end = item.ends
            if QLineF(QPointF(*start), QPointF(*end)).length() >= MIN_BOX:
                self.caliperMoved.emit(item.nodule_id, item.number, start, end)
            return
        if self._pan_start is not None and event.button() == Qt.MouseButton.MiddleButton:
            self._pan_start = None
            self.viewport().unsetCursor()
            return
        if self._drag is None or event.button() != Qt.MouseButton.LeftButton:
            super().mouseReleaseEvent(event)
            return
        mode, start, _ = self._drag
        before, was_visible = self._before
        self._drag = None
        if mode == "stroke":  # along the nodule's long axis: outlined from both ends
            line = self._line.line()
            self._line.hide()
            if line.length() >= MIN_BOX:
                self.strokeDrawn.emit(line.x1(), line.y1(), line.x2(), line.y2())
            return
        if mode == "line":
            self.measuring = False
            self.viewport().unsetCursor()
            line = self._line.line()
            if line.length() >= MIN_BOX:
                self.lineDrawn.emit((line.x1(), line.y1()), (line.x2(), line.y2()))
            else:
                self._line.hide()
            return
        roi = self.roi()
        if roi is None:  # too small: a click. Undo; pick the candidate clicked in, or point.
            self._box.setRect(before)
            self._box.setVisible(was_visible)
            picked = [i for i, r in enumerate(self.candidate_rects()) if r.contains(start)]
            marked = [n for n, r in self.marked_boxes() if r.contains(start)]
            if mode != "new" or self._deselecting:
                return  # a click on the box itself, or one that only deselects a caliper
            if marked:
                self.nodulePicked.emit(marked[0])
            elif picked:
                self.candidatePicked.emit(picked[0])
            else:
                self.pointClicked.emit(start.x(), start.y())
            return
        self.set_roi(roi)
        if mode == "new" or self._box.rect() != before:
            self.roiDrawn.emit(roi)

    def hide_line(self) -> None:
        self._line.hide()

    def _end_measuring(self) -> None:
        self.measuring, self._drag = False, None
        self._line.hide()
        self.viewport().unsetCursor()


def _distance_to_segment(p: QPointF, line: QLineF) -> float:
    """Distance from point ``p`` to the segment ``line`` (scene units)."""
    d = line.p2() - line.p1()
    n2 = d.x() ** 2 + d.y() ** 2
    if n2 == 0:
        return QLineF(p, line.p1()).length()
    t = ((p.x() - line.x1()) * d.x() + (p.y() - line.y1()) * d.y()) / n2
    t = min(max(t, 0.0), 1.0)
    return QLineF(p, line.p1() + d * t).length()
