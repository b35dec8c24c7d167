"""Each loss against its formula on hand-made logits: values, gradients, and extreme logits."""

from __future__ import annotations

import math
import socket

import pytest
import torch

from ganlab.losses import (
    HingeLoss,
    LeastSquaresLoss,
    MinimaxLoss,
    NonSaturatingLoss,
    RelativisticAverageLoss,
    RelativisticPairingLoss,
    WassersteinLoss,
)
from ganlab.penalties import R1Penalty, R2Penalty
from ganlab.train import build, build_trainer, train

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
    loss = cls().g_loss(fake, None)  # what the module passes to a loss with g_needs_real False
    loss.backward()
    assert not cls.g_needs_real
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
    loss = cls().d_loss(extreme, extreme.flip(0)) + cls().g_loss(extreme, None)
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


# Relativistic losses ------------------------------------------------------------------------------------
# Probability space, float64 Python: D's probability that a real r is more realistic than a fake f is
# sig(r - f) (RSGAN: paired rows) or sig(r - mean(fakes)) (RaGAN: against the other side's batch mean).
REL_D = {
    RelativisticPairingLoss: lambda r, f: mean(-math.log(sig(a - b)) for a, b in zip(r, f, strict=True)),
    RelativisticAverageLoss: lambda r, f: (
        mean(-math.log(sig(a - mean(f))) for a in r) + mean(-math.log(1 - sig(b - mean(r))) for b in f)
    ),
}
REL_G = {
    RelativisticPairingLoss: lambda f, r: mean(-math.log(sig(b - a)) for a, b in zip(r, f, strict=True)),
    RelativisticAverageLoss: lambda f, r: (
        mean(-math.log(sig(b - mean(r))) for b in f) + mean(-math.log(1 - sig(a - mean(f))) for a in r)
    ),
}
# d L_G / d f_j, by hand: RSGAN -(1 - sig(f_j - r_j)) / n; RaGAN adds, through mean(f) in the real term,
# -mean_i sig(r_i - mean(f)) / n
REL_G_GRADS = {
    RelativisticPairingLoss: lambda f, r: [-(1 - sig(b - a)) / len(f) for a, b in zip(r, f, strict=True)],
    RelativisticAverageLoss: lambda f, r: [
        (-(1 - sig(b - mean(r))) - mean(sig(a - mean(f)) for a in r)) / len(f) for b in f
    ],
}
RELATIVISTIC = list(REL_D)


def t64(values, grad: bool = False) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, requires_grad=grad)


@pytest.mark.parametrize("cls", RELATIVISTIC, ids=lambda c: c.__name__)
def test_relativistic_d_loss_and_gradient_match_the_formula(cls):
    real, fake = t64(REAL, True), t64(FAKE, True)
    loss = cls().d_loss(real, fake)
    loss.backward()
    assert loss.item() == pytest.approx(REL_D[cls](REAL, FAKE), rel=1e-12)
    r2, f2 = t64(REAL, True), t64(FAKE, True)
    if cls is RelativisticPairingLoss:
        ref = -torch.log(torch.sigmoid(r2 - f2)).mean()
    else:
        ref = (
            -torch.log(torch.sigmoid(r2 - f2.mean())).mean()
            - torch.log(1 - torch.sigmoid(f2 - r2.mean())).mean()
        )
    ref.backward()
    assert real.grad.tolist() == pytest.approx(r2.grad.tolist(), rel=1e-12)
    assert fake.grad.tolist() == pytest.approx(f2.grad.tolist(), rel=1e-12)


@pytest.mark.parametrize("cls", RELATIVISTIC, ids=lambda c: c.__name__)
def test_relativistic_g_loss_sees_the_real_logits_and_its_gradient_matches_the_formula(cls):
    fake = t64(FAKE, True)
    loss = cls().g_loss(fake, t64(REAL))
    loss.backward()
    assert cls.g_needs_real
    assert loss.item() == pytest.approx(REL_G[cls](FAKE, REAL), rel=1e-12)
    assert fake.grad.tolist() == pytest.approx(REL_G_GRADS[cls](FAKE, REAL), rel=1e-12)
    with pytest.raises(ValueError, match="needs real_logits"):
        cls().g_loss(fake, None)


def test_rsgan_pairs_row_i_of_the_reals_with_row_i_of_the_fakes_and_ragan_does_not_pair():
    """Reordering the fakes changes RSGAN's losses (to the formula on the new pairs), not RaGAN's."""
    shuffled = [FAKE[2], FAKE[0], FAKE[1]]
    rs, ra = RelativisticPairingLoss(), RelativisticAverageLoss()
    assert rs.d_loss(t64(REAL), t64(shuffled)).item() == pytest.approx(
        REL_D[type(rs)](REAL, shuffled), rel=1e-12
    )
    assert rs.g_loss(t64(shuffled), t64(REAL)).item() == pytest.approx(
        REL_G[type(rs)](shuffled, REAL), rel=1e-12
    )
    assert REL_D[type(rs)](REAL, shuffled) != pytest.approx(REL_D[type(rs)](REAL, FAKE), rel=1e-3)
    assert ra.d_loss(t64(REAL), t64(shuffled)).item() == pytest.approx(ra.d_loss(t64(REAL), t64(FAKE)).item())
    with pytest.raises(ValueError, match=r"shapes must be equal, got \(3,\) and \(2,\)"):
        rs.d_loss(t64(REAL), t64(FAKE[:2]))


