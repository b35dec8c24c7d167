"""Adversarial losses.

Each loss maps discriminator *logits* (raw, unbounded outputs) to two scalars: the discriminator's
loss on a real and a fake batch, and the generator's loss on a fake batch (and, for the relativistic
losses, on the real batch of the same step). Probabilities never appear:
``log D(x) = -softplus(-l)`` and ``log(1 - D(x)) = -softplus(l)`` for ``D(x) = sigmoid(l)``, which stay
finite and have exact gradients for any logit (``log(sigmoid(l))`` underflows to ``-inf`` at ``l = -100``).
Logits reach a loss in at least float32: under mixed precision (``trainer.precision=bf16-mixed`` or
``16-mixed``) D computes in bf16/fp16 and the module casts its logits to float32 (``GAN.critic``), so every
softplus, square and mean below runs in float32 (autocast runs an op that it does not list in the dtype of
its inputs).

A new loss is one subclass here plus one ``conf/loss/<name>.yaml``; nothing else learns its name.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ganlab.distributed import world


class AdversarialLoss:
    """Base class. The contract, for every loss:

    - ``d_loss(real_logits, fake_logits)``: D's loss, a batch mean, on D's logits for a real and a
      generated batch of equal size.
    - ``g_loss(fake_logits, real_logits)``: G's loss on D's logits for a generated batch. ``real_logits``
      are D's logits for a real batch of the same size (row ``i`` paired with fake ``i``) when the class
      sets ``g_needs_real = True`` (the relativistic losses), else ``None``: the module then runs no D
      forward on reals in the generator step, which costs what a hand-written loop of that loss costs.
      They are constants for G (real data does not depend on G, and D is not updated in a G step), so
      G's gradient flows through ``fake_logits`` only.
    """

    g_needs_real: ClassVar[bool] = False

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def after_d_step(self, discriminator: torch.nn.Module) -> None:
        """Hook run after each discriminator optimizer step (e.g. weight clipping); no-op by default."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MinimaxLoss(AdversarialLoss):
    """The original minimax game (Goodfellow et al. 2014, "Generative Adversarial Nets").

    D maximises ``E log D(x) + E log(1 - D(G(z)))``, i.e. minimises
    ``L_D = E softplus(-l_real) + E softplus(l_fake)`` (binary cross-entropy on logits).
    G minimises the *saturating* objective ``E log(1 - D(G(z))) = -E softplus(l_fake)``, whose gradient
    ``-sigmoid(l_fake)`` vanishes when D confidently rejects fakes (``l_fake -> -inf``): the very
    weakness the non-saturating loss fixes.

    One-sided label smoothing (Salimans et al. 2016, "Improved Techniques for Training GANs", section
    3.4): ``real_label = t < 1`` is D's target for real samples, fakes keep the target 0. D's loss on reals
    becomes the binary cross-entropy against ``t``, ``-t log D(x) - (1 - t) log(1 - D(x)) =
    t softplus(-l) + (1 - t) softplus(l)``, whose gradient ``sigmoid(l) - t`` stops pushing real logits
    once ``D(x) = t``. Smoothing the fake target too would reward D for the fakes' current density
    (the paper's argument for one side only), so there is no fake label. ``real_label = 1`` (default) is
    the unsmoothed loss.
    """

    def __init__(self, real_label: float = 1.0) -> None:
        if not 0.0 < real_label <= 1.0:
            raise ValueError(f"{type(self).__name__}: real_label must be in (0, 1], got {real_label}")
        self.real_label = float(real_label)

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        t = self.real_label
        if t == 1.0:  # the unsmoothed loss without the zero term's ops (a third of the loss's cost)
            return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        real = t * F.softplus(-real_logits) + (1.0 - t) * F.softplus(real_logits)
        return real.mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return -F.softplus(fake_logits).mean()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(real_label={self.real_label})"


class NonSaturatingLoss(MinimaxLoss):
    """Non-saturating GAN (Goodfellow et al. 2014, section 3).

    Same discriminator loss as :class:`MinimaxLoss`; G minimises ``-E log D(G(z)) =
    E softplus(-l_fake)``, whose gradient ``-(1 - sigmoid(l_fake))`` is strong exactly when D rejects fakes.
    """

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return F.softplus(-fake_logits).mean()


class WassersteinLoss(AdversarialLoss):
    """Wasserstein GAN critic loss (Arjovsky et al. 2017; with a gradient penalty, Gulrajani et al. 2017).

    The critic f estimates ``W(P_r, P_g) = sup_{|f|_L <= 1} E f(x) - E f(G(z))``:
    ``L_D = E f(G(z)) - E f(x)`` and ``L_G = -E f(G(z))``. The Lipschitz constraint comes from elsewhere:
    a gradient penalty (``fix=wgan_gp``) or weight clipping (``clip`` > 0, the original WGAN, ``fix=wgan``:
    every critic parameter is clamped to ``[-clip, clip]`` after each critic step).
    """

    def __init__(self, clip: float = 0.0) -> None:
        if clip < 0:
            raise ValueError(f"WassersteinLoss: clip must be >= 0 (0 disables clipping), got {clip}")
        self.clip = float(clip)

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return fake_logits.mean() - real_logits.mean()

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return -fake_logits.mean()

    @torch.no_grad()
    def after_d_step(self, discriminator: torch.nn.Module) -> None:
        if self.clip > 0:
            for p in discriminator.parameters():
                p.clamp_(-self.clip, self.clip)

    def __repr__(self) -> str:
        return f"WassersteinLoss(clip={self.clip})"


