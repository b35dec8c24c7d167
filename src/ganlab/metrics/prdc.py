"""Precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
Generative Models", NeurIPS) and density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity
Metrics for Generative Models", ICML), on real features ``X = {x_i}`` (N of them) and generated ones
``Y = {y_j}`` (M).

Each point's neighbourhood is the closed ball ``B(p, NND_k(p))`` whose radius is the Euclidean distance to its
k-th nearest neighbour in its own set (itself excluded). With ``1[.]`` the indicator:

- precision = (1/M) sum_j 1[y_j in some B(x_i, NND_k(x_i))]  (generated samples on the real manifold);
- recall    = (1/N) sum_i 1[x_i in some B(y_j, NND_k(y_j))]  (real samples on the generated manifold);
- density   = 1/(k M) sum_j sum_i 1[y_j in B(x_i, NND_k(x_i))]  (how many real balls hold each sample, / k);
- coverage  = (1/N) sum_i 1[some y_j in B(x_i, NND_k(x_i))]  (real balls that hold a generated sample).

k = 5 by default (Naeem et al.; Kynkäänniemi et al. use 3). Distances are computed with ``torch.cdist`` in
blocks of rows, in float64, so memory stays ``O(block * (N + M))``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torchmetrics.utilities import dim_zero_cat

from ganlab.metrics.feature_metric import FeatureMetric
from ganlab.metrics.features import FeatureExtractor
from ganlab.metrics.meta import MetricMeta


def knn_radii(x: Tensor, k: int, block: int = 1024) -> Tensor:
    """Distance of each row of ``x`` to its k-th nearest other row (duplicates count as neighbours)."""
    if len(x) <= k:
        raise ValueError(f"k-nearest-neighbour radii need more than k={k} points, got {len(x)}")
    # the smallest distance of a row is its 0 to itself, so the (k + 1)-th smallest is the k-th neighbour's
    return torch.cat(
        [torch.cdist(x[s : s + block], x).kthvalue(k + 1, dim=1).values for s in range(0, len(x), block)]
    )


def prdc(real: Tensor, fake: Tensor, k: int = 5, block: int = 1024) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` (M, D) against ``real`` (N, D)."""
    real_radii, fake_radii = knn_radii(real, k, block), knn_radii(fake, k, block)
    precise = density = 0
    covered = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    recalled = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    for s in range(0, len(fake), block):
        dist = torch.cdist(fake[s : s + block], real)  # (b, N): d(y_j, x_i)
        in_real_ball = dist <= real_radii[None, :]
        precise += int(in_real_ball.any(dim=1).sum())
        density += int(in_real_ball.sum())
        covered |= in_real_ball.any(dim=0)
        recalled |= (dist <= fake_radii[s : s + block, None]).any(dim=0)
    return {
        "precision": precise / len(fake),
        "recall": float(recalled.double().mean()),
        "density": density / (k * len(fake)),
        "coverage": float(covered.double().mean()),
    }


class PRDC(FeatureMetric):
    """PRDC against the cached real features; ``compute() -> {"precision", "recall", "density", "coverage"}``
    (NaN when there are at most ``k`` generated samples)."""

    paper = (
        "Kynkaanniemi et al. 2019, Improved Precision and Recall Metric for Assessing Generative Models; "
        "Naeem et al. 2020, Reliable Fidelity and Diversity Metrics for Generative Models"
    )
    uses_feature_subset = True

    def __init__(
        self, features: FeatureExtractor, datamodule, k: int = 5, block: int = 1024, **kwargs
    ) -> None:
        super().__init__(features, datamodule, **kwargs)
        if int(k) < 1 or int(block) < 1:
            raise ValueError(f"PRDC needs k >= 1 and block >= 1, got {k} and {block}")
        self.k, self.block = int(k), int(block)
        self.add_state("fake", default=[], dist_reduce_fx="cat")

    def meta(self) -> dict[str, MetricMeta]:
        """Higher is better for all four; precision, recall and coverage are fractions in [0, 1], density is
        at most N / k (each sample lies in at most N real balls), unbounded as N grows (1 for samples
        distributed like the real ones)."""
        fraction = MetricMeta("max", 0, 1)
        return {
            "precision": fraction,
            "recall": fraction,
            "density": MetricMeta("max", 0, None),
            "coverage": fraction,
        }

    def update(self, fake: Tensor) -> None:
        self.fake.append(self.fake_features(fake))

    def compute(self) -> dict[str, float]:
        if int(self.n_fake) <= self.k:
            return dict.fromkeys(("precision", "recall", "density", "coverage"), math.nan)
        return prdc(self.real_stats().features.double(), dim_zero_cat(self.fake), self.k, self.block)

    def protocol(self) -> dict[str, Any]:
        return {**super().protocol(), "k": self.k}
