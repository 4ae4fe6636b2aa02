"""Site calibration: a clinic refits the probability mapping and the threshold on its own
labelled cases, without touching the shipped model.

A :class:`SiteProfile` gives a :class:`~core.site.calibration.Calibration` named after the
site (Platt scaling of the model's mean logit, ``p = sigmoid(a * logit + b)``, and a threshold
chosen for a target sensitivity), fitted by :func:`fit_profile` from a validation run
(:mod:`core.site.validation`), with the figures that show what it does. It only re-maps the
score: it cannot make the model rank a site's nodules better (AUROC), only make the number
mean what it says there, and move the operating point. A profile carries the validation it
was fitted from (``validated_cases``): its calibration counts as validated at this site only
when that run had enough of the site's own cases (``Calibration.validated``); profiles saved
before this was kept read as not validated. Profiles are JSON files in
``<user data>/site_profiles/``; a pointer file ``active`` names the one in use. A profile
fitted for another model is never applied.

Reference: J. Platt, "Probabilistic outputs for support vector machines and comparisons to
regularized likelihood methods", Advances in Large Margin Classifiers (1999): the fit uses
its prior-corrected targets, so a small or separable set gives finite a and b.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thyroid_desktop.core.io.files import user_data_dir, write_atomically
from thyroid_desktop.core.site.calibration import (
    MIN_VALIDATED_PER_CLASS,
    SHIPPED,
    Calibration,
    CalibrationError,
    calibration_text,
    fit_platt,
    sigmoid,
)
from thyroid_desktop.core.site.metrics import (
    auroc,
    bootstrap_auroc_ci,
    brier,
    expected_calibration_error,
    operating_point,
    threshold_for_sensitivity,
)
from thyroid_desktop.core.site.validation import ImageResult, Validation

log = logging.getLogger(__name__)

#: Overrides the user data folder (tests, portable installs).
PROFILES_FOLDER = "site_profiles"
ACTIVE_POINTER = "active"
PROFILE_FORMAT = 1
DEFAULT_TARGET_SENSITIVITY = 0.90
#: Grouped folds of the out-of-fold check (fewer when there are fewer cases in a class).
N_FOLDS = 5
FOLD_SEED = 0
#: A profile needs at least this many images with an estimate in each class.
MIN_PER_CLASS = 10
#: Names that would clash with the pointer file or mean "no profile".
RESERVED_NAMES = {SHIPPED, "active", "none"}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
METHOD = (
    "Platt scaling p = sigmoid(a * logit + b) of the model's mean logit (Platt 1999 "
    "prior-corrected targets, Newton); threshold: the highest that keeps out-of-fold "
    "sensitivity >= the target, folds grouped by case"
)


class ProfileError(Exception):
    """A profile cannot be fitted, read, saved or used here; the message says why."""


def profiles_dir() -> Path:
    return user_data_dir() / PROFILES_FOLDER


def check_name(name: str) -> str:
    """The name if it can be a profile's file name, else ProfileError saying why."""
    if not NAME_PATTERN.match(name or "") or name.lower() in RESERVED_NAMES:
        raise ProfileError(
            f"{name!r} cannot name a site profile: use 1-64 letters, digits, '-', '_' or '.', "
            f"starting with a letter or digit, and not {', '.join(sorted(RESERVED_NAMES))}."
        )
    return name


