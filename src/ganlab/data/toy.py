"""2-D mixtures of Gaussians, the mode-collapse benchmarks of VEEGAN (Srivastava et al. 2017) and PacGAN
(Lin et al. 2018)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ganlab.data.base import GANDataModule


class GaussianMixture2D(GANDataModule):
    """An equal-weight mixture of isotropic Gaussians ``N(mean_k, std^2 I)`` in the plane.

    The training set is fixed: ``n_train`` samples drawn once from ``seed``; ``y`` is each sample's mode.
    """

    shape = (2,)

    def __init__(self, means: Tensor, std: float, n_train: int = 100_000, seed: int = 0, **loader) -> None:
        super().__init__(**loader)
        if not std > 0:
            raise ValueError(f"{type(self).__name__}: std must be > 0, got {std}")
        if int(n_train) < 1:
            raise ValueError(f"{type(self).__name__}: n_train must be >= 1, got {n_train}")
        self.means = means.to(torch.float32)
        self.std = float(std)
        self.n_train = int(n_train)
        self.seed = int(seed)

    def load(self) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(self.seed)
        y = torch.randint(len(self.means), (self.n_train,), generator=g)
        x = self.means[y] + self.std * torch.randn(self.n_train, 2, generator=g)
        return x, y


class Ring8(GaussianMixture2D):
    """8 modes at ``radius * (cos 2 pi k/8, sin 2 pi k/8)``, k = 0..7 (not ``linspace(0, 2 pi, 8)``,
    which repeats the first mode), std 0.01."""

    def __init__(self, std: float = 0.01, radius: float = 1.0, n_modes: int = 8, **kwargs) -> None:
        angles = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
        means = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
        super().__init__(means, std, **kwargs)


class Grid25(GaussianMixture2D):
    """25 modes on ``{-4, -2, 0, 2, 4}^2`` (``spacing`` 2, ``side`` 5), std 0.05."""

    def __init__(self, std: float = 0.05, spacing: float = 2.0, side: int = 5, **kwargs) -> None:
        ticks = spacing * (torch.arange(side, dtype=torch.float64) - (side - 1) / 2)
        means = torch.cartesian_prod(ticks, ticks)
        super().__init__(means, std, **kwargs)
