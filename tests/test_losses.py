"""Each loss against its formula on hand-made logits: values, gradients, and extreme logits."""

from __future__ import annotations

import math

import pytest
import torch

from ganlab.losses import HingeLoss, LeastSquaresLoss, MinimaxLoss, NonSaturatingLoss, WassersteinLoss
from ganlab.train import build, build_trainer

REAL = [2.0, -1.0, 0.5]
FAKE = [-3.0, 0.0, 1.5]


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


# Formulas written with probabilities, in float64 Python, independent of the implementation.
D_FORMULAS = {
    MinimaxLoss: lambda r, f: mean(-math.log(sig(x)) for x in r) + mean(-math.log(1 - sig(x)) for x in f),
    NonSaturatingLoss: lambda r, f: (
        mean(-math.log(sig(x)) for x in r) + mean(-math.log(1 - sig(x)) for x in f)
    ),
    WassersteinLoss: lambda r, f: mean(f) - mean(r),
    HingeLoss: lambda r, f: mean(max(0, 1 - x) for x in r) + mean(max(0, 1 + x) for x in f),
    LeastSquaresLoss: lambda r, f: 0.5 * mean((x - 1) ** 2 for x in r) + 0.5 * mean(x**2 for x in f),
}
G_FORMULAS = {
    MinimaxLoss: lambda f: mean(math.log(1 - sig(x)) for x in f),
    NonSaturatingLoss: lambda f: mean(-math.log(sig(x)) for x in f),
    WassersteinLoss: lambda f: -mean(f),
    HingeLoss: lambda f: -mean(f),
    LeastSquaresLoss: lambda f: 0.5 * mean((x - 1) ** 2 for x in f),
}
# d L_G / d l_i for each fake logit (batch of n: the mean contributes 1/n)
G_GRADS = {
    MinimaxLoss: lambda x, n: -sig(x) / n,
    NonSaturatingLoss: lambda x, n: -(1 - sig(x)) / n,
    WassersteinLoss: lambda x, n: -1 / n,
    HingeLoss: lambda x, n: -1 / n,
    LeastSquaresLoss: lambda x, n: (x - 1) / n,
}
LOSSES = list(D_FORMULAS)


@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
def test_d_loss_matches_formula(cls):
    loss = cls().d_loss(torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64))
    assert loss.item() == pytest.approx(D_FORMULAS[cls](REAL, FAKE), rel=1e-12)


@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
def test_g_loss_and_gradient_match_formula(cls):
    fake = torch.tensor(FAKE, dtype=torch.float64, requires_grad=True)
    loss = cls().g_loss(fake)
    loss.backward()
    assert loss.item() == pytest.approx(G_FORMULAS[cls](FAKE), rel=1e-12)
    expected = [G_GRADS[cls](x, len(FAKE)) for x in FAKE]
    assert fake.grad.tolist() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
def test_d_gradient_matches_autograd_of_formula(cls):
    """d L_D / d logits against torch autograd of the probability-space formula (float64, moderate logits)."""
    real = torch.tensor(REAL, dtype=torch.float64, requires_grad=True)
    fake = torch.tensor(FAKE, dtype=torch.float64, requires_grad=True)
    cls().d_loss(real, fake).backward()
    r2, f2 = real.detach().clone().requires_grad_(), fake.detach().clone().requires_grad_()
    if cls in (MinimaxLoss, NonSaturatingLoss):
        ref = -torch.log(torch.sigmoid(r2)).mean() - torch.log(1 - torch.sigmoid(f2)).mean()
    elif cls is LeastSquaresLoss:
        ref = 0.5 * ((r2 - 1) ** 2).mean() + 0.5 * (f2**2).mean()
    elif cls is HingeLoss:
        ref = torch.relu(1 - r2).mean() + torch.relu(1 + f2).mean()
    else:
        ref = f2.mean() - r2.mean()
    ref.backward()
    assert real.grad.tolist() == pytest.approx(r2.grad.tolist(), rel=1e-12)
    assert fake.grad.tolist() == pytest.approx(f2.grad.tolist(), rel=1e-12)


@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_extreme_logits_stay_finite(cls, dtype):
    extreme = torch.tensor([-100.0, 100.0, 0.0], dtype=dtype, requires_grad=True)
    loss = cls().d_loss(extreme, extreme.flip(0)) + cls().g_loss(extreme)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(extreme.grad).all()


