"""The sequence nets: shapes for each output and normalisation plus one real update, softmax columns that
sum to 1, straight-through Gumbel samples that are one-hot forward, take the gradient of the relaxed
softmax and follow softmax(logits) (the Gumbel-max trick, counted), and wrong data shapes refused."""

from __future__ import annotations

import math

import pytest
import torch

from ganlab.nets.seq_resnet import SeqResNetDiscriminator, SeqResNetGenerator, gumbel_noise

SHAPE = (5, 12)  # 5 symbols, 12 positions


def _nets(output: str = "softmax", norm: str = "none", d_norm: str = "none", **kwargs):
    gen = SeqResNetGenerator(z_dim=3, data_shape=SHAPE, width=8, depth=2, norm=norm, output=output, **kwargs)
    disc = SeqResNetDiscriminator(data_shape=SHAPE, width=8, depth=2, norm=d_norm)
    return gen, disc


@pytest.mark.parametrize("output", ["softmax", "gumbel"])
@pytest.mark.parametrize(
    "norm,d_norm", [("none", "none"), ("batch", "batch"), ("layer", "layer"), ("none", "spectral")]
)
def test_shapes_and_one_update_step(output, norm, d_norm):
    gen, disc = _nets(output, norm, d_norm)
    x = gen(torch.randn(4, gen.z_dim))
    assert x.shape == (4, *SHAPE) and disc(x).shape == (4,)
    torch.testing.assert_close(x.sum(dim=1), torch.ones(4, SHAPE[1]))
    before = [p.detach().clone() for p in gen.parameters()]
    disc(x).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in gen.parameters())
    torch.optim.SGD(gen.parameters(), lr=0.1).step()
    assert any(not torch.equal(b, p) for b, p in zip(before, gen.parameters(), strict=True))


def test_gumbel_output_takes_its_noise_from_z_and_is_one_hot():
    gen, _ = _nets("gumbel")
    assert gen.z_dim == 3 + 5 * 12 and _nets("softmax")[0].z_dim == 3
    z = torch.randn(6, gen.z_dim)
    x = gen(z)
    assert set(x.unique().tolist()) <= {0.0, 1.0} and x.sum(dim=1).eq(1).all()
    assert torch.equal(x, gen(z))  # a function of z alone
    assert not torch.equal(x, gen(torch.cat([z[:, :3], torch.randn(6, 60)], dim=1)))


def test_straight_through_gradient_is_that_of_the_relaxed_softmax():
    gen, _ = _nets("gumbel", temperature=0.7)
    z = torch.randn(3, gen.z_dim)
    weights = torch.randn(3, *SHAPE)
    (grad_hard,) = torch.autograd.grad((gen(z) * weights).sum(), gen.to_logits.bias)
    g = gumbel_noise(z[:, 3:].reshape(3, *SHAPE))
    soft = torch.softmax((gen.logits(z[:, :3]) + g) / 0.7, dim=1)
    (grad_soft,) = torch.autograd.grad((soft * weights).sum(), gen.to_logits.bias)
    torch.testing.assert_close(grad_hard, grad_soft)


def test_gumbel_samples_follow_the_softmax_of_the_logits():
    """Gumbel-max: argmax(logits + g) is distributed as softmax(logits). Fixed logits (zero weights, a
    bias) and 20000 samples: every symbol's frequency within 5 binomial standard deviations."""
    gen, _ = _nets("gumbel")
    bias = torch.tensor([1.0, 0.0, -1.0, 2.0, 0.5])
    with torch.no_grad():
        gen.to_logits.weight.zero_()
        gen.to_logits.bias.copy_(bias)
    n = 20_000
    x = gen(torch.randn(n, gen.z_dim, generator=torch.Generator().manual_seed(0)))
    freq = x[:, :, 0].mean(dim=0).double()
    p = torch.softmax(bias.double(), dim=0)
    for f, q in zip(freq.tolist(), p.tolist(), strict=True):
        assert f == pytest.approx(q, abs=5 * math.sqrt(q * (1 - q) / n))


@pytest.mark.parametrize("cls", [SeqResNetGenerator, SeqResNetDiscriminator])
@pytest.mark.parametrize("shape", [(2,), (1, 8, 8)])
def test_data_that_is_not_sequences_is_refused_with_the_fix(cls, shape):
    kwargs = {"z_dim": 2} if cls is SeqResNetGenerator else {}
    with pytest.raises(ValueError, match="one-hot sequences of shape \\(alphabet, length\\).*model=mlp"):
        cls(data_shape=shape, **kwargs)


def test_bad_options_are_refused_naming_the_valid_ones():
    with pytest.raises(ValueError, match="output='argmax' is invalid; valid: softmax, gumbel"):
        SeqResNetGenerator(z_dim=2, data_shape=SHAPE, output="argmax")
    with pytest.raises(ValueError, match="kernel must be an odd integer"):
        SeqResNetDiscriminator(data_shape=SHAPE, kernel=4)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        SeqResNetGenerator(z_dim=2, data_shape=SHAPE, output="gumbel", temperature=0)
