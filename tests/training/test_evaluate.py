import numpy as np
import pytest

from training.evaluate import (
    evaluate,
    expected_calibration_error,
    fit_platt,
    grouped_bootstrap_auroc,
    threshold_for_sensitivity,
)


def test_perfect_and_random_scores():
    y = np.array([0, 0, 1, 1] * 10)
    m = evaluate(y, y * 0.8 + 0.1, [str(i) for i in range(40)], threshold=0.5)
    assert m.auroc == 1.0 and m.sensitivity == 1.0 and m.specificity == 1.0
    assert m.confusion == {"tp": 20, "fn": 0, "tn": 20, "fp": 0}
    rng = np.random.default_rng(0)
    p = rng.random(400)
    y = rng.integers(0, 2, 400)
    lo, hi = grouped_bootstrap_auroc(y, p, [str(i) for i in range(400)], n_boot=300)
    assert lo < 0.5 < hi


def test_ece_zero_when_calibrated_and_large_when_not():
    y = np.array([0] * 50 + [1] * 50)
    assert expected_calibration_error(y, np.full(100, 0.5)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(100, 0.95)) == pytest.approx(0.45)


def test_threshold_reaches_target_sensitivity():
    y = np.array([1] * 10 + [0] * 10)
    p = np.linspace(1, 0, 20)
    t = threshold_for_sensitivity(y, p, 0.9)
    assert ((p >= t) & (y == 1)).sum() >= 9


def test_platt_recovers_known_calibration():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, 5000)
    y = (rng.random(5000) < 1 / (1 + np.exp(-(0.5 * z - 1.0)))).astype(int)
    a, b = fit_platt(z, y)
    assert a == pytest.approx(0.5, abs=0.1) and b == pytest.approx(-1.0, abs=0.15)
