"""ganlab's Optuna sweeper (``hydra/sweeper=ganlab_optuna``, ``hparams_search=toy_optuna``): the search space,
a study that a rerun resumes, failed, diverged and pruned trials, the files left in the sweep folder, and
bad input refused with exit 2 before anything is written."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from ganlab.cli import main
from hydra_plugins.ganlab_optuna import _space, _study

TINY = [
    "hparams_search=toy_optuna",
    "logger=none",
    "trainer.max_steps=10",
    "trainer.enable_model_summary=false",
    "callbacks.evaluation.every=5",
    "callbacks.evaluation.n_samples=100",
    "callbacks.checkpoint.every=0",
    "model.generator.width=8",
    "model.discriminator.width=8",
    "data.n_train=256",
    "data.batch_size=16",
    "sample_every=0",
]


def sweep_cli(sweep: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1"}
    cmd = [sys.executable, "-m", "ganlab.train", "-m", *TINY, *overrides, f"hydra.sweep.dir={sweep}"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=sweep.parent)


def load(sweep: Path, name: str = "ganlab_toy") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep / 'optuna.db'}")


# the search space ----------------------------------------------------------------------------------------
def test_hydra_sweep_syntax_becomes_optuna_distributions():
    parser = OverridesParser.create()
    lines = [
        "a=choice(128, 256, hinge)",
        "b=interval(0.1, 0.5)",
        "c=tag(log, interval(1e-4, 1e-2))",
        "d=interval(2, 9)",
        "e=range(1, 9, 3)",
        "seed=3",
        "b=0.2",  # a later line replaces an earlier one
        "a=choice(1, 2)",
    ]
    space, fixed = _space.parse(lines, parser)
    assert space["a"] == CategoricalDistribution([1, 2]) and "b" not in space
    assert space["c"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert space["d"] == FloatDistribution(2.0, 9.0)  # Hydra's interval is over floats; range for integers
    values = list(range(1, 9, 3))  # Hydra's range excludes its stop, Optuna's high is included
    assert space["e"] == IntDistribution(values[0], values[-1], step=3) and values[-1] == 7
    assert fixed == ["seed=3", "b=0.2"]


def test_a_seeded_sampler_continues_after_a_resume_and_repeats_for_the_same_state():
    def proposals(previous: int) -> list[float]:
        node = _study.seeded({"_target_": "optuna.samplers.RandomSampler", "seed": 0}, previous)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=node.seed))
        return [study.ask({"x": FloatDistribution(0, 1)}).params["x"] for _ in range(3)]

    assert proposals(3) == proposals(3)
    assert not set(proposals(0)) & set(proposals(3))
    assert _study.seeded({"_target_": "x", "seed": None}, 3).seed is None  # unseeded stays unseeded


# a job's outcome -------------------------------------------------------------------------------------------
def job(status: JobStatus, value) -> JobReturn:
    ret = JobReturn(status=status)
    ret.return_value = value
    return ret


@pytest.mark.parametrize(
    "status, value, state",
    [
        ("completed", 3.0, TrialState.COMPLETE),
        ("completed", math.nan, TrialState.FAIL),  # a NaN metric is no score
        ("completed", None, TrialState.FAIL),
        ("diverged", 3.0, TrialState.FAIL),  # an evaluation before divergence is no score either
        ("failed", 3.0, TrialState.FAIL),
        ("pruned", 3.0, TrialState.PRUNED),
        (None, 3.0, TrialState.FAIL),  # no summary.json (a crash)
    ],
)
def test_the_trial_state_comes_from_the_runs_status(tmp_path, status, value, state):
    if status is not None:
        (tmp_path / "summary.json").write_text(json.dumps({"status": status}))
    got, told, _ = _study.outcome(job(JobStatus.COMPLETED, value), tmp_path)
    assert got == state and (told == value if state == TrialState.COMPLETE else told is None)


def test_a_job_that_raised_is_a_failed_trial(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"status": "completed"}))
    state, value, reason = _study.outcome(job(JobStatus.FAILED, RuntimeError("boom")), tmp_path)
    assert state == TrialState.FAIL and value is None and "boom" in reason


# real sweeps ---------------------------------------------------------------------------------------------
def leave_a_trial_running(sweep: Path) -> int:
    """What a preempted session leaves: a trial of this sweep folder still RUNNING in the study."""
    space = {
        "optim.g.lr": FloatDistribution(1e-4, 3e-3, log=True),
        "optim.d.lr": FloatDistribution(1e-4, 3e-3, log=True),
    }
    trial = load(sweep).ask(space)
    trial.set_user_attr("run_dir", str((sweep / str(trial.number)).resolve()))
    return trial.number


@pytest.mark.slow
def test_a_rerun_resumes_the_study_in_new_run_folders(tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.n_jobs=2",
        "hydra/launcher=parallel",
        "hydra/sweeper/pruner=none",
    ]
    proc = sweep_cli(sweep, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    orphan = leave_a_trial_running(sweep)
    proc = sweep_cli(sweep, *args)  # the same command again
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = load(sweep).trials
    assert orphan == 3 and [t.number for t in trials] == list(range(7))  # 3, the orphan rerun, 3 more
    assert all(t.state == TrialState.COMPLETE for t in trials)
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == 7  # the seeded sampler did not propose the first session's trials again
    for trial in trials:
        run = sweep / str(trial.number)
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["g_steps"] == 10
        assert summary["metrics"]["metrics/modes"] == pytest.approx(trial.value, abs=0)
        assert f"+callbacks.pruning.trial={trial.number}" in summary["overrides"]
        for key, value in trial.params.items():
            assert f"{key}={value}" in summary["overrides"]
        assert "resuming" not in (run / "train.log").read_text()  # no trial continued another's checkpoint
        assert trial.intermediate_values == {5: pytest.approx(trial.intermediate_values[5]), 10: trial.value}
    best = yaml.safe_load((sweep / "optuna_best.yaml").read_text())
    values = [t.value for t in trials]
    assert best["best_value"] == max(values) and best["best_trial"] == int(np.argmax(values))
    assert best["trials"]["complete"] == 7
    assert (sweep / "optuna_history.png").stat().st_size > 0 and (sweep / "optuna_importance.png").is_file()

    compare = subprocess.run(
        [sys.executable, "-m", "ganlab.compare", str(sweep)], capture_output=True, text=True
    )
    assert compare.returncode == 0, compare.stderr[-2000:]
    assert "Runs: 7 run folders (7 completed)" in (sweep / "report" / "report.md").read_text()


def test_pruned_failed_and_diverged_trials_are_recorded_not_scored(tmp_path):
    sweep = tmp_path / "sweep"
    proc = sweep_cli(
        sweep,
        "hydra.sweeper.n_trials=4",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=2",  # with this seed the 4 trials draw the 4 combinations
        "hydra/sweeper/pruner=none",
        "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
        "+hydra.sweeper.pruner.lower=1e9",  # prunes any value below 1e9: every one
        "optim.g.lr=2e-4",  # fixed: the search space below is discrete
        "optim.d.lr=choice(2e-4, 1e30)",  # 1e30 diverges
        "model.generator.activation=choice(relu, bogus)",  # bogus fails when the model is built
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # a failed job: the sweep ran them all, then exit 1
    states = {}
    for trial in load(sweep).trials:
        summary = json.loads((sweep / str(trial.number) / "summary.json").read_text())
        states[(trial.params["optim.d.lr"], trial.params["model.generator.activation"])] = (
            trial.state,
            summary["status"],
        )
        if trial.state == TrialState.PRUNED:
            assert summary["g_steps"] == 5 and summary["checkpoint"] == "checkpoints/last.ckpt"
            assert (sweep / str(trial.number) / "checkpoints" / "last.ckpt").is_file()
    assert states == {
        (2e-4, "relu"): (TrialState.PRUNED, "pruned"),
        (1e30, "relu"): (TrialState.FAIL, "diverged"),
        (2e-4, "bogus"): (TrialState.FAIL, "failed"),
        (1e30, "bogus"): (TrialState.FAIL, "failed"),
    }
    best = yaml.safe_load((sweep / "optuna_best.yaml").read_text())
    assert best["best_trial"] is None and best["trials"]["fail"] == 3 and best["trials"]["pruned"] == 1
    assert best["plots"]["importance"].startswith("skipped")


# bad input -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "override, named",
    [
        (
            "hydra.sweeper.storage=sqlite:////nonexistent/folder/study.db",
            "sqlite:////nonexistent/folder/study.db",
        ),
        ("optim.g.lrr=interval(1e-4, 1e-3)", "optim.g.lrr"),
        ("hydra.sweeper.sampler._target_=optuna.samplers.NoSuchSampler", "optuna.samplers.NoSuchSampler"),
        ("hydra.sweeper.pruner._target_=optuna.pruners.NoSuchPruner", "optuna.pruners.NoSuchPruner"),
        ("hydra.sweeper.direction=maximise", "maximise"),
    ],
    ids=["storage", "unknown_key", "sampler", "pruner", "direction"],
)
def test_bad_input_exits_2_before_anything_is_written(tmp_path, monkeypatch, capsys, override, named):
    """In this process (the command line's own entry point, ganlab.cli.main), to keep the test fast."""
    sweep = tmp_path / "sweep"
    argv = ["ganlab.train", "-m", *TINY, "hydra.sweeper.n_trials=1", override, f"hydra.sweep.dir={sweep}"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    lines = [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("ganlab: invalid Optuna")
    ]
    assert len(lines) == 1 and named in lines[0] and "Valid" in lines[0], lines
    assert not sweep.exists() and list(tmp_path.iterdir()) == []
