"""Input transforms of the discriminator: instance noise against its schedule and its statistics,
DiffAugment's operations against hand computations, and the module applying one transform to every D input
with gradients reaching G."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor

from ganlab.augment import (
    DiffAugment,
    InputTransform,
    InstanceNoise,
    brightness,
    contrast,
    cutout,
    saturation,
    translate,
    translation,
)
from ganlab.train import build, build_trainer, train

# ------------------------------------------------------------------------------------------ instance noise


@pytest.mark.parametrize("t", [0, 1, 37, 50, 99, 100, 150])
def test_linear_schedule_is_sigma0_times_one_minus_progress(t):
    noise = InstanceNoise(sigma0=0.3, anneal_steps=100, schedule="linear")
    assert noise.sigma(t) == pytest.approx(0.3 * max(0.0, 1 - t / 100), abs=1e-15)


@pytest.mark.parametrize("t", [0, 1, 25, 50, 99, 100, 400])
def test_exponential_schedule_is_the_shifted_decay(t):
    noise = InstanceNoise(sigma0=0.5, anneal_steps=100, schedule="exponential", rate=4.0)
    u = min(t / 100, 1.0)
    expected = 0.5 * (math.exp(-4 * u) - math.exp(-4)) / (1 - math.exp(-4))
    assert noise.sigma(t) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("schedule", ["linear", "exponential"])
def test_sigma_starts_at_sigma0_reaches_zero_at_the_end_and_leaves_inputs_alone_then(schedule):
    noise = InstanceNoise(sigma0=0.2, anneal_steps=10, schedule=schedule)
    assert noise.sigma(0) == pytest.approx(0.2)
    assert noise.sigma(10) == 0.0 and noise.sigma(11) == 0.0
    assert all(noise.sigma(t) > noise.sigma(t + 1) for t in range(10))  # strictly decreasing until then
    x = torch.randn(4, 3)
    assert noise(x, 10) is x
    assert noise.logs(5) == {"noise/sigma": noise.sigma(5)}


def test_instance_noise_has_the_scheduled_std_and_zero_mean():
    """x + sigma eps with eps ~ N(0, 1): over 200k draws the sample std is within 1% of sigma(t)."""
    noise = InstanceNoise(sigma0=0.4, anneal_steps=8)
    x = torch.rand(1000, 200)
    diff = noise(x, 3, torch.Generator().manual_seed(0)) - x
    assert diff.std().item() == pytest.approx(0.4 * (1 - 3 / 8), rel=0.01)
    assert abs(diff.mean().item()) < 3 * 0.25 / math.sqrt(diff.numel())


@pytest.mark.parametrize("kwargs", [{"sigma0": -1}, {"anneal_steps": 0}, {"schedule": "cosine"}, {"rate": 0}])
def test_instance_noise_refuses_bad_settings(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        InstanceNoise(**kwargs)


def test_module_adds_the_scheduled_noise_to_d_inputs_and_logs_sigma(make_cfg):
    """augment=instance_noise: a D input differs from the raw batch by noise of std sigma(g_steps); after
    anneal_steps generator updates D sees the raw batch; training logs noise/sigma at each step."""
    cfg = make_cfg("augment=instance_noise", "augment.instance_noise.sigma0=0.5", "trainer.max_steps=4")
    assert cfg.augment.instance_noise.anneal_steps == 4  # the whole run by default
    module, _ = build(cfg)
    assert module.penalties == {} and [type(t) for t in module.transforms] == [InstanceNoise]
    seen: list[Tensor] = []
    module.discriminator.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    x = torch.randn(20000, 2)
    for g_step, sigma in [(0, 0.5), (2, 0.25), (4, 0.0)]:
        module.g_steps = g_step
        module.critic(x)
        assert (seen[-1] - x).std().item() == pytest.approx(sigma, rel=0.02, abs=1e-12)
    summary = train(cfg)
    assert summary["status"] == "completed"
    rows = list(csv.DictReader(open(Path(cfg.paths.output_dir) / "metrics.csv")))
    logged = {int(r["step"]): float(r["noise/sigma"]) for r in rows if r.get("noise/sigma")}
    assert logged == pytest.approx({t: 0.5 * (1 - t / 4) for t in range(4)})


# ----------------------------------------------------------------------------------------------- DiffAugment


def test_translate_moves_each_image_by_its_offsets_with_zero_padding():
    x = torch.arange(2 * 3 * 6 * 5, dtype=torch.float32).reshape(2, 3, 6, 5) + 1  # no zero pixel
    dy, dx = torch.tensor([2, -1]), torch.tensor([-3, 1])
    out = translate(x, dy, dx)
    for n in range(2):
        for i in range(6):
            for j in range(5):
                si, sj = i - int(dy[n]), j - int(dx[n])
                inside = 0 <= si < 6 and 0 <= sj < 5
                expected = x[n, :, si, sj] if inside else torch.zeros(3)
                assert torch.equal(out[n, :, i, j], expected), (n, i, j)


def test_translation_moves_pixels_by_the_offsets_drawn_from_the_seed():
    """For 16x16 images the offsets are integers in [-2, 2] (1/8 of the side): translation(x, g) equals a
    hand-made shift by the two draws the same seed gives."""
    x = torch.rand(3, 1, 16, 16) + 1
    out = translation(x, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    dy, dx = torch.randint(-2, 3, (3,), generator=g), torch.randint(-2, 3, (3,), generator=g)
    assert dy.abs().max() > 0  # the seed moves at least one image
    for n in range(3):
        shifted = torch.zeros(16, 16)
        for i in range(16):
            for j in range(16):
                if 0 <= i - dy[n] < 16 and 0 <= j - dx[n] < 16:
                    shifted[i, j] = x[n, 0, i - dy[n], j - dx[n]]
        assert torch.equal(out[n, 0], shifted)


def test_cutout_zeroes_one_half_side_square_per_image_at_the_drawn_place():
    x = torch.rand(4, 2, 8, 8) + 1
    out = cutout(x, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    top = torch.randint(0, 8, (4, 1), generator=g) - 2
    left = torch.randint(0, 8, (4, 1), generator=g) - 2
    for n in range(4):
        rows = [i for i in range(8) if top[n] <= i < top[n] + 4]
        cols = [j for j in range(8) if left[n] <= j < left[n] + 4]
        expected = x[n].clone()
        expected[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = 0
        assert torch.equal(out[n], expected)


def test_colour_operations_follow_the_papers_formulas():
    x = torch.rand(5, 3, 4, 4) * 2 - 1
    b = brightness(x, torch.Generator().manual_seed(0)) - x  # a constant in [-0.5, 0.5) per image
    assert torch.allclose(b, b[:, :1, :1, :1].expand_as(b)) and b.abs().max() <= 0.5
    s = saturation(x, torch.Generator().manual_seed(0))  # keeps each pixel's channel mean
    torch.testing.assert_close(s.mean(dim=1), x.mean(dim=1))
    factor = 2 * torch.rand(5, 1, 1, 1, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(s - s.mean(1, keepdim=True), (x - x.mean(1, keepdim=True)) * factor)
    c = contrast(x, torch.Generator().manual_seed(0))  # keeps each image's mean, scales around it
    torch.testing.assert_close(c.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)))
    factor = torch.rand(5, 1, 1, 1, generator=torch.Generator().manual_seed(0)) + 0.5
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(c, (x - mean) * factor + mean)
    gray = torch.rand(2, 1, 4, 4)
    assert torch.equal(saturation(gray), gray)


def test_diffaugment_policy_order_and_errors():
    assert DiffAugment("color,cutout").policy == ["color", "cutout"]
    assert DiffAugment(["translation"]).policy == ["translation"]
    with pytest.raises(ValueError, match="unknown policy"):
        DiffAugment("color,flip")
    with pytest.raises(ValueError, match="images"):
        DiffAugment()(torch.zeros(4, 2), 0)


def test_diffaugment_gives_finite_nonzero_gradients_to_the_generator(make_cfg):
    """Through augment=diffaug the G loss still differentiates w.r.t. every G parameter (translation and
    cutout are gathers and masks, colour is affine): finite gradients, non-zero in total."""
    module, _ = build(make_cfg("data=digits", "model=dcgan", "augment=diffaug"))
    assert isinstance(module.transforms[0], DiffAugment)
    torch.manual_seed(0)
    fake, labels = module._fakes(16)
    module.loss.g_loss(module.critic(fake, labels)).backward()
    grads = [p.grad for p in module.generator.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("order", [["diffaug", "instance_noise"], ["instance_noise", "diffaug"]])
def test_several_transforms_apply_in_the_order_of_the_augment_list(make_cfg, order):
    """'augment=[a,b]': D sees b(a(x)), each drawing from the module's noise generator in turn; the two
    orders differ (colour and cutout act on the noise), so a swapped order would fail."""
    augment = f"augment=[{','.join(order)}]"
    cfg = make_cfg(augment, "augment.instance_noise.sigma0=0.3", "data=digits", "model=dcgan")
    module, _ = build(cfg)
    classes = {"diffaug": DiffAugment, "instance_noise": InstanceNoise}
    assert [type(t) for t in module.transforms] == [classes[name] for name in order]
    seen: list[Tensor] = []
    module.discriminator.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    module.critic(x)
    by_hand, noise = x, torch.Generator().manual_seed(cfg.seed)  # the module's noise, seeded the same
    for name in order:
        transform = DiffAugment() if name == "diffaug" else InstanceNoise(sigma0=0.3, anneal_steps=3)
        by_hand = transform(by_hand, 0, noise)
    torch.testing.assert_close(seen[-1], by_hand, rtol=0, atol=1e-6)


class Spy(InputTransform):
    """Records what it is given and returns, around another transform."""

    def __init__(self, inner: InputTransform) -> None:
        self.inner, self.calls = inner, []

    def __call__(self, x: Tensor, g_step: int, generator: torch.Generator | None = None) -> Tensor:
        out = self.inner(x, g_step, generator)
        self.calls.append((x.detach().clone(), out))
        return out


def test_one_transform_feeds_every_d_input_real_and_fake_in_both_steps_and_the_penalty(make_cfg, tmp_path):
    """One training step with n_critic 2 and R1: per D update the transform gets the real slice, the fake
    batch and the penalty's points (the real slice again), then the G update's fakes; D sees exactly the
    transform's outputs, nothing else."""
    cfg = make_cfg(
        *("data=digits", "model=dcgan", "metrics=none", "augment=diffaug", "penalty=r1", "n_critic=2"),
        *("model.discriminator.norm=layer", "trainer.max_steps=1"),
    )
    module, datamodule = build(cfg)
    spy = Spy(module.transforms[0])
    module.transforms = [spy]
    d_inputs: list[Tensor] = []
    module.discriminator.register_forward_hook(lambda m, inp, out: d_inputs.append(inp[0]))
    fakes: list[Tensor] = []
    module.generator.register_forward_hook(lambda m, inp, out: fakes.append(out.detach()))
    batches: list[Tensor] = []
    module.on_train_batch_start = lambda batch, idx: batches.append(batch[0].clone())
    build_trainer(cfg, tmp_path).fit(module, datamodule=datamodule)
    assert len(spy.calls) == len(d_inputs) == 2 * 3 + 1
    assert all(out is d for (_, out), d in zip(spy.calls, d_inputs, strict=True))
    reals = batches[0].chunk(2)
    for k in range(2):
        real_in, fake_in, penalty_in = (spy.calls[3 * k + i][0] for i in range(3))
        assert torch.equal(real_in, reals[k]) and torch.equal(penalty_in, reals[k])
        assert torch.equal(fake_in, fakes[k])
    assert torch.equal(spy.calls[-1][0], fakes[2])  # the G update (later entries: sample pictures)
    assert not torch.equal(spy.calls[0][1], spy.calls[0][0])  # it did transform
