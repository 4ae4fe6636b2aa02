import numpy as np
import pytest

from thyroid_desktop.core.site.metrics import bootstrap_auroc_ci, compute_metrics
from training.evaluate import evaluate, fit_platt, threshold_for_sensitivity


def test_perfect_and_random_scores():
    y = np.array([0, 0, 1, 1] * 10)
    m = evaluate(y, y * 0.8 + 0.1, [str(i) for i in range(40)], threshold=0.5)
    assert m.auroc == 1.0 and m.sensitivity == 1.0 and m.specificity == 1.0
    assert m.confusion == {"tp": 20, "fn": 0, "tn": 20, "fp": 0}
    rng = np.random.default_rng(0)
    p = rng.random(400)
    y = rng.integers(0, 2, 400)
    lo, hi = bootstrap_auroc_ci(y, p, [str(i) for i in range(400)], n_boot=300)
    assert lo < 0.5 < hi


def test_card_metrics_are_cores_figures_plus_average_precision():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 120)
    p = np.clip(0.3 * y + rng.normal(0.35, 0.2, 120), 0, 1)
    groups = [f"c{i // 3}" for i in range(120)]
    card, core = evaluate(y, p, groups, 0.5).to_dict(), compute_metrics(y, p, groups, 0.5)
    assert card["auroc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)  # the cross-check
    assert card["average_precision"] == pytest.approx(average_precision_score(y, p))
    assert card["auroc_ci95"] == list(core.auroc_ci95)
    for key in ("n", "n_malignant", "threshold", "sensitivity", "specificity", "confusion"):
        assert card[key] == getattr(core, key)
    assert (card["ece"], card["brier"]) == (core.ece, core.brier)
    # the figures training/evaluate.py gave before it used core's (same input, same seed)
    assert card["auroc_ci95"] == pytest.approx([0.886906872279337, 0.9666289592760181], abs=1e-12)
    assert card["ece"] == pytest.approx(0.16726470165511645, abs=1e-12)


def test_threshold_reaches_target_sensitivity():
    y = np.array([1] * 10 + [0] * 10)
    p = np.linspace(1, 0, 20)
    t = threshold_for_sensitivity(y, p, 0.9)
    assert ((p >= t) & (y == 1)).sum() >= 9


def test_platt_recovers_known_calibration_as_the_earlier_nelder_mead_fit_did():
    from scipy.optimize import minimize

    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, 5000)
    y = (rng.random(5000) < 1 / (1 + np.exp(-(0.5 * z - 1.0)))).astype(int)
    a, b = fit_platt(z, y)
    assert a == pytest.approx(0.5, abs=0.1) and b == pytest.approx(-1.0, abs=0.15)

    def nll(w):  # the card's fit before the one Platt fit: the same likelihood, Nelder-Mead
        s = w[0] * z + w[1]
        return float(np.mean(np.logaddexp(0, s) - y * s))

    old = minimize(nll, x0=np.array([1.0, 0.0]), method="Nelder-Mead").x
    assert (a, b) == pytest.approx(tuple(old), abs=1e-3)
