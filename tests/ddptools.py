"""What DDP tests compare: a run on several processes against one process fed the same global batches
(used by tests/test_distributed.py and tests/test_launchers.py).

Tolerance of the 2-process vs 1-process comparisons: float32 parameters agree to ``atol=1e-5`` (plus
``rtol=1e-4``) after the runs compared. The two runs compute the same sums in another order (two shard
means averaged by an all-reduce against one mean over the global batch): each update differs by a few
float32 ulps (measured: max |diff| 6e-8 over all parameters after 6 WGAN-GP steps), far below a
learning-rate step (1e-4 .. 1e-3), so any real error (a wrong shard, noise, reduction or a missing penalty
term) shows. The replicas of the 2 processes must be identical, bit for bit: ``replica_max_abs_diff ==
0.0``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from cfgtools import compose_cfg
from ganlab.train import train

ATOL, RTOL = 1e-5, 1e-4

COMMON = [
    "trainer.accelerator=cpu",
    "logger=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
    "sample_every=0",
    "callbacks.evaluation.n_samples=200",
    "callbacks.evaluation.batch_size=50",
]
TOY = [
    "data=ring8",
    "data.n_train=512",
    "model.generator.width=16",
    "model.discriminator.width=16",
    "model.generator.depth=2",
    "model.discriminator.depth=2",
]


def one_process(run_dir: Path, batch: int, *overrides: str) -> dict:
    """The reference, in this process (a subprocess costs seconds of imports)."""
    cfg = compose_cfg([*COMMON, *overrides, f"data.batch_size={batch}"], run_dir, tiny=False)
    return train(cfg)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
        "state_dict"
    ]


def assert_same_run(ddp: Path, single: Path, ddp_summary: dict, single_summary: dict) -> None:
    a, b = weights(ddp), weights(single)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=ATOL, rtol=RTOL, msg=key)
    assert ddp_summary["world_size"] == 2 and ddp_summary["replica_max_abs_diff"] == 0.0
    assert (ddp_summary["g_steps"], ddp_summary["d_steps"]) == (
        single_summary["g_steps"],
        single_summary["d_steps"],
    )
    for key, value in single_summary[
        "metrics"
    ].items():  # losses logged as global means; metrics over all samples
        if value is None or math.isnan(value):  # undefined (null in summary.json) in both
            assert ddp_summary["metrics"][key] is None, key
        else:
            assert ddp_summary["metrics"][key] == pytest.approx(value, rel=1e-3, abs=1e-4), key
    assert sorted(p.name for p in (ddp / "checkpoints").iterdir()) == ["last.ckpt"]  # rank 0 only, no tmp
    steps = [
        [r["step"] for r in csv.DictReader(open(run / "metrics.csv")) if r["loss/d"]] for run in (ddp, single)
    ]
    assert steps[0] == steps[1]  # one writer: each training step's row once


def assert_same_metrics(ddp: Path, single: Path) -> None:
    """``metrics.csv`` of the two runs: the same columns and rows (steps), every value equal to the
    tolerance of the summary's metrics (losses are global means; metrics are over all samples)."""
    a, b = (list(csv.DictReader(open(run / "metrics.csv"))) for run in (ddp, single))
    assert len(a) == len(b) > 0 and list(a[0]) == list(b[0])
    for row_a, row_b in zip(a, b, strict=True):
        for key, value in row_b.items():
            if value == "":
                assert row_a[key] == "", (key, row_b["step"])
            else:
                assert float(row_a[key]) == pytest.approx(float(value), rel=1e-3, abs=1e-4), (
                    key,
                    row_b["step"],
                )
