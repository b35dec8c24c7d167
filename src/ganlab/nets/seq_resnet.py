"""Residual 1-D convolutional generator and discriminator for one-hot sequences ``(A, L)`` (``A`` symbols,
``L`` positions): the character-level language model of WGAN-GP (Gulrajani et al. 2017, "Improved
Training of Wasserstein GANs", section 6.2 and its code ``gan_language.py``), which Killoran et al. 2017
("Generating and designing DNA with deep generative models") use for DNA.

Residual block: ``x + 0.3 * (act, conv_k, act, conv_k)(x)`` with ``width`` channels kept and "same"
padding (the 0.3 scale of the reference code), with a feature normalisation before each activation when
``norm`` is not ``none``. Generator: ``z -> linear -> (width, L)``, ``depth`` blocks, a 1x1 convolution to
the ``A`` per-position logits, then per position a softmax over the symbols (``output=softmax``, the
papers') or a straight-through Gumbel-softmax sample (``output=gumbel``: Jang et al. 2017, "Categorical
Reparameterization with Gumbel-Softmax"; for GANs Kusner & Hernandez-Lobato 2016). Discriminator: a 1x1
convolution from the ``A`` channels to ``width``, ``depth`` blocks, and a linear logit of all
``width * L`` features. The papers: width 512, 5 blocks, kernel 5, ``z`` of 128.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganlab.nets import layers
from ganlab.nets.layers import check_generator_norm, check_norm, weight_norm

OUTPUTS = ("softmax", "gumbel")
RESIDUAL_SCALE = 0.3  # gan_language.py: ``return inputs + (0.3*output)``


def check_sequence_shape(data_shape: tuple[int, ...], who: str) -> tuple[int, int]:
    """``(symbols, length)`` of one-hot sequences ``(A, L)``; a clear error for any other shape."""
    if len(data_shape) != 2:
        raise ValueError(
            f"{who} models one-hot sequences of shape (alphabet, length), but the data has samples of shape "
            f"{tuple(data_shape)}; for vector data use model=mlp, for images model=dcgan or model=resnet"
        )
    return int(data_shape[0]), int(data_shape[1])


def sequence_norm(norm: str, width: int) -> nn.Module:
    """Normalisation of ``(N, width, L)`` features: batch norm per channel, layer norm over all features
    of a sample (GroupNorm(1, width)), or identity for ``none``/``spectral``."""
    if norm == "batch":
        return nn.BatchNorm1d(width)
    if norm == "layer":
        return nn.GroupNorm(1, width)
    return nn.Identity()


class ResBlock1d(nn.Module):
    """``x + 0.3 * residual(x)``; residual: [norm,] activation, conv_k, [norm,] activation, conv_k, with
    spectrally normalised convolutions when ``norm`` is ``spectral``."""

    def __init__(self, width: int, kernel: int, norm: str, act: str) -> None:
        super().__init__()
        if int(kernel) < 1 or int(kernel) % 2 == 0:
            raise ValueError(f"the residual blocks' kernel must be an odd integer >= 1, got {kernel}")
        pad = int(kernel) // 2
        self.residual = nn.Sequential(
            sequence_norm(norm, width),
            layers.activation(act),
            weight_norm(nn.Conv1d(width, width, kernel, padding=pad), norm),
            sequence_norm(norm, width),
            layers.activation(act),
            weight_norm(nn.Conv1d(width, width, kernel, padding=pad), norm),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + RESIDUAL_SCALE * self.residual(x)


def gumbel_noise(e: Tensor) -> Tensor:
    """Gumbel(0, 1) noise from standard normal ``e``: ``g = -log(-log U)`` with ``U = Phi(e)``, which is
    uniform on (0, 1); computed as ``-log(-log_ndtr(e))`` so that the tails keep their precision."""
    return -torch.log((-torch.special.log_ndtr(e)).clamp_min(torch.finfo(e.dtype).tiny))


class SeqResNetGenerator(nn.Module):
    """``z -> (A, L)`` sequences through residual 1-D blocks (module docstring).

    ``output``: ``softmax`` (probabilities per position) or ``gumbel`` (a one-hot sample per position
    whose gradient is that of ``softmax((logits + g) / temperature)``, straight-through). The Gumbel noise
    ``g`` is part of the generator's input: with ``output=gumbel`` the noise it takes, :attr:`z_dim`, is
    ``z_dim`` latent values followed by one standard normal value per symbol and position, turned into
    Gumbel noise by :func:`gumbel_noise`. So every sample is a function of its noise vector alone, drawn
    (like any noise) from the run's checkpointed noise generator: training resumes exactly, and the
    evaluation and ``ganlab.sample`` draw the same samples from the same seed.
    """

    def __init__(
        self,
        z_dim: int,
        data_shape: tuple[int, ...],
        width: int = 512,
        depth: int = 5,
        kernel: int = 5,
        activation: str = "relu",
        norm: str = "none",
        output: str = "softmax",
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        symbols, self.length = check_sequence_shape(self.data_shape, "SeqResNetGenerator")
        check_generator_norm(norm)
        if output not in OUTPUTS:
            raise ValueError(f"SeqResNetGenerator: output={output!r} is invalid; valid: {', '.join(OUTPUTS)}")
        if not temperature > 0:
            raise ValueError(f"SeqResNetGenerator: temperature must be > 0, got {temperature}")
        self.latent_dim, self.width = int(z_dim), int(width)
        self.output, self.temperature = output, float(temperature)
        self.z_dim = self.latent_dim + (symbols * self.length if output == "gumbel" else 0)
        self.project = nn.Linear(self.latent_dim, self.width * self.length)
        self.blocks = nn.Sequential(*(ResBlock1d(self.width, kernel, norm, activation) for _ in range(depth)))
        self.to_logits = nn.Conv1d(self.width, symbols, 1)

    def logits(self, latent: Tensor) -> Tensor:
        """The ``(N, A, L)`` per-position logits of the latent part of the noise."""
        h = self.project(latent).view(len(latent), self.width, self.length)
        return self.to_logits(self.blocks(h))

    def forward(self, z: Tensor) -> Tensor:
        logits = self.logits(z[:, : self.latent_dim])
        if self.output == "softmax":
            return torch.softmax(logits, dim=1)
        g = gumbel_noise(z[:, self.latent_dim :].reshape(logits.shape))
        soft = torch.softmax((logits + g) / self.temperature, dim=1)
        hard = torch.nn.functional.one_hot(soft.argmax(dim=1), soft.shape[1]).permute(0, 2, 1).to(soft.dtype)
        return hard - soft.detach() + soft


class SeqResNetDiscriminator(nn.Module):
    """``(A, L)`` one-hot or soft sequences ``-> logit`` through residual 1-D blocks (module docstring).

    ``norm``: ``none`` (WGAN-GP's critic, the default: gradient penalties want a critic that scores each
    sample on its own), ``layer``, ``spectral`` (every convolution and the linear layer) or ``batch``."""

    def __init__(
        self,
        data_shape: tuple[int, ...],
        width: int = 512,
        depth: int = 5,
        kernel: int = 5,
        activation: str = "relu",
        norm: str = "none",
    ) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        self.norm = check_norm(norm)
        symbols, length = check_sequence_shape(self.data_shape, "SeqResNetDiscriminator")
        self.embed = weight_norm(nn.Conv1d(symbols, width, 1), norm)
        self.blocks = nn.Sequential(*(ResBlock1d(width, kernel, norm, activation) for _ in range(depth)))
        self.head = weight_norm(nn.Linear(width * length, 1), norm)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.embed(x)).flatten(start_dim=1)).squeeze(1)
