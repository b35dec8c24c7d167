"""Gradient penalties against independent computations (per-sample autograd loops and closed forms for a
linear critic), the lazy interval inside the training module, and several penalties at once."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganlab.penalties import DRAGANPenalty, GradientPenalty, Penalty, R1Penalty, R2Penalty, input_gradients
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


def test_input_gradient_penalties_are_marked_per_sample_and_double_backward():
    assert not Penalty.per_sample and not Penalty.double_backward
    assert all(cls.per_sample for cls in (GradientPenalty, R1Penalty, R2Penalty, DRAGANPenalty))
    assert all(cls.double_backward for cls in (GradientPenalty, R1Penalty, R2Penalty, DRAGANPenalty))


# mixed precision ------------------------------------------------------------------------------------------
PENALTIES = [GradientPenalty, R1Penalty, R2Penalty, DRAGANPenalty]
# bf16 keeps 8 significant bits: each rounding is off by at most u = 2^-8 (0.39%). The input gradient of the
# two-layer critic passes through 8 of them (the input, both weight matrices, the hidden pre-activation and
# its tanh in the forward; the two matmul outputs and tanh' in the backward), so it is good to 8u = 3.1%,
# and a squared norm to twice that. (||g|| - 1)^2 with ||g|| < 1/2, as here, moves less than ||g||^2 does.
BF16_REL = 2 * 8 * 2**-8


@pytest.mark.parametrize("cls", PENALTIES)
def test_penalty_under_bf16_autocast_matches_float32_within_bf16_rounding(cls):
    critic = _critic()
    real, fake = torch.randn(64, 3), 2 * torch.randn(64, 3)
    values = {}
    for bf16 in (False, True):
        torch.manual_seed(5)  # the same interpolation draws
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            values[bf16] = cls().value(critic, real, fake)
    assert values[True].dtype == torch.float32  # the reductions run in float32 (input_gradients)
    assert values[True].item() != values[False].item()  # bf16 was used (measured: 0.001-0.11% apart)
    assert values[True].item() == pytest.approx(values[False].item(), rel=BF16_REL)


def test_input_gradient_under_bf16_autocast_is_float32_and_within_bf16_rounding():
    critic, x = _critic(), torch.randn(64, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = input_gradients(critic, x)
    plain = input_gradients(critic, x)
    assert low.dtype == torch.float32 and not torch.equal(low, plain)
    torch.testing.assert_close(low.norm(dim=1), plain.norm(dim=1), rtol=8 * 2**-8, atol=0)


@pytest.mark.parametrize("cls", PENALTIES)
def test_scaled_then_unscaled_inner_gradient_equals_the_plain_one_in_float32(cls):
    """A scale of 2^16 over 8 samples multiplies the summed logits by 2^13 and divides the gradient by it:
    powers of two, so every float32 value is exactly the unscaled one (no overflow at these magnitudes),
    the penalty and its gradient with respect to D's weights (through the double backward) included."""
    real, fake = torch.randn(8, 3), torch.randn(8, 3)
    values, grads = [], []
    for grad_scale in (None, torch.tensor(2.0**16)):
        critic = _critic()
        torch.manual_seed(3)
        value = cls(weight=10.0)(critic, real, fake, grad_scale=grad_scale)
        value.backward()
        values.append(value)
        grads.append([p.grad for p in critic.parameters() if p.grad is not None])  # not the last bias
    assert torch.equal(values[0], values[1]) and len(grads[0]) == 3
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
    critic = _critic()
    assert torch.equal(input_gradients(critic, real, 2.0**16), input_gradients(critic, real))


def test_scaling_keeps_a_float16_inner_gradient_from_underflowing():
    """Under float16 autocast a critic whose input gradient is about 1e-7 (below float16's smallest normal
    number, 6e-5) loses it to underflow; scaled by 2^16 / 8 on the way back and unscaled after (the
    ``16-mixed`` path), it comes back within float16's rounding of the float32 gradient."""
    critic = _critic()
    with torch.no_grad():
        critic[0].weight.mul_(1e-4)
        critic[2].weight.mul_(1e-2)
    x = torch.randn(8, 3)
    plain = input_gradients(critic, x)
    assert plain.abs().max() < 1e-6
    with torch.autocast("cpu", dtype=torch.float16):
        unscaled = input_gradients(critic, x)
        scaled = input_gradients(critic, x, torch.tensor(2.0**16))
    error = {
        k: ((v - plain).norm(dim=1) / plain.norm(dim=1)).max().item()
        for k, v in {"unscaled": unscaled, "scaled": scaled}.items()
    }
    assert error["unscaled"] > 0.1  # float16 subnormals: few bits left, or none
    assert error["scaled"] < 8 * 2**-11  # float16 keeps 11 significant bits; about 8 roundings as above


def test_lazy_penalty_runs_on_exactly_every_kth_discriminator_step_in_training(make_cfg, tmp_path):
    cfg = make_cfg("penalty=r1", "penalty.r1.every=3", "n_critic=2", "trainer.max_steps=5")
    module, datamodule = build(cfg)
    penalty, due_at = module.penalties["r1"], []
    value = penalty.value

    def recording_value(critic, real, fake, noise=None, grad_scale=None):
        due_at.append(module.d_steps)
        return value(critic, real, fake, noise, grad_scale)

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
