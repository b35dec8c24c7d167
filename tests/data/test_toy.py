"""The 2-D mixtures: exact means, spread, a fixed seeded training set, and step batches."""

from __future__ import annotations

import math

import pytest
import torch

from ganlab.data.toy import Grid25, Ring8


def test_ring8_has_eight_distinct_means_on_the_unit_circle():
    means = Ring8().means
    assert means.shape == (8, 2)
    expected = [(math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)) for k in range(8)]
    assert means.tolist() == [pytest.approx(m, abs=1e-7) for m in expected]
    assert torch.pdist(means).min().item() == pytest.approx(2 * math.sin(math.pi / 8), rel=1e-6)


def test_grid25_means_cover_the_grid():
    means = {tuple(m) for m in Grid25().means.tolist()}
    assert means == {(float(a), float(b)) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}


@pytest.mark.parametrize("cls,std", [(Ring8, 0.01), (Grid25, 0.05)])
def test_samples_spread_by_std_around_their_mode(cls, std):
    dm = cls(n_train=20_000, seed=3)
    x, y = dm.load()
    residual = x - dm.means[y]
    assert residual.std().item() == pytest.approx(std, rel=0.03)
    counts = torch.bincount(y, minlength=len(dm.means)).float()
    assert (counts / counts.mean() - 1).abs().max() < 0.15  # equal weights


def test_training_set_is_fixed_by_the_seed():
    a, b, c = Grid25(n_train=100, seed=1), Grid25(n_train=100, seed=1), Grid25(n_train=100, seed=2)
    assert torch.equal(a.load()[0], b.load()[0])
    assert not torch.equal(a.load()[0], c.load()[0])


def test_loader_batches_hold_one_slice_per_critic_update():
    dm = Ring8(n_train=1000, batch_size=16, batches_per_step=5)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (80, 2) and y.shape == (80,)
    assert len(dm.train_dataloader()) == 1000 // 80


def test_too_small_dataset_for_one_step_is_refused():
    with pytest.raises(ValueError, match="fewer than one step's batch_size"):
        Ring8(n_train=50, batch_size=16, batches_per_step=5).train_dataloader()
