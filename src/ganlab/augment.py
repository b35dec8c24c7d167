"""Random transformations of the discriminator's inputs: instance noise and differentiable augmentation.

An :class:`InputTransform` maps a batch to a batch. The GAN module applies its transforms to *every*
input of D (``ganlab.module.GAN.critic``): the real and the fake batch of a D step, the fake batch of a
G step, and the points where a penalty differentiates D (the penalty then sees ``x -> D(T(x))`` and its
gradient flows through T, as StyleGAN2-ADA computes R1 through its augmentation). So D only ever sees
transformed samples, real and fake alike, which is what both methods below require. Each transform draws
its randomness from the :class:`ganlab.noise.BatchNoise` it is given (over the module's checkpointed noise
generator), so a run stays reproducible, and a run split across processes draws what one process with the
global batch draws. A plain ``torch.Generator`` (or ``None``, torch's global RNG) is accepted too.

- :class:`InstanceNoise` (``augment=instance_noise``): Gaussian noise with an annealed standard deviation
  (Sonderby et al. 2017; Arjovsky & Bottou 2017).
- :class:`DiffAugment` (``augment=diffaug``): colour, translation and cutout (Zhao et al. 2020).

The ``augment`` config group holds them: each option file puts its transform under its own key, so that a
list (``augment=[diffaug,instance_noise]``) selects several, applied in the list's order. A new transform
is one subclass here plus one ``conf/augment/<name>.yaml`` whose single key names it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor

from ganlab.noise import BatchNoise, as_batch_noise

Noise = BatchNoise | torch.Generator | None


class InputTransform:
    """Base class: ``transform(x, g_step, noise) -> x`` applied to every discriminator input.

    ``g_step`` is the number of generator updates done, for transforms with a schedule; ``logs`` returns
    values to log at that step (e.g. the current noise level).
    """

    def __call__(self, x: Tensor, g_step: int, noise: Noise = None) -> Tensor:
        raise NotImplementedError

    def logs(self, g_step: int) -> dict[str, float]:
        return {}


def _linear(progress: float, rate: float) -> float:
    return 1.0 - progress


def _exponential(progress: float, rate: float) -> float:
    return (math.exp(-rate * progress) - math.exp(-rate)) / (1.0 - math.exp(-rate))


SCHEDULES: dict[str, Callable[[float, float], float]] = {"linear": _linear, "exponential": _exponential}


class InstanceNoise(InputTransform):
    """Instance noise (Sonderby et al. 2017, "Amortised MAP Inference for Image Super-resolution";
    Arjovsky & Bottou 2017, "Towards Principled Methods for Training GANs"): D sees
    ``x + sigma(t) eps``, ``eps ~ N(0, I)``, for real and fake ``x`` alike, which makes the real and the
    generated distributions overlap so that D cannot separate them perfectly and its gradients stay
    informative. The noise is annealed to 0 over ``anneal_steps`` generator steps, ``u = min(t / T, 1)``:

    - ``linear``: ``sigma(t) = sigma0 (1 - u)``;
    - ``exponential``: ``sigma(t) = sigma0 (exp(-r u) - exp(-r)) / (1 - exp(-r))``, a decay at rate ``r``
      (``rate``) shifted and scaled so that it starts at ``sigma0`` and reaches 0 exactly at ``u = 1``.

    ``sigma0`` is in the data's units (images in [-1, 1]; toy data in its own coordinates).
    """

    def __init__(
        self, sigma0: float = 0.1, anneal_steps: int = 1000, schedule: str = "linear", rate: float = 5.0
    ) -> None:
        if not sigma0 >= 0:
            raise ValueError(f"InstanceNoise: sigma0 must be >= 0, got {sigma0}")
        if int(anneal_steps) < 1:
            raise ValueError(f"InstanceNoise: anneal_steps must be an integer >= 1, got {anneal_steps}")
        if schedule not in SCHEDULES:
            raise ValueError(f"InstanceNoise: unknown schedule {schedule!r}; valid: {sorted(SCHEDULES)}")
        if not rate > 0:
            raise ValueError(f"InstanceNoise: rate must be > 0, got {rate}")
        self.sigma0, self.anneal_steps = float(sigma0), int(anneal_steps)
        self.schedule, self.rate = schedule, float(rate)

    def sigma(self, g_step: int) -> float:
        """The noise standard deviation after ``g_step`` generator updates."""
        progress = min(g_step / self.anneal_steps, 1.0)
        return self.sigma0 * SCHEDULES[self.schedule](progress, self.rate)

    def __call__(self, x: Tensor, g_step: int, noise: Noise = None) -> Tensor:
        sigma = self.sigma(g_step)
        if sigma == 0.0:
            return x
        eps = as_batch_noise(noise).randn(*x.shape, device=x.device, dtype=x.dtype)
        return x + sigma * eps

    def logs(self, g_step: int) -> dict[str, float]:
        return {"noise/sigma": self.sigma(g_step)}

    def __repr__(self) -> str:
        return (
            f"InstanceNoise(sigma0={self.sigma0}, anneal_steps={self.anneal_steps}, "
            f"schedule={self.schedule!r}, rate={self.rate})"
        )


# DiffAugment's operations (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"),
# each a differentiable function of the images drawing its random values per sample.


def _per_sample(x: Tensor, noise: Noise) -> Tensor:
    """``U[0, 1)`` draws of shape ``(N, 1, 1, 1)``."""
    return as_batch_noise(noise).rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype)


def brightness(x: Tensor, noise: Noise = None) -> Tensor:
    """``x + b``, ``b ~ U(-0.5, 0.5)`` per sample."""
    return x + (_per_sample(x, noise) - 0.5)


def saturation(x: Tensor, noise: Noise = None) -> Tensor:
    """``(x - m) s + m``, ``m`` the mean over the channels of each pixel, ``s ~ U(0, 2)`` per sample
    (the identity for one channel)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (2.0 * _per_sample(x, noise)) + mean


