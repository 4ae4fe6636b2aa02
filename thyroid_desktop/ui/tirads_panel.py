"""ACR TI-RADS choices; points, level and recommendation come from core.clinical.tirads, live."""

from __future__ import annotations

from enum import Enum

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QVBoxLayout,
)

from thyroid_desktop.core.analysis import SUGGESTED_GROUPS, TiradsSuggestion, review_of
from thyroid_desktop.core.clinical.tirads import (
    GROUPS,
    EchogenicFoci,
    TiradsChoices,
    TiradsDescriptors,
    label,
    points_of,
    points_text,
    recommend,
    tirads_text,
)

NOT_CHOSEN = "– choose –"
#: How a suggestion looks: never like a choice (italic, teal, prefixed "AI").
SUGGESTION_STYLE = "color: #2a7f8f; font-style: italic;"


class NoWheel(QObject):
    """Wheel events over a choice never change it: they scroll the side panel instead (a
    choice changes only by a deliberate click or key press on it)."""

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt naming)
        if event.type() == QEvent.Type.Wheel:
            event.ignore()
            return True
        return False


class TiradsPanel(QGroupBox):
    """The five descriptor groups as choices (echogenic foci: all that apply). Nothing is
    pre-selected: no level is shown until all five groups are set (echogenic foci "none"
    included), and until then the panel says which are open, as the PDF does.

    Choices change only by a deliberate action: the wheel never changes a choice, and a
    choice made with the mouse hands the keyboard back (``chosen``), so the arrow keys keep
    paging through images. "None" echogenic foci excludes the other kinds.

    Under each group the AI's suggestion is shown (italic, "AI: ...", with its confidence);
    it counts for nothing until the clinician confirms it, by choosing it or with "Accept AI
    suggestions" (fills the groups still open). The level above is the clinician's; the line
    below it is the AI-only level.

    Signals:
        changed(object): the choices (TiradsChoices), after every user change.
        chosen(): a choice was made with the mouse (the window gives the image the focus).
        acceptRequested(): the clinician asked to accept the AI suggestions.
    """

    changed = Signal(object)
    chosen = Signal()
    acceptRequested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__("ACR TI-RADS", parent)
        self._combos: dict[str, QComboBox] = {}
        self._hints: dict[str, QLabel] = {}
        self._choices = TiradsChoices()
        self._suggestion: TiradsSuggestion | None = None
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
            hint = self._hint()
            self._hints[name] = hint
            form.addRow("", hint)
        self._foci: dict[EchogenicFoci, QCheckBox] = {}
        for focus in EchogenicFoci:
            box = QCheckBox(f"{label(focus)} ({points_of(focus)})")
            box.setFocusPolicy(Qt.FocusPolicy.TabFocus)  # a click does not keep the keys
            box.installEventFilter(self._no_wheel)
            box.toggled.connect(lambda on, f=focus: self._focus_toggled(f, on))
            self._foci[focus] = box
        self._hints["echogenic_foci"] = self._hint()
        self.accept_button = QPushButton("Accept AI suggestions")
        self.accept_button.setToolTip(
            "Fill every group still open with the AI's suggestion (logged); choices already "
            "made stay. Check each one: the suggestions are not a reading."
        )
        self.accept_button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.accept_button.clicked.connect(self.acceptRequested.emit)
        self.result = QLabel("")
        self.result.setWordWrap(True)
        self.ai_result = QLabel("")
        self.ai_result.setWordWrap(True)
        self.ai_result.setStyleSheet(SUGGESTION_STYLE)
        self.advice = QLabel("")
        self.advice.setWordWrap(True)
        self.advice.setMinimumHeight(self.advice.fontMetrics().lineSpacing() * 4)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("Echogenic foci (all that apply)"))
        for box in self._foci.values():
            layout.addWidget(box)
        layout.addWidget(self._hints["echogenic_foci"])
        layout.addWidget(self.accept_button)
        layout.addWidget(self.result)
        layout.addWidget(self.ai_result)
        layout.addWidget(self.advice)
        self._max_diameter_mm: float | None = None
        self._show(self._choices)

    @staticmethod
    def _hint() -> QLabel:
        hint = QLabel("")
        hint.setStyleSheet(SUGGESTION_STYLE)
        hint.setWordWrap(True)
        hint.hide()
        return hint

    def choices(self) -> TiradsChoices:
        return self._choices

    def suggestion(self) -> TiradsSuggestion | None:
        return self._suggestion

    def set_suggestion(self, suggestion: TiradsSuggestion | None) -> None:
        """Shows the AI's suggestions for the nodule shown (None: none to show)."""
        self._suggestion = suggestion
        self._update_text()

    def suggestion_text(self, group: str) -> str:
        """What the panel shows under ``group`` ("" when there is no suggestion for it)."""
        hint = self._hints[group]
        return hint.text() if not hint.isHidden() else ""

    def descriptors(self) -> TiradsDescriptors | None:
        """The chosen descriptors, or None while any of the five groups is open."""
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

    def _update_hints(self) -> None:
        sug = self._suggestion
        review = review_of(self._choices, sug) if sug is not None else {}
        for group, hint in self._hints.items():
            s = sug.groups.get(group) if sug is not None else None
            if s is None:
                hint.hide()
                continue
            conf = f" · {c}" if (c := s.confidence_text()) else ""
            how = (
                " (from the mask)"
                if s.method == "mask geometry"
                else (" (from the box)" if s.method == "box geometry" else "")
            )
            mark = {
                "accepted": "  ✓ accepted",
                # Not a tick: the suggestion shown now is not what the clinician's choice is.
                "accepted earlier": f"  ≠ yours ({self._chosen_words(group)}) is the AI's "
                "suggestion for an earlier box",
                "changed": "  ✗ changed",
            }.get(review[group], "")
            hint.setText(f"AI: {label(s.value)}{conf}{how}{mark}")
            hint.show()
        open_groups = (
            [g for g, v in review.items() if v == "open" and g in sug.groups] if sug else []
        )
        self.accept_button.setVisible(sug is not None)
        self.accept_button.setEnabled(bool(open_groups))
        if sug is None:
            self.ai_result.setText("")
            return
        missing = [g.replace("_", " ") for g in SUGGESTED_GROUPS if g not in sug.groups]
        extra = f"; no suggestion for {', '.join(missing)} (0 points)" if missing else ""
        self.ai_result.setText(
            f"AI-only: TR{sug.level.tr} ({sug.level.name}), {points_text(sug.points)}{extra}. "
            "Not counted until you confirm."
        )

    def _chosen_words(self, group: str) -> str:
        """The clinician's choice for ``group`` in the lexicon's words."""
        if group == "echogenic_foci":
            return ", ".join(sorted(label(f) for f in self._choices.foci)) or "none chosen"
        chosen = getattr(self._choices, group)
        return label(chosen) if chosen is not None else "none chosen"

    def _update_text(self) -> None:
        self._update_hints()
        self.result.setText(self.text())  # the PDF prints the same words (``tirads_text``)
        d = self.descriptors()
        self.advice.setText("" if d is None else recommend(d.level, self._max_diameter_mm).text)

    def text(self) -> str:
        """The clinician's TI-RADS as shown (and as the PDF prints it): the level once all
        five groups are set, else the groups still open."""
        return tirads_text(self._choices)
