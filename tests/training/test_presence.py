"""training.presence: the threshold rule, the folds and the before/after outcomes."""

import numpy as np

from thyroid_desktop.core.pipeline.presence import FEATURES
from training.presence import Table, fit, folds_of, frame_max, outcomes, threshold_for


def test_threshold_leaves_at_most_the_target_share_of_empty_frames_above_it():
    empty_max = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    thr = threshold_for(empty_max, 0.2)
    assert (empty_max >= thr).sum() == 2  # 0.9 and 0.8 stay, 0.7 does not
    assert (empty_max >= threshold_for(empty_max, 0.0)).sum() == 0
    assert threshold_for(empty_max, 1.0) == 0.0


def table() -> Table:
    """Three frames: empty with one candidate, nodule with a miss then a hit, nodule with none;
    two arcegor sequences and one ddti case."""
    feats = np.zeros((3, len(FEATURES)))
    feats[:, 0] = [0.2, 0.6, 0.9]
    return Table(
        frame_group=np.array(["arcegor:1", "arcegor:2", "ddti:7"]),
        frame_dataset=np.array(["arcegor", "arcegor", "ddti"]),
        frame_has_nodule=np.array([False, True, True]),
        frame_file=np.array(["a", "b", "c"]),
        cand_frame=np.array([0, 1, 1]),
        features=feats,
        hit=np.array([False, False, True]),
        on_nodule=np.array([False, False, True]),
    )


def test_outcomes_before_and_after_a_threshold_and_with_ranking():
    t = table()
    proposed, hits = outcomes(t, None, 0.0)  # today: the detector's first candidate
    assert proposed.tolist() == [True, True, False] and hits.tolist() == [False, False, False]
    p = np.array([0.1, 0.3, 0.8])
    proposed, hits = outcomes(t, p, 0.5)  # the miss is held back, the hit becomes best
    assert proposed.tolist() == [False, True, False] and hits.tolist() == [False, True, False]
    assert outcomes(t, p, 0.2)[1].tolist() == [False, False, False]  # detector's order
    proposed, hits = outcomes(t, p, 0.2, rank_by_presence=True)
    assert hits.tolist() == [False, True, False]
    assert frame_max(t, p).tolist() == [0.1, 0.8, 0.0]


def test_each_arcegor_sequence_is_its_own_fold_and_ddti_cases_join_them():
    folds = folds_of(table())
    assert folds[0] != folds[1] and folds[2] in (folds[0], folds[1])


def test_the_fitted_model_ranks_by_its_feature():
    x = np.zeros((40, len(FEATURES)))
    x[:, 0] = np.linspace(0, 1, 40)
    model = fit(x, x[:, 0] > 0.5, ("mean_probability",))
    p = model.probability(x)
    assert np.all(np.diff(p) > 0) and p[0] < 0.5 < p[-1]
