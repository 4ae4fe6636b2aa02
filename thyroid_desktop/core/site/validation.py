"""Validation of the model on a site's own labelled cases: read the folder, run the app's
default path over every image, and measure discrimination and calibration.

A labelled folder is the format ``training`` reads: ``labels.csv`` with ``file,label``
(``benign``/``malignant`` or ``0``/``1``; paths relative to the folder) and an optional
case column (``case`` or ``group``) in ``labels.csv`` or in ``metadata.csv``. Without one,
files whose names differ only by a neighbouring number are one case (consecutive ids are
often the same nodule), as in training. Cases, not images, are what the bootstrap resamples.

Every image goes through the app's analysis service (``core.analysis``) exactly as the
window and ``predict`` analyse it on opening: a cine loop at the frame where the detector is
most confident, the auto-detected box, else the whole scan area, with the classifier's active
calibration.
Images without an estimate are excluded from the figures and counted with their reasons;
files that cannot be read are listed with theirs and the run goes on. Images the model was
trained on (:mod:`core.site.training_images`: the training collections' file and pixel hashes)
are analysed, listed and excluded from the figures: they cannot measure the model at a site.
A run counts as a validation at this site (:class:`SiteValidation`) only with at least
``MIN_VALIDATED_PER_CLASS`` cases of each class left. Qt-free.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import os
import re
import textwrap
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thyroid_desktop.core.analysis import AnalysisService
from thyroid_desktop.core.io.files import write_atomically
from thyroid_desktop.core.io.images import ImageLoadError
from thyroid_desktop.core.models.shipped import Classifier, Segmenter
from thyroid_desktop.core.site.calibration import (
    MIN_VALIDATED_PER_CLASS,
    SHIPPED,
    calibration_text,
    is_site_validation,
)
from thyroid_desktop.core.site.metrics import (
    N_BOOTSTRAP,
    N_CALIBRATION_BINS,
    Metrics,
    compute_metrics,
    proportion_ci95,
    roc_points,
)
from thyroid_desktop.core.site.training_images import (
    TrainingHashes,
    TrainingHashesError,
    load_training_hashes,
)

log = logging.getLogger(__name__)

LABELS = {"benign": 0, "malignant": 1, "0": 0, "1": 1}
#: Columns naming the case (patient/nodule) an image belongs to, in order of preference.
CASE_COLUMNS = ("case", "group")
#: Fewer images than this in either class: the report says the figures are very uncertain.
FEW_PER_CLASS = 30
#: Unreadable files named on the PDF page; the JSON lists all of them.
MAX_LISTED_ERRORS = 8
NOTICE = "For research use only. Not for use in diagnostic procedures."
LABEL_NOTE = (
    "The model was trained on TI-RADS-derived labels (TR 4-5 vs 2-3), not pathology; "
    "these figures measure how well it predicts the labels in labels.csv, whatever they are."
)

#: ``progress(done, total, file)`` after each image; ``cancel()`` True stops before the next.
Progress = Callable[[int, int, str], None]
Cancel = Callable[[], bool]


class LabelledFolderError(ValueError):
    """The folder cannot be validated; the message says why and what is expected."""


# -- the labelled folder ---------------------------------------------------------------------
@dataclass(frozen=True)
class LabelledImage:
    """One labelled image: ``file`` as written in labels.csv, its 0/1 label and case."""

    path: Path
    file: str
    label: int
    case: str


@dataclass(frozen=True)
class SkippedRow:
    """A labels.csv row that was not used (no usable label, listed twice)."""

    file: str
    reason: str


@dataclass(frozen=True)
class LabelledFolder:
    root: Path
    images: tuple[LabelledImage, ...]
    skipped: tuple[SkippedRow, ...] = ()
    #: Where the cases came from: a column, or "neighbouring file numbers".
    case_source: str = ""

    def subset(self, files: set[str]) -> LabelledFolder:
        """The same folder restricted to the images whose ``file`` is in ``files``."""
        return LabelledFolder(
            self.root, tuple(i for i in self.images if i.file in files), (), self.case_source
        )


def neighbour_groups(files: Sequence[str], max_gap: int = 1) -> list[str]:
    """Groups file names that share a stem and whose numbers are at most ``max_gap`` apart
    (``benign_41.jpg``, ``benign_42.jpg`` -> one case); the rule training uses."""
    parsed = []
    for f in files:
        m = re.match(r"^(.*?)(\d+)(\D*)$", Path(f).name)
        parsed.append((m.group(1) + "#" + m.group(3), int(m.group(2))) if m else (f, 0))
    groups = [""] * len(files)
    by_stem: dict[str, list[int]] = {}
    for i, (stem, _) in enumerate(parsed):
        by_stem.setdefault(stem, []).append(i)
    for stem, idx in by_stem.items():
        idx.sort(key=lambda i: parsed[i][1])
        run_start, prev = parsed[idx[0]][1], None
        for i in idx:
            n = parsed[i][1]
            if prev is not None and n - prev > max_gap:
                run_start = n
            groups[i] = f"{stem}@{run_start}"
            prev = n
    return groups


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return [
                {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
                for row in csv.DictReader(fh)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise LabelledFolderError(f"{path} cannot be read ({err}).") from err


def read_labelled_folder(root: str | os.PathLike[str]) -> LabelledFolder:
    """Reads ``labels.csv`` (and ``metadata.csv`` for the cases) of a labelled folder.

    Raises:
        LabelledFolderError: no folder, no labels.csv, no file/label column, or no usable row.
    """
    root = Path(root)
    labels_path = root / "labels.csv"
    if not root.is_dir():
        raise LabelledFolderError(f"{root} is not a folder.")
    if not labels_path.is_file():
        raise LabelledFolderError(
            f"{root} has no labels.csv: it needs one with the columns file,label "
            "(label benign/malignant or 0/1) and, ideally, case."
        )
    return _read_labels_csv(labels_path)


def read_labels(path: str | os.PathLike[str]) -> LabelledFolder:
    """A labelled folder (its ``labels.csv``) or a labels CSV file of any name, in the same
    format: ``file,label[,case]`` with paths relative to the CSV's folder (and that folder's
    ``metadata.csv`` for the cases). What the window's calibration wizard accepts.

    Raises:
        LabelledFolderError: as :func:`read_labelled_folder`, or a file that is not a CSV.
    """
    path = Path(path)
    if path.is_dir():
        return read_labelled_folder(path)
    if not path.is_file():
        raise LabelledFolderError(f"{path} does not exist.")
    if path.suffix.lower() not in (".csv", ".txt"):
        raise LabelledFolderError(
            f"{path} is not a labels CSV: choose a folder with labels.csv, or a CSV with the "
            "columns file,label (label benign/malignant or 0/1) and, ideally, case."
        )
    return _read_labels_csv(path)


def _read_labels_csv(labels_path: Path) -> LabelledFolder:
    root = labels_path.parent
    rows = _read_csv(labels_path)
    if not rows or "file" not in rows[0] or "label" not in rows[0]:
        raise LabelledFolderError(f"{labels_path} needs the columns file and label.")
    meta_path = root / "metadata.csv"
    meta = {}
    if meta_path.is_file():
        meta = {r.get("file", ""): r for r in _read_csv(meta_path) if r.get("file")}
    used, skipped, seen = [], [], set()
    for row in rows:
        label = row.get("label", "").lower()
        if row["file"] in seen:
            skipped.append(SkippedRow(row["file"], "listed twice in labels.csv"))
        elif not row["file"]:
            skipped.append(SkippedRow("", "a row without a file name"))
        elif label not in LABELS:
            reason = f"label {label!r} is not benign/malignant/0/1" if label else "no label"
            skipped.append(SkippedRow(row["file"], reason))
        else:
            seen.add(row["file"])
            used.append(row)
    if not used:
        raise LabelledFolderError(f"{labels_path} has no row with a benign/malignant label.")

    def case_of(row: dict[str, str]) -> tuple[str, str]:
        for source, values in (("labels.csv", row), ("metadata.csv", meta.get(row["file"], {}))):
            for col in CASE_COLUMNS:
                if values.get(col):
                    return values[col], f"{source} {col}"
        return "", ""

    cases = [case_of(r) for r in used]
    fallback = neighbour_groups([r["file"] for r in used])
    images = tuple(
        LabelledImage(root / r["file"], r["file"], LABELS[r["label"].lower()], case or near)
        for r, (case, _), near in zip(used, cases, fallback, strict=True)
    )
    sources = sorted({src for _, src in cases if src})
    if not sources:
        case_source = "neighbouring file numbers"
    elif all(src for _, src in cases):
        case_source = ", ".join(sources)
    else:
        case_source = ", ".join(sources) + " (else neighbouring file numbers)"
    return LabelledFolder(root, images, tuple(skipped), case_source)


# -- one image through the app's path --------------------------------------------------------
@dataclass(frozen=True)
class ImageResult:
    """What the app's default path gave for one labelled image.

    ``probability`` is under the calibration that was active (None: no estimate or not
    readable); ``shipped_probability`` is the shipped calibration of the same ``logit``, so
    a run under a site profile can be compared with the shipped numbers. ``frame`` is the
    frame analysed (a cine loop's best), ``roi`` the box, ``tirads_suggestion`` the AI's
    TI-RADS suggestion with the nodule's size, as ``predict --json`` writes them.
    """

    file: str
    label: int
    case: str
    probability: float | None = None
    shipped_probability: float | None = None
    logit: float | None = None
    threshold: float | None = None
    roi_source: str = ""
    spread: float | None = None
    unstable: bool = False
    no_estimate_reason: str = ""
    error: str = ""
    frame: int = 0
    n_frames: int = 1
    roi: list[int] | None = None
    tirads_suggestion: dict[str, Any] | None = None
    #: The nodule's size as ``predict --json`` gives it (``NoduleSize.to_json``).
    size: dict[str, Any] | None = None
    #: The model's training collection this image is from ("" when none or not checked).
    training_collection: str = ""

    @property
    def has_estimate(self) -> bool:
        return self.probability is not None and not self.error and not self.no_estimate_reason

    @property
    def from_training(self) -> bool:
        return bool(self.training_collection)

    @property
    def counts_for_site(self) -> bool:
        """An estimate on an image the model was not trained on: what site figures use."""
        return self.has_estimate and not self.from_training

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def analyse_image(
    item: LabelledImage, service: AnalysisService, training: TrainingHashes | None = None
) -> ImageResult:
    """One image as the app analyses it on opening (through ``service``, a cine loop at its
    best frame); any failure is this image's error. With ``training``, the analysed frame is
    looked up in the training collections' hashes (``training_collection``)."""
    try:
        result = service.analyse_file(  # validation is not audited
            item.path, action=None, scan_area_fallback=True
        )
    except ImageLoadError as err:
        return ImageResult(item.file, item.label, item.case, error=str(err))
    except MemoryError:
        reason = f"{item.path.name}: there is not enough memory to analyse this image"
        return ImageResult(item.file, item.label, item.case, error=reason)
    except Exception as err:  # one file's failure never stops the run
        log.debug("analysis of %s failed", item.path, exc_info=True)
        reason = f"{item.path.name}: the analysis failed ({type(err).__name__}: {err})"
        return ImageResult(item.file, item.label, item.case, error=reason)
    finding = result.finding
    shipped = service.classifier.shipped_calibration.apply(finding.logit)
    sug = finding.tirads_suggestion
    return ImageResult(
        file=item.file,
        label=item.label,
        case=item.case,
        probability=finding.estimate,
        shipped_probability=shipped if finding.in_scope else None,
        logit=finding.logit,
        threshold=finding.threshold,
        roi_source=finding.roi_source,
        spread=finding.spread,
        unstable=finding.unstable,
        no_estimate_reason=finding.no_estimate_reason,
        frame=result.frame,
        n_frames=result.n_frames,
        roi=finding.roi.as_list(),
        tirads_suggestion=sug.to_json() if sug is not None else None,
        size=result.size.to_json() if result.size is not None else None,
        training_collection=training.match(result.image) if training is not None else "",
    )


def analyse_folder(
    folder: LabelledFolder,
    classifier: Classifier,
    segmenter: Segmenter | None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    training: TrainingHashes | None = None,
) -> tuple[list[ImageResult], bool]:
    """Every image of ``folder`` in order, through the analysis service the window uses
    (audit off, as before); returns the results and whether it was cancelled (then only the
    images analysed before the cancel are in the results). ``training``: mark the images
    from the model's training collections (None: not checked)."""
    service = AnalysisService(classifier, segmenter, None)
    results: list[ImageResult] = []
    total = len(folder.images)
    for i, item in enumerate(folder.images):
        if cancel is not None and cancel():
            return results, True
        results.append(analyse_image(item, service, training))
        if progress is not None:
            progress(i + 1, total, item.file)
    return results, False


def reason_kind(reason: str) -> str:
    """The kind of a no-estimate reason, without its per-image numbers (for counting)."""
    return re.split(r":| \(", reason, maxsplit=1)[0].strip() or reason


# -- the whole run ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SiteValidation:
    """Whether a run counts as a validation of the model at this site, and why.

    ``validated_cases`` are the (benign, malignant) cases of the site's own images with an
    estimate: (0, 0) when the images could not be checked against the training collections
    or the run was cancelled. It counts when both reach ``MIN_VALIDATED_PER_CLASS``
    (``core.site.calibration.is_site_validation``, the rule ``Calibration.validated`` asks).
    """

    validated_cases: tuple[int, int]
    reason: str
    #: Images excluded as from the training collections, per collection.
    training_images: dict[str, int]

    @property
    def counts(self) -> bool:
        return is_site_validation(self.validated_cases)

    def statement(self) -> str:
        """One line for the CLI, the dialog and the PDF."""
        head = "counts as a validation at this site" if self.counts else "NOT a site validation"
        return f"{head}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "statement": self.statement(),
            "reason": self.reason,
            "benign_cases": self.validated_cases[0],
            "malignant_cases": self.validated_cases[1],
            "min_per_class": MIN_VALIDATED_PER_CLASS,
            "training_images_excluded": sum(self.training_images.values()),
            "training_collections": dict(self.training_images),
        }


