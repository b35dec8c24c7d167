"""DCGAN (Radford et al. 2016, "Unsupervised Representation Learning with Deep Convolutional GANs").

The generator projects z linearly to a small square map and doubles its side with stride-2 transposed
convolutions (kernel 4) until it reaches the image size; the discriminator mirrors it with stride-2
convolutions. Both adapt to the data: the start side is the image side halved while it stays even and
above 7, so 8, 16, 32 and 64 start from 4x4 (as in the paper) and 28 from 7x7 (7 -> 14 -> 28).
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


class DCGANGenerator(nn.Module):
    """``z -> image in [-1, 1]``: linear projection to ``width * 2**(n-1)`` channels at the start side,
    batch norm and activation, then ``n`` transposed convolutions halving the channels (batch norm and
    activation after each but the last), tanh output. The paper used ReLU here; ``leaky_relu`` is the
    default asked for by ganlab's users and ``activation=relu`` restores the paper. ``spectral_norm``
    wraps every layer in spectral normalisation (as SAGAN does for G; Zhang et al. 2019)."""

    def __init__(
        self,
        z_dim: int,
        data_shape: tuple[int, ...],
        width: int = 64,
        activation: str = "leaky_relu",
        norm: str = "batch",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.z_dim = int(z_dim)
        self.data_shape = tuple(data_shape)
        channels, start, n_up = image_plan(self.data_shape, "DCGANGenerator")
        check_generator_norm(norm)
        ch = width * 2 ** (n_up - 1)
        self.start_shape = (ch, start, start)
        self.project = spectral(nn.Linear(self.z_dim, ch * start * start, bias=norm == "none"), spectral_norm)
        self.project_act = nn.Sequential(feature_norm(norm, ch, spatial=True), layers.activation(activation))
        blocks: list[nn.Module] = []
        for _ in range(n_up - 1):
            blocks += [
                spectral(nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=norm == "none"), spectral_norm),
                feature_norm(norm, ch // 2, spatial=True),
                layers.activation(activation),
            ]
            ch //= 2
        blocks += [spectral(nn.ConvTranspose2d(ch, channels, 4, 2, 1), spectral_norm), nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, z: Tensor) -> Tensor:
        h = self.project(z).view(z.shape[0], *self.start_shape)
        return self.blocks(self.project_act(h))


class DCGANDiscriminator(nn.Module):
    """``image -> logit``: stride-2 convolutions doubling the channels from ``width`` down to the start
    side (no normalisation on the first, as in the paper), LeakyReLU(0.2), then a linear logit.

    ``norm``: ``batch`` (the paper), ``layer`` (GroupNorm(1, C), the choice for gradient penalties),
    ``spectral`` (every layer, Miyato et al. 2018) or ``none``."""

    def __init__(
        self,
        data_shape: tuple[int, ...],
        width: int = 64,
        activation: str = "leaky_relu",
        norm: str = "batch",
    ) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.norm = check_norm(norm)
        channels, start, n_down = image_plan(self.data_shape, "DCGANDiscriminator")
        convs: list[nn.Module] = [
            weight_norm(nn.Conv2d(channels, width, 4, 2, 1), norm),
            layers.activation(activation),
        ]
        ch = width
        for _ in range(n_down - 1):
            convs += [
                weight_norm(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=norm not in ("batch", "layer")), norm),
                feature_norm(norm, ch * 2, spatial=True),
                layers.activation(activation),
            ]
            ch *= 2
        self.features = nn.Sequential(*convs)
        self.head = weight_norm(nn.Linear(ch * start * start, 1), norm)

    def phi(self, x: Tensor) -> Tensor:
        """The features the linear logit reads, ``(N, head.in_features)``."""
        return self.features(x).flatten(start_dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.phi(x)).squeeze(1)
