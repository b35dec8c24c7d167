"""The trackers read back with their own clients after a 2-job multirun that logs to wandb (offline),
TensorBoard and MLflow at once: each job is one run in each tracker, whose hyperparameters are the
resolved config, whose metric history is metrics.csv, whose sample pictures are there once per step, and
whose name, group and tags are those of the sweep."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

pytest.importorskip("mlflow")

SWEPT = "seed=1,2"
COMMAND = [
    "-m",
    "logger=[wandb,tensorboard,mlflow]",
    SWEPT,
    "penalty=[gp,r1]",
    "logger.mlflow.run_name=${ganlab.run_name:}",  # once a RecursionError
    "data=ring8",
    "data.n_train=256",
    "data.batch_size=16",
    "model.generator.width=8",
    "model.discriminator.width=8",
    "trainer.max_steps=4",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "sample_every=2",
    "callbacks.checkpoint.every=0",
    "callbacks.evaluation.n_samples=200",
]
STEPS_WITH_PICTURES = [2, 4]  # sample_every=2 and the end (step 4): the final picture is step 4's


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """The sweep folder of the multirun, run in a fresh working directory (outputs/mlflow.db there)."""
    cwd = tmp_path_factory.mktemp("trackers")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "ganlab.train", *COMMAND, f"hydra.sweep.dir={cwd}/sweep"]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return cwd / "sweep"


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"data": {"n_train": 256}}`` -> ``{"data/n_train": 256}`` (empty dicts vanish)."""
    if not isinstance(node, dict):
        return {prefix.rstrip("/"): node}
    return {k: v for key, value in node.items() for k, v in flatten(value, f"{prefix}{key}/").items()}


def saved_config(run_dir: Path) -> dict[str, Any]:
    """The job's saved config with its own values (not its interpolations, which name Hydra's runtime)."""
    cfg = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "config.yaml"), resolve=False)
    return {k: v for k, v in flatten(cfg).items() if not (isinstance(v, str) and "${" in v)}


def as_flattened(config: dict[str, Any]) -> dict[str, Any]:
    """The config as Lightning flattens it for TensorBoard and MLflow: without empty lists (``tags: []``)."""
    return {k: v for k, v in config.items() if v != []}


