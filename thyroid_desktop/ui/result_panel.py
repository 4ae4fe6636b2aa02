"""The result beside the image: calibrated probability against the shipped threshold."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from thyroid_desktop.core.analysis import Finding


class ProbabilityBar(QWidget):
    """A 0..1 bar filled to the probability, with a tick at the threshold."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.probability: float | None = None
        self.threshold: float | None = None
        self.setMinimumHeight(26)

    def set_values(self, probability: float | None, threshold: float | None) -> None:
        self.probability, self.threshold = probability, threshold
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        r = QRectF(self.rect()).adjusted(1, 4, -1, -4)
        p.setPen(QPen(self.palette().mid().color()))
        p.drawRect(r)
        if self.probability is not None:
            above = self.threshold is not None and self.probability >= self.threshold
            fill = QColor(200, 70, 60) if above else QColor(70, 150, 90)
            p.fillRect(QRectF(r.x(), r.y(), r.width() * self.probability, r.height()), fill)
        if self.threshold is not None:
            x = r.x() + r.width() * self.threshold
            p.setPen(QPen(self.palette().text().color(), 2))
            p.drawLine(int(x), int(r.top()) - 3, int(x), int(r.bottom()) + 3)
        p.end()


#: What the panel says above a proposal's estimate.
PRELIMINARY = (
    "Proposal: preliminary estimate, not a nodule yet. Accept it (Enter), adjust its box, "
    "or reject it (X)."
)


