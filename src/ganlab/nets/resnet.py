"""Residual generator and discriminator of WGAN-GP (Gulrajani et al. 2017, appendix: "ResNet for
CIFAR-10") and SNGAN (Miyato et al. 2018, appendix B.4, table 4), sized by the data.

Generator: ``z -> linear -> (width, s, s)``, ``n`` up-blocks doubling the side (``s * 2**n`` = the image
side; s = 4 and n = 3 for 32x32, as in both papers), then batch norm, ReLU, conv3x3 to the image channels
and tanh. Discriminator: the "optimized" first block and further down-blocks halve the side ``max(1, n-1)``
times (32 -> 16 -> 8 as in both papers), two blocks keep it, then ReLU, global *sum* pooling (SNGAN; WGAN-GP
averages) and a linear logit. The widths are constant across blocks: 256 in G and 128 in D in SNGAN, 128
in both in WGAN-GP. Image sides are those of :func:`ganlab.nets.layers.upsampling_plan`: 8, 16, 28, 32, 64...
"""

from __future__ import annotations

from torch import Tensor, nn

from ganlab.nets import layers
from ganlab.nets.layers import (
    check_generator_norm,
    check_norm,
    feature_norm,
    image_plan,
    spectral,
    weight_norm,
)


class GBlock(nn.Module):
    """Generator block that doubles the side. Residual: norm, activation, nearest-neighbour upsampling,
    conv3x3, norm, activation, conv3x3; shortcut: upsampling and a 1x1 convolution."""

    def __init__(self, ch_in: int, ch_out: int, norm: str, act: str, sn: bool) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            feature_norm(norm, ch_in, spatial=True),
            layers.activation(act),
            nn.Upsample(scale_factor=2),
            spectral(nn.Conv2d(ch_in, ch_out, 3, padding=1), sn),
            feature_norm(norm, ch_out, spatial=True),
            layers.activation(act),
            spectral(nn.Conv2d(ch_out, ch_out, 3, padding=1), sn),
        )
        self.shortcut = nn.Sequential(nn.Upsample(scale_factor=2), spectral(nn.Conv2d(ch_in, ch_out, 1), sn))

    def forward(self, x: Tensor) -> Tensor:
        return self.residual(x) + self.shortcut(x)


class DBlock(nn.Module):
    """Discriminator block. Residual: [norm, activation,] conv3x3, norm, activation, conv3x3, and 2x2
    average pooling when ``down``. Shortcut: conv1x1 (when it downsamples or changes the channels) then
    pooling when ``down``; identity otherwise.

    ``first`` is SNGAN's "optimized" block on the image itself: no activation before its first convolution
    (its input is the image) and a shortcut that pools before the 1x1 convolution."""

    def __init__(self, ch_in: int, ch_out: int, down: bool, first: bool, norm: str, act: str) -> None:
        super().__init__()
        pool: list[nn.Module] = [nn.AvgPool2d(2)] if down else []
        pre: list[nn.Module] = (
            [] if first else [feature_norm(norm, ch_in, spatial=True), layers.activation(act)]
        )
        self.residual = nn.Sequential(
            *pre,
            weight_norm(nn.Conv2d(ch_in, ch_out, 3, padding=1), norm),
            feature_norm(norm, ch_out, spatial=True),
            layers.activation(act),
            weight_norm(nn.Conv2d(ch_out, ch_out, 3, padding=1), norm),
            *pool,
        )
        conv1x1 = [weight_norm(nn.Conv2d(ch_in, ch_out, 1), norm)] if down or ch_in != ch_out else []
        self.shortcut = nn.Sequential(*(pool + conv1x1 if first else conv1x1 + pool))

    def forward(self, x: Tensor) -> Tensor:
        return self.residual(x) + self.shortcut(x)


class ResNetGenerator(nn.Module):
    """``z -> image in [-1, 1]`` through residual up-blocks of constant ``width`` (module docstring).

    ``norm``: batch (the papers), layer or none; ``spectral_norm`` wraps every layer in spectral
    normalisation."""

    def __init__(
        self,
        z_dim: int,
        data_shape: tuple[int, ...],
        width: int = 256,
        activation: str = "relu",
        norm: str = "batch",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.z_dim = int(z_dim)
        self.data_shape = tuple(data_shape)
        channels, start, n_up = image_plan(self.data_shape, "ResNetGenerator")
        check_generator_norm(norm)
        self.start_shape = (width, start, start)
        self.project = spectral(nn.Linear(self.z_dim, width * start * start), spectral_norm)
        self.blocks = nn.Sequential(
            *(GBlock(width, width, norm, activation, spectral_norm) for _ in range(n_up)),
            feature_norm(norm, width, spatial=True),
            layers.activation(activation),
            spectral(nn.Conv2d(width, channels, 3, padding=1), spectral_norm),
            nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.blocks(self.project(z).view(z.shape[0], *self.start_shape))


class ResNetDiscriminator(nn.Module):
    """``image -> logit`` through residual down-blocks of constant ``width`` (module docstring).

    ``norm``: ``spectral`` (SNGAN: every convolution and the linear layer), ``layer`` (GroupNorm(1, C),
    for gradient penalties), ``none`` (WGAN-GP's critic) or ``batch``."""

    def __init__(
        self,
        data_shape: tuple[int, ...],
        width: int = 128,
        activation: str = "relu",
        norm: str = "spectral",
    ) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.norm = check_norm(norm)
        channels, _, n_up = image_plan(self.data_shape, "ResNetDiscriminator")
        n_down = max(1, n_up - 1)
        downs = [True] * (n_down - 1) + [False, False]
        blocks = [DBlock(channels, width, down=True, first=True, norm=norm, act=activation)]
        blocks += [DBlock(width, width, down=down, first=False, norm=norm, act=activation) for down in downs]
        self.blocks = nn.Sequential(*blocks, layers.activation(activation))
        self.head = weight_norm(nn.Linear(width, 1), norm)

    def phi(self, x: Tensor) -> Tensor:
        """The sum-pooled features the linear logit reads, ``(N, width)``."""
        return self.blocks(x).sum(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.phi(x)).squeeze(1)
