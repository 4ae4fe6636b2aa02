"""Metrics for a binary malignancy classifier: AUROC with a grouped bootstrap CI,
operating point, confusion matrix, calibration (ECE), and the plots that go with them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


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


def grouped_bootstrap(fn, groups: Sequence[str], n_boot: int = 2000, seed: int = 0):
    """95 % percentile CI of the statistic ``fn(idx)`` (None where it is undefined),
    resampling whole groups (cases) with replacement."""
    rng = np.random.default_rng(seed)
    uniq, inv = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(inv == g) for g in range(len(uniq))]
    stats = []
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(uniq), len(uniq))])
        value = fn(idx)
        if value is not None:
            stats.append(value)
    if not stats:
        return float("nan"), float("nan")
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def grouped_bootstrap_auroc(
    y: np.ndarray, p: np.ndarray, groups: Sequence[str], n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95 % percentile CI of AUROC, resampling whole groups (cases) with replacement."""
    return grouped_bootstrap(
        lambda idx: roc_auc_score(y[idx], p[idx]) if 0 < y[idx].sum() < len(idx) else None,
        groups,
        n_boot,
        seed,
    )


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """ECE with equal-width bins: sum over bins of |accuracy - confidence| weighted by size."""
    bins = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(y[sel].mean() - p[sel].mean())
    return float(ece)


def threshold_for_sensitivity(y: np.ndarray, p: np.ndarray, target: float) -> float:
    """Highest threshold whose sensitivity on (y, p) reaches ``target``."""
    pos = np.sort(p[y == 1])[::-1]
    k = int(np.ceil(target * len(pos))) - 1
    return float(pos[max(k, 0)])


def evaluate(
    y: Sequence[int], p: Sequence[float], groups: Sequence[str], threshold: float
) -> Metrics:
    """All card metrics for calibrated probabilities ``p`` at the shipped ``threshold``."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    pred = p >= threshold
    tp, fn = int((pred & (y == 1)).sum()), int((~pred & (y == 1)).sum())
    tn, fp = int((~pred & (y == 0)).sum()), int((pred & (y == 0)).sum())
    return Metrics(
        n=len(y),
        n_malignant=int(y.sum()),
        auroc=float(roc_auc_score(y, p)),
        auroc_ci95=grouped_bootstrap_auroc(y, p, groups),
        average_precision=float(average_precision_score(y, p)),
        threshold=float(threshold),
        sensitivity=tp / max(tp + fn, 1),
        specificity=tn / max(tn + fp, 1),
        confusion={"tp": tp, "fn": fn, "tn": tn, "fp": fp},
        ece=expected_calibration_error(y, p),
        brier=float(np.mean((p - y) ** 2)),
    )


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
    fpr, tpr, _ = roc_curve(y, p)
    axes[0].plot(fpr, tpr, lw=2, label=f"AUROC {roc_auc_score(y, p):.3f}")
    axes[0].plot([0, 1], [0, 1], "k--", lw=1)
    axes[0].set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC")
    axes[0].legend(loc="lower right")
    prec, rec, _ = precision_recall_curve(y, p)
    axes[1].plot(rec, prec, lw=2, label=f"AP {average_precision_score(y, p):.3f}")
    axes[1].axhline(y.mean(), color="k", ls="--", lw=1, label=f"prevalence {y.mean():.2f}")
    axes[1].set(xlabel="recall", ylabel="precision", title="Precision-recall")
    axes[1].legend(loc="lower left")
    edges = np.linspace(0, 1, 11)
    centres, fracs, counts = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (p >= lo) & ((p < hi) | (hi == 1.0))
        if sel.any():
            centres.append(p[sel].mean())
            fracs.append(y[sel].mean())
            counts.append(int(sel.sum()))
    axes[2].plot([0, 1], [0, 1], "k--", lw=1)
    axes[2].plot(centres, fracs, "o-", lw=2)
    for c, f, n in zip(centres, fracs, counts, strict=True):
        axes[2].annotate(str(n), (c, f), textcoords="offset points", xytext=(4, -10), fontsize=7)
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


def fit_platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Calibration ``p = sigmoid(a * logit + b)`` fitted by maximum likelihood.

    Temperature scaling is the special case b = 0; the bias also restores the prevalence
    of the calibration set when training balanced the classes.
    """
    from scipy.optimize import minimize

    z, y = np.asarray(logits, dtype=float), np.asarray(y, dtype=float)

    def nll(params: np.ndarray) -> float:
        s = params[0] * z + params[1]
        return float(np.mean(np.logaddexp(0, s) - y * s))

    res = minimize(nll, x0=np.array([1.0, 0.0]), method="Nelder-Mead")
    return float(res.x[0]), float(res.x[1])
