"""2-D toy data: the mixtures of Gaussians that are the mode-collapse benchmarks of VEEGAN (Srivastava et al.
2017) and PacGAN (Lin et al. 2018), and scikit-learn's two moons and swiss roll for quick looks (no mode
metrics)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ganlab.data.base import GANDataModule


class Toy2D(GANDataModule):
    """Base of the 2-D toy sets: the training set is fixed, ``n_train`` points drawn once from ``seed``."""

    shape = (2,)

    def __init__(self, n_train: int = 100_000, seed: int = 0, **loader) -> None:
        super().__init__(**loader)
        if int(n_train) < 1:
            raise ValueError(f"{type(self).__name__}: n_train must be >= 1, got {n_train}")
        self.n_train = int(n_train)
        self.seed = int(seed)


class GaussianMixture2D(Toy2D):
    """An equal-weight mixture of isotropic Gaussians ``N(mean_k, std^2 I)`` in the plane; ``y`` is each
    sample's mode."""

    def __init__(self, means: Tensor, std: float, **kwargs) -> None:
        super().__init__(**kwargs)
        if not std > 0:
            raise ValueError(f"{type(self).__name__}: std must be > 0, got {std}")
        self.means = means.to(torch.float32)
        self.std = float(std)

    @property
    def n_modes(self) -> int:
        return len(self.means)

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


def _check_noise(who: str, noise: float) -> float:
    if not noise >= 0:
        raise ValueError(f"{who}: noise must be >= 0 (0: points exactly on the curve), got {noise}")
    return float(noise)


class TwoMoons(Toy2D):
    """Two interleaving half circles (scikit-learn's ``make_moons``): the upper half of the unit circle and
    the lower half of the unit circle centred at (1, 0.5), plus Gaussian noise of std ``noise``. ``y`` is
    the moon (0 upper, 1 lower); the points are split equally."""

    def __init__(self, noise: float = 0.05, **kwargs) -> None:
        super().__init__(**kwargs)
        self.noise = _check_noise("TwoMoons", noise)

    def load(self) -> tuple[Tensor, Tensor]:
        from sklearn.datasets import make_moons

        x, y = make_moons(self.n_train, noise=self.noise, random_state=self.seed)
        return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)


class SwissRoll(Toy2D):
    """The swiss roll seen from its side (scikit-learn's ``make_swiss_roll``, coordinates x and z): the
    spiral ``t (cos t, sin t)``, ``t`` in ``[1.5 pi, 4.5 pi]``, with Gaussian noise of std ``noise`` per
    coordinate, then multiplied by ``scale`` (0.2 puts it within about [-2.5, 3]). ``y`` is 0."""

    def __init__(self, noise: float = 0.5, scale: float = 0.2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.noise = _check_noise("SwissRoll", noise)
        if not scale > 0:
            raise ValueError(f"SwissRoll: scale must be > 0, got {scale}")
        self.scale = float(scale)

    def load(self) -> tuple[Tensor, Tensor]:
        from sklearn.datasets import make_swiss_roll

        x, _ = make_swiss_roll(self.n_train, noise=self.noise, random_state=self.seed)
        x = torch.as_tensor(self.scale * x[:, [0, 2]], dtype=torch.float32)
        return x, torch.zeros(self.n_train, dtype=torch.long)
