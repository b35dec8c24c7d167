"""KID: the unbiased polynomial MMD^2 against a NumPy transcription of its formula and torchmetrics, the
subset protocol reproduced draw by draw, and the full-set case."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.image.kid import poly_mmd

from ganlab.metrics.kid import KID, polynomial_mmd2


def numpy_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written out term by term."""
    d, m, n = x.shape[1], len(x), len(y)
    k = lambda a, b: (a @ b.T / d + 1.0) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float(
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
        + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        - 2 * kxy.mean()
    )


def feed(metric, images: torch.Tensor, batch: int = 250) -> None:
    for start in range(0, len(images), batch):
        metric.update(images[start : start + batch])


def test_polynomial_mmd2_matches_its_formula_and_torchmetrics():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)), rng.normal(0.3, 1.2, size=(40, 5))
    value = polynomial_mmd2(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert value == pytest.approx(numpy_mmd2(x, y), rel=1e-12)
    assert value == pytest.approx(poly_mmd(torch.from_numpy(x), torch.from_numpy(y)).item(), rel=1e-12)
    unequal = polynomial_mmd2(torch.from_numpy(x), torch.from_numpy(y[:25])).item()
    assert unequal == pytest.approx(numpy_mmd2(x, y[:25]), rel=1e-12)


def test_kid_reproduces_its_subset_draws(digits, projection):
    fake = (digits.real_sample(600, seed=1) + 0.3).clamp(-1, 1)
    metric = KID(projection, digits, subsets=2, subset_size=100, seed=7)
    feed(metric, fake)
    result = metric.compute()
    real_f = projection(digits.real_sample(len(digits.train_set))).double()
    fake_f = projection(fake).double()
    g = torch.Generator().manual_seed(7)
    draws = []
    for _ in range(2):
        ri = torch.randperm(len(real_f), generator=g)[:100]
        fi = torch.randperm(len(fake_f), generator=g)[:100]
        draws.append(numpy_mmd2(real_f[ri].numpy(), fake_f[fi].numpy()))
    assert result["kid_mean"] == pytest.approx(np.mean(draws), rel=1e-6)
    assert result["kid_std"] == pytest.approx(np.std(draws), rel=1e-6)
    assert result["kid_mean"] > 0.01


def test_kid_on_full_sets_is_their_mmd_and_the_protocol_records_the_capped_subset_size(digits, projection):
    fake = digits.real_sample(300, seed=2)
    metric = KID(projection, digits, n_real=300, subsets=3)
    feed(metric, fake)
    result = metric.compute()
    real_f = projection(digits.real_sample(300, seed=0)).double().numpy()
    expected = numpy_mmd2(real_f, projection(fake).double().numpy())
    assert result["kid_mean"] == pytest.approx(expected, rel=1e-6)
    assert result["kid_std"] == pytest.approx(0.0, abs=1e-12)
    protocol = metric.protocol()
    expected = {"n_real": 300, "n_fake": 300, "subsets": 3, "subset_size": 300}
    assert {key: protocol[key] for key in expected} == expected
    assert "Binkowski" in protocol["paper"]
