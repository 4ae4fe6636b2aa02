"""The cine loop's frame control: slider, play/pause, frame number and a strip of the
detector's confidence per frame (the tallest bar is the frame the loop opened on)."""

from __future__ import annotations

import math

from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QToolButton, QVBoxLayout, QWidget

#: Frames per second while playing when the file does not say (DICOM FrameTime).
DEFAULT_FPS = 10.0


class ConfidenceStrip(QWidget):
    """One bar per frame: the detector's confidence there (grey: not searched yet)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.scores: list[float] = []
        self.current = 0
        self.setFixedHeight(18)
        self.setToolTip("Nodule detector confidence per frame")

    def set_scores(self, scores) -> None:
        self.scores = [float(s) for s in scores]
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        n = len(self.scores)
        if not n:
            return
        painter = QPainter(self)
        w, h = self.width() / n, self.height()
        for i, s in enumerate(self.scores):
            known = not math.isnan(s)
            colour = QColor("#f0a030") if i == self.current else QColor("#4a90d9")
            if not known:
                colour, s = QColor("#777777"), 0.08
            bar = max(1.0, s * (h - 2))
            painter.fillRect(QRectF(i * w + 0.5, h - bar, max(w - 1, 1), bar), colour)
        painter.end()


class FrameBar(QWidget):
    """Shown only for files with more than one frame.

    Signals:
        frameChanged(int): the user chose another frame (slider, keys, playing).
        playingChanged(bool): play started (True) or stopped (False).
    """

    frameChanged = Signal(int)
    playingChanged = Signal(bool)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.play_button = QToolButton()
        self.play_button.setText("▶")
        self.play_button.setToolTip("Play / pause the loop (Space)")
        self.play_button.setCheckable(True)
        self.play_button.toggled.connect(self.set_playing)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys go to the image, not here
        self.slider.valueChanged.connect(self._slider_moved)
        self.label = QLabel("")
        self.label.setMinimumWidth(110)
        self.strip = ConfidenceStrip()
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.play_button)
        row.addWidget(self.slider, 1)
        row.addWidget(self.label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addLayout(row)
        layout.addWidget(self.strip)
        self.timer = QTimer(self)
        self.timer.timeout.connect(lambda: self.step(1, wrap=True))
        self.n_frames = 1
        self.hide()

    @property
    def frame(self) -> int:
        return self.slider.value()

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def set_loop(self, n_frames: int, frame: int = 0, fps: float | None = None) -> None:
        """A new file: ``n_frames`` frames, showing ``frame``. Hidden for one frame."""
        self.set_playing(False)
        self.n_frames = max(int(n_frames), 1)
        self.timer.setInterval(int(1000 / (fps or DEFAULT_FPS)))
        self.slider.blockSignals(True)
        self.slider.setRange(0, self.n_frames - 1)
        self.slider.setValue(frame)
        self.slider.blockSignals(False)
        self.strip.set_scores([math.nan] * self.n_frames)
        self._update_label()
        self.setVisible(self.n_frames > 1)

    def set_frame(self, frame: int) -> None:
        """Shows ``frame`` without telling anyone (the window moved there itself)."""
        self.slider.blockSignals(True)
        self.slider.setValue(frame)
        self.slider.blockSignals(False)
        self._update_label()

    def set_scores(self, scores) -> None:
        self.strip.set_scores(scores)

    def step(self, delta: int, wrap: bool = False) -> None:
        if self.n_frames <= 1:
            return
        frame = self.frame + delta
        frame = frame % self.n_frames if wrap else min(max(frame, 0), self.n_frames - 1)
        self.slider.setValue(frame)  # emits frameChanged through _slider_moved

    def set_playing(self, on: bool) -> None:
        if on == self.playing or (on and self.n_frames <= 1):
            self.play_button.setChecked(self.playing)
            return
        self.timer.start() if on else self.timer.stop()
        self.play_button.blockSignals(True)
        self.play_button.setChecked(on)
        self.play_button.blockSignals(False)
        self.play_button.setText("⏸" if on else "▶")
        self.playingChanged.emit(on)

    def _slider_moved(self, value: int) -> None:
        self._update_label()
        self.frameChanged.emit(value)

    def _update_label(self) -> None:
        self.strip.current = self.frame
        self.strip.update()
        self.label.setText(f"Frame {self.frame + 1} / {self.n_frames}")