class HingeLoss(AdversarialLoss):
    """Hinge loss (Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018, SNGAN).

    ``L_D = E relu(1 - l_real) + E relu(1 + l_fake)``, ``L_G = -E l_fake``.
    """

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return -fake_logits.mean()


class LeastSquaresLoss(AdversarialLoss):
    """Least squares GAN (Mao et al. 2017, "Least Squares Generative Adversarial Networks", eq. 2).

    With target codes a (fake), b (real) for D and c for G:
    ``L_D = 1/2 E (l_real - b)^2 + 1/2 E (l_fake - a)^2``, ``L_G = 1/2 E (l_fake - c)^2``.
    The default ``a, b, c = 0, 1, 1`` is the 0-1 coding of the paper's experiments.
    """

    def __init__(self, a: float = 0.0, b: float = 1.0, c: float = 1.0) -> None:
        self.a, self.b, self.c = float(a), float(b), float(c)

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return 0.5 * (real_logits - self.b).pow(2).mean() + 0.5 * (fake_logits - self.a).pow(2).mean()

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return 0.5 * (fake_logits - self.c).pow(2).mean()

    def __repr__(self) -> str:
        return f"LeastSquaresLoss(a={self.a}, b={self.b}, c={self.c})"


def global_mean(x: Tensor) -> Tensor:
    """The mean of ``x`` over the global batch, ``x`` being this process's shard (shards of equal size):
    ``x.mean()`` on one process; on several, a differentiable all-reduce (its backward sums the gradients
    over the processes), so that a loss built on it computes what one process with the global batch does."""
    _, size = world()
    if size == 1:
        return x.mean()
    from torch.distributed.nn.functional import all_reduce  # importable only where torch has distributed

    return all_reduce(x.mean()) / size


class RelativisticLoss(AdversarialLoss):
    """Base of the relativistic losses (Jolicoeur-Martineau 2019, "The relativistic discriminator: a key
    element missing from standard GAN"): D estimates how much more realistic real data is than fake data,
    and G's loss is D's loss with the roles of real and fake swapped, ``L_G(f, r) = L_D(real=f, fake=r)``,
    so that G raises its fakes' logits *relative to* the reals' (``g_needs_real``)."""

    g_needs_real = True

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        if real_logits is None:
            raise ValueError(
                f"{type(self).__name__}.g_loss needs real_logits (g_needs_real = True), got None"
            )
        return self.d_loss(fake_logits, real_logits)


class RelativisticPairingLoss(RelativisticLoss):
    """Relativistic standard GAN, RSGAN (Jolicoeur-Martineau 2019), which is also RpGAN, the loss of R3GAN
    (Huang et al. 2024, "The GAN is dead; long live the GAN! A Modern GAN Baseline", section 2).

    ``sigmoid(C(x_r) - C(x_f))`` is D's probability that the real ``x_r`` is more realistic than the fake
    ``x_f``; row ``i`` of the real batch is paired with row ``i`` of the fake batch:
    ``L_D = E softplus(-(C(x_r) - C(x_f))) = -E log sigmoid(C(x_r) - C(x_f))`` and
    ``L_G = E softplus(-(C(x_f) - C(x_r)))``.

    RSGAN and RpGAN coincide: R3GAN writes ``E f(D(G(z)) - D(x))`` for a general ``f`` (the RpGAN family
    of Sun et al. 2020, "Towards a Better Global Loss Landscape of GANs") and uses ``f = softplus`` in every
    experiment; its reference code (brownvc/R3GAN, ``R3GAN/Trainer.py``) computes exactly the two
    expressions above with the same row pairing. So ``loss=rsgan`` and ``loss=rpgan`` name this one class.
    """

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        if real_logits.shape != fake_logits.shape:
            raise ValueError(
                f"{type(self).__name__} pairs real and fake logits row by row: shapes must be equal, got "
                f"{tuple(real_logits.shape)} and {tuple(fake_logits.shape)}"
            )
        return F.softplus(fake_logits - real_logits).mean()


class RelativisticAverageLoss(RelativisticLoss):
    """Relativistic average standard GAN, RaSGAN (Jolicoeur-Martineau 2019, the RaGAN of its
    algorithm 2 with the standard GAN's sigmoid).

    Each sample is judged against the batch mean of the other side's logits:
    ``L_D = E_r softplus(-(C(x_r) - E_f C(x_f))) + E_f softplus(C(x_f) - E_r C(x_r))``, i.e.
    ``-E log sigmoid(C(x_r) - E C(x_f)) - E log(1 - sigmoid(C(x_f) - E C(x_r)))``, and with the roles
    swapped ``L_G = E_f softplus(-(C(x_f) - E_r C(x_r))) + E_r softplus(C(x_r) - E_f C(x_f))``: both terms
    depend on G (the second through the mean of the fake logits). The batch means are over the global
    batch when several processes train (:func:`global_mean`).
    """

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        real_vs_fake = real_logits - global_mean(fake_logits)
        fake_vs_real = fake_logits - global_mean(real_logits)
        return F.softplus(-real_vs_fake).mean() + F.softplus(fake_vs_real).mean()
