"""Discriminator regularisers, kept apart from the adversarial losses.

A penalty maps ``(critic, real, fake)`` to a weighted scalar that is added to the discriminator's loss.
``critic`` is a callable ``x -> logits`` (the module closes it over class labels when there are any), so
a penalty never needs to know the network. ``every = k`` applies the penalty lazily, on every k-th
discriminator step only, with its weight multiplied by k so that its average strength is unchanged
(Karras et al. 2020, StyleGAN2, appendix B).

A new penalty is one subclass here plus one ``conf/penalty/<name>.yaml`` whose single key names it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Critic = Callable[[Tensor], Tensor]


class Penalty:
    """Base class. Subclasses implement :meth:`value`, the *unweighted* penalty."""

    def __init__(self, weight: float, every: int = 1) -> None:
        if not weight > 0:
            raise ValueError(f"{type(self).__name__}: weight must be > 0, got {weight}")
        if int(every) < 1:
            raise ValueError(f"{type(self).__name__}: every must be an integer >= 1, got {every}")
        self.weight = float(weight)
        self.every = int(every)

    def is_due(self, d_step: int) -> bool:
        """Whether the penalty applies at discriminator step ``d_step`` (0-based)."""
        return d_step % self.every == 0

    def __call__(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        """Weighted penalty, ``weight * every * value``; call only when :meth:`is_due`."""
        return self.weight * self.every * self.value(critic, real, fake)

    def value(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weight={self.weight}, every={self.every})"


def input_gradient_norm(critic: Critic, x: Tensor) -> Tensor:
    """Per-sample ``||grad_x critic(x)||_2``, with the graph kept so that the penalty can be trained.

    ``create_graph=True`` then one ordinary backward of the total loss (no second ``autograd.grad``):
    the form that gives correct gradients under DDP (pytorch/pytorch #47562).
    """
    x = x.detach().requires_grad_(True)
    logits = critic(x)
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return grad.flatten(start_dim=1).norm(2, dim=1)


class GradientPenalty(Penalty):
    """One-centred gradient penalty of WGAN-GP (Gulrajani et al. 2017, "Improved Training of
    Wasserstein GANs", algorithm 1).

    ``value = E_{x_hat} (||grad D(x_hat)||_2 - center)^2`` with ``x_hat = eps x + (1 - eps) G(z)``,
    ``eps ~ U[0, 1]`` drawn per sample. The paper uses ``weight = 10``, ``center = 1``. The penalty is per
    sample: a batch-normalised critic breaks it (section 4), so use layer norm or none.
    """

    def __init__(self, weight: float = 10.0, center: float = 1.0, every: int = 1) -> None:
        super().__init__(weight, every)
        self.center = float(center)

    def value(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
        x_hat = eps * real.detach() + (1.0 - eps) * fake.detach()
        return (input_gradient_norm(critic, x_hat) - self.center).pow(2).mean()

    def __repr__(self) -> str:
        return f"GradientPenalty(weight={self.weight}, center={self.center}, every={self.every})"