def training_text(counts: dict[str, int]) -> str:
    """ "N images are from the model's training collections (ddti 40): excluded"."""
    n = sum(counts.values())
    by = ", ".join(f"{name} {k}" for name, k in sorted(counts.items()))
    verb = "image is" if n == 1 else "images are"
    return f"{n} {verb} from the model's training collections ({by}): excluded"


@dataclass(frozen=True)
class Validation:
    """A finished (or cancelled) validation run: per-image results and the figures."""

    folder: Path
    created: str
    model_id: str
    model_version: str
    model_sha256: str
    #: "shipped" or the name of the site profile that was active.
    calibration: str
    threshold: float
    shipped_threshold: float
    results: tuple[ImageResult, ...]
    skipped: tuple[SkippedRow, ...] = ()
    case_source: str = ""
    cancelled: bool = False
    #: Figures under the active calibration (None: could not be computed, see metrics_error).
    metrics: Metrics | None = None
    #: The same images under the shipped calibration, when a site profile was active.
    shipped_metrics: Metrics | None = None
    metrics_error: str = ""
    #: What the card says about the model (shown beside these figures).
    model_performance: str = ""
    notes: tuple[str, ...] = ()
    #: What the images were checked against (the training collections), "" when they were not.
    training_check: str = ""
    #: Why they were not checked ("" when they were).
    training_check_error: str = "the images were not checked against the training collections"

    @property
    def with_estimate(self) -> list[ImageResult]:
        """Every image with an estimate (training-collection images included)."""
        return [r for r in self.results if r.has_estimate]

    @property
    def site_results(self) -> list[ImageResult]:
        """The images the figures use: an estimate, and not from the training collections."""
        return [r for r in self.results if r.counts_for_site]

    @property
    def from_training(self) -> list[ImageResult]:
        return [r for r in self.results if r.from_training]

    @property
    def site_validation(self) -> SiteValidation:
        """Whether this run counts as a validation at this site, and why."""
        training = dict(Counter(r.training_collection for r in self.from_training))
        usable = self.site_results
        benign = len({r.case for r in usable if r.label == 0})
        malignant = len({r.case for r in usable if r.label == 1})
        why = []
        if training:
            why.append(training_text(training))
        checked = not self.training_check_error
        if not checked:
            why.append(
                f"the images could not be checked against the model's training collections "
                f"({self.training_check_error})"
            )
        if self.cancelled:
            why.append("the run was cancelled")
        cases = (benign, malignant) if checked and not self.cancelled else (0, 0)
        enough = "" if is_site_validation((benign, malignant)) else "only "
        why.append(
            f"{enough}{benign} benign and {malignant} malignant cases of the site's own with an "
            f"estimate (at least {MIN_VALIDATED_PER_CLASS} of each are needed)"
        )
        return SiteValidation(cases, "; ".join(why), training)

    @property
    def unreadable(self) -> list[ImageResult]:
        return [r for r in self.results if r.error]

    @property
    def no_estimate(self) -> Counter[str]:
        """How many readable images got no estimate, by kind of reason."""
        return Counter(
            reason_kind(r.no_estimate_reason)
            for r in self.results
            if not r.error and r.no_estimate_reason
        )

    def summary_lines(self) -> list[str]:
        """The run in a few lines of plain text (CLI, GUI)."""
        lines = [
            f"Validation of {self.model_id} v{self.model_version} on {self.folder}",
            f"Calibration: {calibration_text(self.calibration)}; threshold {self.threshold:.3f}",
            f"Images: {len(self.results)} analysed"
            + (" (CANCELLED: the figures cover these only)" if self.cancelled else "")
            + f", {len(self.with_estimate)} with an estimate, "
            f"{sum(self.no_estimate.values())} without, {len(self.unreadable)} unreadable"
            + (f"; {len(self.skipped)} labels.csv rows skipped" if self.skipped else ""),
        ]
        lines.append(f"Site validation: {self.site_validation.statement()}")
        if self.site_validation.counts and self.calibration == SHIPPED:
            lines.append(
                'Estimates still say "not validated at this site" under the shipped calibration: '
                "a site profile fitted from these cases (recalibrate) carries this validation"
            )
        m = self.metrics
        if m is None:
            lines.append(f"No figures: {self.metrics_error}")
        else:
            lines += [
                f"n = {m.n} in {m.n_cases} cases, {m.n_malignant} malignant "
                f"(prevalence {m.prevalence:.2f})",
                f"AUROC {m.auroc:.3f} ({auroc_ci_text(m, 3)}, bootstrap over cases)",
                f"At threshold {m.threshold:.3f}: sensitivity {m.sensitivity:.3f}, "
                f"specificity {m.specificity:.3f} (TP {m.confusion['tp']} FN {m.confusion['fn']} "
                f"TN {m.confusion['tn']} FP {m.confusion['fp']})",
                f"Calibration: ECE {m.ece:.3f} (10 bins), Brier {m.brier:.3f}",
            ]
            s = self.shipped_metrics
            if s is not None:
                lines.append(
                    f"Shipped calibration on the same images: ECE {s.ece:.3f}, Brier {s.brier:.3f}, "
                    f"sensitivity {s.sensitivity:.3f} / specificity {s.specificity:.3f} at "
                    f"{s.threshold:.3f}"
                )
        for kind, count in self.no_estimate.most_common():
            lines.append(f"No estimate ({count}): {kind}")
        lines += [f"Note: {n}" for n in self.notes]
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "thyroid-review validation",
            "folder": str(self.folder),
            "created": self.created,
            "model": {
                "id": self.model_id,
                "version": self.model_version,
                "sha256": self.model_sha256,
                "performance": self.model_performance,
            },
            "calibration": self.calibration,
            "threshold": self.threshold,
            "shipped_threshold": self.shipped_threshold,
            "case_source": self.case_source,
            "cancelled": self.cancelled,
            "metrics": self.metrics.to_dict() if self.metrics else None,
            "shipped_metrics": self.shipped_metrics.to_dict() if self.shipped_metrics else None,
            "metrics_error": self.metrics_error or None,
            "site_validation": self.site_validation.to_dict(),
            "training_check": self.training_check or None,
            "training_check_error": self.training_check_error or None,
            "counts": {
                "images": len(self.results),
                "with_estimate": len(self.with_estimate),
                "from_training": len(self.from_training),
                "no_estimate": sum(self.no_estimate.values()),
                "unreadable": len(self.unreadable),
                "skipped_rows": len(self.skipped),
            },
            "no_estimate_reasons": dict(self.no_estimate),
            "unreadable": [{"file": r.file, "error": r.error} for r in self.unreadable],
            "skipped_rows": [asdict(s) for s in self.skipped],
            "notes": list(self.notes),
            "labels_note": LABEL_NOTE,
            "images": [r.to_dict() for r in self.results],
        }


