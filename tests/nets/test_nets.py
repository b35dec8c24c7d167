"""Architectures: output shapes for every supported data shape and option, plus one real update step."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from ganlab.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from ganlab.nets.layers import upsampling_plan
from ganlab.nets.mlp import MLPDiscriminator, MLPGenerator
from ganlab.nets.resnet import ResNetDiscriminator, ResNetGenerator

SIDES = [(1, 8, 8), (3, 16, 16), (1, 28, 28), (3, 32, 32), (3, 64, 64)]


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
    assert any(not torch.equal(b, p) for b, p in zip(before, gen.parameters(), strict=True))


@pytest.mark.parametrize("shape", SIDES)
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


@pytest.mark.parametrize("shape", SIDES)
def test_resnet_shapes_and_update(shape):
    torch.manual_seed(0)  # at width 4 some draws leave D's last ReLU dead everywhere (a zero gradient)
    gen = ResNetGenerator(z_dim=5, data_shape=shape, width=4)
    disc = ResNetDiscriminator(data_shape=shape, width=4)
    x = gen(torch.randn(3, 5))
    assert x.shape == (3, *shape)
    assert x.min() >= -1 and x.max() <= 1
    assert disc(x).shape == (3,)
    _update_step(gen, disc, 5)


@pytest.mark.parametrize("d_norm", ["none", "batch", "layer", "spectral"])
@pytest.mark.parametrize("g_norm", ["none", "batch", "layer"])
def test_resnet_norms_train(g_norm, d_norm):
    torch.manual_seed(0)
    gen = ResNetGenerator(z_dim=5, data_shape=(1, 8, 8), width=4, norm=g_norm)
    disc = ResNetDiscriminator(data_shape=(1, 8, 8), width=4, norm=d_norm)
    assert disc(gen(torch.randn(3, 5))).shape == (3,)
    _update_step(gen, disc, 5)


@pytest.mark.parametrize("side,g_blocks,d_down", [(8, 1, 1), (16, 2, 1), (28, 2, 1), (32, 3, 2), (64, 4, 3)])
def test_resnet_block_counts_follow_the_image_side(side, g_blocks, d_down):
    """32x32: three up-blocks from 4x4 in G; in D two down-blocks (32 -> 16 -> 8), two more (the papers)."""
    gen = ResNetGenerator(z_dim=2, data_shape=(3, side, side), width=4)
    disc = ResNetDiscriminator(data_shape=(3, side, side), width=4)
    assert sum(type(m).__name__ == "GBlock" for m in gen.modules()) == g_blocks
    pools = [type(b.residual[-1]) is nn.AvgPool2d for b in disc.blocks if type(b).__name__ == "DBlock"]
    assert pools == [True] * d_down + [False, False]


@pytest.mark.parametrize("cls", [ResNetGenerator, ResNetDiscriminator])
def test_resnet_refuses_vector_data_and_sides_it_cannot_build(cls):
    kwargs = {"z_dim": 2} if cls is ResNetGenerator else {}
    with pytest.raises(ValueError, match="for vector data use model=mlp"):
        cls(data_shape=(2,), **kwargs)
    with pytest.raises(ValueError, match=f"{cls.__name__} needs a square image side.*got 7"):
        cls(data_shape=(3, 7, 7), **kwargs)


def _spectral_matrices(net: nn.Module) -> list[torch.Tensor]:
    """Each spectrally normalised weight as the matrix that is normalised: reshaped to (out, -1), with a
    transposed convolution's (in, out, k, k) weight taken along its output dimension first."""
    matrices = []
    for m in net.modules():
        if parametrize.is_parametrized(m, "weight"):
            w = m.weight.detach()
            w = w.transpose(0, 1) if isinstance(m, nn.ConvTranspose2d) else w
            matrices.append(w.reshape(w.shape[0], -1))
    return matrices


def _weight_layers(net: nn.Module) -> int:
    return sum(isinstance(m, nn.Linear | nn.Conv2d | nn.ConvTranspose2d) for m in net.modules())


def _assert_unit_spectral_norms(net: nn.Module, run: Callable[[nn.Module], object]) -> None:
    """After training-mode forwards, each of which runs one power iteration per layer (as does each
    training-mode read of a normalised weight: 200 more iterations, so that close top singular values of
    these small random matrices are told apart), every weight's largest singular value is 1."""
    torch.manual_seed(0)
    for _ in range(3):
        run(net)
    for _ in range(200):
        _spectral_matrices(net)
    matrices = _spectral_matrices(net)
    assert len(matrices) == _weight_layers(net)  # every linear and convolution layer
    sigmas = [torch.linalg.matrix_norm(w, ord=2).item() for w in matrices]
    assert sigmas == [pytest.approx(1.0, rel=1e-2)] * len(sigmas)


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: MLPDiscriminator(data_shape=(2,), width=16, depth=2, norm="spectral"), (2,)),
        (lambda: DCGANDiscriminator(data_shape=(3, 16, 16), width=4, norm="spectral"), (3, 16, 16)),
        (lambda: ResNetDiscriminator(data_shape=(3, 16, 16), width=4, norm="spectral"), (3, 16, 16)),
    ],
    ids=["mlp", "dcgan", "resnet"],
)
def test_spectral_norm_discriminator_has_unit_spectral_norm_after_power_iterations(make, shape):
    _assert_unit_spectral_norms(make(), lambda d: d(torch.randn(8, *shape)))


@pytest.mark.parametrize(
    "cls,shape,kwargs",
    [
        (MLPGenerator, (2,), {"depth": 2, "width": 16}),
        (DCGANGenerator, (3, 16, 16), {"width": 4}),
        (ResNetGenerator, (3, 16, 16), {"width": 4}),
    ],
    ids=["mlp", "dcgan", "resnet"],
)
def test_generator_spectral_norm_option_normalises_every_layer(cls, shape, kwargs):
    assert _spectral_matrices(cls(z_dim=3, data_shape=shape, **kwargs)) == []  # off by default
    gen = cls(z_dim=3, data_shape=shape, spectral_norm=True, **kwargs)
    _assert_unit_spectral_norms(gen, lambda g: g(torch.randn(8, 3)))
    vector = len(shape) == 1
    disc = (
        MLPDiscriminator(data_shape=shape, width=4)
        if vector
        else DCGANDiscriminator(data_shape=shape, width=4)
    )
    _update_step(gen, disc, 3)  # gradients flow through the normalised weights


@pytest.mark.parametrize("cls", [MLPGenerator, DCGANGenerator, ResNetGenerator])
def test_generator_norm_spectral_points_to_the_spectral_norm_switch(cls):
    shape = (2,) if cls is MLPGenerator else (1, 8, 8)
    with pytest.raises(ValueError, match="spectral_norm=true"):
        cls(z_dim=2, data_shape=shape, norm="spectral")


@pytest.mark.parametrize(
    "cls,shape,match",
    [
        (MLPDiscriminator, (1, 8, 8), "for images use model=dcgan or model=resnet"),
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
