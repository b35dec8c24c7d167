"""The samples callback on sequence data: a text file of decoded samples beside each frequency picture,
both in every tracker once per step (TensorBoard text, MLflow artifact, wandb table), read back with the
trackers' own clients."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from cfgtools import compose_cfg
from ganlab.train import train

MlflowClient = pytest.importorskip("mlflow").MlflowClient

STEPS = [1, 2]  # sample_every=1 and the end (step 2): the final picture and text are step 2's


@pytest.fixture(scope="module")
def dna_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("samples")
    run = cwd / "run"
    overrides = ["data=synthetic_dna", "model=seq_resnet", "logger=[tensorboard,mlflow,wandb]"]
    overrides += [
        "trainer.max_steps=2",
        "sample_every=1",
        "callbacks.samples.n=5",
        "callbacks.samples.n_points=300",
    ]
    cfg = compose_cfg(overrides, run)
    cfg.logger.mlflow.tracking_uri = f"sqlite:///{cwd}/mlflow.db"
    cfg.logger.mlflow.artifact_location = str(cwd / "artifacts")
    cfg.logger.wandb.save_dir = str(run)
    summary = train(cfg)
    assert summary["status"] == "completed", summary["error"]
    return run, summary, cwd


def texts(run: Path) -> dict[int, str]:
    return {step: (run / "samples" / f"step_{step:07d}.txt").read_text() for step in STEPS}


def test_each_picture_has_its_text_of_n_decoded_samples(dna_run):
    run, summary, _ = dna_run
    for step, text in texts(run).items():
        lines = text.splitlines()
        assert len(lines) == 5 and all(len(line) == 64 and set(line) <= set("ACGT") for line in lines), step
        assert matplotlib.image.imread(run / "samples" / f"step_{step:07d}.png").shape[2] in (3, 4)
    assert (run / "samples" / "final.txt").read_text() == texts(run)[2]
    assert summary["samples"] == "samples/final.png"


def test_tensorboard_holds_the_text_once_per_step(dna_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, _, _ = dna_run
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"tensors": 0})
    events.Reload()
    logged = {
        e.step: e.tensor_proto.string_val[0].decode() for e in events.Tensors("samples_text/text_summary")
    }
    assert sorted(logged) == STEPS
    for step, text in texts(run).items():
        assert logged[step] == "\n".join(f"    {line}" for line in text.splitlines())


def test_mlflow_holds_the_text_of_each_step_as_an_artifact(dna_run, tmp_path):
    run, summary, cwd = dna_run
    client = MlflowClient(f"sqlite:///{cwd}/mlflow.db")
    (found,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    files = sorted(a.path for a in client.list_artifacts(found.info.run_id, "samples_text"))
    assert files == [f"samples_text/step_{s:07d}.txt" for s in STEPS]
    for step, text in texts(run).items():
        local = client.download_artifacts(
            found.info.run_id, f"samples_text/step_{step:07d}.txt", str(tmp_path)
        )
        assert Path(local).read_text() == text


def test_wandb_holds_a_table_of_samples_once_per_step(dna_run):
    run, _, _ = dna_run
    (offline,) = (run / "wandb").glob("offline-run-*")
    wandb = shutil.which("wandb") or str(Path(sys.executable).with_name("wandb"))
    out = subprocess.run(
        [wandb, "leet", "inspect", "--json", str(offline)], capture_output=True, text=True, check=True
    )
    records = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    rows = [r["history"]["item"] for r in records if r["type"] == "history"]
    tables = [row for row in rows if "samples_text._type" in row]
    assert [row["trainer/global_step"] for row in tables] == STEPS
    assert all(row["samples_text.nrows"] == 5 for row in tables)
