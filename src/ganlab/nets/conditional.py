"""Class-conditional variants of the image nets: ``model=dcgan_cond``, ``model=resnet_cond``.

- Generator: ``G(z, y) = G_0([z, e(y)])``, the unconditional generator fed the noise concatenated with a
  learned embedding ``e(y)`` of the label (Mirza & Osindero 2014, "Conditional Generative Adversarial
  Nets"; an embedding in place of their one-hot code).
- Discriminator: the projection discriminator (Miyato & Koyama 2018, "cGANs with Projection
  Discriminator", eq. 3): ``D(x, y) = psi(phi(x)) + <v_y, phi(x)>``, with ``phi`` the unconditional
  discriminator's features, ``psi`` its linear logit and ``v_y`` a learned embedding of the label (row
  ``y`` of a ``num_classes x dim(phi)`` matrix, spectrally normalised with the rest of D when D's ``norm``
  is ``spectral``, as in the paper).

Each variant is the unconditional net plus one of two mixins, so it takes the same options
(``width``, ``norm``, ...) and adapts to the data the same way; ``num_classes`` comes from the data
module (``ganlab.nets.build_net``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganlab.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from ganlab.nets.layers import weight_norm
from ganlab.nets.resnet import ResNetDiscriminator, ResNetGenerator


def _check_classes(num_classes: int, who: str) -> int:
    if int(num_classes) < 2:
        raise ValueError(f"{who} needs at least 2 classes, got num_classes={num_classes}")
    return int(num_classes)


class LabelConcatenation:
    """Generator mixin: ``forward(z, y) = base.forward(cat(z, embed(y)))``; the base generator is built
    for a noise of ``z_dim + embed_dim`` dimensions, ``z_dim`` stays the noise the caller draws."""

    conditional = True

    def __init__(
        self, z_dim: int, data_shape: tuple[int, ...], num_classes: int, embed_dim: int = 32, **kwargs
    ) -> None:
        super().__init__(int(z_dim) + int(embed_dim), data_shape, **kwargs)
        self.z_dim = int(z_dim)
        self.num_classes = _check_classes(num_classes, type(self).__name__)
        self.embed = nn.Embedding(self.num_classes, int(embed_dim))

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        return super().forward(torch.cat([z, self.embed(labels)], dim=1))


class Projection:
    """Discriminator mixin: ``forward(x, y) = head(phi(x)) + <embed(y), phi(x)>`` on the base
    discriminator's ``phi`` and ``head``; the embedding starts Xavier-uniform (as in the paper's code) so
    that the projection term starts as small as the linear logit."""

    conditional = True

    def __init__(self, data_shape: tuple[int, ...], num_classes: int, **kwargs) -> None:
        super().__init__(data_shape, **kwargs)
        self.num_classes = _check_classes(num_classes, type(self).__name__)
        embed = nn.Embedding(self.num_classes, self.head.in_features)
        nn.init.xavier_uniform_(embed.weight)
        self.embed = weight_norm(embed, self.norm)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        h = self.phi(x)
        return self.head(h).squeeze(1) + (self.embed(labels) * h).sum(dim=1)


class ConditionalDCGANGenerator(LabelConcatenation, DCGANGenerator):
    """:class:`~ganlab.nets.dcgan.DCGANGenerator` conditioned on the label (:class:`LabelConcatenation`)."""


class ProjectionDCGANDiscriminator(Projection, DCGANDiscriminator):
    """:class:`~ganlab.nets.dcgan.DCGANDiscriminator` with the label projection of :class:`Projection`."""


class ConditionalResNetGenerator(LabelConcatenation, ResNetGenerator):
    """:class:`~ganlab.nets.resnet.ResNetGenerator` conditioned on the label (:class:`LabelConcatenation`)."""


class ProjectionResNetDiscriminator(Projection, ResNetDiscriminator):
    """:class:`~ganlab.nets.resnet.ResNetDiscriminator` with the label projection of :class:`Projection`."""