class ResultPanel(QWidget):
    """Probability, wording, overlay controls and the model's identity; for a proposal,
    the estimate is marked preliminary, with Accept and Reject buttons.

    Signals:
        acceptRequested(): the clinician accepts the proposal shown.
        rejectRequested(): the clinician rejects it.
    """

    overlayToggled = Signal(bool)
    opacityChanged = Signal(float)
    acceptRequested = Signal()
    rejectRequested = Signal()
    #: The clinician asks for an estimate on an image refused as out of scope.
    forceRequested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.state = QLabel("Loading model…")
        self.state.setWordWrap(True)
        self.probability = QLabel("–")
        font = self.probability.font()
        font.setPointSize(font.pointSize() * 2)
        font.setBold(True)
        self.probability.setFont(font)
        self.bar = ProbabilityBar()
        self.kind = QLabel("")  # "Proposal: preliminary ..." while no nodule is confirmed
        self.kind.setWordWrap(True)
        self.kind.setStyleSheet("color: #d0a000; font-weight: bold;")
        self.accept_button = QPushButton("Accept proposal (Enter)")
        self.accept_button.clicked.connect(self.acceptRequested.emit)
        self.reject_button = QPushButton("Reject (X)")
        self.reject_button.clicked.connect(self.rejectRequested.emit)
        for b in (self.accept_button, self.reject_button):
            b.setFocusPolicy(Qt.FocusPolicy.TabFocus)  # a click does not keep the keys
        self.set_proposal(False)
        self.force_button = QPushButton("Analyse anyway (outside the validated scope)")
        self.force_button.setToolTip(
            "The scope check says this is not thyroid ultrasound. An estimate made anyway is "
            "marked as outside the validated scope, here, in the report and in the audit log."
        )
        self.force_button.clicked.connect(self.forceRequested.emit)
        self.force_button.setVisible(False)
        self.caveats = QLabel("")  # outside the validated scope; not validated at this site
        self.caveats.setWordWrap(True)
        self.caveats.setStyleSheet("color: #d07000; font-weight: bold;")
        self.wording = QLabel("")
        self.wording.setWordWrap(True)
        self.overlay = QCheckBox("Grad-CAM overlay (&G)")
        self.overlay.setChecked(True)
        self.overlay.toggled.connect(self.overlayToggled)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(70)
        self.opacity.valueChanged.connect(lambda v: self.opacityChanged.emit(v / 100.0))
        self.size = QLabel("")
        self.size.setWordWrap(True)  # the size with calipers and diameters is long
        self.size_check = QLabel("")  # caliper lines outside the nodule's box
        self.size_check.setWordWrap(True)
        self.size_check.setStyleSheet("color: #d07000;")
        self.size_check.setVisible(False)
        self.notes = QLabel("")  # what the reader had to assume about the file
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: #d07000;")
        self.model = QLabel("")
        self.model.setWordWrap(True)
        self.model.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout()
        form.addRow("Overlay opacity", self.opacity)
        layout = QVBoxLayout(self)
        layout.addWidget(self.state)
        layout.addWidget(self.kind)
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.reject_button)
        layout.addLayout(buttons)
        layout.addWidget(self.force_button)
        self.output_name = QLabel("AI estimate: likelihood of TI-RADS 4-5 (suspicious)")
        self.output_name.setWordWrap(True)
        layout.addWidget(self.output_name)
        layout.addWidget(self.probability)
        layout.addWidget(self.bar)
        layout.addWidget(self.wording)
        layout.addWidget(self.caveats)
        layout.addWidget(self.size)
        layout.addWidget(self.size_check)
        layout.addWidget(self.notes)
        layout.addWidget(self.overlay)
        layout.addLayout(form)
        layout.addWidget(self.model)
        self.setMinimumWidth(260)

    def show_model(self, model_id: str, version: str, card_metrics: str) -> None:
        self.model.setText(f"Model {model_id} v{version}\n{card_metrics}")

    def set_output_name(self, text: str) -> None:
        """What the number is (from the model card)."""
        self.output_name.setText(text)

    def show_measurement(self, text: str, check: str = "") -> None:
        """The size; ``check``: caliper lines to check (outside the nodule's box), in the
        warning colour under it."""
        self.size.setText(f"Size: {text}" if text else "")
        self.size.setToolTip(text)
        self.size_check.setText(f"⚠ {check}" if check else "")
        self.size_check.setVisible(bool(check))

    def show_state(self, text: str) -> None:
        self.state.setText(text)

    def set_proposal(self, shown: bool, preliminary: bool = False) -> None:
        """A proposal is on screen (Accept / Reject shown); ``preliminary``: its estimate is."""
        self.kind.setText(PRELIMINARY if shown else ("Preliminary estimate" if preliminary else ""))
        self.kind.setVisible(shown or preliminary)
        self.accept_button.setVisible(shown)
        self.reject_button.setVisible(shown)

    def set_refusal(self, can_force: bool) -> None:
        """The image was refused as out of scope and the clinician may analyse it anyway."""
        self.force_button.setVisible(can_force)

    def clear(self) -> None:
        self.force_button.setVisible(False)
        self.caveats.setText("")
        self.probability.setText("–")
        self.bar.set_values(None, None)
        self.wording.setText("")
        self.size.setText("")
        self.size_check.setText("")
        self.size_check.setVisible(False)
        self.notes.setText("")
        self.set_proposal(False)

    def show_finding(self, finding: Finding) -> None:
        self.notes.setText("".join(f"Note: {note}.\n" for note in finding.notes).strip())
        self.caveats.setText("\n".join(c[0].upper() + c[1:] + "." for c in finding.caveats))
        if not finding.in_scope:  # no confident-looking number
            self.probability.setText("no estimate")
            self.bar.set_values(None, finding.threshold)
            self.wording.setText(f"No estimate: {finding.no_estimate_reason}.")
            return
        probability, threshold_shown = finding.shown()
        self.probability.setText(probability)
        self.bar.set_values(finding.probability, finding.threshold)
        side = "at or above" if finding.label == "malignant" else "below"
        threshold = "site threshold" if finding.site_calibrated else "threshold"
        unstable = (
            "<br><span style='color:#d07000'><b>Unstable:</b> the estimate changes with the "
            f"box (views differ by {finding.spread:.2f}); check the box.</span>"
            if finding.unstable
            else ""
        )
        self.wording.setText(
            f"{side.capitalize()} the {threshold} ({threshold_shown}) → "
            f"<b>{finding.call_text}</b>. Box, mirror and box jitters differ by "
            f"{finding.spread:.2f}. An AI estimate, not a diagnosis: the model learned "
            "radiologists' TI-RADS categories, not pathology." + unstable
        )
