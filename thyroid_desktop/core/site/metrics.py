"""The figures of a binary malignancy estimate, one implementation shared by ``validate``,
``recalibrate``, training (the model card) and the benchmarks: AUROC with a bootstrap CI over
cases, sensitivity and specificity at a threshold, the threshold rule, calibration (ECE,
reliability bins, Brier). NumPy only.

Images of one case (patient, nodule, cine loop) are not independent, so every interval
resamples whole cases (groups) with replacement.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: Bootstrap resamples of cases for a 95 % interval, and their seed (repeatable).
N_BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0
#: Equal-width probability bins of the expected calibration error and the reliability plot.
N_CALIBRATION_BINS = 10


def auroc(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied scores counted half).

    Raises:
        ValueError: the labels are not of both classes.
    """
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs both benign and malignant images")
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    mid_rank = ends - (counts - 1) / 2.0  # 1-based average rank of each distinct score
    rank_sum = float(mid_rank[inverse][y == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def roc_points(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray):
    """The ROC curve's (false positive rates, true positive rates), from (0, 0), one point
    per distinct score."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    order = np.argsort(-p, kind="mergesort")
    y, p = y[order], p[order]
    distinct = np.r_[np.flatnonzero(np.diff(p)), len(p) - 1]
    tps, fps = np.cumsum(y)[distinct], (distinct + 1) - np.cumsum(y)[distinct]
    tpr = np.r_[0.0, tps / max(y.sum(), 1)]
    fpr = np.r_[0.0, fps / max(len(y) - y.sum(), 1)]
    return fpr, tpr


def grouped_bootstrap(
    statistic: Callable[[np.ndarray], float | None],
    groups: Sequence[str] | np.ndarray,
    n_boot: int = N_BOOTSTRAP,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """95 % percentile interval of ``statistic(indices)`` over ``n_boot`` resamples of whole
    groups with replacement; a resample where it returns None (undefined) is left out. NaN
    when every resample was."""
    rng = np.random.default_rng(seed)
    _, inv = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(inv.max()) + 1 if len(inv) else 0
    members = [np.flatnonzero(inv == g) for g in range(n_groups)]
    stats = []
    for _ in range(n_boot if n_groups else 0):
        idx = np.concatenate([members[g] for g in rng.integers(0, n_groups, n_groups)])
        value = statistic(idx)
        if value is not None:
            stats.append(value)
    if not stats:
        return float("nan"), float("nan")
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def bootstrap_auroc_ci(
    y: Sequence[int] | np.ndarray,
    p: Sequence[float] | np.ndarray,
    cases: Sequence[str] | np.ndarray,
    n_boot: int = N_BOOTSTRAP,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """95 % percentile interval of the AUROC, resampling whole cases with replacement
    (resamples with one class only are left out). NaN when no resample has both classes."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    return grouped_bootstrap(
        lambda idx: auroc(y[idx], p[idx]) if 0 < y[idx].sum() < len(idx) else None,
        cases,
        n_boot,
        seed,
    )


@dataclass(frozen=True)
class AurocWithCi:
    """An AUROC, its 95 % interval by bootstrap over cases (None where undefined) and how
    many images it is over."""

    auroc: float
    ci95: tuple[float | None, float | None]
    n: int
    n_positive: int

    def to_dict(self, ndigits: int | None = None) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else (v if ndigits is None else round(v, ndigits))

        return {
            "auroc": r(self.auroc),
            "ci95": [r(v) for v in self.ci95],
            "n": self.n,
            "n_positive": self.n_positive,
        }


def auroc_with_ci(
    y: Sequence[int] | np.ndarray,
    p: Sequence[float] | np.ndarray,
    cases: Sequence[str] | np.ndarray,
) -> AurocWithCi:
    """:func:`auroc` with :func:`bootstrap_auroc_ci` over ``cases``."""
    y = np.asarray(y, dtype=int)
    lo, hi = bootstrap_auroc_ci(y, p, cases)
    return AurocWithCi(
        float(auroc(y, p)),
        (None if math.isnan(lo) else lo, None if math.isnan(hi) else hi),
        int(len(y)),
        int(y.sum()),
    )


@dataclass(frozen=True)
class ReliabilityBin:
    """One probability bin: how many images, their mean estimate, the malignant share."""

    low: float
    high: float
    n: int
    mean_probability: float
    observed: float


def reliability_bins(
    y: Sequence[int] | np.ndarray,
    p: Sequence[float] | np.ndarray,
    n_bins: int = N_CALIBRATION_BINS,
) -> list[ReliabilityBin]:
    """The non-empty equal-width bins of the reliability plot (1.0 falls in the last)."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    which = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    return [
        ReliabilityBin(
            b / n_bins, (b + 1) / n_bins, int(sel.sum()), float(p[sel].mean()), float(y[sel].mean())
        )
        for b in range(n_bins)
        if (sel := which == b).any()
    ]


def proportion_ci95(k: int, n: int) -> tuple[float, float]:
    """Wilson's 95 % interval of a share ``k / n`` (a reliability bin's observed malignant
    share; E. B. Wilson, J. Am. Stat. Assoc. 22 (1927)): inside [0, 1] and sensible for
    small bins and shares of 0 or 1. (nan, nan) for an empty bin."""
    if n <= 0:
        return (float("nan"), float("nan"))
    z = 1.959963984540054
    share = k / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    # the interval holds the share itself: in floating point a share of 0 (or 1) gave a
    # lower bound of 3e-17 (an upper one just below 1) for some n, a negative error bar
    # that stopped a site validation (found in a GUI trial)
    low = 0.0 if k <= 0 else min(share, max(0.0, centre - half))
    high = 1.0 if k >= n else max(share, min(1.0, centre + half))
    return (float(low), float(high))


def expected_calibration_error(
    y: Sequence[int] | np.ndarray,
    p: Sequence[float] | np.ndarray,
    n_bins: int = N_CALIBRATION_BINS,
) -> float:
    """ECE: the bins' |observed malignant share - mean estimate|, weighted by their size."""
    n = len(p)
    return float(
        sum(b.n / n * abs(b.observed - b.mean_probability) for b in reliability_bins(y, p, n_bins))
    )


