"""Multi-layer perceptrons for 2-D toy data and other vector data."""

from __future__ import annotations

from torch import Tensor, nn

from ganlab.nets.layers import (
    activation,
    check_generator_norm,
    check_norm,
    feature_norm,
    spectral,
    weight_norm,
)


def _check_vector_shape(data_shape: tuple[int, ...], who: str) -> int:
    if len(data_shape) != 1:
        raise ValueError(
            f"{who} models vector data of shape (D,), but the data has samples of shape {tuple(data_shape)}; "
            "for images use model=dcgan or model=resnet, for sequences model=seq_resnet"
        )
    return int(data_shape[0])


def _hidden_stack(n_in: int, width: int, depth: int, act: str, norm: str, sn: bool) -> list[nn.Module]:
    """``depth`` blocks of linear (spectrally normalised when ``sn``), feature norm and activation."""
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [
            spectral(nn.Linear(n_in if i == 0 else width, width), sn),
            feature_norm(norm, width, spatial=False),
            activation(act),
        ]
    return layers


class MLPGenerator(nn.Module):
    """``z -> x``: ``depth`` hidden layers of ``width`` units (linear, norm, activation), then a linear
    output layer with no squashing, since vector data is unbounded (toy data, standardised tables).
    ``spectral_norm`` wraps every linear layer in spectral normalisation."""

    def __init__(
        self,
        z_dim: int,
        data_shape: tuple[int, ...],
        width: int = 256,
        depth: int = 3,
        activation: str = "relu",
        norm: str = "none",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.z_dim = int(z_dim)
        self.data_shape = tuple(data_shape)
        n_out = _check_vector_shape(self.data_shape, "MLPGenerator")
        check_generator_norm(norm)
        self.net = nn.Sequential(
            *_hidden_stack(self.z_dim, width, depth, activation, norm, spectral_norm),
            spectral(nn.Linear(width, n_out), spectral_norm),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """``x -> logit``: ``depth`` hidden layers of ``width`` units, then one linear output (a logit)."""

    def __init__(
        self,
        data_shape: tuple[int, ...],
        width: int = 256,
        depth: int = 3,
        activation: str = "leaky_relu",
        norm: str = "none",
    ) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.norm = check_norm(norm)
        n_in = _check_vector_shape(self.data_shape, "MLPDiscriminator")
        self.net = nn.Sequential(
            *_hidden_stack(n_in, width, depth, activation, norm, norm == "spectral"),
            weight_norm(nn.Linear(width, 1), norm),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(start_dim=1)).squeeze(1)
