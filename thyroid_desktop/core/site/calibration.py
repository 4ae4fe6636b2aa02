"""Calibration: the one named mapping from the model's logit to a probability, plus the
decision threshold that goes with it.

``p = sigmoid(a * logit + b)`` (Platt scaling). The model card's mapping, frozen in the
exported graph, is named ``"shipped"``; a site's own is named after its site profile
(:mod:`core.site.profile`). Training, the app, ``validate``, ``recalibrate`` and the
benchmarks all fit with :func:`fit_platt` and apply with :meth:`Calibration.apply`.

Reference: J. Platt, "Probabilistic outputs for support vector machines and comparisons to
regularized likelihood methods", Advances in Large Margin Classifiers (1999). NumPy only: the
app's core needs no scikit-learn.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np

from thyroid_desktop.core.io.files import write_atomically

#: The name of the model card's own calibration (never a site profile's name).
SHIPPED = "shipped"
#: A calibration counts as validated at a site when the site's own labelled validation had at
#: least this many cases of each class (benign and malignant) with an estimate, none of them
#: from the model's training collections (issue 23: "at least 50 cases of both classes"). At
#: 50 per class an AUROC near 0.75 has a 95 % interval of about +-0.1 (Hanley & McNeil 1982).
MIN_VALIDATED_PER_CLASS = 50


def is_site_validation(cases: tuple[int, int]) -> bool:
    """True when (benign, malignant) case counts are enough for a site validation."""
    return min(cases) >= MIN_VALIDATED_PER_CLASS


def sigmoid(x: float | np.ndarray) -> np.ndarray:
    """The logistic function in float64."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def fit_platt(
    logits: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    prior_correction: bool = True,
    iterations: int = 100,
) -> tuple[float, float]:
    """Fits ``sigmoid(a * logit + b)`` by maximum likelihood (Newton's method with a
    backtracking line search). Returns (a, b).

    Args:
        logits: the model's pre-calibration scores.
        labels: 0/1 per score.
        prior_correction: fit Platt's targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)``
            instead of 1 and 0, so a small or separable set gives finite a and b (site
            profiles). False: plain logistic regression on the labels (the shipped card's fit;
            scikit-learn's unpenalised ``LogisticRegression`` gives the same).
        iterations: the most Newton steps.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2)) if prior_correction else y
    x = np.column_stack([z, np.ones_like(z)])
    w = np.array([0.0, math.log((n_pos + 1) / (n_neg + 1))])

    def loss(w: np.ndarray) -> float:
        s = x @ w
        return float(np.sum(np.logaddexp(0.0, s) - t * s))

    current = loss(w)
    for _ in range(iterations):
        p = sigmoid(x @ w)
        grad = x.T @ (p - t)
        hess = x.T @ (x * (p * (1 - p))[:, None]) + 1e-10 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-8:  # backtracking: never a step that raises the loss
            trial = w - scale * step
            trial_loss = loss(trial)
            if trial_loss <= current:
                break
            scale /= 2
        else:
            break
        improvement = current - trial_loss
        w, current = trial, trial_loss
        if improvement < 1e-12 * max(1.0, abs(current)):
            break
    return float(w[0]), float(w[1])


class CalibrationError(ValueError):
    """A calibration cannot be made or read; the message says why."""


@dataclass(frozen=True)
class Calibration:
    """A named mapping logit -> probability, ``sigmoid(a * logit + b)``, and the threshold at
    or above which the model calls a nodule malignant.

    Attributes:
        name: ``"shipped"`` for the model card's calibration, else the site profile's name.
        a: slope (positive: a higher logit never means a lower probability).
        b: intercept.
        threshold: decision threshold on the probability, in (0, 1).
        source: where it came from, in words (the model card, a site's fit).
        validated_cases: (benign, malignant) cases of the site's own labelled validation it
            was made from, none from the training collections ((0, 0): none, as for the
            shipped one and for profiles saved before this was kept).
    """

    name: str
    a: float
    b: float
    threshold: float
    source: str = ""
    validated_cases: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        if not self.name:
            raise CalibrationError("a calibration needs a name")
        if not (math.isfinite(self.a) and self.a > 0 and math.isfinite(self.b)):
            raise CalibrationError(
                f"calibration {self.name!r}: the slope a must be positive and finite and the "
                f"intercept b finite (a={self.a}, b={self.b})"
            )
        if not 0.0 < self.threshold < 1.0:
            raise CalibrationError(
                f"calibration {self.name!r}: the threshold must lie between 0 and 1"
            )
        try:
            cases = tuple(int(n) for n in self.validated_cases)
        except (TypeError, ValueError):
            cases = ()
        if len(cases) != 2 or min(cases) < 0:
            raise CalibrationError(
                f"calibration {self.name!r}: validated_cases must be two counts (benign, "
                f"malignant), not {self.validated_cases!r}"
            )
        object.__setattr__(self, "validated_cases", cases)

    @classmethod
    def fit(
        cls,
        logits: Sequence[float] | np.ndarray,
        labels: Sequence[int] | np.ndarray,
        threshold: float,
        name: str,
        source: str = "",
        prior_correction: bool = True,
    ) -> Calibration:
        """The Platt mapping fitted to ``(logits, labels)`` (see :func:`fit_platt`), with
        the given threshold (chosen by the caller, e.g. out of fold with
        ``core.site.metrics.threshold_for_sensitivity``)."""
        a, b = fit_platt(logits, labels, prior_correction)
        return cls(name, a, b, float(threshold), source)

    @property
    def is_shipped(self) -> bool:
        return self.name == SHIPPED

    @property
    def validated(self) -> bool:
        """True when it was made from a validation on this site's own labelled cases with at
        least :data:`MIN_VALIDATED_PER_CLASS` of each class. The shipped calibration never
        is: it was fitted on the training collections, not at this site."""
        return not self.is_shipped and is_site_validation(self.validated_cases)

    @property
    def platt(self) -> tuple[float, float]:
        return self.a, self.b

    @overload
    def apply(self, logit: float) -> float: ...
    @overload
    def apply(self, logit: np.ndarray | Sequence[float]) -> np.ndarray: ...
    def apply(self, logit):
        """The calibrated probability of one logit (a float) or of each of many (an array)."""
        p = sigmoid(self.a * np.asarray(logit, dtype=np.float64) + self.b)
        return float(p) if p.ndim == 0 else p

    def label(self) -> str:
        """How the app names it: "shipped calibration" or "site calibration 'x'"."""
        return calibration_text(self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "a": self.a,
            "b": self.b,
            "threshold": self.threshold,
            "source": self.source,
            "validated_cases": list(self.validated_cases),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """Reads :meth:`to_dict`'s fields. Raises CalibrationError when one is missing or
        mangled."""
        try:
            return cls(
                name=str(data.get("name") or SHIPPED),  # "" once meant the shipped one
                a=float(data["a"]),
                b=float(data["b"]),
                threshold=float(data["threshold"]),
                source=str(data.get("source", "")),
                # older files: not validated
                validated_cases=tuple(data.get("validated_cases") or (0, 0)),
            )
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, CalibrationError):
                raise
            raise CalibrationError(f"the calibration lacks or mangles a field ({err})") from err

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes it as JSON, atomically (a crash never leaves half a file)."""
        text = json.dumps(self.to_dict(), indent=1)
        return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Calibration:
        """Reads a file :meth:`save` wrote. Raises CalibrationError when it cannot."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CalibrationError(f"the calibration {path} cannot be read ({err})") from err
        if not isinstance(data, dict):
            raise CalibrationError(f"the calibration {path} is not a JSON object")
        return cls.from_dict(data)


def calibration_text(name: str) -> str:
    """ "shipped calibration" or "site calibration 'x'" for a calibration's name."""
    return "shipped calibration" if name in ("", SHIPPED) else f"site calibration {name!r}"
