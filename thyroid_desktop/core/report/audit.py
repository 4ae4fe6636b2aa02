"""Append-only audit log of every analysis: one JSON object per line.

Each record is written with a single ``write`` on a file opened for appending, then flushed
and synced, so a crash never leaves half a line and earlier lines are never rewritten.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from thyroid_desktop.core.io.files import user_data_dir
from thyroid_desktop.core.pipeline.roi import ROI


def default_log_path() -> Path:
    """``audit.jsonl`` in the user data folder (``THYROID_AUDIT_LOG`` overrides it)."""
    if os.environ.get("THYROID_AUDIT_LOG"):
        return Path(os.environ["THYROID_AUDIT_LOG"])
    return user_data_dir() / "audit.jsonl"


def utc_now() -> str:
    """A record's time: now, UTC, ISO 8601 to the millisecond."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class AuditRecord:
    """What was analysed, with which model, with what result, and what the user did."""

    action: str  # e.g. "analyse", "auto-detect", "export-report"
    image_sha256: str
    roi: list[int] | None
    roi_source: str | None
    model_id: str
    probability: float | None
    file: str | None = None
    frame: int | None = None  # 0-based, for a cine loop
    no_estimate_reason: str | None = None
    calibration: str | None = None  # "shipped" or the site profile's name
    #: AI TI-RADS suggestions (group -> category name) made for this box, if any.
    tirads_suggested: dict[str, str] | None = None
    #: What the clinician did with them (group -> accepted/changed/open/chosen), if known.
    tirads_review: dict[str, str] | None = None
    #: The out-of-scope refusal the clinician overrode ("Analyse anyway"), if any.
    scope_override: str | None = None
    #: What the action was about, in words (e.g. the patients of a "new study or add
    #: anyway?" question and the answer).
    detail: str | None = None
    #: The study's nodule the record is about ("N1"), for a report's, CSV's or PACS's lines.
    nodule: str | None = None
    time: str = field(default_factory=utc_now)


def record_for(action: str, sha256: str, roi: ROI | None, **kwargs) -> AuditRecord:
    return AuditRecord(action, sha256, roi.as_list() if roi else None, **kwargs)


class AuditLog:
    """Appends records to a JSON-lines file, creating its folder on first use."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path or default_log_path())

    def append(self, record: AuditRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(asdict(record), sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