def summarise(
    folder: LabelledFolder,
    results: Sequence[ImageResult],
    classifier: Classifier,
    cancelled: bool = False,
    training: TrainingHashes | None = None,
    training_error: str = "",
) -> Validation:
    """The figures of a run; ``classifier`` is the one (and calibration) that made them.
    ``training``: the hashes ``results`` were checked against (None: not checked, then
    ``training_error`` says why). Images from the training collections are left out."""
    card = classifier.card
    profile = classifier.profile
    calibration = classifier.calibration
    threshold = calibration.threshold
    usable = [r for r in results if r.counts_for_site]
    y = [r.label for r in usable]
    cases = [r.case for r in usable]
    metrics = shipped = None
    error = ""
    try:
        metrics = compute_metrics(y, [r.probability for r in usable], cases, threshold)
        if not calibration.is_shipped:
            shipped = compute_metrics(
                y, [r.shipped_probability for r in usable], cases, card.threshold
            )
    except ValueError:
        n_pos = sum(y)
        n_training = sum(1 for r in results if r.from_training and r.has_estimate)
        if n_training and not usable:
            error = (
                f"all {n_training} images with an estimate are from the model's training "
                "collections, which cannot measure it at a site"
            )
        else:
            error = (
                f"the {len(usable)} images with an estimate are {n_pos} malignant and "
                f"{len(usable) - n_pos} benign: both kinds are needed"
            )
            if n_training:
                error += f" ({n_training} more are from the model's training collections: excluded)"
    notes = []
    if metrics is not None and min(metrics.n_malignant, metrics.n - metrics.n_malignant) < (
        FEW_PER_CLASS
    ):
        notes.append(
            f"fewer than {FEW_PER_CLASS} images in one class: the figures are very uncertain "
            "(read the interval, not the point value)"
        )
    if profile is not None:
        fitted_on = str(profile.card.get("fitted_on", {}).get("folder", ""))
        if fitted_on and _same_folder(fitted_on, folder.root):
            notes.append(
                f"the active site calibration {profile.name!r} was fitted on this folder: its "
                "calibration and threshold figures here are optimistic (not independent)"
            )
    if cancelled:
        notes.append("the run was cancelled before every image was analysed")
    return Validation(
        folder=folder.root,
        created=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        model_id=card.id,
        model_version=card.version,
        model_sha256=str(card.raw.get("sha256", "")),
        calibration=calibration.name,
        threshold=float(threshold),
        shipped_threshold=card.threshold,
        results=tuple(results),
        skipped=folder.skipped,
        case_source=folder.case_source,
        cancelled=cancelled,
        metrics=metrics,
        shipped_metrics=shipped,
        metrics_error=error,
        model_performance=card.performance_text(),
        notes=tuple(notes),
        training_check=training.describe() if training is not None else "",
        training_check_error=""
        if training is not None
        else training_error or Validation.training_check_error,
    )


