"""Discriminator regularisers, kept apart from the adversarial losses.

A penalty maps ``(critic, real, fake)`` to a weighted scalar that is added to the discriminator's loss.
``critic`` is a callable ``x -> logits`` (the module closes it over class labels when there are any), so
a penalty never needs to know the network. ``every = k`` applies the penalty lazily, on every k-th
discriminator step only, with its weight multiplied by k so that its average strength is unchanged
(Karras et al. 2020, StyleGAN2, appendix B).

Randomness (interpolation weights, perturbations) comes from the ``noise`` argument, a
:class:`ganlab.noise.BatchNoise` that the module builds over its checkpointed noise generator, so that a
run split across processes draws what a single process with the global batch draws.

Mixed precision (``trainer.precision=bf16-mixed`` or ``16-mixed``): a penalty gets ``grad_scale``, the
factor by which ``16-mixed``'s gradient scaler multiplies the losses (``None`` when gradients are not
scaled), and a penalty that differentiates D with respect to its input passes it to
:func:`input_gradients`, which applies it as PyTorch's AMP examples do for gradient penalties.

Several penalties combine: each YAML file holds one key, so ``penalty=[gp,r1]`` fills ``penalty.gp`` and
``penalty.r1``, and the module adds every due one. A new penalty is one subclass here plus one
``conf/penalty/<name>.yaml`` whose single key names it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ganlab.distributed import batch_std
from ganlab.noise import BatchNoise, as_batch_noise

Critic = Callable[[Tensor], Tensor]
GradScale = Tensor | float  # a gradient scaler's factor: a 0-d tensor (GradScaler.scale of a one) or a number


class Penalty:
    """Base class. Subclasses implement :meth:`value`, the *unweighted* penalty.

    ``per_sample`` is true for penalties on the gradient of D with respect to each input sample. They
    assume that D scores each sample on its own; batch normalisation in D mixes the samples of a batch,
    so such a penalty no longer constrains the function it means to (Gulrajani et al. 2017, section 4).
    """

    per_sample: bool = False
    # whether the penalty differentiates D's output with respect to its input with ``create_graph=True``
    # and then trains through that gradient (a double backward): ``compile=true`` leaves D uncompiled then
    # (ganlab.build), as torch.compile's backward cannot itself be differentiated
    double_backward: bool = False

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

    def __call__(
        self,
        critic: Critic,
        real: Tensor,
        fake: Tensor,
        noise: BatchNoise | None = None,
        grad_scale: GradScale | None = None,
    ) -> Tensor:
        """Weighted penalty, ``weight * every * value``; call only when :meth:`is_due`. ``noise``: where
        random draws come from (``None``: torch's global RNG); ``grad_scale``: the gradient scaler's factor
        (``None``: gradients are not scaled), see :func:`input_gradients`."""
        return self.weight * self.every * self.value(critic, real, fake, as_batch_noise(noise), grad_scale)

    def value(
        self,
        critic: Critic,
        real: Tensor,
        fake: Tensor,
        noise: BatchNoise | None = None,
        grad_scale: GradScale | None = None,
    ) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weight={self.weight}, every={self.every})"


def input_gradients(critic: Critic, x: Tensor, grad_scale: GradScale | None = None) -> Tensor:
    """Per-sample ``grad_x critic(x)``, flattened to ``(N, features)``, with the graph kept so that the
    penalty can be trained.

    The critic scores each sample on its own, so the gradient of the summed logits holds every sample's own
    gradient. ``create_graph=True`` then one ordinary backward of the total loss (no second
    ``autograd.grad``): the form that gives correct gradients under DDP (pytorch/pytorch #47562).

    Mixed precision. ``x`` is taken in at least float32, so the gradient is returned in float32 and the
    norms and means a penalty takes of it are float32 reductions (under autocast D's layers still compute
    in bf16/fp16). In float16 the backward through D can underflow to zero, which is why ``16-mixed``
    scales every loss by a factor ``S`` before its backward; the same holds for this inner backward, so,
    as in PyTorch's AMP example "Gradient penalty", the gradient is taken of the *scaled* output and
    divided by the factor afterwards. With ``grad_scale = S`` the summed logits are multiplied by
    ``S / N`` (``N`` samples): each logit then gets the gradient ``S / N`` that the scaled batch-mean loss
    of the outer backward gives it, so the inner backward runs at the magnitudes the scaler keeps inside
    float16's range, and dividing by ``S / N`` gives the plain gradient back (exactly, in float32, when
    ``S / N`` is a power of two). ``None``: no scaling (32-bit, and bf16, whose range is float32's). An
    overflow makes the gradient non-finite: the scaler then skips the update and lowers ``S``.
    """
    x = x.detach().to(torch.promote_types(x.dtype, torch.float32)).requires_grad_(True)
    out = critic(x).sum()
    if grad_scale is None:
        (grad,) = torch.autograd.grad(out, x, create_graph=True)
    else:
        factor = grad_scale / x.shape[0]
        (scaled,) = torch.autograd.grad(out * factor, x, create_graph=True)
        grad = scaled / factor
    return grad.flatten(start_dim=1)


def _uniform_per_sample(x: Tensor, noise: BatchNoise | None) -> Tensor:
    """``U[0, 1]`` draws of shape ``(N, 1, ..., 1)``, broadcasting over one sample's dimensions."""
    ones = (1,) * (x.dim() - 1)
    return as_batch_noise(noise).rand(x.shape[0], *ones, device=x.device, dtype=x.dtype)


class GradientPenalty(Penalty):
    """One-centred gradient penalty of WGAN-GP (Gulrajani et al. 2017, "Improved Training of
    Wasserstein GANs", algorithm 1).

    ``value = E_{x_hat} (||grad D(x_hat)||_2 - center)^2`` at the points of :meth:`points`, here
    ``x_hat = eps x + (1 - eps) G(z)`` with ``eps ~ U[0, 1]`` drawn per sample. The paper uses
    ``weight = 10``, ``center = 1``.
    """

    per_sample = True
    double_backward = True

    def __init__(self, weight: float = 10.0, center: float = 1.0, every: int = 1) -> None:
        super().__init__(weight, every)
        self.center = float(center)

    def points(self, real: Tensor, fake: Tensor, noise: BatchNoise | None = None) -> Tensor:
        """Where the gradient norm is penalised: random interpolates of real and fake samples."""
        eps = _uniform_per_sample(real, noise)
        return eps * real.detach() + (1.0 - eps) * fake.detach()

    def value(
        self,
        critic: Critic,
        real: Tensor,
        fake: Tensor,
        noise: BatchNoise | None = None,
        grad_scale: GradScale | None = None,
    ) -> Tensor:
        norms = input_gradients(critic, self.points(real, fake, noise), grad_scale).norm(2, dim=1)
        return (norms - self.center).pow(2).mean()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weight={self.weight}, center={self.center}, every={self.every})"


class DRAGANPenalty(GradientPenalty):
    """DRAGAN (Kodali et al. 2017, "On Convergence and Stability of GANs", eq. 5): the one-centred
    gradient penalty of :class:`GradientPenalty` in a neighbourhood of the *real* data, to keep D from
    forming sharp gradients around real points (the mode-collapse mechanism the paper describes).

    The paper writes the points as ``x + delta``, ``delta ~ N(0, cI)``; its reference implementation
    (kodalinaveen3/DRAGAN, followed here) perturbs ``x_p = x + scale * std(x) * u``, ``u ~ U[0, 1]`` per
    element and ``std(x)`` the standard deviation of all elements of the real batch (the global batch when
    training on several processes: :func:`ganlab.distributed.batch_std`), then penalises at a random point
    of the segment, ``x_hat = x + alpha (x_p - x)``, ``alpha ~ U[0, 1]`` per sample. Defaults are the
    reference's: ``weight`` (lambda) 10, ``scale`` 0.5, ``center`` 1.
    """

    def __init__(self, weight: float = 10.0, scale: float = 0.5, center: float = 1.0, every: int = 1) -> None:
        super().__init__(weight, center, every)
        if not scale > 0:
            raise ValueError(f"DRAGANPenalty: scale must be > 0, got {scale}")
        self.scale = float(scale)

    def points(self, real: Tensor, fake: Tensor, noise: BatchNoise | None = None) -> Tensor:
        real, noise = real.detach(), as_batch_noise(noise)
        u = noise.rand(*real.shape, device=real.device, dtype=real.dtype)
        perturbed = real + self.scale * batch_std(real) * u
        return real + _uniform_per_sample(real, noise) * (perturbed - real)

    def __repr__(self) -> str:
        return (
            f"DRAGANPenalty(weight={self.weight}, scale={self.scale}, center={self.center}, "
            f"every={self.every})"
        )


class R1Penalty(Penalty):
    """Zero-centred gradient penalty on real data (Mescheder et al. 2018, "Which Training Methods for
    GANs do actually Converge?", eq. 9): ``value = E_{x ~ P_data} ||grad D(x)||_2^2``.

    Weight convention: the paper and StyleGAN2 write the regulariser as ``gamma/2 * E ||grad D(x)||^2``;
    ganlab's ``weight`` multiplies :meth:`value` as it is, so ``weight = gamma / 2`` (the default 5 is
    the paper's ``gamma = 10``). StyleGAN2 (Karras et al. 2020) applies it lazily, ``every = 16``.
    """

    per_sample = True
    double_backward = True

    def __init__(self, weight: float = 5.0, every: int = 1) -> None:
        super().__init__(weight, every)

    def points(self, real: Tensor, fake: Tensor, noise: BatchNoise | None = None) -> Tensor:
        """Where the gradient is penalised: the real batch."""
        return real

    def value(
        self,
        critic: Critic,
        real: Tensor,
        fake: Tensor,
        noise: BatchNoise | None = None,
        grad_scale: GradScale | None = None,
    ) -> Tensor:
        return input_gradients(critic, self.points(real, fake, noise), grad_scale).pow(2).sum(dim=1).mean()


class R2Penalty(R1Penalty):
    """Zero-centred gradient penalty on generated data (Mescheder et al. 2018, eq. 10):
    ``value = E_{z} ||grad D(G(z))||_2^2``; ``weight = gamma / 2`` as for :class:`R1Penalty`."""

    def points(self, real: Tensor, fake: Tensor, noise: BatchNoise | None = None) -> Tensor:
        """Where the gradient is penalised: the generated batch (no gradient flows into G)."""
        return fake
