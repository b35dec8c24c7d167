"""Architectures: output shapes for every supported data shape and option, plus one real update step."""

from __future__ import annotations

import pytest
import torch

from ganlab.nets.dcgan import DCGANDiscriminator, DCGANGenerator, upsampling_plan
from ganlab.nets.mlp import MLPDiscriminator, MLPGenerator


@pytest.mark.parametrize("side,plan", [(8, (4, 1)), (16, (4, 2)), (28, (7, 2)), (32, (4, 3)), (64, (4, 4))])
def test_upsampling_plan(side, plan):
    assert upsampling_plan(side) == plan


@pytest.mark.parametrize("side", [7, 5, 3])
def test_upsampling_plan_refuses_tiny_images(side):
    with pytest.raises(ValueError, match="8, 16, 28, 32, 64"):
        upsampling_plan(side)


def _update_step(gen, disc, z_dim: int, batch: int = 4) -> None:
    """One generator update changes G's weights and produces finite gradients for both networks."""
    before = [p.detach().clone() for p in gen.parameters()]
    opt = torch.optim.SGD(gen.parameters(), lr=0.1)
    loss = disc(gen(torch.randn(batch, z_dim))).mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in gen.parameters())
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, gen.parameters()))


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 16), (1, 28, 28), (3, 32, 32), (3, 64, 64)])
@pytest.mark.parametrize("d_norm", ["none", "batch", "layer", "spectral"])
def test_dcgan_shapes_and_update(shape, d_norm):
    gen = DCGANGenerator(z_dim=5, data_shape=shape, width=4)
    disc = DCGANDiscriminator(data_shape=shape, width=4, norm=d_norm)
    x = gen(torch.randn(3, 5))
    assert x.shape == (3, *shape)
    assert x.min() >= -1 and x.max() <= 1  # tanh output
    assert disc(x).shape == (3,)
    _update_step(gen, disc, 5)


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
@pytest.mark.parametrize("act", ["relu", "leaky_relu", "elu", "gelu", "silu", "tanh"])
def test_mlp_shapes_and_update(norm, act):
    gen = MLPGenerator(z_dim=3, data_shape=(2,), width=8, depth=2, activation=act, norm=norm)
    disc = MLPDiscriminator(data_shape=(2,), width=8, depth=2, activation=act, norm=norm)
    x = gen(torch.randn(4, 3))
    assert x.shape == (4, 2) and disc(x).shape == (4,)
    _update_step(gen, disc, 3)


def test_mlp_depth_and_width_are_honoured():
    gen = MLPGenerator(z_dim=3, data_shape=(5,), width=7, depth=4)
    linears = [m for m in gen.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3, 7), (7, 7), (7, 7), (7, 7), (7, 5)]


def test_spectral_norm_discriminator_has_unit_spectral_norm_after_power_iterations():
    disc = MLPDiscriminator(data_shape=(2,), width=16, depth=2, norm="spectral")
    for _ in range(20):  # each training-mode forward runs one power iteration
        disc(torch.randn(8, 2))
    for m in disc.modules():
        if isinstance(m, torch.nn.Linear):
            assert torch.linalg.matrix_norm(m.weight.detach(), ord=2).item() == pytest.approx(1.0, rel=1e-2)


@pytest.mark.parametrize(
    "cls,shape,match",
    [
        (MLPDiscriminator, (1, 8, 8), "for images use model=dcgan"),
        (DCGANDiscriminator, (2,), "for vector data use model=mlp"),
        (DCGANDiscriminator, (3, 32, 16), "square images"),
    ],
)
def test_wrong_data_shape_is_refused_with_the_fix(cls, shape, match):
    with pytest.raises(ValueError, match=match):
        cls(data_shape=shape)


def test_unknown_activation_and_norm_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid:.*leaky_relu"):
        MLPGenerator(z_dim=2, data_shape=(2,), activation="swish2")
    with pytest.raises(ValueError, match="valid:.*spectral"):
        MLPDiscriminator(data_shape=(2,), norm="weight")
