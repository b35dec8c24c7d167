"""PRDC: a hand-worked example, identical and far-apart sets, a brute-force NumPy reference across block
boundaries, and the metric on real samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganlab.metrics.prdc import PRDC, knn_radii, prdc


def brute_force(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """The definitions of Kynkäänniemi et al. 2019 and Naeem et al. 2020 with full distance matrices."""
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=-1)
    d_ff = np.linalg.norm(fake[:, None] - fake[None], axis=-1)
    d_fr = np.linalg.norm(fake[:, None] - real[None], axis=-1)  # (M, N)
    r_real, r_fake = np.sort(d_rr, axis=1)[:, k], np.sort(d_ff, axis=1)[:, k]
    inside = d_fr <= r_real[None]
    return {
        "precision": inside.any(1).mean(),
        "recall": (d_fr <= r_fake[:, None]).any(0).mean(),
        "density": inside.sum() / (k * len(fake)),
        "coverage": inside.any(0).mean(),
    }


def as_tensor(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def test_a_hand_worked_example():
    # real 0,1,2,3 with k=1: every ball has radius 1. fake 0.5 (radius 9.5 to 10), 10 and 11 (radius 1).
    result = prdc(as_tensor([[0.0], [1.0], [2.0], [3.0]]), as_tensor([[0.5], [10.0], [11.0]]), k=1)
    # precision: only 0.5 is in a real ball; density: 0.5 is in the balls of 0 and 1, so 2 / (1 * 3);
    # coverage: the balls of 0 and 1 hold a fake; recall: the ball of 0.5 (radius 9.5) holds all reals
    assert result == pytest.approx({"precision": 1 / 3, "recall": 1.0, "density": 2 / 3, "coverage": 0.5})


def test_identical_sets_are_fully_precise_recalled_and_covered_and_far_sets_not_at_all():
    points = torch.randn(300, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    same = prdc(points, points.clone(), k=5, block=64)
    assert (same["precision"], same["recall"], same["coverage"]) == (1.0, 1.0, 1.0)
    assert same["density"] == pytest.approx(brute_force(points.numpy(), points.numpy(), 5)["density"])
    far = prdc(points, points + 1000.0, k=5, block=64)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_matches_the_brute_force_definitions_across_blocks():
    g = torch.Generator().manual_seed(1)
    real = torch.randn(230, 6, generator=g, dtype=torch.float64)
    fake = 1.3 * torch.randn(170, 6, generator=g, dtype=torch.float64) + 0.4
    result = prdc(real, fake, k=3, block=50)
    assert result == pytest.approx(brute_force(real.numpy(), fake.numpy(), 3), abs=1e-12)
    assert 0 < result["precision"] < 1 and 0 < result["recall"] < 1 and 0 < result["coverage"] < 1


def test_knn_radii_are_the_k_th_neighbour_distances():
    radii = knn_radii(as_tensor([[0.0], [1.0], [3.0], [7.0]]), k=2, block=3)
    assert radii.tolist() == pytest.approx([3.0, 2.0, 3.0, 6.0])
    with pytest.raises(ValueError, match="more than k=5"):
        knn_radii(as_tensor([[0.0]] * 5), k=5)


def test_the_metric_on_the_real_samples_themselves(digits, projection):
    real = digits.real_sample(500)
    metric = PRDC(projection, digits, n_real=500)
    for start in range(0, 500, 128):
        metric.update(real[start : start + 128])
    result = metric.compute()
    assert (result["precision"], result["recall"], result["coverage"]) == (1.0, 1.0, 1.0)
    features = projection(real).double()
    assert result == pytest.approx(prdc(features, features, k=5))
    protocol = metric.protocol()
    assert (protocol["k"], protocol["n_real"], protocol["n_fake"]) == (5, 500, 500)
    assert "Naeem" in protocol["paper"] and "Kynkaanniemi" in protocol["paper"]


def test_too_few_samples_give_nan(digits, projection):
    metric = PRDC(projection, digits, k=5)
    metric.update(digits.real_sample(5))
    assert all(math.isnan(v) for v in metric.compute().values())
