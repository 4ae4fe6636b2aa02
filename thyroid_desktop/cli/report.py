"""``report``: the study report of confirmed nodules, as a PDF, as DICOM (SR, Encapsulated
PDF, key images) and sent to the PACS; ``outbox``: what still waits for the PACS, sent again.

A nodule is confirmed by what the command is given, as in the window: a box (``--roi``), a
click (``--point``), or the detector's proposal accepted as it is (``--accept-auto``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from thyroid_desktop.core.io.images import ImageLoadError
from thyroid_desktop.core.models.shipped import ModelError
from thyroid_desktop.core.pipeline.roi import ROI
from thyroid_desktop.core.report.pacs import Outbox, PacsError, PacsSettings, load_settings
from thyroid_desktop.core.site.profile import ProfileError, choose_calibration

OK, NOT_ALL, NOT_DONE, NO_MODEL = 0, 1, 2, 3
EXIT_CODES = f"""\
  {OK}  done: every file reported (and, with --send, every object stored on the PACS)
  {NOT_ALL}  done, but some files had no nodule or could not be read, or some objects were not
     stored on the PACS (they wait in the outbox: `outbox --send` sends them again)
  {NOT_DONE}  not done: nothing to report, or the options, PACS settings or profile cannot be used
  {NO_MODEL}  the bundled model is unavailable
"""
SEND_HELP = (
    "send to the PACS AE@HOST:PORT (e.g. ORTHANC@pacs.example:4242); without a value, the "
    "PACS saved in the app's settings"
)


def _roi(text: str) -> ROI:
    try:
        return ROI.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"the point must be two numbers x,y, got {text!r}"
        ) from None
    return x, y


def add_parsers(sub) -> None:
    """Adds ``report`` and ``outbox`` to the CLI's subparsers."""
    fmt = argparse.RawDescriptionHelpFormatter
    r = sub.add_parser(
        "report",
        help="study report of confirmed nodules: PDF, DICOM (SR, PDF, key images), PACS",
        description="Analyses each file's nodule (given by --roi, --point or --accept-auto) "
        "and writes the study report as a PDF; with --dicom also as DICOM objects in the "
        "images' study (a new study for images without DICOM); with --send stores those on "
        "the PACS through the outbox (nothing is lost when the PACS is down).",
        epilog="exit codes:\n" + EXIT_CODES,
        formatter_class=fmt,
    )
    r.add_argument("images", nargs="+", type=Path)
    r.add_argument(
        "--pdf",
        type=Path,
        required=True,
        help="the PDF report to write, or a folder to write <PatientID>_<YYYYMMDD>_thyroid.pdf in",
    )
    r.add_argument("--dicom", type=Path, metavar="DIR", help="write the DICOM objects here")
    r.add_argument("--send", nargs="?", const="", metavar="AE@HOST:PORT", help=SEND_HELP)
    r.add_argument("--calling-ae", help="our AE title (default: the saved one, THYROIDREVIEW)")
    r.add_argument(
        "--supersedes",
        type=Path,
        action="append",
        default=[],
        metavar="SR",
        help="an earlier report_sr.dcm of this study that the new SR replaces (repeat for "
        "more): it names them in its Predecessor Documents Sequence and, if this app wrote "
        "them, is their series' next instance; an SR of another study is refused",
    )
    which = r.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--roi",
        type=_roi,
        action="append",
        metavar="X,Y,W,H",
        help="the nodule's box in image pixels: once for every file, or once per file",
    )
    which.add_argument(
        "--point",
        type=_point,
        action="append",
        metavar="X,Y",
        help="a click inside the nodule: once for every file, or once per file",
    )
    which.add_argument(
        "--accept-auto",
        action="store_true",
        help="accept each file's detected nodule (the detector's proposal) as it is",
    )
    r.add_argument("--frame", type=int, metavar="N", help="frame N (0-based) of a cine loop")
    r.add_argument("--operator", default="", help="who reads (on the report and in the SR)")
    r.add_argument("--impression", default="", help="the impression text")
    r.add_argument("--patient-name", default="", help="for images without DICOM")
    r.add_argument("--patient-id", default="", help="for images without DICOM")
    r.add_argument("--outbox", type=Path, help="outbox folder (default: the app's)")
    r.add_argument(
        "--force",
        action="store_true",
        help="report images the scope check refuses as not thyroid ultrasound anyway (marked "
        "outside the validated scope; audited)",
    )
    r.add_argument("--no-audit", action="store_true", help="do not write the audit log")
    r.add_argument("--models", type=Path, help="folder with model_card.json (default: bundled)")
    r.add_argument("--profile", metavar="NAME", help="calibration: a site profile or shipped")
    o = sub.add_parser(
        "outbox",
        help="list the DICOM objects waiting for the PACS; --send sends them again",
        epilog="exit codes:\n" + EXIT_CODES,
        formatter_class=fmt,
    )
    o.add_argument("--send", nargs="?", const="", metavar="AE@HOST:PORT", help=SEND_HELP)
    o.add_argument("--calling-ae", help="our AE title (default: the saved one, THYROIDREVIEW)")
    o.add_argument("--outbox", type=Path, help="outbox folder (default: the app's)")
    o.add_argument(
        "--no-audit",
        action="store_true",
        help="do not write the send-pacs lines of reports that have now all arrived "
        "(they wait in the outbox for a later send with the log)",
    )


