"""The study's nodules: pick one (N1, N2, ...), add or delete one, say where it is, and
which images show it (its transverse and longitudinal views)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStyle,
    QStyleOptionComboBox,
    QStylePainter,
)

from thyroid_desktop.core.review.session import Lobe, Nodule, Pole
from thyroid_desktop.ui.tirads_panel import NoWheel

NOT_GIVEN = "–"


class ElidingComboBox(QComboBox):
    """A combo box whose shown text ends in "…" where it does not fit (a plain one cuts it
    off mid-letter); the full text is its tool tip, and the list opens as wide as its
    longest entry."""

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt naming)
        painter = QStylePainter(self)
        opt = self._option()
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, opt)
        opt.currentText = self._elided(opt)
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, opt)

    def showPopup(self) -> None:  # noqa: N802 (Qt naming)
        view = self.view()
        view.setMinimumWidth(view.sizeHintForColumn(0) + 2 * view.frameWidth() + 8)
        super().showPopup()

    def shown_text(self) -> str:
        """The text as painted (elided to the field's width)."""
        return self._elided(self._option())

    def _option(self) -> QStyleOptionComboBox:
        opt = QStyleOptionComboBox()
        self.initStyleOption(opt)
        if self.currentIndex() < 0 and self.placeholderText():  # as QComboBox paints it
            opt.palette.setBrush(QPalette.ColorRole.ButtonText, opt.palette.placeholderText())
            opt.currentText = self.placeholderText()
        return opt

    def _elided(self, opt: QStyleOptionComboBox) -> str:
        field = self.style().subControlRect(
            QStyle.ComplexControl.CC_ComboBox, opt, QStyle.SubControl.SC_ComboBoxEditField, self
        )
        return self.fontMetrics().elidedText(
            opt.currentText, Qt.TextElideMode.ElideRight, field.width()
        )


class NodulePanel(QGroupBox):
    """Shows the session's nodules; every change is sent to the window as a signal.

    Signals:
        picked(str): the user chose another nodule (its id).
        addRequested(): the next box drawn is a new nodule.
        deleteRequested(): delete the nodule shown.
        locationChanged(object, object): lobe (Lobe or None), pole (Pole or None).
    """

    picked = Signal(str)
    addRequested = Signal()
    deleteRequested = Signal()
    locationChanged = Signal(object, object)

    def __init__(self, parent=None) -> None:
        super().__init__("Nodules", parent)
        self._no_wheel = NoWheel(self)
        self.choice = ElidingComboBox()
        # A long file name must not widen the side column: the text is elided instead.
        self.choice.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.choice.setMinimumContentsLength(12)
        self.choice.activated.connect(lambda i: self.picked.emit(self.choice.itemData(i)))
        self.add_button = QPushButton("Add nodule")
        self.add_button.setToolTip("Then draw the new nodule's box on the image (Ctrl+N)")
        self.add_button.clicked.connect(self.addRequested.emit)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self.deleteRequested.emit)
        self.lobe = QComboBox()
        self.lobe.addItem(NOT_GIVEN, None)
        for lobe in Lobe:
            self.lobe.addItem(str(lobe), lobe)
        self.pole = QComboBox()
        self.pole.addItem(NOT_GIVEN, None)
        for pole in Pole:
            self.pole.addItem(str(pole), pole)
        for combo in (self.choice, self.lobe, self.pole):
            combo.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            combo.installEventFilter(self._no_wheel)
        for combo in (self.lobe, self.pole):
            combo.activated.connect(
                lambda _i: self.locationChanged.emit(
                    self.lobe.currentData(), self.pole.currentData()
                )
            )
        row = QHBoxLayout()
        row.addWidget(self.choice, 1)
        row.addWidget(self.add_button)
        row.addWidget(self.delete_button)
        form = QFormLayout(self)
        form.addRow(row)
        form.addRow("Lobe", self.lobe)
        form.addRow("Level", self.pole)
        self.views = QLabel("")
        self.views.setWordWrap(True)  # long file names must wrap, not be cut off
        form.addRow("Views", self.views)
        self.show_nodules([], None)
        self.show_views(None)

    def show_nodules(self, nodules: list[Nodule], current: str | None, names=None) -> None:
        """Lists ``nodules`` (``names``: image key -> file name) and shows ``current``."""
        names = names or {}
        self.choice.blockSignals(True)
        self.choice.clear()
        for n in nodules:
            where = f" · {n.location}" if n.location else ""
            image = names.get(n.image, "")
            frame = f" frame {n.frame + 1}" if n.frame else ""
            text = f"{n.id}{where} · {image}{frame}"
            self.choice.addItem(text, n.id)
            self.choice.setItemData(self.choice.count() - 1, text, Qt.ItemDataRole.ToolTipRole)
        index = self.choice.findData(current) if current else -1
        self.choice.setCurrentIndex(index)
        self.choice.setToolTip(self.choice.currentText())
        self.choice.blockSignals(False)
        shown = next((n for n in nodules if n.id == current), None)
        for combo, value in (
            (self.lobe, shown.lobe if shown else None),
            (self.pole, shown.pole if shown else None),
        ):
            combo.blockSignals(True)
            combo.setCurrentIndex(max(combo.findData(value), 0) if value else 0)
            combo.blockSignals(False)
        for w in (self.lobe, self.pole, self.delete_button):
            w.setEnabled(shown is not None)
        # the placeholder shows when none is current: none yet, or none on this frame
        self.choice.setPlaceholderText("no nodule yet" if not nodules else "none on this frame")

    def show_views(self, nodule: Nodule | None, names=None) -> None:
        """Which images show ``nodule`` and in which plane (``names``: image key -> file
        name); how to add the other view when it has one only."""
        names = names or {}

        def where(key: str, frame: int) -> str:
            return names.get(key, key[:8]) + (f" frame {frame + 1}" if frame else "")

        if nodule is None:
            text = "–"
        elif not nodule.views:
            text = (
                f"{where(nodule.image, nodule.frame)} only. For three diameters and the "
                "volume, show its other plane and use Analysis > Link this frame to nodule…"
            )
        else:
            own = f"{nodule.plane}: {where(nodule.image, nodule.frame)}"
            others = [f"{v.plane}: {where(v.image, v.frame)}" for v in nodule.views]
            text = "; ".join([own, *others])
        self.views.setText(text)
        self.views.setToolTip(text)
