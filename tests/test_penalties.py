"""The gradient penalty against independent computations: per-sample autograd and a closed form."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganlab.penalties import GradientPenalty


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


def test_lazy_interval_applies_every_kth_step_with_scaled_weight():
    critic = nn.Sequential(nn.Linear(4, 1, dtype=torch.float64), nn.Flatten(0))
    real = torch.randn(5, 4, dtype=torch.float64)
    lazy, eager = GradientPenalty(weight=10.0, every=4), GradientPenalty(weight=10.0)
    assert [s for s in range(12) if lazy.is_due(s)] == [0, 4, 8]
    assert lazy(critic, real, real).item() == pytest.approx(4 * eager(critic, real, real).item(), rel=1e-12)


@pytest.mark.parametrize("kwargs", [{"weight": 0.0}, {"weight": -1.0}, {"every": 0}])
def test_invalid_penalty_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="must be"):
        GradientPenalty(**kwargs)
