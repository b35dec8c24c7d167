"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs", ICLR).

KID is the squared maximum mean discrepancy between real and generated features under the cubic polynomial
kernel ``k(x, y) = (x.y / d + 1)^3`` (``d`` the feature dimension), with the unbiased estimator

    MMD^2 = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
            - 2 sum_{i, j} k(x_i, y_j) / (m n).

Unlike FID it is unbiased in the number of samples. As in the paper and torchmetrics, it is averaged over
``subsets`` random subsets of ``subset_size`` real and ``subset_size`` generated features, drawn without
replacement within a subset; ``kid_std`` is the (population) standard deviation over the subsets. The subset
size is capped at the number of real feature vectors and of generated samples (the protocol records the size
used).
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


def polynomial_mmd2(x: Tensor, y: Tensor, degree: int = 3, c: float = 1.0) -> Tensor:
    """Unbiased MMD^2 of the rows of ``x`` (m, d) and ``y`` (n, d), ``k(a, b) = (a.b / d + c)^degree``."""
    d, m, n = x.shape[1], x.shape[0], y.shape[0]
    k_xx = (x @ x.T / d + c) ** degree
    k_yy = (y @ y.T / d + c) ** degree
    k_xy = (x @ y.T / d + c) ** degree
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return within_x + within_y - 2 * k_xy.mean()


class KID(FeatureMetric):
    """KID against the cached real features; ``compute() -> {"kid_mean": ..., "kid_std": ...}``.

    Args:
        subsets, subset_size: the subsets averaged over (100 of 1000, as torchmetrics and the paper's code).
        seed: seed of the subset draws, so that one set of samples always gives the same value.
    """

    paper = "Binkowski et al. 2018, Demystifying MMD GANs"
    uses_feature_subset = True

    def __init__(
        self,
        features: FeatureExtractor,
        datamodule,
        subsets: int = 100,
        subset_size: int = 1000,
        seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(features, datamodule, **kwargs)
        if int(subsets) < 1 or int(subset_size) < 2:
            raise ValueError(f"KID needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
        self.subsets, self.subset_size, self.seed = int(subsets), int(subset_size), int(seed)
        self.add_state("fake", default=[], dist_reduce_fx="cat")

    def meta(self) -> dict[str, MetricMeta]:
        """``kid_mean``: lower is better; unbounded on both sides (the unbiased estimator can be negative when
        the two distributions are close). ``kid_std``: lower (a more certain estimate), at least 0."""
        return {"kid_mean": MetricMeta("min", None, None), "kid_std": MetricMeta("min", 0, None)}

    def update(self, fake: Tensor) -> None:
        self.fake.append(self.fake_features(fake))

    def used_subset_size(self, n_real: int) -> int:
        return min(self.subset_size, n_real, int(self.n_fake))

    def compute(self) -> dict[str, float]:
        if int(self.n_fake) < 2:
            return {"kid_mean": math.nan, "kid_std": math.nan}
        real = self.real_stats().features.double()
        fake = dim_zero_cat(self.fake)
        size = self.used_subset_size(len(real))
        g = torch.Generator().manual_seed(self.seed)
        values = torch.stack(
            [
                polynomial_mmd2(
                    real[torch.randperm(len(real), generator=g)[:size].to(real.device)],
                    fake[torch.randperm(len(fake), generator=g)[:size].to(fake.device)],
                )
                for _ in range(self.subsets)
            ]
        )
        return {"kid_mean": float(values.mean()), "kid_std": float(values.std(unbiased=False))}

    def protocol(self) -> dict[str, Any]:
        protocol = super().protocol()
        return {**protocol, "subsets": self.subsets, "subset_size": self.used_subset_size(protocol["n_real"])}
