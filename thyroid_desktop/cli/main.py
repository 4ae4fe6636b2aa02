"""Headless use of the same core: ``python -m thyroid_desktop predict IMG ... --json``;
``validate``, ``recalibrate`` and ``profile`` are in :mod:`thyroid_desktop.cli.site`; ``report``
and ``outbox`` in :mod:`thyroid_desktop.cli.report`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from thyroid_desktop.cli import report as cli_report, site as cli_site
from thyroid_desktop.core.io.images import ImageLoadError
from thyroid_desktop.core.models.shipped import DEFAULT_OUTPUT_NAME as OUTPUT, ModelError
from thyroid_desktop.core.pipeline.roi import ROI
from thyroid_desktop.core.site.profile import ProfileError, choose_calibration

log = logging.getLogger(__name__)


#: ``no_estimate_reason`` when nothing was asked for and the detector found nothing.
NO_NODULE_HINT = "give --point, --stroke or --roi"
#: Contours with at most this many points are printed in the JSON (``contour``).
MAX_CONTOUR_POINTS = 200


def _roi(text: str) -> ROI:
    try:
        return ROI.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _numbers(text: str, n: int, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n or not all(v == v and abs(v) != float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"{what}, got {text!r}")
    return values


def _point(text: str) -> tuple[float, float]:
    return _numbers(text, 2, "the point must be two numbers x,y")  # type: ignore[return-value]


def _stroke(text: str) -> tuple[float, float, float, float]:
    return _numbers(text, 4, "the stroke must be four numbers x1,y1,x2,y2")  # type: ignore[return-value]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thyroid-review", description="Thyroid Review")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("predict", help="malignancy estimate for one or more images")
    p.add_argument("images", nargs="+", type=Path)
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--roi",
        type=_roi,
        help="nodule box x,y,w,h in image pixels, analysed as a box drawn in the window "
        "(default: the detector's proposal, a preliminary estimate; none when it finds "
        "nothing)",
    )
    where.add_argument(
        "--point",
        type=_point,
        metavar="X,Y",
        help="a click inside the nodule (image pixels): the nodule is outlined around it and "
        "its box analysed",
    )
    where.add_argument(
        "--stroke",
        type=_stroke,
        metavar="X1,Y1,X2,Y2",
        help="a line along the nodule's long axis (image pixels): the nodule is outlined "
        "along it and its box analysed",
    )
    where.add_argument(
        "--scan-area",
        action="store_true",
        help="analyse the whole scan area (no nodule box)",
    )
    p.add_argument(
        "--candidates",
        action="store_true",
        help="also list every detected nodule with its estimate",
    )
    frames = p.add_mutually_exclusive_group()
    frames.add_argument(
        "--frame",
        type=int,
        metavar="N",
        help="analyse frame N (0-based) of a cine loop (default: the frame where the detector "
        "is most confident)",
    )
    frames.add_argument(
        "--all-frames", action="store_true", help="analyse every frame of a cine loop"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per image per line")
    p.add_argument(
        "--force",
        action="store_true",
        help="analyse images the scope check refuses as not thyroid ultrasound anyway (the "
        "result says it lies outside the validated scope; recorded in the audit log)",
    )
    p.add_argument(
        "--no-audit", action="store_true", help="do not record the analyses in the audit log"
    )
    p.add_argument("--models", type=Path, help="folder with model_card.json (default: bundled)")
    p.add_argument("--profile", metavar="NAME", help=cli_site.PROFILE_HELP)
    cli_site.add_parsers(sub)
    cli_report.add_parsers(sub)
    return parser


def commands() -> dict[str, str]:
    """Every command with its one-line help, in the parser's order."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {c.dest: c.help or "" for c in sub._choices_actions}


