"""The default file name of a report: the patient, the study date and "thyroid", safe on every
file system (the GUI's save dialog and the CLI both ask here)."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

#: Used when the images carry no patient ID (PNG, JPEG, a DICOM without one).
NO_PATIENT = "no-patient-id"
#: Longest patient part kept (DICOM's PatientID is at most 64 characters).
MAX_ID_CHARS = 64

_DATE_FORMATS = ("%Y%m%d", "%d %b %Y", "%Y-%m-%d", "%d.%m.%Y")


def _safe(text: str) -> str:
    """Letters, digits, "-" and "." only (accents dropped, anything else "_"), no leading
    dots or dashes: no path separators, no hidden files, nothing a shell or Windows refuses."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9.-]+", "_", ascii_text).strip("._-")
    return cleaned[:MAX_ID_CHARS].strip("._-")


def study_date_digits(value: str) -> str:
    """A study date as YYYYMMDD, read from DICOM's "20261127" or the report's "27 Nov 2026"
    (also 2026-11-27, 27.11.2026); "" when it is none of these."""
    text = value.strip()
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).strftime("%Y%m%d")
        except ValueError:
            continue
    return ""


def report_file_name(
    patient_id: str,
    study_date: str = "",
    today: dt.date | None = None,
    suffix: str = ".pdf",
) -> str:
    """``<PatientID>_<YYYYMMDD>_thyroid.pdf``, e.g. "P-0042_20261127_thyroid.pdf".

    The patient ID is made safe for file names (``NO_PATIENT`` when there is none, or nothing
    of it is left); the date is the study's, else ``today`` (the reading's date)."""
    patient = _safe(patient_id) or NO_PATIENT
    date = study_date_digits(study_date) or (today or dt.date.today()).strftime("%Y%m%d")
    return f"{patient}_{date}_thyroid{suffix}"
