"""Gradient penalties against independent computations (per-sample autograd loops and closed forms for a
linear critic), the lazy interval inside the training module, and several penalties at once."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganlab.penalties import DRAGANPenalty, GradientPenalty, Penalty, R1Penalty, R2Penalty
from ganlab.train import build, build_trainer, train


def _critic() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1), nn.Flatten(0))


def test_gradient_penalty_matches_per_sample_autograd():
    critic = _critic().double()
    real, fake = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    torch.manual_seed(123)
    value = GradientPenalty(weight=10.0).value(critic, real, fake)
    torch.manual_seed(123)
    eps = torch.rand(6, 1, dtype=torch.float64)  # the same draw the penalty makes
    expected = []
    for i in range(6):
        x = (eps[i] * real[i] + (1 - eps[i]) * fake[i]).unsqueeze(0).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x).sum(), x)
        expected.append((g.norm() - 1.0) ** 2)
    assert value.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-10)


def test_gradient_penalty_closed_form_for_linear_critic_and_its_parameter_gradient():
    """For D(x) = w.x + b the input gradient is w everywhere: penalty = lambda (|w| - c)^2 and
    d penalty / d w = 2 lambda (|w| - c) w / |w| (the double backward must reach the weights)."""
    critic = nn.Sequential(nn.Linear(4, 1, dtype=torch.float64), nn.Flatten(0))
    w = critic[0].weight
    real, fake = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    gp = GradientPenalty(weight=10.0, center=1.0)
    penalty = gp(critic, real, fake)
    norm = w.norm().item()
    assert penalty.item() == pytest.approx(10.0 * (norm - 1.0) ** 2, rel=1e-10)
    penalty.backward()
    expected = 2 * 10.0 * (norm - 1.0) * w.detach() / norm
    torch.testing.assert_close(w.grad, expected, rtol=1e-10, atol=1e-12)
    assert critic[0].bias.grad is None or critic[0].bias.grad.abs().max() == 0


def test_penalty_on_images_uses_per_sample_norm_over_all_pixels():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 1, dtype=torch.float64), nn.Flatten(0))
    real = torch.randn(4, 2, 3, 3, dtype=torch.float64)
    value = GradientPenalty(center=0.0, weight=1.0).value(critic, real, real.clone())
    assert value.item() == pytest.approx(critic[1].weight.norm().item() ** 2, rel=1e-10)


@pytest.mark.parametrize("cls", [GradientPenalty, R1Penalty, R2Penalty, DRAGANPenalty])
def test_lazy_interval_applies_every_kth_step_with_scaled_weight(cls):
    critic = nn.Sequential(nn.Linear(4, 1, dtype=torch.float64), nn.Flatten(0))  # constant input gradient
    real = torch.randn(5, 4, dtype=torch.float64)
    lazy, eager = cls(weight=10.0, every=4), cls(weight=10.0)
    assert [s for s in range(12) if lazy.is_due(s)] == [0, 4, 8]
    assert lazy(critic, real, real).item() == pytest.approx(4 * eager(critic, real, real).item(), rel=1e-12)


@pytest.mark.parametrize("cls", [GradientPenalty, R1Penalty, R2Penalty, DRAGANPenalty])
@pytest.mark.parametrize("kwargs", [{"weight": 0.0}, {"weight": -1.0}, {"every": 0}])
def test_invalid_penalty_settings_are_refused(cls, kwargs):
    with pytest.raises(ValueError, match="must be"):
        cls(**kwargs)


def test_dragan_refuses_a_non_positive_scale():
    with pytest.raises(ValueError, match="scale must be > 0"):
        DRAGANPenalty(scale=0.0)


def _per_sample_squared_norms(critic: nn.Module, points: torch.Tensor) -> torch.Tensor:
    """||grad D(x_i)||^2 for each sample, one autograd call per sample."""
    out = []
    for x in points:
        x = x.unsqueeze(0).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(x).sum(), x)
        out.append(g.pow(2).sum())
    return torch.stack(out)


@pytest.mark.parametrize("cls,on", [(R1Penalty, "real"), (R2Penalty, "fake")])
def test_r1_r2_match_per_sample_autograd_on_their_batch(cls, on):
    critic = _critic().double()
    real, fake = torch.randn(6, 3, dtype=torch.float64), 3 * torch.randn(6, 3, dtype=torch.float64)
    value = cls().value(critic, real, fake).item()
    on_real, on_fake = (_per_sample_squared_norms(critic, x).mean().item() for x in (real, fake))
    expected, other = (on_real, on_fake) if on == "real" else (on_fake, on_real)
    assert value == pytest.approx(expected, rel=1e-10) and value != pytest.approx(other, rel=1e-3)


@pytest.mark.parametrize("cls", [R1Penalty, R2Penalty])
def test_r1_r2_closed_form_for_linear_critic_and_its_parameter_gradient(cls):
    """D(x) = w.x + b: grad_x D = w, so weight * E||w||^2 = weight |w|^2, and its w-gradient 2 weight w."""
    critic = nn.Sequential(nn.Linear(4, 1, dtype=torch.float64), nn.Flatten(0))
    w = critic[0].weight
    real, fake = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    penalty = cls(weight=5.0)(critic, real, fake)
    assert penalty.item() == pytest.approx(5.0 * w.norm().item() ** 2, rel=1e-12)
    penalty.backward()
    torch.testing.assert_close(w.grad, 2 * 5.0 * w.detach(), rtol=1e-12, atol=1e-14)


def test_r1_on_images_sums_over_all_pixels():
    critic = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 1, dtype=torch.float64), nn.Flatten(0))
    real = torch.randn(4, 2, 3, 3, dtype=torch.float64)
    assert R1Penalty().value(critic, real, real).item() == pytest.approx(critic[1].weight.norm().item() ** 2)


def test_dragan_matches_the_reference_perturbation_and_per_sample_autograd():
    """x_p = x + 0.5 std(x) u (u ~ U[0,1] per element, std over the whole batch, as numpy's), penalised
    at x + alpha (x_p - x): recomputed from the same random draws, in numpy, then per-sample autograd."""
    critic = _critic().double()
    real = 2 + 3 * torch.randn(6, 3, dtype=torch.float64)
    torch.manual_seed(7)
    value = DRAGANPenalty(weight=10.0).value(critic, real, torch.zeros_like(real))
    torch.manual_seed(7)
    u, alpha = torch.rand(6, 3, dtype=torch.float64), torch.rand(6, 1, dtype=torch.float64)
    x = real.numpy()
    x_p = x + 0.5 * x.std() * u.numpy()
    points = torch.from_numpy(x + alpha.numpy() * (x_p - x))
    norms = _per_sample_squared_norms(critic, points).sqrt()
    assert value.item() == pytest.approx((norms - 1).pow(2).mean().item(), rel=1e-10)


def test_dragan_points_stay_in_the_perturbation_box_of_real_data():
    torch.manual_seed(0)
    real = torch.randn(20_000, 4, dtype=torch.float64)
    points = DRAGANPenalty(scale=0.5).points(real, torch.zeros_like(real))
    delta = (points - real) / real.std(correction=0)
    assert delta.min().item() >= 0 and delta.max().item() <= 0.5
    assert delta.mean().item() == pytest.approx(0.5 * 0.5 * 0.5, rel=0.03)  # 0.5 E[alpha] E[u] = 1/8


def test_dragan_closed_form_for_linear_critic():
    critic = nn.Sequential(nn.Linear(4, 1, dtype=torch.float64), nn.Flatten(0))
    real = torch.randn(5, 4, dtype=torch.float64)
    expected = 10.0 * (critic[0].weight.norm().item() - 1.0) ** 2
    assert DRAGANPenalty()(critic, real, real).item() == pytest.approx(expected, rel=1e-10)


def test_input_gradient_penalties_are_marked_per_sample():
    assert not Penalty.per_sample
    assert all(cls.per_sample for cls in (GradientPenalty, R1Penalty, R2Penalty, DRAGANPenalty))


def test_lazy_penalty_runs_on_exactly_every_kth_discriminator_step_in_training(make_cfg, tmp_path):
    cfg = make_cfg("penalty=r1", "penalty.r1.every=3", "n_critic=2", "trainer.max_steps=5")
    module, datamodule = build(cfg)
    penalty, due_at = module.penalties["r1"], []
    value = penalty.value

    def recording_value(critic, real, fake, noise=None):
        due_at.append(module.d_steps)
        return value(critic, real, fake, noise)

    penalty.value = recording_value
    build_trainer(cfg, tmp_path).fit(module, datamodule=datamodule)
    assert module.d_steps == 10 and due_at == [0, 3, 6, 9]


def test_several_penalties_compose_and_train_together(make_cfg):
    """A Hydra list selects several options of the group, also over what a fix brings (wgan_gp: gp)."""
    cfg = make_cfg("fix=wgan_gp", "penalty=[gp,r1,dragan]", "penalty.r1.weight=2", "trainer.max_steps=2")
    assert list(cfg.penalty) == ["gp", "r1", "dragan"] and cfg.penalty.r1.weight == 2
    summary = train(cfg)
    assert summary["status"] == "completed", summary["error"]
    assert {"penalty/gp", "penalty/r1", "penalty/dragan"} <= set(summary["metrics"])
