"""FID: the Fréchet distance against SciPy, the metric against an independent float64 NumPy computation on
the same features, ~0 for a sample set against itself, and the shipped digits features end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from fakedata import make_mnist
from ganlab.data.images import MNIST
from ganlab.metrics.fid import FID, frechet_distance


def scipy_frechet(f1: np.ndarray, f2: np.ndarray) -> float:
    """The reference formula on two feature matrices, as in the original TF / pytorch-fid code."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def feed(metric, images: torch.Tensor, batch: int = 250) -> None:
    for start in range(0, len(images), batch):
        metric.update(images[start : start + batch])


def fake_like(digits, n: int = 600, noise: float = 0.3, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    real = digits.real_sample(n, seed=seed)
    return (real + noise * torch.randn(real.shape, generator=g)).clamp(-1, 1)


def test_frechet_distance_matches_scipy_on_non_commuting_covariances():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    value = frechet_distance(*(torch.from_numpy(t) for t in (mu1, s1, mu2, s2)))
    assert value.item() == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(*(torch.from_numpy(t) for t in (mu1, s1, mu1, s1))).item() == pytest.approx(
        0, abs=1e-9
    )


def test_fid_matches_an_independent_float64_computation(digits, projection):
    fake = fake_like(digits)
    metric = FID(projection, digits)
    feed(metric, fake)
    real_features = projection(digits.real_sample(len(digits.train_set))).double().numpy()
    expected = scipy_frechet(real_features, projection(fake).double().numpy())
    assert expected > 0.01
    assert metric.compute()["fid"] == pytest.approx(expected, rel=1e-6)


def test_fid_of_the_real_set_against_itself_is_zero(digits, projection):
    metric = FID(projection, digits)
    feed(metric, digits.real_sample(len(digits.train_set), seed=3))
    assert metric.compute()["fid"] == pytest.approx(0.0, abs=1e-9)


def test_fid_with_the_shipped_digits_features_orders_real_noisy_and_noise_samples(digits):
    values = {}
    for name, images in {
        "real": digits.real_sample(1000, seed=5),
        "noisy": fake_like(digits, 1000, noise=0.5),
        "noise": torch.rand(1000, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1,
    }.items():
        metric = FID.from_datamodule(digits, features="domain")
        feed(metric, images)
        values[name] = metric.compute()["fid"]
    assert 0 <= values["real"] < values["noisy"] < values["noise"]
    protocol = metric.protocol()
    assert protocol["features"] == "classifier-digits"
    expected = {"dataset": "Digits", "split": "train", "n_real": 1797, "n_fake": 1000}
    assert {key: protocol[key] for key in expected} == expected
    assert "Heusel" in protocol["paper"]


def test_fid_is_nan_without_enough_samples_and_resets(digits, projection):
    metric = FID(projection, digits)
    metric.update(digits.real_sample(1))
    assert math.isnan(metric.compute()["fid"])
    feed(metric, digits.real_sample(300))
    assert not math.isnan(metric.compute()["fid"])
    metric.reset()
    assert int(metric.n_fake) == 0 and float(metric.fake_outer.abs().sum()) == 0


def test_fid_with_inception_features_on_uint8_grayscale_files(inception_weights, tmp_path):
    make_mnist(tmp_path, n=4)
    mnist = MNIST(str(tmp_path))
    metric = FID.from_datamodule(mnist, features="inception", weights_path=str(inception_weights))
    metric.update(mnist.real_sample(4, seed=7))  # the real set in another order, back to the same bytes
    fid = metric.compute()["fid"]
    assert metric.cache_hit is False
    assert fid == pytest.approx(0.0, abs=1e-4 * float(metric.real_stats().cov.trace()))
    again = FID.from_datamodule(mnist, features="inception", weights_path=str(inception_weights))
    again.real_stats()
    assert again.cache_hit and again.features is metric.features
    protocol = metric.protocol()
    assert protocol["features"] == "inception-v3-pool3"
    assert (protocol["dataset"], protocol["n_real"]) == ("MNIST", 4)