def test_minimax_is_saturating_where_non_saturating_is_not():
    """At l_fake = -100 (D rejects the fake) the saturating gradient vanishes, the non-saturating is -1."""
    fake = torch.tensor([-100.0], requires_grad=True)
    MinimaxLoss().g_loss(fake).backward()
    assert abs(fake.grad.item()) < 1e-40
    fake.grad = None
    NonSaturatingLoss().g_loss(fake).backward()
    assert fake.grad.item() == pytest.approx(-1.0)
    assert NonSaturatingLoss().g_loss(torch.tensor([-100.0])).item() == pytest.approx(100.0)


def test_wgan_clipping_clamps_every_weight():
    net = torch.nn.Linear(4, 3)
    torch.nn.init.normal_(net.weight, std=5.0)
    WassersteinLoss(clip=0.01).after_d_step(net)
    assert all(p.abs().max().item() <= 0.01 for p in net.parameters())
    with pytest.raises(ValueError, match="clip"):
        WassersteinLoss(clip=-1)


def test_fix_wgan_brings_the_papers_settings_and_keeps_every_critic_weight_clipped(make_cfg, tmp_path):
    """fix=wgan (Arjovsky et al. 2017): clip 0.01, n_critic 5, RMSProp 5e-5, no penalty; after training
    every critic parameter lies in [-c, c] and the clip is binding (the initial weights exceed it)."""
    cfg = make_cfg("fix=wgan", "trainer.max_steps=2")
    assert cfg.loss.clip == 0.01 and cfg.n_critic == 5 and dict(cfg.penalty) == {}
    assert {cfg.optim[n]._target_ for n in "gd"} == {"torch.optim.RMSprop"}
    assert cfg.optim.g.lr == cfg.optim.d.lr == 5e-5
    module, datamodule = build(cfg)
    assert max(p.abs().max().item() for p in module.discriminator.parameters()) > 0.1
    build_trainer(cfg, tmp_path).fit(module, datamodule=datamodule)
    assert module.d_steps == 10
    largest = max(p.abs().max().item() for p in module.discriminator.parameters())
    assert largest == pytest.approx(0.01)


@pytest.mark.parametrize("cls", [MinimaxLoss, NonSaturatingLoss], ids=lambda c: c.__name__)
@pytest.mark.parametrize("t", [0.9, 0.7])
def test_one_sided_label_smoothing_matches_cross_entropy_against_the_real_label(cls, t):
    """L_D = mean_r [-t log s(l) - (1 - t) log(1 - s(l))] + mean_f [-log(1 - s(l))] and
    d L_D / d l_real = (s(l) - t) / n; the fake side is unchanged (Salimans et al. 2016)."""
    real = torch.tensor(REAL, dtype=torch.float64, requires_grad=True)
    fake = torch.tensor(FAKE, dtype=torch.float64, requires_grad=True)
    loss = cls(real_label=t).d_loss(real, fake)
    loss.backward()
    expected = mean(-t * math.log(sig(x)) - (1 - t) * math.log(1 - sig(x)) for x in REAL) + mean(
        -math.log(1 - sig(x)) for x in FAKE
    )
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert real.grad.tolist() == pytest.approx([(sig(x) - t) / len(REAL) for x in REAL], rel=1e-12)
    assert fake.grad.tolist() == pytest.approx([sig(x) / len(FAKE) for x in FAKE], rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_label_smoothing_is_exact_at_extreme_logits(dtype):
    """At l = +-100 the probabilities round to 0 or 1 but the logit form stays exact: the loss per real
    sample is t softplus(-l) + (1 - t) softplus(l) ~ (1 - t) 100 at l = 100 and t 100 at l = -100."""
    t = 0.9
    real = torch.tensor([100.0, -100.0], dtype=dtype, requires_grad=True)
    fake = torch.tensor([0.0], dtype=dtype)
    loss = NonSaturatingLoss(real_label=t).d_loss(real, fake)
    loss.backward()
    expected = ((1 - t) * 100 + t * 100) / 2 + math.log(2)
    rel = 1e-2 if dtype == torch.float16 else 1e-6
    assert loss.item() == pytest.approx(expected, rel=rel)
    assert real.grad.tolist() == pytest.approx([(1 - t) / 2, -t / 2], rel=rel)


def test_real_label_outside_zero_one_is_refused():
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="real_label"):
            NonSaturatingLoss(real_label=bad)


def test_loss_real_label_override_reaches_the_loss(make_cfg):
    module, _ = build(make_cfg("loss.real_label=0.9"))
    assert module.loss.real_label == 0.9
