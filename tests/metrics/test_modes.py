"""ganlab.metrics.modes on the toy mixtures: numbers against hand counts, the declared direction and range
of each value, data without modes refused before a run writes anything."""

from __future__ import annotations

import json
import math
from functools import partial

import pytest
import torch

from ganlab.callbacks.evaluation import Evaluation
from ganlab.config import ConfigError
from ganlab.data.toy import Grid25, Ring8, TwoMoons
from ganlab.metrics.modes import ModeMetrics
from ganlab.train import train


def in_range(value: float, declared: dict) -> bool:
    low, high = declared["range"]
    return (low is None or value >= low) and (high is None or value <= high)


def test_one_mode_hit_gives_the_declared_extremes():
    """2500 samples on mode 0 of Ring8, 0.5 std away (high quality): 1 of 8 covered, hq 1, and the reverse
    KL of a point mass, log 8, the upper end of its declared range."""
    dm = Ring8()
    metric = ModeMetrics.from_datamodule(dm)
    metric.update(dm.means[0] + torch.full((2500, 2), 0.5 * dm.std / math.sqrt(2)))
    values, meta = metric.compute(), {k: m.to_json() for k, m in metric.meta().items()}
    assert values == {
        "modes": 1,
        "n_modes": 8,
        "hq": 1.0,
        "reverse_kl": pytest.approx(math.log(8), rel=1e-12),
    }
    assert meta == {
        "modes": {"direction": "max", "range": [0, 8]},
        "n_modes": {"direction": None, "range": [8, 8]},
        "hq": {"direction": "max", "range": [0, 1]},
        "reverse_kl": {"direction": "min", "range": [0, pytest.approx(math.log(8), rel=1e-12)]},
    }
    assert all(in_range(values[k], meta[k]) for k in values)


def test_real_samples_cover_every_mode_the_data_declares():
    dm = Grid25(n_train=5000, seed=1)
    metric = ModeMetrics.from_datamodule(dm)
    metric.update(dm.load()[0])
    values = metric.compute()
    assert values["modes"] == dm.n_modes == metric.meta()["modes"].high == 25
    assert set(values) == set(metric.meta())  # every reported value is declared
    assert metric.radius == 3 * 0.05 != 0.15  # the comparison uses the product as computed ...
    assert metric.protocol()["high_quality_radius"] == 0.15  # ... the protocol (printed) the value


def test_data_without_modes_is_refused_with_what_is_valid():
    with pytest.raises(ValueError, match=r"data TwoMoons declares none \(its n_modes is None\).*Gaussian"):
        ModeMetrics.from_datamodule(TwoMoons())
    evaluation = Evaluation({"modes": partial(ModeMetrics.from_datamodule)})
    with pytest.raises(ConfigError, match="callbacks.evaluation.metrics.modes: .*TwoMoons"):
        evaluation.build_metrics(TwoMoons())


def test_the_run_writes_the_declarations_into_summary_json(make_cfg, tmp_path):
    train(make_cfg("data=ring8", "metrics=toy", "trainer.max_steps=2", run_dir=tmp_path / "run"))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["metrics_meta"]["metrics/modes"] == {"direction": "max", "range": [0, 8]}
    assert set(summary["metrics_meta"]) == {k for k in summary["metrics"] if k.startswith("metrics/")}


@pytest.mark.parametrize("metrics,data,model", [("domain", "ring8", "mlp"), ("toy", "digits", "dcgan")])
def test_metrics_that_do_not_fit_the_data_fail_before_anything_is_written(
    make_cfg, tmp_path, metrics, data, model
):
    cfg = make_cfg(f"data={data}", f"metrics={metrics}", f"model={model}", run_dir=tmp_path / "run")
    declared = "feature_net" if metrics == "domain" else "n_modes"
    with pytest.raises(
        ConfigError, match=f"callbacks.evaluation.metrics.* declares none .its {declared} is None"
    ):
        train(cfg)
    assert not (tmp_path / "run").exists()
