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


def activation(name: str) -> nn.Module:
    """A fresh activation module; ``leaky_relu`` has slope 0.2 (Radford et al. 2016)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def check_norm(norm: str, allowed: tuple[str, ...] = NORMS) -> str:
    if norm not in allowed:
        raise ValueError(f"unknown normalisation {norm!r}; valid: {list(allowed)}")
    return norm


def feature_norm(norm: str, features: int, spatial: bool) -> nn.Module:
    """Normalisation of a hidden layer's output: batch norm, layer norm (over all features of a sample;
    GroupNorm(1, C) for feature maps, as in the WGAN-GP code), or identity for ``none``/``spectral``."""
    if norm == "batch":
        return nn.BatchNorm2d(features) if spatial else nn.BatchNorm1d(features)
    if norm == "layer":
        return nn.GroupNorm(1, features) if spatial else nn.LayerNorm(features)
    return nn.Identity()


def weight_norm(layer: nn.Module, norm: str) -> nn.Module:
    """Wrap a linear or convolution layer in spectral normalisation (Miyato et al. 2018) when asked."""
    return spectral_norm(layer) if norm == "spectral" else layer