def metrics_csv(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """metric -> [(step, value), ...] from metrics.csv."""
    history: dict[str, list[tuple[int, float]]] = {}
    with open(run_dir / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key != "step" and value != "":
                    history.setdefault(key, []).append((int(row["step"]), float(value)))
    return history


def jobs(sweep: Path) -> list[tuple[Path, dict[str, Any]]]:
    return [(sweep / n, json.loads((sweep / n / "summary.json").read_text())) for n in ("0", "1")]


def expected_tags(summary: dict[str, Any]) -> set[str]:
    picked = {f"{g}:{'+'.join(v) if isinstance(v, list) else v}" for g, v in summary["choices"].items()}
    return picked | {f"seed:{summary['seed']}"}


def test_both_jobs_completed_with_their_seed(sweep):
    assert [(s["status"], s["seed"]) for _, s in jobs(sweep)] == [("completed", 1), ("completed", 2)]


# wandb ----------------------------------------------------------------------------------------------------
def leet(run_dir: Path, *args: str) -> str:
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    wandb = shutil.which("wandb") or str(Path(sys.executable).with_name("wandb"))
    cmd = [wandb, "leet", "inspect", *args, str(offline)]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout


def test_wandb_holds_config_history_pictures_summary_name_and_tags(sweep):
    for (run_dir, summary), seed in zip(jobs(sweep), (1, 2), strict=True):
        state = json.loads(leet(run_dir, "--summary", "--json"))
        config = {k: v for k, v in state["config"].items() if k not in ("_wandb", "ganlab")}
        saved = saved_config(run_dir)
        assert {k: v for k, v in flatten(config).items() if k in saved} == saved
        assert state["config"]["ganlab"]["choices"]["penalty"] == ["gp", "r1"]
        assert state["config"]["logger"]["wandb"]["id"] == summary["run_id"]
        assert state["summary"]["status"] == "completed"
        assert state["summary"]["metrics/modes"] == pytest.approx(summary["metrics"]["metrics/modes"])
        records = [json.loads(line) for line in leet(run_dir, "--json").splitlines() if line.strip()]
        (run,) = [r["run"] for r in records if r["type"] == "run"]
        assert run["display_name"] == f"seed={seed}"  # the constants of the sweep are not in the name
        assert run["run_group"] == str(sweep)
        assert set(run["tags"]) == expected_tags(summary)
        rows = [r["history"]["item"] for r in records if r["type"] == "history"]
        steps = [row["trainer/global_step"] for row in rows if "samples._type" in row]
        assert steps == STEPS_WITH_PICTURES
        for key, points in metrics_csv(run_dir).items():
            logged = [(row["trainer/global_step"], row[key]) for row in rows if key in row]
            assert logged == [(s, pytest.approx(v)) for s, v in points], key


# TensorBoard ----------------------------------------------------------------------------------------------
def tensorboard(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def hparams(events) -> tuple[dict[str, Any], set[str]]:
    """The HParams plugin's session hyperparameters and the metric names of its experiment."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")
    data = {tag: plugin_data_pb2.HParamsPluginData.FromString(raw) for tag, raw in content.items()}
    start = data["_hparams_/session_start_info"].session_start_info
    values = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    metrics = {m.name.tag for m in data["_hparams_/experiment"].experiment.metric_infos}
    return values, metrics


def test_tensorboard_holds_hparams_with_final_metrics_history_and_pictures_once(sweep):
    for (run_dir, summary), seed in zip(jobs(sweep), (1, 2), strict=True):
        events = tensorboard(run_dir)
        values, metrics = hparams(events)
        for key, value in as_flattened(saved_config(run_dir)).items():
            expected = value if isinstance(value, int | float | str | bool) else str(value)
            assert values[key] == (float(expected) if isinstance(expected, int | float) else expected), key
        assert values["run/name"] == f"seed={seed}" and values["run/group"] == str(sweep)
        assert set(values["run/tags"].split(",")) == expected_tags(summary)
        assert values["run/status"] == "completed"
        assert values["ganlab/choices/penalty"] == str(["gp", "r1"])
        assert {f"summary/{k}" for k in summary["metrics"]} <= metrics
        final = events.Scalars("summary/metrics/modes")
        assert [e.value for e in final] == [pytest.approx(summary["metrics"]["metrics/modes"])]
        assert [e.step for e in events.Images("samples")] == STEPS_WITH_PICTURES
        for key, points in metrics_csv(run_dir).items():
            assert [(e.step, e.value) for e in events.Scalars(key)] == [
                (s, pytest.approx(v, rel=1e-6)) for s, v in points
            ], key


# MLflow ---------------------------------------------------------------------------------------------------
def test_mlflow_holds_one_run_per_job_with_params_history_pictures_artifacts_and_status(sweep):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{sweep.parent}/outputs/mlflow.db")
    (exp,) = [e for e in client.search_experiments() if e.name == f"ganlab/{sweep}"]
    runs = {r.data.tags["ganlab.run_id"]: r for r in client.search_runs([exp.experiment_id])}
    assert len(runs) == 2
    for (run_dir, summary), seed in zip(jobs(sweep), (1, 2), strict=True):
        run = runs[summary["run_id"]]
        assert run.info.status == "FINISHED" and run.data.tags["ganlab.status"] == "completed"
        assert run.info.run_name == f"seed={seed}"
        tags = {f"{k}:{v}" for k, v in run.data.tags.items() if not k.startswith(("mlflow.", "ganlab."))}
        assert tags - {f"group:{sweep}"} == expected_tags(summary)
        params = run.data.params
        config = as_flattened(saved_config(run_dir))
        assert {k: params[k] for k in config} == {k: str(v)[:250] for k, v in config.items()}
        for key, points in metrics_csv(run_dir).items():
            history = client.get_metric_history(run.info.run_id, key)
            assert [(m.step, m.value) for m in history] == [(s, pytest.approx(v)) for s, v in points], key
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"summary.json", ".hydra", "samples", "images"} <= artifacts
        pictures = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
        # MLflow's image files: images/samples+step+2+timestamp+...png (and a .webp thumbnail each)
        steps = [int(p.split("+step+")[1].split("+")[0]) for p in pictures if p.endswith(".png")]
        assert sorted(steps) == STEPS_WITH_PICTURES
        assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(sweep.parent / "outputs")


@pytest.mark.parametrize(
    "status, mlflow_status", [("completed", "FINISHED"), ("diverged", "FAILED"), ("interrupted", "KILLED")]
)
def test_mlflow_run_ends_with_the_status_of_the_run_and_keeps_tags_as_pairs(tmp_path, status, mlflow_status):
    from mlflow import MlflowClient

    from ganlab.callbacks.trackers import MLflowTracker

    uri = f"sqlite:///{tmp_path}/db/mlflow.db"  # a folder that does not exist yet
    tracker = MLflowTracker(
        tracking_uri=uri,
        artifact_location=str(tmp_path / "artifacts"),
        experiment_name="e",
        run_name="seed=1",
        tags=["loss:hinge", "mine"],
        group="sweep",
    )
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text("{}")
    summary = {"status": status, "g_steps": 3, "d_steps": 3, "wall_s": 1.5, "run_id": "abcd1234"}
    tracker.log_outcome(summary, tmp_path / "run")
    run = MlflowClient(uri).get_run(tracker.run_id)
    assert run.info.status == mlflow_status and run.info.run_name == "seed=1"
    mine = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
    assert mine == {
        "loss": "hinge",
        "mine": "true",
        "group": "sweep",
        "ganlab.status": status,
        "ganlab.g_steps": "3",
        "ganlab.d_steps": "3",
        "ganlab.wall_s": "1.5",
        "ganlab.run_id": "abcd1234",
    }
    assert [a.path for a in MlflowClient(uri).list_artifacts(tracker.run_id)] == ["summary.json"]
    assert (tmp_path / "artifacts").is_dir()
