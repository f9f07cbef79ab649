"""GANs (task: generation): how well the run's own discriminator tells real images from
generated ones (NumPy only)."""

from __future__ import annotations

import numpy as np

from dltrain.evaluation.metrics.common import unit_weights
from dltrain.evaluation.metrics.scores import Metrics, ScoreReport

# The discriminator calls an image real when its probability of being real reaches this.
REAL_AT = 0.5


class GenerationScorer:
    """The discriminator's accuracy on real images against as many generated ones.

    Real image ``i`` and generated image ``i`` form one example, so a bootstrap resample draws
    pairs and both sides keep the same count.

    Args:
        real_scores: the discriminator's probability that each real image is real, shape (n,).
        fake_scores: the same for each generated image, shape (n,).

    Raises:
        ValueError: the two sides differ in length.
    """

    def __init__(self, real_scores: np.ndarray, fake_scores: np.ndarray) -> None:
        self.real_scores = np.asarray(real_scores, dtype=np.float64).reshape(-1)
        self.fake_scores = np.asarray(fake_scores, dtype=np.float64).reshape(-1)
        if len(self.real_scores) != len(self.fake_scores):
            raise ValueError(
                f"Expected as many generated images as real ones. Received: "
                f"{len(self.real_scores)} real, {len(self.fake_scores)} generated."
            )
        self.num_examples = len(self.real_scores)

    def headline(self, weights: np.ndarray | None = None) -> Metrics:
        """Accuracy over both sides, on each side, and the mean score of each side."""
        w = unit_weights(self.num_examples, weights)
        total = w.sum()
        real_right = float(w @ (self.real_scores >= REAL_AT)) / total
        fake_right = float(w @ (self.fake_scores < REAL_AT)) / total
        return {
            "discriminator_accuracy": (real_right + fake_right) / 2,
            "real_accuracy": real_right,
            "fake_accuracy": fake_right,
            "real_score_mean": float(w @ self.real_scores) / total,
            "fake_score_mean": float(w @ self.fake_scores) / total,
        }

    def report(self) -> ScoreReport:
        """The headline metrics; the sample grid (a plot) shows what was judged."""
        return ScoreReport(self.headline())
