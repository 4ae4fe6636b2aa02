"""The one metrics module (core.site.metrics): AUROC, the grouped bootstrap, calibration
figures and the threshold rule, as validate, recalibrate, training and the benchmarks use them."""

import numpy as np
import pytest

from thyroid_desktop.core.site.metrics import (
    auroc,
    bootstrap_auroc_ci,
    brier,
    compute_metrics,
    expected_calibration_error,
    grouped_bootstrap,
    operating_point,
    reliability_bins,
    roc_points,
    threshold_for_sensitivity,
)


def test_figures_match_hand_computed_values():
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.1, 0.4, 0.35, 0.8, 0.4, 0.2])
    # pairs (pos, neg): 9; wins: 0.35>0.1,0.2; 0.8>all 3; 0.4>0.1,0.2 and ties 0.4 -> 7.5
    assert auroc(y, p) == pytest.approx(7.5 / 9)
    m = compute_metrics(y, p, ["a", "a", "b", "c", "d", "e"], threshold=0.4)
    assert m.confusion == {"tp": 2, "fn": 1, "tn": 2, "fp": 1}
    assert (m.sensitivity, m.specificity) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert m.n == 6 and m.n_cases == 5 and m.prevalence == 0.5
    assert m.brier == pytest.approx(np.mean((p - y) ** 2))
    # bins: [0.1]: 0 vs 0.1; [0.2]: 0 vs 0.2; [0.35]: 1 vs 0.35; [0.4, 0.4]: 0.5 vs 0.4; [0.8]
    ece = (0.1 + 0.2 + 0.65 + 2 * 0.1 + 0.2) / 6
    assert expected_calibration_error(y, p) == pytest.approx(ece)
    lo, hi = m.auroc_ci95
    assert lo <= m.auroc <= hi and (lo, hi) == bootstrap_auroc_ci(
        y, p, ["a", "a", "b", "c", "d", "e"]
    )
    with pytest.raises(ValueError):
        auroc(np.array([1, 1]), np.array([0.2, 0.3]))


def test_bootstrap_resamples_cases_not_images():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1] * 10, 5)  # 20 cases of 5 near-identical images
    p = np.repeat(rng.random(20), 5) + y * 0.2
    by_case = bootstrap_auroc_ci(y, p, np.repeat(np.arange(20), 5).astype(str))
    by_image = bootstrap_auroc_ci(y, p, np.arange(100).astype(str))
    assert by_case[1] - by_case[0] > 1.5 * (by_image[1] - by_image[0])


def fixed_input():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 120)
    p = np.clip(0.3 * y + rng.normal(0.35, 0.2, 120), 0, 1)
    return y, p, [f"c{i // 3}" for i in range(120)]


def test_bootstrap_gives_the_numbers_the_old_code_gave():
    """The figures printed by core/site/validation.py's and training/evaluate.py's bootstraps
    before they became this one (same resamples, same seed) on a fixed input."""
    y, p, cases = fixed_input()
    assert bootstrap_auroc_ci(y, p, cases) == pytest.approx(
        (0.8869068722793368, 0.9666289592760181), abs=1e-12
    )
    assert bootstrap_auroc_ci(y, p, cases, n_boot=500, seed=3) == pytest.approx(
        (0.8880979020979021, 0.9714675920293381), abs=1e-12
    )
    m = compute_metrics(y, p, cases, 0.5)
    assert m.auroc == pytest.approx(0.9300699300699301, abs=1e-12)
    assert m.ece == pytest.approx(0.16726470165511645, abs=1e-12)
    assert m.brier == pytest.approx(0.13717822384956022, abs=1e-12)
    assert m.confusion == {"tp": 50, "fn": 15, "tn": 51, "fp": 4}
    # training/segmenter.py's CI of a mean, now the same bootstrap with a mean statistic
    rng = np.random.default_rng(5)
    v, g = rng.random(90), np.repeat(np.arange(30), 3).astype(str)
    assert grouped_bootstrap(lambda i: v[i].mean(), g) == pytest.approx(
        (0.4586043772170767, 0.5722921751667587), abs=1e-12
    )


def test_auroc_agrees_with_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    y, p, _ = fixed_input()
    p = np.round(p, 1)  # many ties
    assert auroc(y, p) == pytest.approx(sklearn_metrics.roc_auc_score(y, p), abs=1e-12)
    fpr, tpr = roc_points(y, p)
    ref_fpr, ref_tpr, _ = sklearn_metrics.roc_curve(y, p, drop_intermediate=False)
    assert np.allclose(fpr, ref_fpr) and np.allclose(tpr, ref_tpr)


def test_undefined_resamples_are_left_out_and_no_groups_gives_nan():
    y = np.array([0, 1])
    lo, hi = bootstrap_auroc_ci(y, np.array([0.2, 0.7]), ["a", "b"], n_boot=50)
    assert lo == hi == 1.0  # only the resamples holding both cases count
    assert np.isnan(grouped_bootstrap(lambda i: 1.0, [])).all()


def test_threshold_rule_is_the_highest_keeping_the_target():
    y = np.array([1] * 10 + [0] * 10)
    p = np.linspace(1, 0, 20)
    t = threshold_for_sensitivity(y, p, 0.9)
    assert operating_point(y, p, t).sensitivity == 0.9  # 0.9 * 10 is 9, not 10
    higher = p[(p > t) & (y == 1)].min()
    assert operating_point(y, p, higher).sensitivity < 0.9
    assert threshold_for_sensitivity(y, p, 1.0) == p[9]
    with pytest.raises(ValueError):
        threshold_for_sensitivity(np.zeros(3), np.ones(3), 0.9)


def test_calibration_figures():
    y = np.array([0] * 50 + [1] * 50)
    assert expected_calibration_error(y, np.full(100, 0.5)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(100, 0.95)) == pytest.approx(0.45)
    assert brier(y, np.full(100, 0.5)) == pytest.approx(0.25)
    bins = reliability_bins([0, 1, 1], [0.05, 0.95, 1.0])
    assert [(b.n, b.observed) for b in bins] == [(1, 0.0), (2, 1.0)]  # 1.0 in the last bin
    assert bins[-1].high == 1.0
