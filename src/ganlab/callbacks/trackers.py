"""The trackers' record of a run: wandb, TensorBoard and MLflow hold the whole experiment.

Each tracker is Lightning's logger plus three methods that say how it keeps what Lightning's loggers leave
out: ``log_picture`` (a sample picture as the tracker's own image type, at the generator step it was made),
``log_sample_text`` (decoded samples of sequence data, one per line, at their step) and ``log_outcome`` (the
run's final metrics and status, at the end). :class:`ExperimentRecord` logs the
run's hyperparameters to every tracker when training starts (Lightning logs none unless asked:
``log_hyperparams``); :func:`close_trackers` gives them the outcome and finishes the wandb run.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import platform
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger

import ganlab
from ganlab.resolvers import choices, targets

log = logging.getLogger("ganlab")


def experiment(config: dict[str, Any]) -> dict[str, Any]:
    """A run's hyperparameters: its resolved config, plus under ``ganlab`` the group choices (a list for a
    list-valued group, ``penalty: [gp, r1]``), the class each component builds, and the versions."""
    return {
        **config,
        "ganlab": {
            "choices": choices(OmegaConf.create(config)),
            "targets": targets(config),
            "versions": {
                "ganlab": ganlab.__version__,
                "torch": torch.__version__,
                "pytorch_lightning": pl.__version__,
                "python": platform.python_version(),
            },
        },
    }


def _final_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The summary's numeric metrics (the last training values and the evaluation's)."""
    return {k: float(v) for k, v in summary["metrics"].items() if isinstance(v, int | float)}


class WandbTracker(WandbLogger):
    """wandb: pictures as ``wandb.Image``; the final metrics, status and counts in the run's summary."""

    def log_picture(self, key: str, image: np.ndarray, step: int) -> None:
        self.log_image(key=key, images=[image], step=step)

    def log_sample_text(self, key: str, text: str, step: int) -> None:
        """A table with one row per sample."""
        self.log_text(key=key, columns=["sample"], data=[[line] for line in text.splitlines()], step=step)

    def log_outcome(self, summary: dict[str, Any], run_dir: Path) -> None:
        self.experiment.summary.update(
            {**_final_metrics(summary), "status": summary["status"], "g_steps": summary["g_steps"]}
        )


