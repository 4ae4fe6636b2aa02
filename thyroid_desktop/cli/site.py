"""Headless validation and site calibration: ``validate``, ``recalibrate`` and ``profile``.

The exit codes of all three commands are :data:`EXIT_CODES` (also printed by ``--help``).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import TextIO

from thyroid_desktop.core.models.shipped import ModelError
from thyroid_desktop.core.site.profile import (
    DEFAULT_TARGET_SENSITIVITY,
    ProfileError,
    activate,
    active_name,
    choose_calibration,
    deactivate,
    fit_profile,
    incompatibility,
    list_profiles,
    load_profile,
    profile_path,
    save_profile,
)
from thyroid_desktop.core.site.validation import (
    LabelledFolderError,
    Validation,
    read_labelled_folder,
    save_validation,
    validate,
)

OK, SOME_UNREADABLE, NOT_DONE, NO_MODEL, CANCELLED = 0, 1, 2, 3, 130
#: The help texts are constants, not parsed from docstrings (``python -OO`` strips those).
EXIT_CODES = f"""\
  {OK}  done (validate: figures computed from every listed file)
  {SOME_UNREADABLE}  done, but some files could not be read (they are listed; the rest were used)
  {NOT_DONE}  not done: the folder, its labels, the profile name or the profile cannot be
     used, or the folder does not allow the figures (e.g. only one class with an estimate)
  {NO_MODEL}  the bundled model is unavailable
  {CANCELLED} cancelled with Ctrl+C (validate writes a report of the images analysed so far)
"""
PROFILE_HELP = 'calibration to use: a saved site profile, or "shipped" (default: the active one)'


def add_parsers(sub) -> None:
    """Adds ``validate``, ``recalibrate`` and ``profile`` to the CLI's subparsers."""
    epilog = "exit codes:\n" + EXIT_CODES
    fmt = argparse.RawDescriptionHelpFormatter
    v = sub.add_parser(
        "validate",
        help="measure the model on a folder of your own labelled cases",
        description="Runs the app's default path over every image of a labelled folder "
        "(labels.csv: file,label[,case]) and writes a one-page PDF and a per-image JSON.",
        epilog=epilog,
        formatter_class=fmt,
    )
    v.add_argument("folder", type=Path)
    v.add_argument("--out", type=Path, default=Path("."), help="folder for the PDF and JSON")
    v.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    v.add_argument("--profile", metavar="NAME", help=PROFILE_HELP)
    v.add_argument("--models", type=Path, help="folder with model_card.json (default: bundled)")
    r = sub.add_parser(
        "recalibrate",
        help="fit a site calibration (probability mapping + threshold) on your labelled cases",
        description="Fits Platt scaling of the model's score and a threshold for a target "
        "sensitivity on a labelled folder, checked by grouped cross-validation, and saves it "
        "as a site profile. The shipped model is not changed.",
        epilog=epilog,
        formatter_class=fmt,
    )
    r.add_argument("folder", type=Path)
    r.add_argument("--name", required=True, help="name of the new profile (e.g. clinic-2026)")
    r.add_argument(
        "--sensitivity",
        type=float,
        default=DEFAULT_TARGET_SENSITIVITY,
        help="target sensitivity of the threshold (default %(default)s)",
    )
    r.add_argument(
        "--activate",
        action="store_true",
        help="make it the active calibration, unless out of fold it calibrates the cases "
        "worse than the shipped calibration (then `profile use NAME` does)",
    )
    r.add_argument("--replace", action="store_true", help="replace a profile of that name")
    r.add_argument(
        "--force",
        action="store_true",
        help="fit even when the AUROC's 95 %% CI reaches 0.5 (no evidence the model ranks "
        "this site's nodules)",
    )
    r.add_argument("--out", type=Path, help="also write the validation PDF and JSON here")
    r.add_argument("--json", action="store_true", help="print the profile as JSON")
    r.add_argument("--models", type=Path, help="folder with model_card.json (default: bundled)")
    p = sub.add_parser(
        "profile",
        help="list, activate or reset the site calibration",
        epilog=epilog,
        formatter_class=fmt,
    )
    p.add_argument("--models", type=Path, help="folder with model_card.json (default: bundled)")
    ps = p.add_subparsers(dest="profile_command", required=True)
    lst = ps.add_parser("list", help="saved profiles; * marks the active one")
    lst.add_argument("--json", action="store_true")
    use = ps.add_parser("use", help="make a saved profile the active calibration")
    use.add_argument("name")
    ps.add_parser("reset", help="back to the shipped calibration")
    show = ps.add_parser("show", help="print a saved profile with its figures")
    show.add_argument("name")


