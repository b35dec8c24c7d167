"""Building blocks shared by the architectures: activations and normalisation chosen by name."""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

ACTIVATIONS = {
    "relu": lambda: nn.ReLU(),
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": lambda: nn.ELU(),
    "gelu": lambda: nn.GELU(),
    "silu": lambda: nn.SiLU(),
    "tanh": lambda: nn.Tanh(),
}

NORMS = ("none", "batch", "layer", "spectral")
GENERATOR_NORMS = ("none", "batch", "layer")  # spectral normalisation of G is its own switch


def activation(name: str) -> nn.Module:
    """A fresh activation module; ``leaky_relu`` has slope 0.2 (Radford et al. 2016)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def check_norm(norm: str, allowed: tuple[str, ...] = NORMS) -> str:
    if norm not in allowed:
        raise ValueError(f"unknown normalisation {norm!r}; valid: {list(allowed)}")
    return norm


def check_generator_norm(norm: str) -> str:
    """A generator's ``norm`` normalises features; spectral normalisation of its weights is separate
    (``spectral_norm=true``), so that the two combine as in SAGAN and BigGAN (batch norm + SN in G)."""
    if norm == "spectral":
        raise ValueError(
            "a generator's norm is its feature normalisation (valid: none, batch, layer); for spectral "
            "normalisation of its weights set model.generator.spectral_norm=true"
        )
    return check_norm(norm, GENERATOR_NORMS)


def feature_norm(norm: str, features: int, spatial: bool) -> nn.Module:
    """Normalisation of a hidden layer's output: batch norm, layer norm (over all features of a sample;
    GroupNorm(1, C) for feature maps, as in the WGAN-GP code), or identity for ``none``/``spectral``."""
    if norm == "batch":
        return nn.BatchNorm2d(features) if spatial else nn.BatchNorm1d(features)
    if norm == "layer":
        return nn.GroupNorm(1, features) if spatial else nn.LayerNorm(features)
    return nn.Identity()


def spectral(layer: nn.Module, enabled: bool) -> nn.Module:
    """``layer`` (linear or convolution) with spectral normalisation when ``enabled``: its weight, reshaped
    to ``(out_features, -1)``, is divided by its largest singular value, estimated by one power iteration
    per training-mode forward (Miyato et al. 2018, "Spectral Normalization for GANs")."""
    return spectral_norm(layer) if enabled else layer


def weight_norm(layer: nn.Module, norm: str) -> nn.Module:
    """``layer`` with spectral normalisation when the discriminator's ``norm`` is ``spectral``."""
    return spectral(layer, norm == "spectral")


def upsampling_plan(side: int, who: str = "DCGAN") -> tuple[int, int]:
    """``(start_side, n_doublings)`` with ``start_side * 2**n_doublings == side``: the side halved while it
    is even and above 7 (4 for 8, 16, 32, 64; 7 for 28; 15 for 30); at least one halving is needed."""
    start, n = side, 0
    while start > 7 and start % 2 == 0:
        start, n = start // 2, n + 1
    if n == 0:
        raise ValueError(
            f"{who} needs a square image side that is even and at least 8 "
            f"(e.g. 8, 16, 28, 32, 64), got {side}"
        )
    return start, n


def check_image_shape(data_shape: tuple[int, ...], who: str) -> tuple[int, int]:
    """``(channels, side)`` of square images ``(C, H, H)``; a clear error for anything else."""
    if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
        raise ValueError(
            f"{who} models square images of shape (C, H, H), but the data has samples of shape "
            f"{tuple(data_shape)}; for vector data use model=mlp, for sequences model=seq_resnet"
        )
    return int(data_shape[0]), int(data_shape[1])


def image_plan(data_shape: tuple[int, ...], who: str) -> tuple[int, int, int]:
    """``(channels, start_side, n_doublings)`` of a convolutional net for square images ``(C, H, H)`` that
    doubles (generator) or halves (discriminator) the side between ``start_side`` and ``H``:
    :func:`check_image_shape`, then :func:`upsampling_plan`; errors name ``who``."""
    channels, side = check_image_shape(data_shape, who)
    start, n = upsampling_plan(side, who)
    return channels, start, n
