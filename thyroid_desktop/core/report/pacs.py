"""Sending the report's DICOM objects to the PACS (C-STORE, ``pynetdicom``), through an
outbox: objects are written there first and removed only once the PACS has stored them, so
nothing is lost when it is down; :meth:`Outbox.send` (a retry) sends what is left.

The PACS settings (its AE title, host and port, and ours) are a small JSON file in the
app's user data folder, written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from thyroid_desktop.core.io.files import user_data_dir, write_atomically
from thyroid_desktop.core.report.audit import AuditLog, AuditRecord, utc_now

log = logging.getLogger(__name__)

SETTINGS_FILE = "pacs.json"
OUTBOX_FOLDER = "outbox"
#: The audit action of a report's objects all stored on the PACS (``core.analysis.Action``).
SEND_PACS = "send-pacs"
#: The outbox's audit notes (``Outbox.add``); not their temporary files.
AUDIT_NOTE = re.compile(r"\.audit-[0-9.]+\.json")
#: Our AE title when none is set (what the PACS sees as the calling AE).
DEFAULT_CALLING_AE = "THYROIDREVIEW"
#: Seconds to wait for the PACS to answer (connect, associate, each store).
DEFAULT_TIMEOUT_S = 30.0
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # no backslash, 16 characters

#: ``progress(done, total, name)``: called before each object is sent and once at the end.
Progress = Callable[[int, int, str], None]


class PacsError(Exception):
    """The PACS settings cannot be used (said for a clinician)."""


@dataclass(frozen=True)
class PacsSettings:
    """Where to send: the PACS's AE title, host and port, and our own (calling) AE title.

    Raises:
        PacsError: an AE title that DICOM does not allow (1-16 characters, no backslash),
            no host, or a port outside 1-65535.
    """

    ae_title: str
    host: str
    port: int
    calling_ae: str = DEFAULT_CALLING_AE
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        for name, value in (
            ("the PACS's AE title", self.ae_title),
            ("our AE title", self.calling_ae),
        ):
            if not _AE_TITLE.match(value.strip()):
                raise PacsError(f"{name} must be 1-16 characters without a backslash: {value!r}")
        if not self.host.strip():
            raise PacsError("the PACS's host is missing")
        try:
            port = int(self.port)
        except (TypeError, ValueError):
            raise PacsError(f"the port must be a number: {self.port!r}") from None
        if not 0 < port < 65536:
            raise PacsError(f"the port must be 1-65535: {port}")
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "ae_title", self.ae_title.strip())
        object.__setattr__(self, "calling_ae", self.calling_ae.strip())
        object.__setattr__(self, "host", self.host.strip())

    @classmethod
    def parse(cls, text: str, calling_ae: str = DEFAULT_CALLING_AE) -> PacsSettings:
        """``AE@HOST:PORT`` (as the CLI's ``--send`` takes it), e.g. ``ORTHANC@pacs:4242``."""
        m = re.fullmatch(r"(?P<ae>[^@]+)@(?P<host>.+):(?P<port>\d+)", text.strip())
        if m is None:
            raise PacsError(f"give the PACS as AE@HOST:PORT, got {text!r}")
        return cls(m["ae"], m["host"].strip("[]"), int(m["port"]), calling_ae)

    @property
    def text(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def settings_path() -> Path:
    return user_data_dir() / SETTINGS_FILE


def load_settings(path: str | os.PathLike[str] | None = None) -> PacsSettings | None:
    """The saved PACS settings; None when none are saved.

    Raises:
        PacsError: the file is there but cannot be read or used.
    """
    path = Path(path or settings_path())
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return PacsSettings(**{k: data[k] for k in data if k in PacsSettings.__dataclass_fields__})
    except (OSError, ValueError, TypeError) as err:
        raise PacsError(f"the PACS settings in {path} cannot be read: {err}") from err


def save_settings(settings: PacsSettings, path: str | os.PathLike[str] | None = None) -> Path:
    """Writes the settings atomically (the folder is made when missing)."""
    path = Path(path or settings_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(asdict(settings), indent=2)
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# ------------------------------------------------------------------------- sending
@dataclass(frozen=True)
class StoreOutcome:
    """One object's fate: stored (``ok``), or why not (``error``, for a clinician)."""

    path: Path
    description: str
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class SendResult:
    destination: str
    outcomes: tuple[StoreOutcome, ...]
    #: Why the audit records of what arrived could not be written ("" when they were).
    audit_problem: str = ""

    @property
    def sent(self) -> int:
        return sum(o.ok for o in self.outcomes)

    @property
    def failed(self) -> tuple[StoreOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.ok)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def summary(self) -> str:
        """The message in one line (the panel and status bar; ``message`` lists each object):
        "0 of 6 object(s) stored on X; 6 not stored: <reason>" when they share one reason."""
        head = f"{self.sent} of {len(self.outcomes)} object(s) stored on {self.destination}"
        if self.ok:
            return head
        reasons = {o.error for o in self.failed}
        why = next(iter(reasons)) if len(reasons) == 1 else "several reasons, see the details"
        return f"{head}; {len(self.failed)} not stored: {why}"

    @property
    def message(self) -> str:
        head = f"{self.sent} of {len(self.outcomes)} object(s) stored on {self.destination}"
        if self.ok:
            return head
        return "\n".join(
            [head + "; not stored:", *(f"  {o.description}: {o.error}" for o in self.failed)]
        )


def describe(ds) -> str:
    """An object in a few words: "SR report_sr.dcm (Comprehensive 3D SR Storage)"."""
    from pydicom.uid import UID

    kind = UID(str(ds.get("SOPClassUID", ""))).name or "unknown kind"
    return f"{ds.get('Modality', '?')} {ds.get('SeriesDescription', '')} ({kind})".replace(
        "  ", " "
    )


def send_files(
    files: Sequence[str | os.PathLike[str]],
    settings: PacsSettings,
    progress: Progress | None = None,
    on_stored: Callable[[Path], None] | None = None,
) -> SendResult:
    """Stores each file on the PACS in one association (C-STORE); one outcome per file with a
    clear error for each that was not stored (unreadable, refused, the PACS unreachable).
    ``on_stored`` is called for each file the PACS confirmed."""
    from pydicom import dcmread
    from pynetdicom import AE

    paths = [Path(f) for f in files]
    outcomes: list[StoreOutcome] = []
    datasets = []
    for p in paths:
        try:
            datasets.append((p, dcmread(p)))
        except Exception as err:  # one bad file never stops the others
            outcomes.append(StoreOutcome(p, p.name, False, f"not a readable DICOM file ({err})"))
    ae = AE(ae_title=settings.calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = settings.timeout_s
    ae.connection_timeout = settings.timeout_s
    for klass, syntax in sorted(
        {(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for _, ds in datasets}
    ):
        ae.add_requested_context(klass, syntax)
    total = len(paths)
    if datasets:
        assoc = ae.associate(settings.host, settings.port, ae_title=settings.ae_title)
        if not assoc.is_established:
            why = not_connected(settings, assoc)
            outcomes += [
                StoreOutcome(p, f"{p.name}: {describe(ds)}", False, why) for p, ds in datasets
            ]
            datasets = []
        try:
            for p, ds in datasets:
                name = f"{p.name}: {describe(ds)}"
                if progress is not None:
                    progress(len(outcomes), total, name)
                outcomes.append(_store(assoc, p, ds, name, on_stored))
        finally:
            if assoc.is_established:
                assoc.release()
    if progress is not None:
        progress(total, total, "")
    order = {p: i for i, p in enumerate(paths)}
    outcomes.sort(key=lambda o: order[o.path])
    result = SendResult(settings.text, tuple(outcomes))
    log.info("%s", result.message)
    return result


def not_connected(settings: PacsSettings, assoc) -> str:
    """Why no association was made: the PACS refused it (it answers on its port: AE titles),
    or it cannot be reached at all (pynetdicom reports both as an abort)."""
    import socket

    if not assoc.is_rejected:
        try:
            with socket.create_connection((settings.host, settings.port), timeout=5):
                pass
        except OSError:
            return (
                f"the PACS {settings.text} cannot be reached (is it running? host, port and "
                "network)"
            )
    return (
        f"the PACS {settings.text} refused the association (check its AE title and that it "
        f"knows ours, {settings.calling_ae})"
    )


def _store(assoc, path: Path, ds, name: str, on_stored) -> StoreOutcome:
    if not assoc.is_established:
        return StoreOutcome(path, name, False, "the PACS closed the connection")
    try:
        status = assoc.send_c_store(ds)
    except ValueError as err:  # no accepted presentation context for this kind of object
        return StoreOutcome(
            path, name, False, f"the PACS does not accept this kind of object ({err})"
        )
    except Exception as err:
        return StoreOutcome(path, name, False, f"sending failed ({type(err).__name__}: {err})")
    code = getattr(status, "Status", None)
    if code is None:
        return StoreOutcome(
            path, name, False, "no answer from the PACS (timeout or connection lost)"
        )
    # 0x0000 success; 0xB000, 0xB007, 0xB006: stored with a warning (coercion, elements
    # discarded): stored all the same.
    if code == 0x0000 or code in (0xB000, 0xB006, 0xB007):
        if on_stored is not None:
            on_stored(path)
        return StoreOutcome(path, name, True)
    comment = str(status.get("ErrorComment", "")).strip()
    return StoreOutcome(
        path,
        name,
        False,
        f"refused by the PACS (status 0x{code:04X}{': ' + comment if comment else ''})",
    )


def echo(settings: PacsSettings) -> str:
    """A C-ECHO to the PACS: "" when it answers, else why not (for the settings dialog)."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=settings.calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = settings.timeout_s
    ae.connection_timeout = settings.timeout_s
    ae.add_requested_context(Verification)
    assoc = ae.associate(settings.host, settings.port, ae_title=settings.ae_title)
    if not assoc.is_established:
        return not_connected(settings, assoc)
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    return (
        ""
        if getattr(status, "Status", None) == 0x0000
        else f"{settings.text} did not answer the echo"
    )


# ------------------------------------------------------------------------- the outbox
class Outbox:
    """A folder of objects waiting for the PACS; each leaves it only once stored.

    Objects added together may come with the audit records their arrival writes
    (``add(files, audit)``): kept beside them (a hidden ``.audit-<uid>.json``) and appended to
    the audit log, as ``send-pacs``, by the send that stores the last of them, whichever
    send that is (this one, "Send waiting only" later, ``outbox --send``)."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder or user_data_dir() / OUTBOX_FOLDER)

    def add(
        self, files: Sequence[str | os.PathLike[str]], audit: Sequence[AuditRecord] = ()
    ) -> list[Path]:
        """Copies ``files`` into the outbox (atomically; named by their SOP Instance UID, so
        adding one twice keeps one copy) and, after them, ``audit``: the records to write once
        all of them are stored. Returns the outbox's copies."""
        from pydicom import dcmread

        self.folder.mkdir(parents=True, exist_ok=True)
        out = []
        for f in files:
            uid = str(dcmread(f, stop_before_pixels=True).SOPInstanceUID)
            target = self.folder / f"{uid}.dcm"
            write_atomically(target, lambda tmp, src=f: shutil.copyfile(src, tmp))
            out.append(target)
        if audit and out:  # after the files: a note never names objects that are not there
            note = {
                "waiting": [p.stem for p in out],
                "objects": len(out),
                "records": [asdict(r) for r in audit],
            }
            self._write_note(self.folder / f".audit-{out[0].stem}.json", note)
        return out

    @staticmethod
    def _write_note(path: Path, note: dict) -> None:
        text = json.dumps(note, sort_keys=True)
        write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def _settle(self, result: SendResult, audit: AuditLog | None) -> str:
        """Crosses the objects ``result`` stored off each audit note. A note with nothing left
        waiting has its records appended to ``audit`` (as ``send-pacs``, now) and is
        removed; without a log (``--no-audit``), or while the log cannot be written, it
        stays for a later send, which writes what is left. A note whose objects all left the
        outbox unsent (deleted by hand) is dropped. Never raises: the send has happened.
        Returns "" or why the log could not be written."""
        if not self.folder.is_dir():
            return ""
        stored = {o.path.stem for o in result.outcomes if o.ok}
        pending = {p.stem for p in self.pending()}
        fields = set(AuditRecord.__dataclass_fields__)
        problem = ""
        for path in sorted(p for p in self.folder.iterdir() if AUDIT_NOTE.fullmatch(p.name)):
            try:
                note = json.loads(path.read_text(encoding="utf-8"))
                waiting = [u for u in note["waiting"] if u not in stored]
                if waiting and not set(waiting) & pending:
                    log.warning("%s: its objects left the outbox unsent; dropped", path.name)
                    path.unlink()
                    continue
                if waiting != note["waiting"]:
                    note = {**note, "waiting": waiting}
                    self._write_note(path, note)
                if waiting or audit is None:
                    continue
                # every record made before any is written (a note from another version)
                records = [
                    AuditRecord(**{k: v for k, v in r.items() if k in fields})
                    for r in note["records"]
                ]
                said = f"all {note['objects']} object(s) stored on {result.destination}"
                done = 0
                try:
                    for r in records:
                        detail = "; ".join(x for x in (r.detail, said) if x)
                        audit.append(
                            dataclasses.replace(r, action=SEND_PACS, detail=detail, time=utc_now())
                        )
                        done += 1
                finally:  # a log that failed part-way: the next send writes the rest
                    if 0 < done < len(records):
                        self._write_note(path, {**note, "records": note["records"][done:]})
                path.unlink()
            except Exception as err:  # the objects were sent: say it, never raise
                log.warning("audit note %s: %s", path.name, err)
                problem = problem or f"audit log not written: {err}"
        return problem

    def send(
        self,
        settings: PacsSettings,
        progress: Progress | None = None,
        audit: AuditLog | None = None,
    ) -> SendResult:
        """Sends everything pending (a retry sends what is left); removes what was stored
        and writes, to ``audit``, the records of what has now all arrived (``add``); a log
        that cannot be written is said in the result's ``audit_problem``."""
        result = send_files(self.pending(), settings, progress, on_stored=_remove)
        problem = self._settle(result, audit)
        return dataclasses.replace(result, audit_problem=problem) if problem else result

    def pending(self) -> list[Path]:
        """What waits to be sent, oldest first."""
        if not self.folder.is_dir():
            return []
        files = [p for p in self.folder.glob("*.dcm") if not p.name.startswith(".")]
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))

    def pending_studies(self) -> set[str]:
        """The StudyInstanceUIDs of what waits ("" for a file whose header cannot be read)."""
        import pydicom

        out = set()
        for path in self.pending():
            try:
                out.add(str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID))
            except (OSError, AttributeError, pydicom.errors.InvalidDicomError):
                out.add("")
        return out


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError as err:  # stored, but it stays: a retry sends it again (harmless)
        log.warning("%s stored but not removed from the outbox: %s", path, err)
