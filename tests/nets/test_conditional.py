"""Class-conditional nets: shapes, the projection formula, the label embedding of G, num_classes injection,
and a short real training whose samples of class K the digits classifier recognises as K."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.nn.utils import parametrize

from fakedata import make_image_folder
from ganlab.metrics.features import DomainFeatures
from ganlab.nets import build_net, is_conditional, run
from ganlab.nets.conditional import (
    ConditionalDCGANGenerator,
    ConditionalResNetGenerator,
    ProjectionDCGANDiscriminator,
    ProjectionResNetDiscriminator,
)
from ganlab.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from ganlab.nets.mlp import MLPGenerator
from ganlab.sample import main
from ganlab.train import train

PAIRS = [
    (ConditionalDCGANGenerator, ProjectionDCGANDiscriminator),
    (ConditionalResNetGenerator, ProjectionResNetDiscriminator),
]


@pytest.mark.parametrize("gen_cls,disc_cls", PAIRS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 16)])
def test_conditional_shapes_and_a_generator_update(gen_cls, disc_cls, shape):
    torch.manual_seed(0)
    gen = gen_cls(z_dim=5, data_shape=shape, num_classes=4, width=4, embed_dim=3)
    disc = disc_cls(data_shape=shape, num_classes=4, width=4)
    assert is_conditional(gen) and is_conditional(disc) and gen.z_dim == 5
    y = torch.tensor([0, 3, 1])
    x = gen(torch.randn(3, 5), y)
    assert x.shape == (3, *shape) and x.min() >= -1 and x.max() <= 1
    assert disc(x, y).shape == (3,)
    opt = torch.optim.SGD(gen.parameters(), lr=0.1)
    disc(gen(torch.randn(3, 5), y), y).mean().backward()
    assert gen.embed.weight.grad is not None and gen.embed.weight.grad.abs().sum() > 0
    opt.step()


@pytest.mark.parametrize("disc_cls", [ProjectionDCGANDiscriminator, ProjectionResNetDiscriminator])
def test_projection_logit_is_psi_of_phi_plus_the_label_embedding_dot_phi(disc_cls):
    """D(x, y) = w . phi(x) + b + <v_y, phi(x)> (Miyato & Koyama 2018, eq. 3), computed by hand."""
    torch.manual_seed(1)
    disc = disc_cls(data_shape=(1, 8, 8), num_classes=5, width=4, norm="none").double()
    x, y = torch.randn(6, 1, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 4, 2])
    phi = disc.phi(x)
    expected = phi @ disc.head.weight[0] + disc.head.bias[0] + (disc.embed.weight[y] * phi).sum(dim=1)
    torch.testing.assert_close(disc(x, y), expected, rtol=1e-12, atol=1e-12)
    # the label enters only through the projection: logit differences are <v_a - v_b, phi(x)>
    other = torch.full_like(y, 4)
    delta = ((disc.embed.weight[y] - disc.embed.weight[other]) * phi).sum(dim=1)
    torch.testing.assert_close(disc(x, y) - disc(x, other), delta, rtol=1e-10, atol=1e-12)


def test_spectral_discriminator_normalises_the_label_embedding_too():
    disc = ProjectionResNetDiscriminator(data_shape=(1, 8, 8), num_classes=3, width=4, norm="spectral")
    assert parametrize.is_parametrized(disc.embed, "weight")
    disc = ProjectionDCGANDiscriminator(data_shape=(1, 8, 8), num_classes=3, width=4, norm="batch")
    assert not parametrize.is_parametrized(disc.embed)


def test_generator_feeds_the_noise_concatenated_with_the_label_embedding():
    torch.manual_seed(2)
    gen = ConditionalDCGANGenerator(z_dim=4, data_shape=(1, 8, 8), num_classes=3, width=4, embed_dim=2).eval()
    z, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 1, 0])
    by_hand = DCGANGenerator.forward(gen, torch.cat([z, gen.embed.weight[y]], dim=1))
    torch.testing.assert_close(gen(z, y), by_hand, rtol=0, atol=0)
    assert not torch.allclose(gen(z, torch.zeros_like(y)), gen(z, torch.ones_like(y)))


def test_build_net_injects_num_classes_only_where_the_constructor_takes_it():
    cond = OmegaConf.create({"_target_": "ganlab.nets.conditional.ProjectionDCGANDiscriminator", "width": 4})
    plain = OmegaConf.create({"_target_": "ganlab.nets.dcgan.DCGANDiscriminator", "width": 4})
    assert build_net(cond, (1, 8, 8), 7).num_classes == 7
    assert isinstance(build_net(plain, (1, 8, 8), 7), DCGANDiscriminator)
    assert not is_conditional(build_net(plain, (1, 8, 8), None))
    with pytest.raises(ValueError, match="no class labels"):
        build_net(cond, (1, 8, 8), None)
    with pytest.raises(ValueError, match="at least 2 classes"):
        ProjectionDCGANDiscriminator(data_shape=(1, 8, 8), num_classes=1, width=4)


def test_run_passes_labels_only_to_conditional_nets():
    gen = MLPGenerator(z_dim=2, data_shape=(2,), width=4, depth=1)
    z = torch.randn(3, 2)
    torch.testing.assert_close(run(gen, z, torch.zeros(3, dtype=torch.long)), gen(z))


def test_image_folder_classes_reach_a_conditional_model_and_unlabelled_data_is_refused(make_cfg, tmp_path):
    folder = make_image_folder(tmp_path / "images", n=16, classes=("a", "b", "c"))
    run = ("data=image_folder", f"data.path={folder}", "data.size=16", "metrics=none", "model=dcgan_cond")
    with pytest.raises(ValueError, match="no class labels"):
        train(make_cfg(*run))
    cfg = make_cfg(*run, "data.labels_from_subfolders=true", "trainer.max_steps=2")
    assert train(cfg)["status"] == "completed"
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["ganlab"]["num_classes"] == 3
    assert ckpt["state_dict"]["discriminator.embed.weight"].shape[0] == 3


@pytest.fixture
def one_thread():
    """Tiny convolutions train ~10x faster on one thread than on two a busy machine shares."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_trained_conditional_digits_model_draws_the_class_asked_for(make_cfg, tmp_path, one_thread):
    """400 generator steps of dcgan_cond (width 32) on digits, then `ganlab.sample label=K n=100` for each
    K: the digits classifier (held-out accuracy 0.972) labels the samples K for at least 8 of the 10 classes
    more than half of the time (chance: 10%). Seeds 0-3 give 9-10 such classes (300 steps: 9-10, 150
    steps: 2); this runs seed 0 (~10-15 s)."""
    cfg = make_cfg(
        *("data=digits", "model=dcgan_cond", "metrics=none", "trainer.max_steps=400", "seed=0"),
        *("model.generator.width=32", "model.discriminator.width=32", "model.z_dim=32"),
        *("data.batch_size=64", "model.generator.embed_dim=32"),
        tiny=False,
    )
    assert train(cfg)["status"] == "completed"
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    classifier = DomainFeatures("digits").net
    accuracy = []
    for k in range(10):
        out = tmp_path / f"class{k}.npy"
        assert main([f"ckpt={ckpt}", "n=100", f"out={out}", f"label={k}", "seed=1"]) == 0
        predicted = classifier(torch.from_numpy(np.load(out))).argmax(dim=1)
        accuracy.append((predicted == k).float().mean().item())
    assert sum(a > 0.5 for a in accuracy) >= 8, accuracy
    assert np.mean(accuracy) > 0.7, accuracy