def destination(text: str, calling_ae: str | None) -> PacsSettings:
    """The PACS to send to: ``text`` (AE@HOST:PORT) or, when empty, the saved settings.

    Raises:
        PacsError: neither given nor saved, or not usable.
    """
    saved = load_settings()
    if text:
        ours = calling_ae or (saved.calling_ae if saved else None)
        return PacsSettings.parse(text, **({"calling_ae": ours} if ours else {}))
    if saved is None:
        raise PacsError("no PACS is set: give --send AE@HOST:PORT or set it in the app")
    if calling_ae:
        return PacsSettings(saved.ae_title, saved.host, saved.port, calling_ae, saved.timeout_s)
    return saved


def _progress(done: int, total: int, name: str) -> None:
    if name:
        print(f"sending {done + 1}/{total}: {name}", file=sys.stderr, flush=True)


def send(outbox: Outbox, settings: PacsSettings, audit=None) -> int:
    return OK if sent(outbox, settings, audit).ok else NOT_ALL


def sent(outbox: Outbox, settings: PacsSettings, audit=None):
    """Sends the outbox (writing to ``audit`` what has now all arrived: ``Outbox.add``) and
    says how it went; the send's result."""
    import logging

    # pynetdicom logs each refused association itself; our per-object errors say it better.
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    result = outbox.send(settings, _progress, audit)
    print(f"PACS: {result.message}")
    if result.audit_problem:
        print(f"warning: {result.audit_problem}", file=sys.stderr)
    left = outbox.pending()
    if left:
        print(f"{len(left)} object(s) kept in the outbox {outbox.folder}; `outbox --send` retries")
    return result


def _per_file(values: list | None, n: int, what: str) -> list:
    if values is None:
        return [None] * n
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ValueError(f"give {what} once for every file, or once per file ({n})")
    return values


