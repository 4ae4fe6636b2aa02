"""ACR TI-RADS choices; points, level and recommendation come from core.tirads, live."""

from __future__ import annotations

from enum import Enum

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QGroupBox, QLabel, QVBoxLayout

from thyroid_desktop.core.tirads import (
    GROUPS,
    EchogenicFoci,
    TiradsChoices,
    TiradsDescriptors,
    label,
    points_of,
    recommend,
)

NOT_CHOSEN = "– choose –"


class NoWheel(QObject):
    """Wheel events over a choice never change it: they scroll the side panel instead (a
    choice changes only by a deliberate click or key press on it)."""

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt naming)
        if event.type() == QEvent.Type.Wheel:
            event.ignore()
            return True
        return False


class TiradsPanel(QGroupBox):
    """The five descriptor groups as choices (echogenic foci: all that apply). It starts
    "not scored": no level is shown until composition, echogenicity, shape and margin are
    all chosen, so an untouched panel never reads as a TR1 assessment.

    Choices change only by a deliberate action: the wheel never changes a choice, and a
    choice made with the mouse hands the keyboard back (``chosen``), so the arrow keys keep
    paging through images. "None" echogenic foci excludes the other kinds.

    Signals:
        changed(object): the choices (TiradsChoices), after every user change.
        chosen(): a choice was made with the mouse (the window gives the image the focus).
    """

    changed = Signal(object)
    chosen = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__("ACR TI-RADS", parent)
        self._combos: dict[str, QComboBox] = {}
        self._choices = TiradsChoices()
        self._no_wheel = NoWheel(self)
        form = QFormLayout()
        for name, enum in GROUPS.items():
            combo = QComboBox()
            combo.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            combo.installEventFilter(self._no_wheel)
            combo.addItem(NOT_CHOSEN, None)
            for choice in enum:
                combo.addItem(f"{label(choice)} ({points_of(choice)})", choice)
            combo.currentIndexChanged.connect(lambda _i, n=name: self._combo_changed(n))
            combo.activated.connect(lambda _i: self.chosen.emit())
            self._combos[name] = combo
            form.addRow(name.capitalize(), combo)
        self._foci: dict[EchogenicFoci, QCheckBox] = {}
        for focus in EchogenicFoci:
            box = QCheckBox(f"{label(focus)} ({points_of(focus)})")
            box.setFocusPolicy(Qt.FocusPolicy.TabFocus)  # a click does not keep the keys
            box.installEventFilter(self._no_wheel)
            box.toggled.connect(lambda on, f=focus: self._focus_toggled(f, on))
            self._foci[focus] = box
        self.result = QLabel("")
        self.result.setWordWrap(True)
        self.advice = QLabel("")
        self.advice.setWordWrap(True)
        self.advice.setMinimumHeight(self.advice.fontMetrics().lineSpacing() * 4)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("Echogenic foci (all that apply)"))
        for box in self._foci.values():
            layout.addWidget(box)
        layout.addWidget(self.result)
        layout.addWidget(self.advice)
        self._max_diameter_mm: float | None = None
        self._show(self._choices)

    def choices(self) -> TiradsChoices:
        return self._choices

    def descriptors(self) -> TiradsDescriptors | None:
        """The chosen descriptors, or None while any of the four groups is not chosen."""
        return self._choices.descriptors

    def set_choices(self, choices: TiradsChoices | None) -> None:
        """Shows another nodule's choices (None: the empty "not scored" state); silent."""
        self._show(choices or TiradsChoices())

    def set_descriptors(self, d: TiradsDescriptors | None) -> None:
        self.set_choices(TiradsChoices.of(d))

    def _show(self, choices: TiradsChoices) -> None:
        self._choices = choices
        widgets = [*self._combos.values(), *self._foci.values()]
        for w in widgets:
            w.blockSignals(True)
        for name, combo in self._combos.items():
            value = getattr(choices, name)
            combo.setCurrentIndex(0 if value is None else combo.findData(value))
        for focus, box in self._foci.items():
            box.setChecked(focus in choices.foci)
        for w in widgets:
            w.blockSignals(False)
        self._update_text()

    def _combo_changed(self, name: str) -> None:
        self._user_change(self._choices.with_choice(name, self._combos[name].currentData()))

    def _focus_toggled(self, focus: EchogenicFoci, on: bool) -> None:
        self._user_change(self._choices.with_focus(focus, on))
        self.chosen.emit()

    def _user_change(self, choices: TiradsChoices) -> None:
        self._show(choices)  # the foci rule may have ticked or cleared other boxes
        self.changed.emit(choices)

    def select(self, choice: Enum) -> None:
        """Sets one descriptor (used by tests and keyboard users)."""
        for combo in self._combos.values():
            index = combo.findData(choice)
            if index >= 0:
                combo.setCurrentIndex(index)

    def set_focus(self, focus: EchogenicFoci, on: bool) -> None:
        self._foci[focus].setChecked(on)

    def set_size(self, max_diameter_mm: float | None) -> None:
        self._max_diameter_mm = max_diameter_mm
        self._update_text()

    def _update_text(self) -> None:
        d = self.descriptors()
        if d is None:
            self.result.setText(
                "<b>Not scored</b>: choose composition, echogenicity, shape, margin."
            )
            self.advice.setText("")
            return
        level = d.level
        self.result.setText(f"<b>TR{level.tr}</b> ({level.name}), {d.points} points")
        self.advice.setText(recommend(level, self._max_diameter_mm).text)
