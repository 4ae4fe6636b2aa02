"""ACR TI-RADS choices; points, level and recommendation come from core.tirads, live."""

from __future__ import annotations

from enum import Enum

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QGroupBox, QLabel, QVBoxLayout

from thyroid_desktop.core.tirads import (
    Composition,
    EchogenicFoci,
    Echogenicity,
    Margin,
    Shape,
    TiradsDescriptors,
    label,
    points_of,
    recommend,
)

NOT_CHOSEN = "– choose –"


class TiradsPanel(QGroupBox):
    """The five descriptor groups as choices (echogenic foci: all that apply). It starts
    "not scored": no level is shown until composition, echogenicity, shape and margin are
    all chosen, so an untouched panel never reads as a TR1 assessment.

    Signals:
        changed(object): the descriptors (TiradsDescriptors) or None when not scored.
    """

    changed = Signal(object)

    def __init__(self, parent=None) -> None:
        super().__init__("ACR TI-RADS", parent)
        self._combos: dict[str, QComboBox] = {}
        form = QFormLayout()
        for name, enum in (
            ("composition", Composition),
            ("echogenicity", Echogenicity),
            ("shape", Shape),
            ("margin", Margin),
        ):
            combo = QComboBox()
            combo.addItem(NOT_CHOSEN, None)
            for choice in enum:
                combo.addItem(f"{label(choice)} ({points_of(choice)})", choice)
            combo.currentIndexChanged.connect(self._update)
            self._combos[name] = combo
            form.addRow(name.capitalize(), combo)
        self._foci: dict[EchogenicFoci, QCheckBox] = {}
        for focus in EchogenicFoci:
            box = QCheckBox(f"{label(focus)} ({points_of(focus)})")
            box.setChecked(focus is EchogenicFoci.NONE)
            box.toggled.connect(self._update)
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
        self._update()

    def descriptors(self) -> TiradsDescriptors | None:
        """The chosen descriptors, or None while any of the four groups is not chosen."""
        chosen = {name: combo.currentData() for name, combo in self._combos.items()}
        if any(v is None for v in chosen.values()):
            return None
        foci = frozenset(f for f, box in self._foci.items() if box.isChecked()) or frozenset(
            {EchogenicFoci.NONE}
        )
        return TiradsDescriptors(**chosen, foci=foci)

    def set_descriptors(self, d: TiradsDescriptors | None) -> None:
        """Shows ``d`` (another image's choices), or the empty "not scored" state."""
        widgets = [*self._combos.values(), *self._foci.values()]
        for w in widgets:
            w.blockSignals(True)
        for name, combo in self._combos.items():
            combo.setCurrentIndex(0 if d is None else combo.findData(getattr(d, name)))
        foci = {EchogenicFoci.NONE} if d is None else d.foci
        for focus, box in self._foci.items():
            box.setChecked(focus in foci)
        for w in widgets:
            w.blockSignals(False)
        self._update()

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
        self._update()

    def _update(self, *_args) -> None:
        d = self.descriptors()
        if d is None:
            self.result.setText(
                "<b>Not scored</b>: choose composition, echogenicity, shape, margin."
            )
            self.advice.setText("")
            self.changed.emit(None)
            return
        level = d.level
        self.result.setText(f"<b>TR{level.tr}</b> ({level.name}), {d.points} points")
        self.advice.setText(recommend(level, self._max_diameter_mm).text)
        self.changed.emit(d)
