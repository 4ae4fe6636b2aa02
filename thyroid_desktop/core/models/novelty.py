"""How unlike the training images is this crop? A Mahalanobis distance on the classifier's
own pooled features, so an image the model has never seen the like of gets "no estimate"
instead of a confident-looking number.

Lee et al., "A Simple Unified Framework for Detecting Out-of-Distribution Samples and
Adversarial Attacks", NeurIPS 2018 (arXiv:1807.03888): class-conditional Gaussians on a
network's features; here one Gaussian over all thyroid crops, in a PCA subspace with a
shrunk (Ledoit-Wolf) covariance, because a 1608-d covariance from a few thousand crops is
not invertible. The reference and the limit are fitted by ``python -m training.reliability``
and stored in ``novelty.npz`` (sha256 in the model card).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class NoveltyModel:
    """A Gaussian reference of thyroid-ultrasound crop features.

    Attributes:
        mean: Feature mean of the reference crops (D,).
        components: PCA projection, D x K.
        precision: Inverse of the shrunk covariance in the PCA space, K x K.
        limit: Distances above this get no estimate (chosen on held-out thyroid images).
    """

    mean: np.ndarray
    components: np.ndarray
    precision: np.ndarray
    limit: float

    def distance(self, features: np.ndarray) -> float:
        """Mahalanobis distance of one feature vector to the reference."""
        z = (np.asarray(features, dtype=np.float64) - self.mean) @ self.components
        return float(np.sqrt(max(z @ self.precision @ z, 0.0)))

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Distances of an N x D batch."""
        z = (np.asarray(features, dtype=np.float64) - self.mean) @ self.components
        return np.sqrt(np.maximum(np.einsum("nk,kl,nl->n", z, self.precision, z), 0.0))

    def save(self, path: Path) -> None:
        np.savez(
            path,
            mean=self.mean,
            components=self.components,
            precision=self.precision,
            limit=np.array(self.limit),
        )

    @classmethod
    def load(cls, path: Path) -> NoveltyModel:
        with np.load(path) as data:
            return cls(
                data["mean"].astype(np.float64),
                data["components"].astype(np.float64),
                data["precision"].astype(np.float64),
                float(data["limit"]),
            )
