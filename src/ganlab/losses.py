"""Adversarial losses.

Each loss maps discriminator *logits* (raw, unbounded outputs) to two scalars: the discriminator's
loss on a real and a fake batch, and the generator's loss on a fake batch. Probabilities never appear:
``log D(x) = -softplus(-l)`` and ``log(1 - D(x)) = -softplus(l)`` for ``D(x) = sigmoid(l)``, which stay
finite and have exact gradients for any logit (``log(sigmoid(l))`` underflows to ``-inf`` at ``l = -100``).

A new loss is one subclass here plus one ``conf/loss/<name>.yaml``; nothing else learns its name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class AdversarialLoss:
    """Base class: ``d_loss(real_logits, fake_logits)`` and ``g_loss(fake_logits)``, batch means."""

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def g_loss(self, fake_logits: Tensor) -> Tensor:
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
        real = t * F.softplus(-real_logits) + (1.0 - t) * F.softplus(real_logits)
        return real.mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return -F.softplus(fake_logits).mean()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(real_label={self.real_label})"


class NonSaturatingLoss(MinimaxLoss):
    """Non-saturating GAN (Goodfellow et al. 2014, section 3).

    Same discriminator loss as :class:`MinimaxLoss`; G minimises ``-E log D(G(z)) =
    E softplus(-l_fake)``, whose gradient ``-(1 - sigmoid(l_fake))`` is strong exactly when D rejects fakes.
    """

    def g_loss(self, fake_logits: Tensor) -> Tensor:
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

    def g_loss(self, fake_logits: Tensor) -> Tensor:
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

    def g_loss(self, fake_logits: Tensor) -> Tensor:
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

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return 0.5 * (fake_logits - self.c).pow(2).mean()

    def __repr__(self) -> str:
        return f"LeastSquaresLoss(a={self.a}, b={self.b}, c={self.c})"