class TextProgress:
    """A text progress bar on stderr: redrawn in place on a terminal, else a line per 10 %."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self._last_decile = -1

    def __call__(self, done: int, total: int, name: str) -> None:
        filled = self.width * done // max(total, 1)
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {name}"
        if self.tty:
            self.stream.write("\r" + line[:100].ljust(100))
        elif (decile := 10 * done // max(total, 1)) != self._last_decile or done == total:
            self._last_decile = decile
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class _CtrlC:
    """While active, Ctrl+C asks the run to stop after the current image (a second one
    interrupts at once)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._old = None

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self.event

    def _handle(self, *_):
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        print("\nstopping after the current image (Ctrl+C again to abort)", file=sys.stderr)

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _err(text: str) -> None:
    print(f"error: {text}", file=sys.stderr)


def _load_models(models: Path | None):
    from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter

    return load_classifier(models), load_segmenter(models)


def _run_validation(args, profile: str | None) -> tuple[Validation | None, int]:
    """Reads the folder, loads the models, applies the calibration and analyses every image;
    returns the run (None when it could not start) and the exit code so far."""
    try:
        folder = read_labelled_folder(args.folder)
    except LabelledFolderError as err:
        _err(str(err))
        return None, NOT_DONE
    try:
        classifier, segmenter = _load_models(args.models)
    except ModelError as err:
        _err(str(err))
        return None, NO_MODEL
    try:
        chosen = choose_calibration(classifier, profile)
    except ProfileError as err:
        _err(str(err))
        return None, NOT_DONE
    print(f"calibration: {chosen.message}", file=sys.stderr)
    print(f"{len(folder.images)} labelled images in {folder.root}", file=sys.stderr)
    bar = TextProgress()
    with _CtrlC() as stop:
        validation = validate(folder, classifier, segmenter, progress=bar, cancel=stop.is_set)
    bar.close()
    code = OK
    if validation.cancelled:
        code = CANCELLED
    elif validation.metrics is None:
        code = NOT_DONE
    elif validation.unreadable:
        code = SOME_UNREADABLE
    return validation, code


def validate_command(args: argparse.Namespace) -> int:
    validation, code = _run_validation(args, args.profile)
    if validation is None:
        return code
    try:
        files = save_validation(validation, args.out)
    except OSError as err:
        _err(f"the report could not be written to {args.out}: {err}")
        return NOT_DONE
    if args.json:
        summary = {k: v for k, v in validation.to_dict().items() if k != "images"}
        summary.update(pdf=str(files.pdf), json=str(files.json), exit_code=code)
        print(json.dumps(summary))
    else:
        print("\n".join(validation.summary_lines()))
        for r in validation.unreadable:
            print(f"Unreadable: {r.error}")
        print(f"Report: {files.pdf}\nPer-image results: {files.json}")
    return code


def recalibrate_command(args: argparse.Namespace) -> int:
    try:  # fail on a bad name before minutes of analysis
        path = profile_path(args.name)
        if path.exists() and not args.replace:
            raise ProfileError(
                f"a site profile named {args.name!r} exists already ({path}); "
                "choose another name or pass --replace"
            )
        if not 0.0 < args.sensitivity < 1.0:
            raise ProfileError("--sensitivity must lie between 0 and 1 (e.g. 0.9)")
    except ProfileError as err:
        _err(str(err))
        return NOT_DONE
    # Always fitted on the shipped calibration's run: the profile maps the model's own score.
    validation, code = _run_validation(args, "shipped")
    if validation is None or code == CANCELLED:
        return code
    if args.out is not None:
        files = save_validation(validation, args.out)
        print(f"Validation report (shipped calibration): {files.pdf}", file=sys.stderr)
    try:
        profile = fit_profile(validation, args.sensitivity, args.name, force=args.force)
        saved = save_profile(profile, replace=args.replace)
        # A profile worse than the shipped calibration out of fold is saved, not put in use
        # (as the wizard does): ``profile use`` puts it in use when the user wants it anyway.
        activated = args.activate and not profile.worse_than_shipped
        if activated:
            activate(profile.name, profile.model_id, profile.model_sha256)
        # --replace of the profile in use: a worse fit must not stay in use under its name
        withdrawn = profile.worse_than_shipped and active_name() == profile.name
        if withdrawn:
            deactivate()
    except ProfileError as err:
        _err(str(err) + (" with --force" if "force the fit" in str(err) else ""))
        return NOT_DONE
    if args.json:
        print(
            json.dumps(
                {
                    **profile.to_dict(),
                    "validated": profile.validated,
                    "site_validation": validation.site_validation.to_dict(),
                    "path": str(saved),
                    "active": activated,
                    "not_activated_reason": (
                        profile.worse_text() if args.activate or withdrawn else ""
                    ),
                }
            )
        )
    else:
        print("\n".join(profile_report(profile)))
        print(f"Saved: {saved}")
        use = f"python -m thyroid_desktop profile use {profile.name}"
        if activated:
            print("Active: yes (predict, validate and the app use it)")
        elif args.activate or withdrawn:
            back = " (the shipped calibration is in use again)" if withdrawn else ""
            print(f"NOT put in use{back}: {profile.worse_text()}; to use it anyway: {use}")
        else:
            print(f"Not active: {use}")
    return SOME_UNREADABLE if validation.unreadable else OK