def report_command(args: argparse.Namespace) -> int:
    from thyroid_desktop.core.analysis import Action, AnalysisService
    from thyroid_desktop.core.clinical.measure import finding_size
    from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter
    from thyroid_desktop.core.pipeline.roi import BoxSource
    from thyroid_desktop.core.report.audit import AuditLog
    from thyroid_desktop.core.report.dicom_out import (
        DicomExportError,
        SrVersion,
        export_study_dicom,
    )
    from thyroid_desktop.core.report.names import report_file_name
    from thyroid_desktop.core.report.pdf import NoduleReport, StudyInfo, write_study_report
    from thyroid_desktop.core.review.session import tracking_uid

    n = len(args.images)
    try:
        rois = _per_file(args.roi, n, "--roi")
        points = _per_file(args.point, n, "--point")
        settings = destination(args.send, args.calling_ae) if args.send is not None else None
        if args.supersedes and args.dicom is None and args.send is None:
            raise ValueError("--supersedes needs --dicom or --send: it is about the DICOM SR")
        previous = sorted(
            (SrVersion.read(p) for p in args.supersedes), key=lambda v: v.instance_number
        )
    except (ValueError, PacsError, DicomExportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return NOT_DONE
    try:
        classifier = load_classifier(args.models)
        segmenter = load_segmenter(args.models)
    except ModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return NO_MODEL
    try:
        calibration = choose_calibration(classifier, args.profile)
    except ProfileError as err:
        print(f"error: {err}", file=sys.stderr)
        return NOT_DONE
    print(f"calibration: {calibration.message}", file=sys.stderr)
    service = AnalysisService(classifier, segmenter, None if args.no_audit else AuditLog())
    items, failed = [], 0
    for path, roi, point in zip(args.images, rois, points, strict=True):
        try:
            result = service.analyse_file(
                path, args.frame, roi, Action.CLI, point=point, force=args.force
            )
        except (ImageLoadError, ValueError) as err:
            print(f"{path}: ERROR {err}", file=sys.stderr)
            failed += 1
            continue
        f = result.finding
        if f.roi_source in (BoxSource.NONE, BoxSource.FULL):
            why = (
                f"no estimate: {f.no_estimate_reason}"
                + " (--force reports it anyway)" * result.can_force
                if result.refused
                else "no nodule found: give --roi or --point"
            )
            print(f"{path}: {why}", file=sys.stderr)
            failed += 1
            continue
        nodule_id = f"N{len(items) + 1}"
        size = result.size or finding_size(f, result.image.scale)
        items.append(
            NoduleReport(
                nodule_id=nodule_id,
                location="",
                image=result.image,
                finding=f,
                size=size,
                tirads=None,
                uid=tracking_uid(result.image.sha256, result.image.frame_index, f.roi),
            )
        )
        estimate = (
            f"{f.shown()[0]} {f.call_text}" + "".join(f"; {c}" for c in f.caveats)
            if f.in_scope
            else f"no estimate ({f.no_estimate_reason})"
        )
        print(f"{nodule_id}: {path} box {f.roi.as_list()} ({f.roi_source}): {estimate}")
    if not items:
        print("error: no nodule to report", file=sys.stderr)
        return NOT_DONE
    first = items[0].image.metadata
    study = StudyInfo.from_metadata(
        first,
        **{
            k: v
            for k, v in (
                ("patient_name", args.patient_name),
                ("patient_id", args.patient_id),
                ("operator", args.operator),
                ("impression", args.impression),
            )
            if v
        },
    )
    out = args.pdf
    if out.is_dir():  # a folder: the report's default name (patient, study date, "thyroid")
        out = out / report_file_name(study.patient_id, study.study_date)
    try:
        pdf = write_study_report(out, items, classifier.card, study)
    except OSError as err:
        print(f"error: {out}: {err}", file=sys.stderr)
        return NOT_DONE
    service.record_report(items, detail=f"study PDF {pdf}")
    print(f"PDF: {pdf}")
    if args.dicom is None and settings is None:
        return NOT_ALL if failed else OK
    with tempfile.TemporaryDirectory(prefix="thyroid-dicom-") as tmp:
        try:
            export = export_study_dicom(
                args.dicom or tmp,
                items,
                classifier.card,
                study,
                pdf,
                previous=previous,
                all_of_study=True,
            )
        except (DicomExportError, OSError) as err:
            print(f"error: DICOM not written: {err}", file=sys.stderr)
            return NOT_DONE
        print(f"DICOM: {export.message}" + (f" in {args.dicom}" if args.dicom else ""))
        if args.dicom is not None:  # audited as the window's exports are
            service.record_report(items, Action.EXPORT_DICOM, export.message)
        code = OK
        if settings is not None:
            outbox = Outbox(args.outbox)
            # send-pacs is written by whichever send stores the last of them
            outbox.add(
                export.files, service.report_records(items, Action.SEND_PACS, export.message)
            )
            service.record_report(items, Action.QUEUE_PACS, export.message)
            result = sent(outbox, settings, service.audit)
            code = OK if result.ok else NOT_ALL
    return NOT_ALL if failed or code else OK


def outbox_command(args: argparse.Namespace) -> int:
    outbox = Outbox(args.outbox)
    pending = outbox.pending()
    print(f"{len(pending)} object(s) waiting in {outbox.folder}")
    if args.send is None or not pending:
        return OK
    try:
        settings = destination(args.send, args.calling_ae)
    except PacsError as err:
        print(f"error: {err}", file=sys.stderr)
        return NOT_DONE
    from thyroid_desktop.core.report.audit import AuditLog

    return send(outbox, settings, None if args.no_audit else AuditLog())