def _same_folder(a: str, b: Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def validate(
    folder: str | os.PathLike[str] | LabelledFolder,
    classifier: Classifier,
    segmenter: Segmenter | None,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    training: TrainingHashes | None = None,
) -> Validation:
    """Reads the labelled folder, analyses every image and computes the figures, leaving
    out the images of the model's training collections (``training``; None: the list the
    classifier's model card names; when it cannot be read, the run goes on and says it is
    not a site validation).

    Raises:
        LabelledFolderError: the folder or its labels.csv cannot be used.
    """
    if not isinstance(folder, LabelledFolder):
        folder = read_labelled_folder(folder)
    error = ""
    if training is None:
        try:
            training = load_training_hashes(classifier.card)
        except TrainingHashesError as err:
            log.warning("validation without the training-collection check: %s", err)
            error = str(err)
    results, cancelled = analyse_folder(folder, classifier, segmenter, progress, cancel, training)
    return summarise(folder, results, classifier, cancelled, training, error)


# -- files -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ValidationFiles:
    pdf: Path
    json: Path


def output_stem(validation: Validation) -> str:
    """``validation_<folder>_<YYYYmmdd-HHMMSS>``: one run never overwrites another."""
    stamp = dt.datetime.fromisoformat(validation.created).strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", validation.folder.name) or "folder"
    return f"validation_{name}_{stamp}"


def save_validation(validation: Validation, out_dir: str | os.PathLike[str]) -> ValidationFiles:
    """Writes the one-page PDF and the per-image JSON into ``out_dir`` (each atomically)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = output_stem(validation)
    json_path = write_validation_json(out_dir / f"{stem}.json", validation)
    pdf_path = write_validation_pdf(out_dir / f"{stem}.pdf", validation)
    return ValidationFiles(pdf_path, json_path)


def write_validation_json(path: str | os.PathLike[str], validation: Validation) -> Path:
    text = json.dumps(validation.to_dict(), indent=1)
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_validation_pdf(path: str | os.PathLike[str], validation: Validation) -> Path:
    """A one-page A4 PDF: what was validated, the figures, ROC and reliability plots, what
    was left out and why. Written to a temporary file, then renamed to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig = validation_figure(validation)
    try:
        with matplotlib.rc_context({"pdf.fonttype": 42}):
            return write_atomically(path, lambda tmp: fig.savefig(tmp, format="pdf"))
    finally:
        plt.close(fig)


def validation_figure(validation: Validation):
    """The report page as a matplotlib figure (A4 portrait); the caller closes it."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    v, m = validation, validation.metrics
    fig = plt.figure(figsize=(8.27, 11.69))
    fig.text(0.06, 0.965, "Thyroid Review — validation on local cases", fontsize=16, weight="bold")
    fig.text(0.06, 0.945, NOTICE, fontsize=9, color="#b00020")
    rows: list[tuple[str, str]] = [
        ("Folder", str(v.folder)),
        ("Date", v.created.replace("T", " ")),
        ("Model", f"{v.model_id} v{v.model_version}   sha256 {v.model_sha256[:16]}…"),
        ("Calibration", f"{calibration_text(v.calibration)}, threshold {v.threshold:.3f}"),
        (
            "Images",
            f"{len(v.results)} analysed{' (run CANCELLED)' if v.cancelled else ''}: "
            f"{len(v.with_estimate)} with an estimate, {sum(v.no_estimate.values())} without, "
            f"{len(v.unreadable)} unreadable; {len(v.skipped)} labels.csv rows skipped",
        ),
        ("Cases from", v.case_source or "-"),
        ("Site validation", v.site_validation.statement()),
    ]
    if m is None:
        rows.append(("Figures", f"none: {v.metrics_error}"))
    else:
        c = m.confusion
        rows += [
            (
                "Used",
                f"n = {m.n} in {m.n_cases} cases, {m.n_malignant} malignant "
                f"(prevalence {m.prevalence:.2f})",
            ),
            (
                "AUROC",
                f"{m.auroc:.3f} ({auroc_ci_text(m, 3)}; {N_BOOTSTRAP} bootstrap resamples of "
                "cases)",
            ),
            (
                "At the threshold",
                f"sensitivity {m.sensitivity:.3f}, specificity {m.specificity:.3f} "
                f"(TP {c['tp']}, FN {c['fn']}, TN {c['tn']}, FP {c['fp']})",
            ),
            ("Calibration", f"ECE {m.ece:.3f} ({N_CALIBRATION_BINS} bins), Brier {m.brier:.3f}"),
        ]
        if v.shipped_metrics is not None:
            s = v.shipped_metrics
            rows.append(
                (
                    "Shipped calibration",
                    f"same images: ECE {s.ece:.3f}, Brier {s.brier:.3f}; at {s.threshold:.3f} "
                    f"sensitivity {s.sensitivity:.3f}, specificity {s.specificity:.3f}",
                )
            )
    for kind, count in v.no_estimate.most_common():
        rows.append(("No estimate", f"{count} × {kind}"))
    bad = v.unreadable
    for r in bad[:MAX_LISTED_ERRORS]:
        rows.append(("Unreadable", r.error))
    if len(bad) > MAX_LISTED_ERRORS:
        rows.append(("Unreadable", f"… and {len(bad) - MAX_LISTED_ERRORS} more (see the JSON)"))
    rows += [
        ("Model card", v.model_performance),
        ("Labels", LABEL_NOTE),
        *[("Note", n) for n in v.notes],
    ]
    y = 0.925
    for key, value in rows:
        wrapped = textwrap.wrap(value, 90) or ["-"]
        fig.text(0.06, y, key, fontsize=8.5, weight="bold", va="top")
        fig.text(0.25, y, "\n".join(wrapped), fontsize=8.5, va="top")
        y -= 0.018 + 0.0135 * (len(wrapped) - 1)
    if m is not None:
        top = max(min(y - 0.03, 0.52), 0.37)  # the text above, the footer below
        plot_roc(fig.add_axes((0.08, top - 0.30, 0.38, 0.27)), v)
        plot_reliability(fig.add_axes((0.57, top - 0.30, 0.38, 0.27)), v)
    fig.text(0.06, 0.04, NOTICE, fontsize=8, color="#b00020")
    return fig


def plot_roc(ax, validation: Validation) -> None:
    """The ROC curve of the site's images (the figures' images) on ``ax``, with the AUROC's
    95 % CI (bootstrap over cases) and the operating point at the threshold."""
    m = validation.metrics
    if m is None:
        ax.text(0.5, 0.5, "no figures", ha="center", va="center", transform=ax.transAxes)
        return
    usable = validation.site_results
    fpr, tpr = roc_points(
        np.array([r.label for r in usable]), np.array([r.probability for r in usable], dtype=float)
    )
    ax.plot(fpr, tpr, lw=2, label=f"AUROC {m.auroc:.3f} ({auroc_ci_text(m, 2)})")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.plot(
        1 - m.specificity, m.sensitivity, "o", color="#b00020",
        label=f"threshold {m.threshold:.3f}",
    )  # fmt: skip
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC", xlim=(0, 1))
    ax.legend(loc="lower right", fontsize=7)


def auroc_ci_text(m: Metrics, digits: int) -> str:
    """ "95 % CI 0.64–0.97"; when every bootstrap resample gives the same AUROC (a few cases
    separated perfectly: a trial's 10 cases read "1.000 (95 % CI 1.000–1.000)"), that no
    interval could be estimated, not a certainty the cases cannot give."""
    lo, hi = m.auroc_ci95
    if lo != lo or hi != hi:  # nan: no resample held both classes
        return f"no 95 % CI: no bootstrap resample of these {m.n_cases} cases held both classes"
    if not hi > lo:
        return f"no 95 % CI: every bootstrap resample of these {m.n_cases} cases gives the same"
    return f"95 % CI {lo:.{digits}f}–{hi:.{digits}f}"


def plot_reliability(ax, validation: Validation) -> None:
    """The reliability diagram on ``ax``: each bin's mean estimate against its observed
    malignant share with Wilson's 95 % interval (numbers: images per bin); the shipped
    calibration's bins beside a site profile's."""
    v, m = validation, validation.metrics
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    if m is None:
        ax.text(0.5, 0.5, "no figures", ha="center", va="center", transform=ax.transAxes)
        return
    if v.shipped_metrics is not None:
        sb = v.shipped_metrics.bins
        ax.plot(
            [b.mean_probability for b in sb],
            [b.observed for b in sb],
            "s:",
            color="grey",
            label=f"shipped (ECE {v.shipped_metrics.ece:.3f})",
        )
    x = np.array([b.mean_probability for b in m.bins])
    obs = np.array([b.observed for b in m.bins])
    ci = np.array([proportion_ci95(round(b.observed * b.n), b.n) for b in m.bins]).reshape(-1, 2)
    ax.errorbar(
        x,
        obs,
        yerr=np.clip(np.vstack([obs - ci[:, 0], ci[:, 1] - obs]), 0.0, None),
        fmt="o-",
        lw=2,
        capsize=3,
        label=f"{'site' if v.shipped_metrics is not None else 'shipped'} (ECE {m.ece:.3f}; "
        "bars: 95 % CI)",
    )
    for b in m.bins:
        ax.annotate(
            str(b.n), (b.mean_probability, b.observed), xytext=(4, -10), fontsize=7,
            textcoords="offset points",
        )  # fmt: skip
    ax.set(
        xlabel="estimate",
        ylabel="observed malignant share",
        title="Reliability (numbers: images per bin)",
        xlim=(-0.02, 1.02),
        ylim=(-0.02, 1.02),
    )
    ax.legend(loc="upper left", fontsize=7)


def validation_plots_png(validation: Validation, dpi: int = 100) -> bytes:
    """The ROC and reliability plots of the validation PDF side by side, as PNG bytes (the
    window shows them). Uses no pyplot state: safe in a worker thread."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 4.0), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    roc, rel = fig.subplots(1, 2)
    plot_roc(roc, validation)
    plot_reliability(rel, validation)
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