def _rounded(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def finding_record(finding) -> dict:
    """The JSON fields of one analysis (``probability`` is null when there is no estimate;
    ``roi`` and ``logit`` are null when nothing was found and nothing analysed)."""
    from thyroid_desktop.core.analysis import NO_NODULE
    from thyroid_desktop.core.pipeline.roi import BoxSource

    nothing = finding.roi_source is BoxSource.NONE
    reason = finding.no_estimate_reason
    if nothing and reason == NO_NODULE:
        reason = f"{NO_NODULE}: {NO_NODULE_HINT}"
    return {
        "output": OUTPUT,
        "probability": _rounded(finding.estimate),
        # the model's score, also without an estimate (null: the model did not run)
        "logit": None if nothing else _rounded(finding.logit),
        "no_estimate_reason": reason or None,
        "call": finding.call_text,
        "label": finding.label if finding.in_scope else None,
        "threshold": finding.threshold,
        "spread": round(finding.spread, 6),
        "unstable": finding.unstable,
        "novelty": _rounded(finding.novelty, 3),
        "calibration": finding.calibration,
        "profile": finding.calibration if finding.site_calibrated else None,
        "roi": None if nothing else finding.roi.as_list(),
        "roi_source": finding.roi_source,
        "preliminary": finding.roi_source is BoxSource.AUTO,
        "model": finding.model_id,
        "ms": round(finding.timings_ms["total"], 1),
        "tirads_suggestion": (
            finding.tirads_suggestion.to_json() if finding.tirads_suggestion is not None else None
        ),
        "caveats": list(finding.caveats),
        "scope_override": finding.overridden_reason or None,
        **({"warning": "; ".join(finding.warnings)} if finding.warnings else {}),
        **({"notes": list(finding.notes)} if finding.notes else {}),
    }


def segmentation_record(seg) -> dict:
    """The JSON fields of a click's or a stroke's outline (the contour when it is short)."""
    contour = seg.contour
    return {
        "size_uncertain": seg.size_uncertain,
        "size_uncertain_reason": seg.reason or None,
        "segmentation_score": round(seg.score, 4),
        **(
            {"contour": [list(p) for p in contour]}
            if 0 < len(contour) <= MAX_CONTOUR_POINTS
            else {"contour_points": len(contour)}
        ),
    }


def predict_command(args: argparse.Namespace) -> int:
    """Prints a result (or an error) per image (per frame with ``--all-frames``); non-zero
    exit if any image failed."""
    from thyroid_desktop.core.analysis import Action, AnalysisService
    from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter
    from thyroid_desktop.core.report.audit import AuditLog

    if args.frame is not None and args.frame < 0:
        print("error: --frame must be 0 or more", file=sys.stderr)
        return 2
    asked = args.roi or args.point or args.stroke or args.scan_area
    if args.all_frames and asked:
        print(
            "error: --all-frames analyses each frame's proposal; give --frame N with --roi, "
            "--point, --stroke or --scan-area",
            file=sys.stderr,
        )
        return 2
    try:
        classifier = load_classifier(args.models)
        # With --roi too: the segmenter picks a cine loop's frame and masks the nodule in
        # the box (shape and size), exactly as for a box drawn in the window.
        segmenter = load_segmenter(args.models)
    except ModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    try:
        calibration = choose_calibration(classifier, args.profile)
    except ProfileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"calibration: {calibration.message}", file=sys.stderr)
    service = AnalysisService(classifier, segmenter, None if args.no_audit else AuditLog())
    failed = 0
    for path in args.images:
        try:
            action = Action.CLI  # recorded as analyse-anyway where a refusal was overridden
            if args.all_frames:
                results = service.analyse_all_frames(path, action, force=args.force)
            else:
                results = [
                    service.analyse_file(
                        path,
                        args.frame,
                        args.roi,
                        action,
                        point=args.point,
                        stroke=args.stroke,
                        scan_area=args.scan_area,
                        force=args.force,
                    )
                ]
            records = [result_record(service, path, r, args.candidates) for r in results]
        except (ImageLoadError, ValueError) as err:
            records = [{"file": str(path), "error": str(err)}]
        except MemoryError:  # this file only: the others are still analysed
            records = [
                {
                    "file": str(path),
                    "error": f"{path.name}: there is not enough memory to analyse this image",
                }
            ]
        except Exception as err:  # never lose the other files to one file's failure
            log.debug("analysis of %s failed", path, exc_info=True)
            records = [
                {
                    "file": str(path),
                    "error": f"{path.name}: the analysis failed ({type(err).__name__}: {err})",
                }
            ]
        for record in records:
            failed += "error" in record
            print(json.dumps(record) if args.json else record_text(path, record), flush=True)
    return 1 if failed else 0