@dataclass(frozen=True)
class SiteProfile:
    """A site's own calibration of one model (its :attr:`calibration`: probability mapping
    and threshold) with what it was fitted on. The JSON keeps ``a``, ``b`` and ``threshold``
    at the top level, as every saved profile has.

    ``card`` holds what the site should know about it: the cases it was fitted on and the
    out-of-fold figures before and after (see :func:`fit_profile`), and ``site_validation``,
    whether that run counted as a validation at this site and why. ``validated_cases`` are
    that run's (benign, malignant) cases of the site's own ((0, 0): none, or an older file).
    """

    name: str
    model_id: str
    a: float
    b: float
    threshold: float
    target_sensitivity: float
    created: str
    n_images: int
    n_cases: int
    model_sha256: str = ""
    card: dict[str, Any] = field(default_factory=dict, compare=False)
    validated_cases: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        check_name(self.name)
        try:  # Calibration's rule: a > 0 and finite, b finite, 0 < threshold < 1
            _ = self.calibration
        except CalibrationError as err:
            raise ProfileError(f"site profile {self.name!r}: {err}") from err

    @property
    def calibration(self) -> Calibration:
        """The mapping and threshold, named after the profile."""
        return Calibration(
            self.name,
            self.a,
            self.b,
            self.threshold,
            f"site profile fitted {self.created[:10]} on {self.n_images} images in "
            f"{self.n_cases} cases for {self.model_id}",
            self.validated_cases,
        )

    @property
    def validated(self) -> bool:
        """True when it was fitted from a validation at this site (``Calibration.validated``)."""
        return self.calibration.validated

    def probability(self, logit: float) -> float:
        """The site-calibrated probability of one mean logit."""
        return self.calibration.apply(float(logit))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PROFILE_FORMAT,
            "name": self.name,
            "model_id": self.model_id,
            "model_sha256": self.model_sha256,
            "a": self.a,
            "b": self.b,
            "threshold": self.threshold,
            "target_sensitivity": self.target_sensitivity,
            "created": self.created,
            "n_images": self.n_images,
            "n_cases": self.n_cases,
            "validated_cases": list(self.validated_cases),
            "card": self.card,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SiteProfile:
        try:
            return cls(
                name=str(data["name"]),
                model_id=str(data["model_id"]),
                a=float(data["a"]),
                b=float(data["b"]),
                threshold=float(data["threshold"]),
                target_sensitivity=float(data["target_sensitivity"]),
                created=str(data.get("created", "")),
                n_images=int(data.get("n_images", 0)),
                n_cases=int(data.get("n_cases", 0)),
                model_sha256=str(data.get("model_sha256", "")),
                card=dict(data.get("card", {})),
                # profiles saved before this was kept: not validated at this site
                validated_cases=tuple(int(n) for n in data.get("validated_cases") or (0, 0)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ProfileError(f"the profile lacks or mangles a field ({err})") from err

    def cv_text(self) -> str:
        """The out-of-fold figures before (the shipped calibration) and after (this
        profile), e.g. "out of fold: AUROC 0.83 -> 0.75, ECE 0.187 -> 0.207, Brier 0.174 ->
        0.202"; "" for a profile saved without them."""
        cv = self.card.get("cv", {})
        before, after = cv.get("before", {}), cv.get("after", {})
        parts = [
            f"{name} {before[key]:{fmt}} -> {after[key]:{fmt}}"
            for key, name, fmt in (
                ("auroc", "AUROC", ".2f"),
                ("ece", "ECE", ".3f"),
                ("brier", "Brier", ".3f"),
            )  # fmt: skip
            if key in before and key in after
        ]
        return "out of fold: " + ", ".join(parts) if parts else ""

    @property
    def worse_than_shipped(self) -> bool:
        """Out of fold, the profile's estimates of the site's own cases are worse than the
        shipped calibration's by the Brier score (a proper score; the binned ECE of a few
        dozen cases is too noisy to decide alone): it should not be put in use without the
        clinician choosing it (a GUI trial's wizard activated one silently)."""
        cv = self.card.get("cv", {})
        before, after = cv.get("before", {}), cv.get("after", {})
        if "brier" not in before or "brier" not in after:
            return False
        return after["brier"] > before["brier"]

    def worse_text(self) -> str:
        """Why the profile is not put in use without the user choosing it ("" when it is not
        worse than the shipped calibration): the wizard, ``recalibrate --activate``, the Site
        calibration menu and ``profile use`` all say it."""
        if not self.worse_than_shipped:
            return ""
        return (
            "it calibrates the site's own cases worse than the shipped calibration "
            f"({self.cv_text()})"
        )

    def summary(self) -> str:
        """One line: name, threshold, what it was fitted on, the out-of-fold ECE and Brier
        score before/after (the Brier score decides :attr:`worse_than_shipped`)."""
        cv = self.card.get("cv", {})
        before, after = cv.get("before", {}), cv.get("after", {})
        figures = [
            f"{name} {before[key]:.3f} -> {after[key]:.3f}"
            for key, name in (("ece", "ECE"), ("brier", "Brier"))
            if key in before and key in after
        ]
        worse = " (worse than the shipped calibration)" if self.worse_than_shipped else ""
        cv_part = f"; out-of-fold {', '.join(figures)}{worse}" if figures else ""
        return (
            f"{self.name}: threshold {self.threshold:.3f} (target sensitivity "
            f"{self.target_sensitivity:.2f}), {self.n_images} images in {self.n_cases} cases, "
            f"fitted {self.created[:10]} for {self.model_id}{cv_part}; {self.validation_text()}"
        )

    def validation_text(self) -> str:
        """ "validated at this site (60 benign, 55 malignant cases)" or "not validated at
        this site (...)"."""
        b, m = self.validated_cases
        if self.validated:
            return f"validated at this site ({b} benign, {m} malignant cases)"
        return (
            f"not validated at this site ({b} benign, {m} malignant cases of the site's own; "
            f"{MIN_VALIDATED_PER_CLASS} of each are needed)"
        )


# -- fitting ---------------------------------------------------------------------------------
def grouped_folds(cases: Sequence[str], labels: Sequence[int], k: int, seed: int = FOLD_SEED):
    """Fold number (0..k-1) per image: a case never spans two folds; cases with a
    malignant image and all-benign cases are dealt out to the folds separately (stratified)."""
    cases_arr = np.asarray(cases)
    y = np.asarray(labels, dtype=int)
    uniq, inv = np.unique(cases_arr, return_inverse=True)
    malignant_case = np.zeros(len(uniq), dtype=bool)
    np.logical_or.at(malignant_case, inv, y == 1)
    rng = np.random.default_rng(seed)
    fold_of_case = np.empty(len(uniq), dtype=int)
    start = 0
    for stratum in (True, False):
        members = rng.permutation(np.flatnonzero(malignant_case == stratum))
        fold_of_case[members] = (start + np.arange(len(members))) % k
        start = (start + len(members)) % k  # the next stratum fills the emptier folds first
    return fold_of_case[inv]


def _figures(y, p, cases, threshold) -> dict[str, Any]:
    return {
        "auroc": auroc(y, p),
        "auroc_ci95": list(bootstrap_auroc_ci(y, p, cases)),
        "ece": expected_calibration_error(y, p),
        "brier": brier(y, p),
        **operating_point(y, p, threshold).to_dict(),
    }


def fit_profile(
    results: Validation,
    target_sensitivity: float = DEFAULT_TARGET_SENSITIVITY,
    name: str = "site",
    force: bool = False,
) -> SiteProfile:
    """Fits a site profile to a validation run of the shipped model.

    Platt scaling is fitted in grouped K-fold CV (each fold's cases get the mapping fitted on
    the other folds) to measure it honestly: out-of-fold AUROC, ECE, Brier before (shipped
    calibration and threshold) and after go into the profile's card. The threshold is the
    highest that keeps the out-of-fold sensitivity at or above ``target_sensitivity``; the
    mapping itself is then refitted on all cases. Images without an estimate, and images from
    the model's training collections (``ImageResult.from_training``), are left out. The
    profile carries the run's ``site_validation``: whether it counts as a validation at this
    site.

    A profile only re-maps the score, so it is refused where nothing shows that the score
    ranks this site's nodules: the AUROC's 95 % interval (bootstrap over cases) reaches 0.5
    (``force`` fits it anyway), or the fitted slope is not positive (never fitted).

    Raises:
        ProfileError: a bad name or target, too few images or cases per class, or a site
            where the model's score does not (demonstrably) rise with malignancy.
    """
    check_name(name)
    if not 0.0 < target_sensitivity < 1.0:
        raise ProfileError(
            f"the target sensitivity must lie between 0 and 1, not {target_sensitivity}"
        )
    usable: list[ImageResult] = [
        r for r in results.results if r.counts_for_site and r.logit is not None
    ]
    y = np.array([r.label for r in usable], dtype=int)
    z = np.array([r.logit for r in usable], dtype=float)
    shipped = np.array([r.shipped_probability for r in usable], dtype=float)
    cases = [r.case for r in usable]
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if min(n_pos, n_neg) < MIN_PER_CLASS:
        n_training = sum(1 for r in results.results if r.from_training)
        raise ProfileError(
            f"a site profile needs at least {MIN_PER_CLASS} benign and {MIN_PER_CLASS} malignant "
            f"images with an estimate; this folder has {n_neg} benign and {n_pos} malignant"
            + (
                f" of the site's own ({n_training} images from the model's training "
                "collections were excluded)"
                if n_training
                else ""
            )
        )
    malignant_cases = {c for c, label in zip(cases, y, strict=True) if label == 1}
    n_folds = min(N_FOLDS, len(malignant_cases), len(set(cases) - malignant_cases))
    if n_folds < 2:
        raise ProfileError(
            "a site profile needs at least 2 cases with a malignant image and 2 all-benign "
            "cases (the out-of-fold check never splits a case)"
        )
    folds = grouped_folds(cases, y, n_folds)
    oof = np.empty(len(y))
    fold_slopes = []
    for f in range(n_folds):
        test = folds == f
        a_f, b_f = fit_platt(z[~test], y[~test])
        fold_slopes.append(a_f)
        oof[test] = sigmoid(a_f * z[test] + b_f)
    a, b = fit_platt(z, y)
    before = _figures(y, shipped, cases, results.shipped_threshold)
    site_auroc, (ci_low, ci_high) = before["auroc"], before["auroc_ci95"]
    if a <= 0:
        raise ProfileError(
            f"on these cases the model's score does not rise with malignancy (AUROC "
            f"{site_auroc:.2f}, fitted slope {a:.3f}): a recalibration would flatten or invert "
            "the model. The model does not rank this site's nodules; no profile was fitted"
        )
    if not ci_low > 0.5 and not force:
        raise ProfileError(
            f"nothing shows that the model ranks this site's nodules: AUROC {site_auroc:.2f}, "
            f"95 % CI {ci_low:.2f}-{ci_high:.2f} reaches 0.5. A profile would map every nodule "
            "to about the prevalence and its threshold would mean little. Validate on more "
            "cases (or force the fit, knowing this)"
        )
    site_validation = results.site_validation
    threshold = threshold_for_sensitivity(y, oof, target_sensitivity)
    threshold = min(max(threshold, 1e-6), 1 - 1e-6)
    final = sigmoid(a * z + b)
    card = {
        "method": METHOD,
        "labels": "as supplied in the site's labels.csv",
        "fitted_on": {
            "folder": str(results.folder),
            "n_images": len(y),
            "n_cases": len(set(cases)),
            "n_malignant": n_pos,
            "prevalence": n_pos / len(y),
            "excluded_no_estimate": sum(1 for r in results.results if not r.error) - len(usable),
            "unreadable": len(results.unreadable),
            "case_source": results.case_source,
        },
        "shipped": {"threshold": results.shipped_threshold},
        "cv": {
            "folds": n_folds,
            "seed": FOLD_SEED,
            "fold_slopes": fold_slopes,
            "before": before,
            "after": _figures(y, oof, cases, threshold),
        },
        "in_sample": operating_point(y, final, threshold).to_dict()
        | {"ece": expected_calibration_error(y, final)},
        "forced": bool(force and not ci_low > 0.5),
        "site_validation": site_validation.to_dict(),
    }
    return SiteProfile(
        name=name,
        model_id=results.model_id,
        a=a,
        b=b,
        threshold=threshold,
        target_sensitivity=float(target_sensitivity),
        created=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        n_images=len(y),
        n_cases=len(set(cases)),
        model_sha256=results.model_sha256,
        card=card,
        validated_cases=site_validation.validated_cases,
    )


# -- storage ---------------------------------------------------------------------------------
def profile_path(name: str) -> Path:
    return profiles_dir() / f"{check_name(name)}.json"


def unused_name(base: str) -> str:
    """``base`` if no profile has that name, else ``base-2``, ``base-3`` ... (the wizard's
    default "site-YYYYMMDD" clashed with a profile made earlier the same day)."""
    name, k = base, 1
    while profile_path(name).exists():
        k += 1
        name = f"{base}-{k}"
    return name


def save_profile(profile: SiteProfile, replace: bool = False) -> Path:
    """Writes the profile as JSON (atomically). An existing profile of that name is kept
    unless ``replace``: a calibration in use is not overwritten by accident."""
    path = profile_path(profile.name)
    if path.exists() and not replace:
        raise ProfileError(
            f"a site profile named {profile.name!r} exists already ({path}); choose another "
            "name or replace it"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(profile.to_dict(), indent=1)
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def load_profile(name: str) -> SiteProfile:
    """Reads a saved profile. Raises ProfileError when it is missing or unreadable."""
    path = profile_path(name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ProfileError(f"there is no site profile named {name!r} (in {path.parent})") from err
    except (OSError, ValueError) as err:
        raise ProfileError(f"the site profile {path} cannot be read ({err})") from err
    try:
        profile = SiteProfile.from_dict(data)
    except ProfileError as err:
        raise ProfileError(f"the site profile {path} is damaged: {err}") from err
    if profile.name != name:
        raise ProfileError(f"the site profile {path} is named {profile.name!r} inside; rename it")
    return profile


def list_profiles() -> list[SiteProfile]:
    """Every readable saved profile, by name; unreadable files are logged and skipped."""
    folder = profiles_dir()
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if path.name.startswith("."):
            continue  # a temporary file of write_atomically
        try:
            out.append(load_profile(path.stem))
        except ProfileError as err:
            log.warning("%s", err)
    return out


def incompatibility(profile: SiteProfile, model_id: str, model_sha256: str = "") -> str:
    """Why ``profile`` must not be applied to this model ("" when it may)."""
    if profile.model_id != model_id:
        return (
            f"site profile {profile.name!r} was fitted for model {profile.model_id}, not for "
            f"the installed {model_id}: its mapping belongs to that model's scores"
        )
    if profile.model_sha256 and model_sha256 and profile.model_sha256 != model_sha256:
        return (
            f"site profile {profile.name!r} was fitted for other weights of {model_id} "
            "(sha256 differs): refit it on the installed model"
        )
    return ""


def active_name() -> str | None:
    """The name in the ``active`` pointer file, or None (shipped calibration)."""
    try:
        name = (profiles_dir() / ACTIVE_POINTER).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:  # ValueError: not text (UnicodeDecodeError)
        log.warning("the active site profile pointer cannot be read: %s", err)
        return None
    return name or None


def activate(name: str, model_id: str | None = None, model_sha256: str = "") -> SiteProfile:
    """Makes ``name`` the active profile (checked against ``model_id`` when given).

    Raises:
        ProfileError: no such profile, unreadable, or fitted for another model.
    """
    profile = load_profile(name)
    if model_id is not None and (why := incompatibility(profile, model_id, model_sha256)):
        raise ProfileError(why)
    folder = profiles_dir()
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(
        folder / ACTIVE_POINTER, lambda tmp: tmp.write_text(profile.name + "\n", encoding="utf-8")
    )
    return profile


def deactivate() -> None:
    """Back to the shipped calibration (the saved profiles stay)."""
    (profiles_dir() / ACTIVE_POINTER).unlink(missing_ok=True)


@dataclass(frozen=True)
class ActiveCalibration:
    """The calibration to use for a model: a profile, or None for the shipped one, and
    what to tell the user (including why an active profile was not applied)."""

    profile: SiteProfile | None
    message: str
    refused: bool = False

    @property
    def name(self) -> str:
        return self.profile.name if self.profile is not None else SHIPPED

    @property
    def worth_saying(self) -> bool:
        """Whether to tell the user at once: an active profile not applied, or one in use
        that calibrates its site worse than the shipped calibration."""
        return self.refused or (self.profile is not None and self.profile.worse_than_shipped)


def calibration_label(profile: SiteProfile | None) -> str:
    """How the app names the calibration in use."""
    if profile is None:
        return calibration_text(SHIPPED)
    return f"{calibration_text(profile.name)} (threshold {profile.threshold:.3f})"


def active_calibration(model_id: str, model_sha256: str = "") -> ActiveCalibration:
    """The active profile if there is one and it was fitted for this model; otherwise the
    shipped calibration, with the reason when an active profile was not applied."""
    name = active_name()
    if name is None:
        return ActiveCalibration(None, calibration_text(SHIPPED))
    try:
        profile = load_profile(name)
    except ProfileError as err:
        return ActiveCalibration(None, f"{calibration_text(SHIPPED)} ({err}; not applied)", True)
    why = incompatibility(profile, model_id, model_sha256)
    if why:
        return ActiveCalibration(None, f"{calibration_text(SHIPPED)} ({why}; not applied)", True)
    return _in_use(profile)


def _in_use(profile: SiteProfile) -> ActiveCalibration:
    """A profile put in use, its label noting when it is worse than the shipped calibration
    out of fold (chosen anyway: ``profile use``, ``--profile``, the menu after asking)."""
    why = profile.worse_text()
    return ActiveCalibration(
        profile, calibration_label(profile) + (f"; note: {why}" if why else "")
    )


def model_sha256(classifier) -> str:
    return str(classifier.card.raw.get("sha256", ""))


def use_active_profile(classifier) -> ActiveCalibration:
    """Sets ``classifier.profile`` to the active profile for its model (or None)."""
    chosen = active_calibration(classifier.card.id, model_sha256(classifier))
    classifier.profile = chosen.profile
    return chosen


def changed_outside(classifier) -> ActiveCalibration | None:
    """The calibration this workstation's active pointer now names (put in use outside this
    process: ``profile use``, ``recalibrate --activate`` or ``--replace``), when it is not
    the one ``classifier`` uses (another profile, the same name refitted, or back to the
    shipped one); None when they agree."""
    chosen = active_calibration(classifier.card.id, model_sha256(classifier))
    return None if chosen.profile == classifier.profile else chosen


def choose_calibration(classifier, name: str | None) -> ActiveCalibration:
    """The calibration a command asked for: None -> the active one; "shipped" -> none;
    else that saved profile, which must fit the classifier's model. Sets
    ``classifier.profile``.

    Raises:
        ProfileError: no such profile, or fitted for another model.
    """
    if name is None:
        return use_active_profile(classifier)
    if name.lower() == SHIPPED:
        classifier.profile = None
        return ActiveCalibration(None, calibration_text(SHIPPED))
    profile = load_profile(name)
    why = incompatibility(profile, classifier.card.id, model_sha256(classifier))
    if why:
        raise ProfileError(why)
    classifier.profile = profile
    return _in_use(profile)


def same_calibration(finding, classifier) -> bool:
    """True when ``finding`` was made under the classifier's current calibration: its name,
    threshold and site-validation status, as ``Estimate.scored_under`` (a profile refitted
    under the same name is another calibration; a result from before a switch is analysed
    again rather than shown with the old numbers or status)."""
    calibration = classifier.calibration
    return (
        finding.calibration == calibration.name
        and finding.site_validated == calibration.validated
        and finding.threshold == calibration.threshold
    )