@pytest.mark.parametrize("cls", RELATIVISTIC, ids=lambda c: c.__name__)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_relativistic_losses_are_exact_at_logits_of_1000(cls, dtype):
    """real (1000, -1000), fake (-1000, 1000): both batch means are 0, and each loss is one softplus of 0 or
    -2000 (~0) and one of 2000 (= 2000) per term: RSGAN 1000, RaGAN 2 * (0 + 1000) / 2 = 1000, finite
    gradients whose fake entries are -1/2 and 0 (RSGAN G) or -1/2 - 1/4 and -1/4 (RaGAN G)."""
    real = torch.tensor([1000.0, -1000.0], dtype=dtype, requires_grad=True)
    fake = torch.tensor([-1000.0, 1000.0], dtype=dtype, requires_grad=True)
    d, g = cls().d_loss(real, fake), cls().g_loss(fake, real.detach())
    assert d.item() == pytest.approx(1000.0, rel=1e-6) and g.item() == pytest.approx(1000.0, rel=1e-6)
    (d + g).backward()
    assert torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()
    fake.grad = None
    cls().g_loss(fake, real.detach()).backward()
    expected = [-0.5, 0.0] if cls is RelativisticPairingLoss else [-0.75, -0.25]
    assert fake.grad.tolist() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "name,cls",
    [
        ("rsgan", RelativisticPairingLoss),
        ("rpgan", RelativisticPairingLoss),
        ("ragan", RelativisticAverageLoss),
    ],
)
def test_relativistic_loss_configs_build_their_class(make_cfg, name, cls):
    module, _ = build(make_cfg(f"loss={name}"))
    assert type(module.loss) is cls


def test_fix_r3gan_is_rpgan_with_r1_r2_and_r3gans_adam_and_trains(make_cfg):
    """R3GAN (Huang et al. 2024, CIFAR-10 preset): gamma 0.05 for R1 and R2 (weight gamma/2), Adam(2e-4,
    betas 0/0.9, eps 1e-8), one D step per G step, the lr decayed by a cosine to 5e-5 at the last step."""
    cfg = make_cfg("fix=r3gan", "trainer.max_steps=4")
    module, _ = build(cfg)
    assert type(module.loss) is RelativisticPairingLoss and module.n_critic == 1
    assert {k: (type(p), p.weight, p.every) for k, p in module.penalties.items()} == {
        "r1": (R1Penalty, 0.025, 1),
        "r2": (R2Penalty, 0.025, 1),
    }
    for net in (module.generator, module.discriminator):
        optimizer = (module.optim_g if net is module.generator else module.optim_d)(net.parameters())
        assert type(optimizer) is torch.optim.Adam
        assert optimizer.defaults["betas"] == (0.0, 0.9) and optimizer.defaults["eps"] == 1e-8
        assert optimizer.defaults["lr"] == 2e-4
    summary = train(cfg)
    assert summary["status"] == "completed" and summary["g_steps"] == 4 and summary["d_steps"] == 4
    ckpt = torch.load(cfg.paths.output_dir + "/checkpoints/last.ckpt", weights_only=True)
    for opt in ckpt["optimizer_states"]:
        assert opt["param_groups"][0]["lr"] == pytest.approx(5e-5, rel=1e-9)


REAL4, FAKE4 = [2.0, -1.0, 0.5, 3.0], [-3.0, 0.0, 1.5, -0.5]  # two halves with different means


def _ragan_shard(rank: int, port: int, out: str) -> None:
    """One of 2 gloo processes: RaGAN's D and G losses on its half of the batch, saved with their
    gradients w.r.t. its half of the logits."""
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
    )
    try:
        rows = slice(2 * rank, 2 * rank + 2)
        real, fake = t64(REAL4[rows], True), t64(FAKE4[rows], True)
        d = RelativisticAverageLoss().d_loss(real, fake)
        d.backward()
        fake_g = t64(FAKE4[rows], True)
        g = RelativisticAverageLoss().g_loss(fake_g, t64(REAL4[rows]))
        g.backward()
        torch.save(
            {"d": d, "g": g, "real": real.grad, "fake": fake.grad, "fake_g": fake_g.grad}, f"{out}/{rank}.pt"
        )
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow  # two spawned processes import ganlab: tens of seconds on a shared machine
def test_ragan_on_two_processes_computes_what_one_process_computes_on_the_global_batch(tmp_path):
    """The batch means are over the global batch: the mean of the processes' losses is the global loss, and
    the processes' gradients (averaged, as the module averages its parameters' gradients) are its gradient."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torch.multiprocessing.spawn(_ragan_shard, args=(port, str(tmp_path)), nprocs=2)
    shards = [torch.load(tmp_path / f"{r}.pt") for r in range(2)]
    real, fake, fake_g = t64(REAL4, True), t64(FAKE4, True), t64(FAKE4, True)
    d, g = RelativisticAverageLoss().d_loss(real, fake), RelativisticAverageLoss().g_loss(fake_g, t64(REAL4))
    (d + g).backward()
    assert (shards[0]["d"] + shards[1]["d"]).item() / 2 == pytest.approx(
        REL_D[RelativisticAverageLoss](REAL4, FAKE4), rel=1e-12
    )
    assert (shards[0]["g"] + shards[1]["g"]).item() / 2 == pytest.approx(g.item(), rel=1e-12)
    for key, full in (("real", real.grad), ("fake", fake.grad), ("fake_g", fake_g.grad)):
        # a process's logits are its own shard's: their gradient, halved by the average, is the global one
        per_process = torch.cat([shards[r][key] / 2 for r in range(2)])
        assert per_process.tolist() == pytest.approx(full.tolist(), rel=1e-12), key