class TensorBoardTracker(TensorBoardLogger):
    """TensorBoard: pictures as image summaries; at the end the HParams dashboard's row of the run, whose
    hyperparameters are the experiment plus name, group, tags and status, and whose metrics are the final
    ones under ``summary/`` (the dashboard shows a run only once it has metrics: Lightning writes its
    values at step 0, which would overwrite the training history's first point under the same names).

    ``run_name``, ``group`` and ``tags`` are those the other trackers get natively (a run's name, its sweep,
    its tags: :mod:`ganlab.resolvers`)."""

    def __init__(self, *args: Any, run_name: str, group: str, tags: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run = {"name": run_name, "group": group, "tags": ",".join(tags)}

    def log_picture(self, key: str, image: np.ndarray, step: int) -> None:
        self.experiment.add_image(key, image, global_step=step, dataformats="HWC")

    def log_sample_text(self, key: str, text: str, step: int) -> None:
        """A text summary, indented four spaces so that TensorBoard's Markdown shows it verbatim."""
        self.experiment.add_text(
            key, "\n".join(f"    {line}" for line in text.splitlines()), global_step=step
        )

    def log_outcome(self, summary: dict[str, Any], run_dir: Path) -> None:
        params = {**dict(self.hparams), "run": {**self.run, "status": summary["status"]}}
        metrics = {f"summary/{k}": v for k, v in _final_metrics(summary).items()}
        self.log_hyperparams(params, metrics={**metrics, "summary/g_steps": summary["g_steps"]})


class MLflowTracker(MLFlowLogger):
    """MLflow: one MLflow run per job, in the experiment of its sweep. Pictures as MLflow images (with
    their step); at the end the status (``FINISHED``, ``FAILED`` for a failed or diverged run, ``KILLED``
    for an interrupted one), the status and counts as tags, and the run's files as artifacts:
    ``summary.json``, the config (``.hydra/``) and the sample pictures.

    ``tags`` are ``group:choice`` strings (:func:`ganlab.resolvers.tags`), kept as MLflow tags
    ``{group: choice}`` so that runs can be searched by them (``tags.loss = 'hinge'``); a plain tag is kept
    with the value ``true``.

    A local SQLite database (``sqlite:///PATH``) gets its folder created if missing, and is set up under a
    lock (``PATH.lock``): the jobs of a parallel sweep would otherwise create its tables, or their sweep's
    experiment, at the same moment, and all but one fail (MLflow's schema migration and the experiment's
    unique name)."""

    STATUS = {"completed": "FINISHED", "interrupted": "KILLED"}  # anything else: FAILED

    def __init__(self, *args: Any, tags: list[str], group: str, **kwargs: Any) -> None:
        pairs = (t.partition(":") for t in tags)
        named = {key: value if colon else "true" for key, colon, value in pairs}
        uri = kwargs.get("tracking_uri") or ""
        self.database = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
        with self.setting_up():  # MlflowClient creates the tables of a new database
            super().__init__(*args, tags={"group": group, **named}, **kwargs)

    @contextlib.contextmanager
    def setting_up(self) -> Iterator[None]:
        """Hold the SQLite database's lock (no lock for a server or another database)."""
        if self.database is None:
            yield
            return
        self.database.parent.mkdir(parents=True, exist_ok=True)
        with open(self.database.with_name(self.database.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @property
    def experiment(self) -> Any:
        """MLflow's client; the first call creates the experiment (if new) and the run, under the lock."""
        if self._initialized:
            return self._mlflow_client
        with self.setting_up():
            return MLFlowLogger.experiment.fget(self)

    def log_picture(self, key: str, image: np.ndarray, step: int) -> None:
        self.experiment.log_image(self.run_id, image, key=key, step=step)

    def log_sample_text(self, key: str, text: str, step: int) -> None:
        """An artifact ``<key>/step_<step>.txt``."""
        self.experiment.log_text(self.run_id, text, f"{key}/step_{step:07d}.txt")

    def log_outcome(self, summary: dict[str, Any], run_dir: Path) -> None:
        client, run_id = self.experiment, self.run_id
        for name in ("status", "g_steps", "d_steps", "wall_s", "run_id"):
            client.set_tag(run_id, f"ganlab.{name}", str(summary[name]))
        if (run_dir / "summary.json").is_file():
            client.log_artifact(run_id, str(run_dir / "summary.json"))
        for folder in (run_dir / ".hydra", run_dir / "samples"):
            if folder.is_dir():
                client.log_artifacts(run_id, str(folder), artifact_path=folder.name)
        client.set_terminated(run_id, self.STATUS.get(summary["status"], "FAILED"))


def trackers(trainer: pl.Trainer) -> list[Any]:
    """The run's trackers: its loggers but metrics.csv (whose hyperparameters are ``.hydra/config.yaml``)."""
    return [logger for logger in trainer.loggers if not isinstance(logger, CSVLogger)]


def log_image(trainer: pl.Trainer, key: str, image: np.ndarray, step: int) -> None:
    """Log an ``(H, W, 3)`` uint8 image to every tracker that takes images, as its own image type."""
    for logger in trackers(trainer):
        draw = getattr(logger, "log_picture", None)
        if callable(draw):
            draw(key, image, step)


def log_text(trainer: pl.Trainer, key: str, text: str, step: int) -> None:
    """Log decoded samples, one per line, to every tracker that takes text, in the tracker's own form."""
    for logger in trackers(trainer):
        write = getattr(logger, "log_sample_text", None)
        if callable(write):
            write(key, text, step)


class ExperimentRecord(pl.Callback):
    """Logs the whole experiment (``params``: :func:`experiment`) to every tracker when training starts
    (again on each session of a resumed run, which may have changed settings): wandb's run config,
    TensorBoard's ``hparams.yaml`` and HParams dashboard, MLflow's params (flattened: ``data/batch_size``)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_fit_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        for logger in trackers(trainer):
            logger.log_hyperparams(self.params)


def close_trackers(trainer: pl.Trainer | None, summary: dict[str, Any], run_dir: Path) -> None:
    """Give each tracker the run's outcome (``log_outcome``: final metrics, status, files), then finish the
    wandb run, so that the next job of a multirun starts its own. A tracker that fails here is reported
    and skipped: the run's result is summary.json, already written."""
    try:
        for logger in trackers(trainer) if trainer is not None and trainer.is_global_zero else []:
            record = getattr(logger, "log_outcome", None)
            try:
                if callable(record):
                    record(summary, run_dir)
            except Exception:
                log.exception("the tracker %s could not record the run's outcome", type(logger).__name__)
    finally:
        wandb = sys.modules.get("wandb")
        if wandb is not None and wandb.run is not None:
            wandb.finish()
