"""Fréchet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to
a Local Nash Equilibrium", NeurIPS).

Real and generated features are summarised by Gaussians ``N(mu_r, S_r)`` and ``N(mu_g, S_g)`` (sample
means, unbiased covariances as in the paper's code), and

    FID = ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)),

the squared Fréchet (2-Wasserstein) distance between the two Gaussians. ``tr (S_r S_g)^(1/2)`` is the sum of
the square roots of the eigenvalues of the symmetric ``S_r^(1/2) S_g S_r^(1/2)``, which has the eigenvalues
of ``S_r S_g``; everything is float64. Published values use the Inception pool3 features, the 50k training
images as the real set and 50k generated samples; FID is biased upwards for fewer samples, so compare only
numbers with the same protocol (:meth:`FID.protocol`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ganlab.metrics.feature_metric import FeatureMetric
from ganlab.metrics.features import FeatureExtractor
from ganlab.metrics.meta import MetricMeta


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> Tensor:
    """``||mu1 - mu2||^2 + tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2))`` for symmetric PSD covariances (float64)."""
    mu1, cov1, mu2, cov2 = (t.double() for t in (mu1, cov1, mu2, cov2))
    eigval, eigvec = torch.linalg.eigh(cov1)
    sqrt1 = (eigvec * eigval.clamp(min=0).sqrt()) @ eigvec.T
    middle = sqrt1 @ cov2 @ sqrt1
    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    diff = mu1 - mu2
    return diff @ diff + cov1.trace() + cov2.trace() - 2 * tr_sqrt


class FID(FeatureMetric):
    """FID of the generated samples against the cached real statistics; ``compute() -> {"fid": ...}``.

    The generated features are accumulated as float64 sums ``sum f`` and ``sum f f^T``, so memory does not
    grow with the number of samples. NaN with fewer than 2 samples.
    """

    paper = (
        "Heusel et al. 2017, GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash "
        "Equilibrium"
    )

    def __init__(self, features: FeatureExtractor, datamodule, **kwargs) -> None:
        super().__init__(features, datamodule, **kwargs)
        dim = features.dim
        self.add_state("fake_sum", default=torch.zeros(dim, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("fake_outer", default=torch.zeros(dim, dim, dtype=torch.float64), dist_reduce_fx="sum")

    def meta(self) -> dict[str, MetricMeta]:
        """A squared distance: 0 for identical Gaussians, unbounded above; lower is better."""
        return {"fid": MetricMeta("min", 0, None)}

    def update(self, fake: Tensor) -> None:
        f = self.fake_features(fake)
        self.fake_sum += f.sum(0)
        self.fake_outer += f.T @ f

    def compute(self) -> dict[str, float]:
        n = int(self.n_fake)
        if n < 2:
            return {"fid": math.nan}
        real = self.real_stats()
        mean = self.fake_sum / n
        cov = (self.fake_outer - n * torch.outer(mean, mean)) / (n - 1)
        return {"fid": float(frechet_distance(real.mean, real.cov, mean, cov))}