def contrast(x: Tensor, noise: Noise = None) -> Tensor:
    """``(x - m) c + m``, ``m`` the mean of each image, ``c ~ U(0.5, 1.5)`` per sample."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_per_sample(x, noise) + 0.5) + mean


def translate(x: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """Each image ``n`` moved down by ``dy[n]`` rows and right by ``dx[n]`` columns (negative: up, left),
    zeros where no pixel comes in: ``out[n, :, i, j] = x[n, :, i - dy[n], j - dx[n]]`` when that pixel
    exists, else 0. A gather, so the gradient reaches the moved pixels."""
    n, _, h, w = x.shape
    pad_h, pad_w = int(dy.abs().max()), int(dx.abs().max())
    padded = torch.nn.functional.pad(x, [pad_w, pad_w, pad_h, pad_h])
    rows = torch.arange(h, device=x.device).unsqueeze(0) - dy.unsqueeze(1) + pad_h  # (N, H)
    cols = torch.arange(w, device=x.device).unsqueeze(0) - dx.unsqueeze(1) + pad_w  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (N, H, W, C) -> NCHW


def translation(x: Tensor, noise: Noise = None, ratio: float = 0.125) -> Tensor:
    """:func:`translate` by offsets drawn uniformly from the integers ``[-s, s]`` per sample and axis,
    ``s = round(ratio * side)`` (1/8 of the image in the paper), zero padding."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    noise = as_batch_noise(noise)
    dy = noise.randint(-sy, sy + 1, n, device=x.device)
    dx = noise.randint(-sx, sx + 1, n, device=x.device)
    return translate(x, dy, dx)


def cutout(x: Tensor, noise: Noise = None, ratio: float = 0.5) -> Tensor:
    """Zero a ``round(ratio * H) x round(ratio * W)`` square (half the image side in the paper) centred on
    a pixel drawn uniformly per sample; the square is clipped at the image border."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    noise = as_batch_noise(noise)
    top = noise.randint(0, h, n, 1, device=x.device) - size_h // 2
    left = noise.randint(0, w, n, 1, device=x.device) - size_w // 2
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    inside_rows = (rows >= top) & (rows < top + size_h)  # (N, H)
    inside_cols = (cols >= left) & (cols < left + size_w)  # (N, W)
    keep = ~(inside_rows[:, :, None] & inside_cols[:, None, :])
    return x * keep[:, None].to(x.dtype)


POLICIES: dict[str, tuple[Callable[..., Tensor], ...]] = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}


class DiffAugment(InputTransform):
    """Differentiable augmentation (Zhao et al. 2020): the same random, differentiable transformation T
    of real and generated images before every discriminator forward, so that D cannot memorise the few
    real images, while G still receives gradients through T (a transformation of the fakes alone would
    teach G to produce transformed images). ``policy`` lists the operations, applied in its order:
    ``color`` (brightness ``+U(-0.5, 0.5)``, saturation ``*U(0, 2)``, contrast ``*U(0.5, 1.5)``),
    ``translation`` (up to ``translation_ratio`` of the side, zero padding), ``cutout`` (a square of
    ``cutout_ratio`` of the side). Images only: ``(N, C, H, W)``.
    """

    def __init__(
        self,
        policy: str | Sequence[str] = "color,translation,cutout",
        translation_ratio: float = 0.125,
        cutout_ratio: float = 0.5,
    ) -> None:
        names = [str(p).strip() for p in (policy.split(",") if isinstance(policy, str) else policy)]
        unknown = [name for name in names if name not in POLICIES]
        if unknown or not names:
            raise ValueError(f"DiffAugment: unknown policy {unknown or names}; valid: {sorted(POLICIES)}")
        if not (0 <= translation_ratio < 1 and 0 <= cutout_ratio <= 1):
            raise ValueError(
                f"DiffAugment: translation_ratio must be in [0, 1) and cutout_ratio in [0, 1], got "
                f"{translation_ratio} and {cutout_ratio}"
            )
        self.policy = names
        self.translation_ratio, self.cutout_ratio = float(translation_ratio), float(cutout_ratio)
        options = {translation: {"ratio": self.translation_ratio}, cutout: {"ratio": self.cutout_ratio}}
        self.ops = [partial(op, **options.get(op, {})) for name in names for op in POLICIES[name]]

    def __call__(self, x: Tensor, g_step: int, noise: Noise = None) -> Tensor:
        if x.dim() != 4:
            raise ValueError(
                f"DiffAugment transforms images (N, C, H, W), got a batch of shape {tuple(x.shape)}; "
                "leave diffaug out of augment for vector data (augment=instance_noise, or no augment)"
            )
        for op in self.ops:
            x = op(x, noise=noise)
        return x

    def __repr__(self) -> str:
        return (
            f"DiffAugment(policy={','.join(self.policy)!r}, translation_ratio={self.translation_ratio}, "
            f"cutout_ratio={self.cutout_ratio})"
        )