def result_record(service, path: Path, result, candidates: bool) -> dict:
    """The JSON object of one analysed frame."""
    from thyroid_desktop.core.analysis import Action

    record: dict = {"file": str(path), "frame": result.frame, "n_frames": result.n_frames}
    record.update(finding_record(result.finding))
    size = result.size
    record["size"] = size.to_json() if size is not None else None
    if result.segmentation is not None:
        record.update(segmentation_record(result.segmentation))
    verdict = result.scope
    record["scope"] = (
        None
        if verdict is None
        else {
            "in_scope": verdict.in_scope,
            "score": _rounded(verdict.score),  # 6 digits, as the probability
            "threshold": _rounded(verdict.threshold),
            "reason": verdict.reason or None,
            "can_force": result.can_force,
            "header_evidence": verdict.evidence or None,
        }
    )
    if result.frame_scores is not None:
        record["frame_scores"] = [
            None if s != s else round(s, 4) for s in result.frame_scores.scores
        ]
    if candidates and result.detection is None:
        record["candidates"] = []  # refused as out of scope, or no detector: nothing searched
    elif candidates:
        record["candidates"] = [
            {
                "roi": c.roi.as_list(),
                "score": round(c.score, 4),
                "probability": _rounded(
                    service.analyse(
                        result.image,
                        c.roi,
                        Action.CLI,
                        result.detection,
                        force=bool(result.finding.overridden_reason),
                    ).finding.estimate
                ),
            }
            for c in result.detection.candidates
        ]
    if result.audit_problem:
        record["audit"] = result.audit_problem
    return record


def record_text(path: Path, record: dict) -> str:
    """One human-readable line per analysed frame."""
    if "error" in record:
        return f"{path}: ERROR {record['error']}"
    # Counted from 1 as the window, the report and the PDF say it ("frame 18 of 30"); the
    # JSON's ``frame`` and ``--frame`` are 0-based indices.
    n = record["n_frames"]
    where = f" frame {record['frame'] + 1} of {n} (index {record['frame']})" if n > 1 else ""
    if record["probability"] is None:
        force = (
            " (--force analyses it anyway)" if (record.get("scope") or {}).get("can_force") else ""
        )
        return f"{path}{where}: no estimate ({record['no_estimate_reason']}){force}"
    from thyroid_desktop.core.analysis import shown_numbers

    shown, threshold = shown_numbers(record["probability"], record["threshold"], 3)
    return (
        f"{path}{where}: {OUTPUT} {shown} ± {record['spread'] / 2:.3f} "
        f"-> {record['call']} (threshold {threshold}"
        + (f", site calibration {record['profile']!r}" if record["profile"] else "")
        + f", roi {record['roi']} "
        f"{record['roi_source']}{', UNSTABLE' if record['unstable'] else ''}"
        + (", preliminary (proposal)" if record["preliminary"] else "")
        + (
            f", size uncertain: {record['size_uncertain_reason']}"
            if record.get("size_uncertain")
            else ""
        )
        + ")"
        + "".join(f"; {c}" for c in record.get("caveats", ()))
        + _suggestion_text(record.get("tirads_suggestion"))
    )


def _suggestion_text(s: dict | None) -> str:
    """The AI-only TI-RADS suggestion in a few words (empty when there is none)."""
    if not s:
        return ""
    gaps = (
        ""
        if s["complete"]
        else ", incomplete: "
        + ", ".join(
            g
            for g in ("composition", "echogenicity", "shape", "margin", "echogenic_foci")
            if not s[g]
        )
    )
    return f"; AI TI-RADS suggestion {s['level']} ({s['points']} points{gaps}, to be confirmed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # pydicom warns about damaged files it still reads; the command says what is wrong
    # with a file in its own words, so those warnings are not printed as well
    warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")
    if args.command == "predict":
        return predict_command(args)
    if args.command == "validate":
        return cli_site.validate_command(args)
    if args.command == "recalibrate":
        return cli_site.recalibrate_command(args)
    if args.command == "profile":
        return cli_site.profile_command(args)
    if args.command == "report":
        return cli_report.report_command(args)
    if args.command == "outbox":
        return cli_report.outbox_command(args)
    build_parser().print_help()
    return 2
