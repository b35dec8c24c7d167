"""Real multiruns with the parallel (joblib) launcher, turned into reports by ganlab.compare."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TINY = [
    "logger=none",
    "trainer.max_steps=6",
    "trainer.enable_progress_bar=false",
    "model.generator.width=8",
    "model.discriminator.width=8",
    "data.n_train=2000",
    "callbacks.evaluation.every=3",
    "callbacks.evaluation.n_samples=200",
    "sample_every=0",
    "hydra/launcher=parallel",
]


def multirun(sweep: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1"}
    cmd = [sys.executable, "-m", "ganlab.train", "-m", *TINY, *overrides, f"hydra.sweep.dir={sweep}"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=sweep.parent)


def compare(sweep: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ganlab.compare", str(sweep), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def ranking_rows(report: dict) -> dict[str, dict]:
    """The configurations of report.json's only environment, keyed by their name."""
    (env,) = report["environments"]
    return {c["name"]: c for c in env["configurations"]}


@pytest.mark.slow
def test_parallel_sweep_report_matches_the_runs_summaries(tmp_path):
    sweep = tmp_path / "sweep"
    proc = multirun(sweep, "loss=non_saturating,hinge", "seed=0,1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/summary.json")}
    assert len(summaries) == 4 and all(s["status"] == "completed" for s in summaries.values())
    assert len({s["pid"] for s in summaries.values()}) >= 2  # jobs ran in separate worker processes

    assert compare(sweep).returncode == 0
    runs = {r["run"]: r for r in csv.DictReader(open(sweep / "report" / "runs.csv"))}
    for name, summary in summaries.items():
        assert float(runs[name]["metrics/modes"]) == summary["metrics"]["metrics/modes"]
        assert float(runs[name]["metrics/hq"]) == pytest.approx(summary["metrics"]["metrics/hq"], rel=1e-12)
        assert runs[name]["status"] == "completed" and int(runs[name]["g_steps"]) == 6

    rows = ranking_rows(json.loads((sweep / "report" / "report.json").read_text()))
    for loss in ("non_saturating", "hinge"):
        modes = [
            s["metrics"]["metrics/modes"] for s in summaries.values() if f"loss={loss}" in s["overrides"]
        ]
        row = rows[f"loss={loss}"]
        assert row["n"] == 2 and row["failures"]["n"] == 2  # runs
        assert row["mean"] == pytest.approx(np.mean(modes), rel=1e-12)
        assert row["std"] == pytest.approx(np.std(modes, ddof=1), rel=1e-12)


@pytest.mark.slow
def test_sweep_with_a_failed_and_a_diverged_job_is_reported(tmp_path):
    sweep = tmp_path / "sweep"
    # lr 1e30 diverges; an unknown activation fails when the model is built; the other job is fine
    proc = multirun(sweep, "optim.d.lr=2e-4,1e30", "model.generator.activation=relu,bogus")
    # a multirun runs every job, records the failures, then exits 1 and lists the failed folders
    assert proc.returncode == 1, proc.stderr[-3000:]
    statuses = sorted(json.loads(p.read_text())["status"] for p in sweep.glob("*/summary.json"))
    assert statuses == ["completed", "diverged", "failed", "failed"]

    assert compare(sweep).returncode == 0
    report = (sweep / "report" / "report.md").read_text()
    runs = list(csv.DictReader(open(sweep / "report" / "runs.csv")))
    assert sorted(r["status"] for r in runs) == statuses
    failed = [r for r in runs if r["status"] == "failed"]
    assert all("bogus" in r["error"] for r in failed)
    header = re.search(r"Runs: 4 run folders \((.*?)\)", report).group(1)
    assert sorted(header.split(", ")) == ["1 completed", "1 diverged", "2 failed"]
