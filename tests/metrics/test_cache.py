"""The real-data statistics cache: correct statistics of the real_sample selection, a hit on the second
evaluation, and invalidation by a changed feature network or changed data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganlab.data.images import Digits
from ganlab.metrics import cache
from ganlab.metrics.cache import cache_directory, real_statistics
from ganlab.metrics.fid import FID


def test_statistics_are_those_of_real_sample_and_the_second_call_hits(digits, projection, tmp_path):
    stats, hit = real_statistics(digits, projection, 700, cache_dir=tmp_path, batch_size=64)
    assert not hit
    expected = projection(digits.real_sample(700)).double().numpy()
    assert stats.n == 700 and stats.features.shape == (700, 16)
    np.testing.assert_allclose(stats.mean.numpy(), expected.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stats.cov.numpy(), np.cov(expected, rowvar=False), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stats.features.numpy(), expected, rtol=1e-6, atol=1e-7)

    again, hit = real_statistics(digits, projection, 700, cache_dir=tmp_path, batch_size=64)
    assert hit
    assert torch.equal(again.cov, stats.cov) and torch.equal(again.features, stats.features)
    assert len(list(tmp_path.glob("*.pt"))) == 1


def test_a_changed_network_or_sample_count_misses(digits, projection, tmp_path):
    assert not real_statistics(digits, projection, 500, cache_dir=tmp_path)[1]
    other = type(projection)(seed=1)
    assert other.fingerprint() != projection.fingerprint()
    assert not real_statistics(digits, other, 500, cache_dir=tmp_path)[1]
    assert real_statistics(digits, other, 500, cache_dir=tmp_path)[1]
    with torch.no_grad():
        other.weight[0, 0] += 1e-3  # the same network object, retrained
    assert not real_statistics(digits, other, 500, cache_dir=tmp_path)[1]
    assert not real_statistics(digits, projection, 400, cache_dir=tmp_path)[1]
    assert real_statistics(digits, projection, 500, cache_dir=tmp_path)[1]


def test_changed_data_misses(projection, tmp_path):
    dm = Digits()
    dm.setup("fit")
    assert not real_statistics(dm, projection, 300, cache_dir=tmp_path)[1]
    assert real_statistics(dm, projection, 300, cache_dir=tmp_path)[1]
    first_selected = cache.selection(dm, 300)[0]
    dm.train_set.x[first_selected, 0, 3, 3] += 0.125
    stats, hit = real_statistics(dm, projection, 300, cache_dir=tmp_path)
    assert not hit
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_the_second_evaluation_of_a_metric_hits_the_cache(digits, projection, private_cache):
    for expected_hit in (False, True):
        metric = FID(projection, digits)
        metric.update(digits.real_sample(100, seed=1))
        metric.compute()
        assert metric.cache_hit is expected_hit
    assert len(list(private_cache.glob("*.pt"))) == 1


def test_the_feature_subset_is_capped(digits, projection, tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "MAX_FEATURES", 100)
    stats, _ = real_statistics(digits, projection, 300, cache_dir=tmp_path, batch_size=64)
    assert stats.n == 300 and stats.features.shape == (100, 16)
    torch.testing.assert_close(stats.features, projection(digits.real_sample(100)))


def test_the_directory_is_config_else_environment_else_home(monkeypatch, tmp_path):
    assert cache_directory(tmp_path / "cfg") == tmp_path / "cfg"
    monkeypatch.setenv("GANLAB_CACHE", str(tmp_path / "env"))
    assert cache_directory() == tmp_path / "env"
    monkeypatch.delenv("GANLAB_CACHE")
    assert str(cache_directory()).endswith(".cache/ganlab/stats")


def test_an_unreadable_entry_is_recomputed(digits, projection, tmp_path):
    real_statistics(digits, projection, 200, cache_dir=tmp_path)
    (entry,) = tmp_path.glob("*.pt")
    entry.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable statistics cache"):
        assert not real_statistics(digits, projection, 200, cache_dir=tmp_path)[1]
    assert real_statistics(digits, projection, 200, cache_dir=tmp_path)[1]
