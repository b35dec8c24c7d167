"""DCGAN (Radford et al. 2016, "Unsupervised Representation Learning with Deep Convolutional GANs").

The generator projects z linearly to a small square map and doubles its side with stride-2 transposed
convolutions (kernel 4) until it reaches the image size; the discriminator mirrors it with stride-2
convolutions. Both adapt to the data: the start side is the image side halved while it stays even and
above 7, so 8, 16, 32 and 64 start from 4x4 (as in the paper) and 28 from 7x7 (7 -> 14 -> 28).
"""

from __future__ import annotations

from torch import Tensor, nn

from ganlab.nets import layers
from ganlab.nets.layers import check_norm, feature_norm, weight_norm


def upsampling_plan(side: int) -> tuple[int, int]:
    """``(start_side, n_doublings)`` with ``start_side * 2**n_doublings == side`` and start in [3, 7]."""
    start, n = side, 0
    while start > 7 and start % 2 == 0:
        start, n = start // 2, n + 1
    if n == 0:
        raise ValueError(
            f"DCGAN needs a square image side that halves at least once to at most 7 "
            f"(e.g. 8, 16, 28, 32, 64), got {side}"
        )
    return start, n


def _check_image_shape(data_shape: tuple[int, ...], who: str) -> tuple[int, int]:
    if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
        raise ValueError(
            f"{who} models square images of shape (C, H, H), but the data has samples of shape "
            f"{tuple(data_shape)}; for vector data use model=mlp"
        )
    return int(data_shape[0]), int(data_shape[1])


class DCGANGenerator(nn.Module):
    """``z -> image in [-1, 1]``: linear projection to ``width * 2**(n-1)`` channels at the start side,
    batch norm and activation, then ``n`` transposed convolutions halving the channels (batch norm and
    activation after each but the last), tanh output. The paper used ReLU here; ``leaky_relu`` is the
    default asked for by ganlab's users and ``activation=relu`` restores the paper."""

    def __init__(
        self,
        z_dim: int,
        data_shape: tuple[int, ...],
        width: int = 64,
        activation: str = "leaky_relu",
        norm: str = "batch",
    ) -> None:
        super().__init__()
        self.z_dim = int(z_dim)
        self.data_shape = tuple(data_shape)
        channels, side = _check_image_shape(self.data_shape, "DCGANGenerator")
        check_norm(norm, ("none", "batch", "layer"))
        start, n_up = upsampling_plan(side)
        ch = width * 2 ** (n_up - 1)
        self.start_shape = (ch, start, start)
        self.project = nn.Linear(self.z_dim, ch * start * start, bias=norm == "none")
        self.project_act = nn.Sequential(feature_norm(norm, ch, spatial=True), layers.activation(activation))
        blocks: list[nn.Module] = []
        for _ in range(n_up - 1):
            blocks += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=norm == "none"),
                feature_norm(norm, ch // 2, spatial=True),
                layers.activation(activation),
            ]
            ch //= 2
        blocks += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
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
        channels, side = _check_image_shape(self.data_shape, "DCGANDiscriminator")
        start, n_down = upsampling_plan(side)
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

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(start_dim=1)).squeeze(1)

