"""End to end through the command line: a multirun of two jobs with wandb (offline), what each run
folder holds, the summary's documented fields, and one tracker run per job."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ganlab.train import train

ROOT = Path(__file__).resolve().parents[1]
JOB_ARGS = [
    "logger=wandb",
    "trainer.max_steps=12",
    "trainer.log_every_n_steps=5",
    "sample_every=5",
    "callbacks.evaluation.every=6",
    "callbacks.evaluation.n_samples=300",
    "model.generator.width=16",
    "model.discriminator.width=16",
    "trainer.enable_progress_bar=false",
]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep")
    proc = run_cli("-m", "ganlab.train", "-m", *JOB_ARGS, "seed=0,1", f"hydra.sweep.dir={out}", cwd=out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def documented_summary_fields() -> set[str]:
    """The field names in the README's summary.json table (first column, in backticks)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### `summary.json`", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M))


@pytest.mark.parametrize("job", ["0", "1"])
def test_run_folder_holds_everything_promised(sweep, job):
    run = sweep / job
    assert (run / ".hydra" / "config.yaml").is_file() and (run / ".hydra" / "overrides.yaml").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == [
        "final.png",
        "step_0000005.png",
        "step_0000010.png",
    ]
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    steps = sorted({int(r["step"]) for r in rows if r["loss/d"]})
    assert steps == [4, 9]  # logged after the 5th and 10th generator updates (0-based step index)
    evaluated = sorted(int(r["step"]) for r in rows if r.get("metrics/modes"))
    assert evaluated == [6, 12]  # evaluation rows carry the generator step count
    for key in ("loss/g", "D/real", "D/fake", "grad_norm/D", "grad_norm/G", "lr/G", "lr/D"):
        assert rows[0][key] != "", key


@pytest.mark.parametrize("job", ["0", "1"])
def test_summary_has_every_documented_field(sweep, job):
    summary = json.loads((sweep / job / "summary.json").read_text())
    fields = documented_summary_fields()
    assert {"status", "g_steps", "d_steps", "wall_s", "seed", "overrides", "metrics"} <= fields
    assert fields == set(summary), "README table and summary.json disagree"
    assert summary["status"] == "completed" and summary["error"] is None
    assert summary["g_steps"] == 12 and summary["d_steps"] == 12 and summary["seed"] == int(job)
    assert f"seed={job}" in summary["overrides"]
    assert summary["choices"]["loss"] == "non_saturating" and summary["choices"]["data"] == "grid25"
    assert summary["checkpoint"] == "checkpoints/last.ckpt" and summary["samples"] == "samples/final.png"
    assert 0 < summary["wall_s"] < 600
    assert 0 <= summary["metrics"]["metrics/modes"] <= 25 and 0 <= summary["metrics"]["metrics/hq"] <= 1


def test_one_wandb_run_per_job_named_grouped_and_tagged(sweep):
    run_files = {job: list((sweep / job / "wandb").glob("offline-run-*/run-*.wandb")) for job in ("0", "1")}
    assert all(len(files) == 1 for files in run_files.values()), run_files
    assert run_files["0"][0].name != run_files["1"][0].name
    for job, (path,) in run_files.items():
        record = path.read_bytes()  # protobuf records hold their strings verbatim
        overrides = json.loads((sweep / job / "summary.json").read_text())["overrides"]
        # the run's name: the swept override only, not the constants (tests/test_trackers.py reads it back)
        assert f"seed={job}".encode() in record and ",".join(overrides).encode() not in record
        assert str(sweep).encode() in record  # its group: the sweep folder
        for tag in (b"loss:non_saturating", b"model:mlp", b"data:grid25"):
            assert tag in record


def test_the_sessions_of_a_resumed_run_log_to_one_wandb_run(make_cfg, tmp_path):
    """The wandb run id is summary.json's run_id, kept by the resume: a requeued run continues its wandb run
    (online; offline, each session writes a folder ending in the same id, for ``wandb sync --id``)."""
    run = tmp_path / "run"
    first = train(make_cfg("logger=wandb", "trainer.max_steps=2", run_dir=run))
    second = train(make_cfg("logger=wandb", "trainer.max_steps=4", run_dir=run))
    other = train(make_cfg("logger=wandb", "trainer.max_steps=2", run_dir=tmp_path / "other"))
    assert second["g_steps"] == 4 and first["run_id"] == second["run_id"] != other["run_id"]
    folders = sorted(p.name for p in (run / "wandb").glob("offline-run-*"))
    # offline-run-<time>-<id> (wandb appends -1 when two sessions start within the same second)
    assert len(folders) == 2 and all(f"-{first['run_id']}" in f for f in folders), folders


def test_unknown_override_fails_before_writing_a_run(tmp_path):
    proc = run_cli("-m", "ganlab.train", "los=hinge", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode != 0
    assert "los" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_cpu_run_without_a_gpu_does_not_probe_nvml_at_every_optimizer_step(make_cfg, tmp_path, monkeypatch):
    """Lightning's import sets PYTORCH_NVML_BASED_CUDA_CHECK=1: then, before CUDA is initialised, every
    ``torch.cuda.is_available()`` opens NVML, and torch's optimizers ask it in each ``step()``. A CPU run on
    a machine whose NVML sees no GPU trains with torch's own check (asked once per process): two runs that
    differ by 4 generator steps (8 optimizer steps) probe NVML equally often, and the variable is back after.
    """
    import torch

    probes = []
    nvml_count = torch.cuda._device_count_nvml
    monkeypatch.setattr(torch.cuda, "_device_count_nvml", lambda: probes.append(1) or nvml_count())
    assert os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1"  # set by importing Lightning
    counts = []
    for steps in (2, 6):
        probes.clear()
        summary = train(
            make_cfg(f"trainer.max_steps={steps}", "trainer.accelerator=cpu", run_dir=tmp_path / f"{steps}")
        )
        assert summary["status"] == "completed" and summary["g_steps"] == steps
        counts.append(len(probes))
    assert counts[0] == counts[1], counts
    assert os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1"


@pytest.mark.parametrize("nvml_gpus", [0, 1])
def test_the_nvml_check_is_left_on_where_a_fork_could_be_poisoned(nvml_gpus, monkeypatch):
    """Only where NVML sees no GPU is the check switched to torch's own (which initialises the CUDA driver
    on a machine with GPUs); it comes back when training ends, also by an exception."""
    import pytorch_lightning as pl
    import torch

    from ganlab.train import cuda_probed_once

    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: nvml_gpus)
    with pytest.raises(RuntimeError, match="inside"), cuda_probed_once(trainer):
        inside = os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK")
        raise RuntimeError("inside")
    assert inside == (None if nvml_gpus == 0 else "1")
    assert os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1"