def brier(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray) -> float:
    """Brier score: the mean squared difference between estimate and label."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    return float(np.mean((p - y) ** 2))


@dataclass(frozen=True)
class OperatingPoint:
    """The calls at one threshold (malignant when p >= threshold)."""

    threshold: float
    tp: int
    fn: int
    tn: int
    fp: int

    @property
    def sensitivity(self) -> float:
        return self.tp / max(self.tp + self.fn, 1)

    @property
    def specificity(self) -> float:
        return self.tn / max(self.tn + self.fp, 1)

    @property
    def confusion(self) -> dict[str, int]:
        return {"tp": self.tp, "fn": self.fn, "tn": self.tn, "fp": self.fp}

    def to_dict(self) -> dict[str, float]:
        """Threshold, sensitivity and specificity."""
        return {
            "threshold": float(self.threshold),
            "sensitivity": float(self.sensitivity),
            "specificity": float(self.specificity),
        }


def operating_point(
    y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray, threshold: float
) -> OperatingPoint:
    """Sensitivity, specificity and the confusion counts at ``threshold``."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    call = p >= threshold
    return OperatingPoint(
        float(threshold),
        tp=int((call & (y == 1)).sum()),
        fn=int((~call & (y == 1)).sum()),
        tn=int((~call & (y == 0)).sum()),
        fp=int((call & (y == 0)).sum()),
    )


def threshold_for_sensitivity(
    y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray, target: float
) -> float:
    """The threshold rule: the highest threshold whose sensitivity on (y, p) is at least
    ``target`` (the k-th highest malignant estimate, k = ceil(target * N+))."""
    pos = np.sort(np.asarray(p, dtype=float)[np.asarray(y) == 1])[::-1]
    if not len(pos):
        raise ValueError("the threshold rule needs at least one malignant image")
    k = int(math.ceil(target * len(pos) - 1e-9))  # 0.9 * 10 is 9, not 9.000000000000002
    return float(pos[max(k - 1, 0)])


@dataclass(frozen=True)
class Metrics:
    """Discrimination and calibration of one set of estimates at one threshold."""

    n: int
    n_malignant: int
    n_cases: int
    prevalence: float
    auroc: float
    auroc_ci95: tuple[float, float]
    threshold: float
    sensitivity: float
    specificity: float
    confusion: dict[str, int]
    ece: float
    brier: float
    bins: tuple[ReliabilityBin, ...] = field(repr=False, default=())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["auroc_ci95"] = [None if np.isnan(v) else v for v in self.auroc_ci95]  # valid JSON
        return out


def compute_metrics(
    y: Sequence[int] | np.ndarray,
    p: Sequence[float] | np.ndarray,
    cases: Sequence[str] | np.ndarray,
    threshold: float,
) -> Metrics:
    """All figures for estimates ``p`` of labels ``y`` (call malignant when p >= threshold).

    Raises:
        ValueError: fewer than one benign and one malignant image.
    """
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    area = auroc(y, p)
    point = operating_point(y, p, threshold)
    return Metrics(
        n=len(y),
        n_malignant=int(y.sum()),
        n_cases=len(set(np.asarray(cases).tolist())),
        prevalence=float(y.mean()),
        auroc=area,
        auroc_ci95=bootstrap_auroc_ci(y, p, cases),
        threshold=float(threshold),
        sensitivity=point.sensitivity,
        specificity=point.specificity,
        confusion=point.confusion,
        ece=expected_calibration_error(y, p),
        brier=brier(y, p),
        bins=tuple(reliability_bins(y, p)),
    )
