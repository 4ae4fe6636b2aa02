"""A linear head that ignores what a nuisance changes in the features.

Training rows with pasted marks or a resampled image teach the head that those views share
the label, but with four such views among R4's nine per image the head still follows them: on
held-out development images, resampling the frame by 0.7-0.9 raised the shipped head's
estimate by 0.026 on average (ddti), and pasted marks (painted out) by 0.012. Here each pair of
views that differ only by a nuisance (the same box with and without pasted marks, or cut
from the frame and from the frame resampled) gives a difference vector d, and the head
pays for its response to them: the L2 logistic regression's penalty ``|w|^2`` becomes
``w' (I + strength S) w``, with S the second moment of the standardised differences scaled
to a mean eigenvalue of 1. This is fitted as a plain L2 regression in features whitened
by ``(I + strength S)^(-1/2)``, and mapped back, so the exported graph is unchanged (one
weight per feature).
"""

from __future__ import annotations

import numpy as np

from training.linear_head import LinearHead


def nuisance_penalty(differences: np.ndarray, var: np.ndarray, strength: float) -> np.ndarray:
    """``(I + strength S)^(-1/2)`` for feature differences ``differences`` (rows), in the
    features standardised by ``var``; S scaled to a mean eigenvalue of 1, so that
    ``strength`` means the same whatever the number or the size of the differences (no
    differences, or all zero: the identity)."""
    d = differences / np.sqrt(var)
    s = d.T @ d / max(len(d), 1)
    trace = np.trace(s)
    if strength == 0 or trace <= 0:
        return np.eye(len(var))
    s /= trace / len(s)
    ev, u = np.linalg.eigh(np.eye(len(s)) + strength * s)
    return (u * ev**-0.5) @ u.T


def fit_invariant_head(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    c: float,
    differences: np.ndarray,
    strength: float,
) -> LinearHead:
    """``linear_head.fit_head`` with the penalty on the head's response to ``differences``
    (rows of feature differences a nuisance makes; ``strength`` 0: ``fit_head``'s head)."""
    from sklearn.linear_model import LogisticRegression

    from training.linear_head import fit_head

    if strength == 0:
        return fit_head(x, y, weights, c)
    mean, var = x.mean(axis=0), x.var(axis=0) + 1e-6
    m = nuisance_penalty(differences, var, strength)
    lr = LogisticRegression(C=c, max_iter=5000)
    lr.fit(((x - mean) / np.sqrt(var)) @ m, y, sample_weight=weights)
    return LinearHead(mean, var, m @ lr.coef_[0], float(lr.intercept_[0]))
