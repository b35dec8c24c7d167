"""Real training works: the demo config (non-saturating GAN on grid25) covers most of the 25 modes with
mostly high-quality samples (VEEGAN / PacGAN protocol, 2500 samples, 3 std)."""

from __future__ import annotations

import pytest

from ganlab.train import train


@pytest.mark.slow
def test_demo_config_covers_at_least_20_of_25_modes_with_70_percent_high_quality(make_cfg):
    cfg = make_cfg("experiment=demo", tiny=False)
    assert cfg.callbacks.evaluation.n_samples == 2500
    summary = train(cfg)
    metrics = summary["metrics"]
    assert summary["status"] == "completed" and summary["g_steps"] == cfg.trainer.max_steps
    assert metrics["metrics/n_modes"] == 25
    assert metrics["metrics/modes"] >= 20, metrics
    assert metrics["metrics/hq"] >= 0.70, metrics
