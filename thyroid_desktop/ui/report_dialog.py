"""Before a PDF is written: the patient and study fields (from DICOM where present, else
typed, all optional), the operator and the operator's impression."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
)

from thyroid_desktop.core.report.pdf import NOTICE, StudyInfo

_FIELDS = (
    ("patient_name", "Patient name"),
    ("patient_id", "Patient ID"),
    ("birth_date", "Date of birth"),
    ("sex", "Sex"),
    ("study_date", "Study date"),
    ("accession", "Accession number"),
    ("operator", "Operator"),
)


class ReportDialog(QDialog):
    """Edits a ``StudyInfo``; ``study()`` returns what the user typed."""

    def __init__(self, initial: StudyInfo, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Report details")
        form = QFormLayout(self)
        note = QLabel("All fields are optional. Fields read from the DICOM file are filled in.")
        note.setWordWrap(True)
        form.addRow(note)
        self.edits: dict[str, QLineEdit] = {}
        for key, text in _FIELDS:
            edit = QLineEdit(getattr(initial, key))
            self.edits[key] = edit
            form.addRow(text, edit)
        self.impression = QPlainTextEdit(initial.impression)
        self.impression.setPlaceholderText("Operator's impression (free text)")
        form.addRow("Impression", self.impression)
        notice = QLabel(NOTICE)
        notice.setStyleSheet("color: #c0392b")
        form.addRow(notice)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.resize(460, 420)

    def study(self) -> StudyInfo:
        typed = {k: e.text().strip() for k, e in self.edits.items()}
        return dataclasses.replace(
            StudyInfo(), **typed, impression=self.impression.toPlainText().strip()
        )
