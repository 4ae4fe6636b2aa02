"""The model card's figures for a binary malignancy classifier: core's metrics
(:mod:`thyroid_desktop.core.site.metrics`: AUROC with a grouped bootstrap CI, operating point,
ECE, Brier) plus the average precision, and the plots that go with them. One implementation of
each figure: training, ``validate``, ``recalibrate`` and the benchmarks all use core's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

from thyroid_desktop.core.site import calibration
from thyroid_desktop.core.site.metrics import (
    auroc,
    compute_metrics,
    expected_calibration_error,
    reliability_bins,
    roc_points,
    threshold_for_sensitivity,
)

__all__ = ["Metrics", "evaluate", "fit_platt", "save_plots", "threshold_for_sensitivity"]


@dataclass(frozen=True)
class Metrics:
    """What the model card states for one evaluation set."""

    n: int
    n_malignant: int
    auroc: float
    auroc_ci95: tuple[float, float]
    average_precision: float
    threshold: float
    sensitivity: float
    specificity: float
    confusion: dict[str, int]
    ece: float
    brier: float

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def evaluate(
    y: Sequence[int], p: Sequence[float], groups: Sequence[str], threshold: float
) -> Metrics:
    """All card metrics for calibrated probabilities ``p`` at the shipped ``threshold``
    (the CI resamples whole ``groups``, i.e. cases)."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    m = compute_metrics(y, p, groups, threshold)
    return Metrics(
        n=m.n,
        n_malignant=m.n_malignant,
        auroc=m.auroc,
        auroc_ci95=m.auroc_ci95,
        average_precision=float(average_precision_score(y, p)),
        threshold=m.threshold,
        sensitivity=m.sensitivity,
        specificity=m.specificity,
        confusion=m.confusion,
        ece=m.ece,
        brier=m.brier,
    )


def fit_platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The card's calibration ``p = sigmoid(a * logit + b)``: core's Platt fit by maximum
    likelihood on the 0/1 labels (no prior correction: the development set is large).

    Temperature scaling is the special case b = 0; the bias also restores the prevalence
    of the calibration set when training balanced the classes.
    """
    return calibration.fit_platt(logits, y, prior_correction=False)


def save_plots(y: Sequence[int], p: Sequence[float], out_dir: Path, title: str) -> list[Path]:
    """ROC, precision-recall and reliability plots as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    fpr, tpr = roc_points(y, p)
    axes[0].plot(fpr, tpr, lw=2, label=f"AUROC {auroc(y, p):.3f}")
    axes[0].plot([0, 1], [0, 1], "k--", lw=1)
    axes[0].set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC")
    axes[0].legend(loc="lower right")
    prec, rec, _ = precision_recall_curve(y, p)
    axes[1].plot(rec, prec, lw=2, label=f"AP {average_precision_score(y, p):.3f}")
    axes[1].axhline(y.mean(), color="k", ls="--", lw=1, label=f"prevalence {y.mean():.2f}")
    axes[1].set(xlabel="recall", ylabel="precision", title="Precision-recall")
    axes[1].legend(loc="lower left")
    bins = reliability_bins(y, p)
    axes[2].plot([0, 1], [0, 1], "k--", lw=1)
    axes[2].plot([b.mean_probability for b in bins], [b.observed for b in bins], "o-", lw=2)
    for b in bins:
        axes[2].annotate(
            str(b.n), (b.mean_probability, b.observed), textcoords="offset points",
            xytext=(4, -10), fontsize=7,
        )  # fmt: skip
    axes[2].set(
        xlabel="predicted probability",
        ylabel="observed malignant fraction",
        title=f"Reliability (ECE {expected_calibration_error(y, p):.3f})",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    fig.suptitle(title)
    fig.tight_layout()
    path = out_dir / f"{title.lower().replace(' ', '_').replace('/', '-')}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    return paths