def profile_report(profile) -> list[str]:
    """The profile's figures in plain text (recalibrate, profile show)."""
    card = profile.card
    fit, cv = card.get("fitted_on", {}), card.get("cv", {})
    before, after = cv.get("before", {}), cv.get("after", {})
    lines = [
        f"Site profile {profile.name!r} for {profile.model_id}",
        f"Fitted on {fit.get('n_images')} images in {fit.get('n_cases')} cases "
        f"({fit.get('n_malignant')} malignant) of {fit.get('folder')}; "
        f"{fit.get('excluded_no_estimate', 0)} without an estimate and "
        f"{fit.get('unreadable', 0)} unreadable left out",
        f"Mapping: p = sigmoid({profile.a:.4f} * logit + {profile.b:+.4f}); threshold "
        f"{profile.threshold:.3f} (target sensitivity {profile.target_sensitivity:.2f})",
    ]
    if card.get("forced"):
        lines.append("FORCED: the AUROC's interval reaches 0.5 (no evidence the model ranks here)")
    statement = card.get("site_validation", {}).get("statement")
    lines.append(
        f"Site validation: {statement}"
        if statement
        else "Site validation: none recorded (a profile saved before this was kept)"
    )
    lines.append(
        f"Estimates under it: {profile.validation_text()}"
        + ("" if profile.validated else ' (they say "not validated at this site")')
    )
    if before and after:
        lines.append(f"Out-of-fold check ({cv.get('folds')} folds grouped by case):")
        for label, f in (("shipped", before), ("site", after)):
            lo, hi = f["auroc_ci95"]
            lines.append(
                f"  {label:8s} AUROC {f['auroc']:.3f} ({lo:.3f}-{hi:.3f})  ECE {f['ece']:.3f}  "
                f"Brier {f['brier']:.3f}  threshold {f['threshold']:.3f}: sensitivity "
                f"{f['sensitivity']:.3f}, specificity {f['specificity']:.3f}"
            )
    return lines


def profile_command(args: argparse.Namespace) -> int:
    from thyroid_desktop.core.models.shipped import load_card

    try:
        card = load_card(args.models)
    except ModelError as err:
        _err(str(err))
        return NO_MODEL
    sha = str(card.raw.get("sha256", ""))
    try:
        if args.profile_command == "list":
            return _list_profiles(card, sha, args.json)
        if args.profile_command == "use":
            profile = activate(args.name, card.id, sha)
            print(f"Active: site calibration {profile.name!r} ({profile.summary()})")
            if why := profile.worse_text():
                print(f"Note: {why}; `profile reset` goes back to the shipped calibration")
        elif args.profile_command == "reset":
            deactivate()
            print(f"Active: shipped calibration (threshold {card.threshold:.3f})")
        elif args.profile_command == "show":
            profile = load_profile(args.name)
            print("\n".join(profile_report(profile)))
            if why := incompatibility(profile, card.id, sha):
                print(f"Not usable with the installed model: {why}")
    except ProfileError as err:
        _err(str(err))
        return NOT_DONE
    return OK


def _list_profiles(card, sha: str, as_json: bool) -> int:
    active = active_name()
    profiles = list_profiles()
    if as_json:
        print(
            json.dumps(
                {
                    "active": active,
                    "shipped": {"model_id": card.id, "threshold": card.threshold},
                    "profiles": [
                        {
                            **p.to_dict(),
                            "validated": p.validated,
                            "usable": not incompatibility(p, card.id, sha),
                            "why_not": incompatibility(p, card.id, sha) or None,
                        }
                        for p in profiles
                    ],
                }
            )
        )
        return OK
    applied = any(p.name == active and not incompatibility(p, card.id, sha) for p in profiles)
    mark = "*" if not applied else " "
    print(f"{mark} shipped calibration (threshold {card.threshold:.3f}, model {card.id})")
    for p in profiles:
        why = incompatibility(p, card.id, sha)
        mark = "*" if p.name == active and not why else " "
        print(f"{mark} {p.summary()}" + (f"  [NOT USABLE: {why}]" if why else ""))
    if active and not applied:
        print(f"The active pointer names {active!r}, which is missing or not usable here.")
    return OK
