"""What the console shows: a single run's progress bar of generator steps, a multirun's line per job start
and end and its closing table, and Lightning's start-up boilerplate kept in train.log instead."""

from __future__ import annotations

import csv
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ganlab.cli import KnownHarmlessWarnings
from ganlab.summary import read_summary
from ganlab.train import train

# Lightning's (and its dependencies') lines that a console must not show, each of which train.log keeps
BOILERPLATE = [
    "GPU available",
    "TPU available",
    "Tip: For seamless",
    "`Trainer.fit` stopped",
    "`weights_only` was not set",
    "Trainable params",
    "isinstance(treespec, LeafSpec)",
]
TINY = [
    "logger=none",
    "data=ring8",
    "metrics=toy",
    "trainer.max_steps=4",
    "trainer.log_every_n_steps=1",
    "model.generator.width=8",
    "model.discriminator.width=8",
    "data.n_train=512",
    "data.batch_size=8",
    "callbacks.evaluation.n_samples=200",
    "sample_every=0",
    "callbacks.checkpoint.every=0",
]


def ganlab_train(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "ganlab.train", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=cwd)


def test_progress_bar_counts_generator_steps_with_the_latest_losses(make_cfg, capsys):
    """n_critic=2: Lightning counts 3 optimizer steps per generator step (15 for 5); the bar counts 5 and
    shows the last logged losses, which metrics.csv holds."""
    cfg = make_cfg("n_critic=2", "trainer.max_steps=5", "trainer.enable_progress_bar=true")
    assert cfg.callbacks.progress._target_ == "ganlab.callbacks.progress.StepProgressBar"
    train(cfg)
    err = capsys.readouterr().err
    assert "generator steps" in err and "5/5" in err and "/15" not in err
    with open(Path(cfg.paths.output_dir) / "metrics.csv", newline="") as f:
        g = [float(row["loss/g"]) for row in csv.DictReader(f) if row["loss/g"]][-1]
    shown = re.findall(r"g=([-0-9.e]+)", err)[-1]
    assert float(shown) == pytest.approx(g, rel=1e-3)


def test_no_progress_bar_callback_when_the_trainer_has_none(make_cfg):
    assert make_cfg("trainer.enable_progress_bar=false").callbacks.progress is None


def test_known_harmless_warnings_are_dropped_from_the_console_only():
    keep = KnownHarmlessWarnings()

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("py.warnings", logging.WARNING, __file__, 1, message, None, None)

    assert not keep.filter(record("x.py:21: `isinstance(treespec, LeafSpec)` is deprecated, use ..."))
    assert keep.filter(record("x.py:3: UserWarning: something about the run"))


@pytest.mark.slow
def test_single_run_console_shows_the_bar_and_train_log_the_boilerplate(tmp_path):
    run = tmp_path / "run"
    done = ganlab_train(tmp_path, *TINY, f"hydra.run.dir={run}")
    assert done.returncode == 0, done.stderr
    console = done.stdout + done.stderr
    assert "generator steps" in console and "4/4" in console
    assert [line for line in BOILERPLATE if line in console] == []
    log = (run / "train.log").read_text()
    assert [line for line in BOILERPLATE if line not in log] == []


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "parallel"])
def test_multirun_console_has_a_line_per_job_start_and_end_and_a_table(tmp_path, launcher):
    """Three jobs, the third with an invalid learning rate (failed before training): per job a start and
    an end line with the override that varies, the status and key metric of its summary.json; then the
    table; none of Lightning's boilerplate, which each trained job's train.log holds."""
    sweep = tmp_path / "sweep"
    lrs = ["0.0002", "0.0001", "-1"]
    args = [*TINY, "loss=hinge", f"optim.g.lr={','.join(lrs)}", f"hydra/launcher={launcher}"]
    done = ganlab_train(tmp_path, "-m", *args, f"hydra.sweep.dir={sweep}")
    assert done.returncode == 1, done.stderr  # a job failed
    console = done.stdout + done.stderr
    for job, lr in enumerate(lrs):
        summary = read_summary(sweep / str(job))
        assert summary["status"] == ("failed" if lr == "-1" else "completed")
        if lr == "-1":
            metric, wall = "-", "0"
        else:
            assert next(iter(summary["metrics_meta"])) == "metrics/modes"  # the first metric of metrics=toy
            metric, wall = (
                f"metrics/modes={summary['metrics']['metrics/modes']:.4g}",
                f"{summary['wall_s']:.4g}",
            )
            log = (sweep / str(job) / "train.log").read_text()
            assert [line for line in BOILERPLATE if line not in log] == []
        assert console.count(f"[job {job}] started: optim.g.lr={lr}\n") == 1
        end = f"[job {job}] ended: optim.g.lr={lr}  {summary['status']}  {metric}  {wall} s\n"
        assert console.count(end) == 1
        row = (
            rf"^{job}\s+optim\.g\.lr={re.escape(lr)}\s+{summary['status']}\s+{re.escape(metric)}\s+{wall} s$"
        )
        assert len(re.findall(row, done.stdout, re.M)) == 1
    assert re.search(r"^job\s+overrides\s+status\s+key metric\s+wall$", done.stdout, re.M)
    assert console.count("started:") == console.count("ended:") == 3
    assert [line for line in BOILERPLATE if line in console] == []
