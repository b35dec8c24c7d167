"""The 2-D toy sets: exact means and curves, spread, a fixed seeded training set, and step batches."""

from __future__ import annotations

import math

import pytest
import torch

from ganlab.data.toy import Grid25, Ring8, SwissRoll, TwoMoons


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


def test_moons_lie_on_their_half_circles_split_equally():
    """Noise 0: moon 0 on the upper unit half circle, moon 1 on the lower one centred at (1, 0.5)."""
    x, y = TwoMoons(noise=0.0, n_train=1000).load()
    centres = torch.tensor([[0.0, 0.0], [1.0, 0.5]])[y]
    assert (x - centres).norm(dim=1).tolist() == pytest.approx([1.0] * 1000, abs=1e-6)
    assert (x[y == 0, 1] >= -1e-6).all() and (x[y == 1, 1] <= 0.5 + 1e-6).all()
    assert torch.bincount(y).tolist() == [500, 500]


def test_moons_noise_is_the_std_around_the_curve():
    x, y = TwoMoons(noise=0.05, n_train=20_000, seed=1).load()
    centres = torch.tensor([[0.0, 0.0], [1.0, 0.5]])[y]
    radial = (x - centres).norm(dim=1) - 1.0
    assert radial.std().item() == pytest.approx(0.05, rel=0.05)


def test_swiss_roll_is_the_scaled_spiral_t_cos_t_t_sin_t():
    scale = 0.2
    x, y = SwissRoll(noise=0.0, scale=scale, n_train=2000).load()
    t = x.double().norm(dim=1) / scale  # on the spiral the radius is the angle t itself
    torch.testing.assert_close(
        x.double() / scale, torch.stack([t * t.cos(), t * t.sin()], dim=1), rtol=0, atol=1e-4
    )
    assert t.min().item() >= 1.5 * math.pi - 1e-4 and t.max().item() <= 4.5 * math.pi + 1e-4
    assert (y == 0).all()


@pytest.mark.parametrize("cls", [TwoMoons, SwissRoll])
def test_sklearn_sets_are_fixed_by_the_seed_and_validated(cls):
    a, b, c = cls(n_train=100, seed=1), cls(n_train=100, seed=1), cls(n_train=100, seed=2)
    assert torch.equal(a.load()[0], b.load()[0]) and not torch.equal(a.load()[0], c.load()[0])
    assert a.load()[0].shape == (100, 2) and a.shape == (2,)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        cls(noise=-0.1)
    with pytest.raises(ValueError, match="n_train must be >= 1"):
        cls(n_train=0)


@pytest.mark.parametrize(
    "dm,n_modes",
    [
        (Ring8(), 8),
        (Ring8(n_modes=5), 5),
        (Grid25(), 25),
        (Grid25(side=3), 9),
        (TwoMoons(), None),
        (SwissRoll(), None),
    ],
)
def test_each_set_declares_its_number_of_modes(dm, n_modes):
    """The declared count is the number of distinct means (None: data without modes), which the mode metrics
    and the report take instead of guessing it from the class."""
    assert dm.n_modes == n_modes
    if n_modes is not None:
        assert len({tuple(m) for m in dm.means.tolist()}) == n_modes
