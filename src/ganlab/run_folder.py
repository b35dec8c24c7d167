"""A run folder's life: its first files once the run is known to be valid (``.hydra/``, ``metrics.csv`` cut
back to a resumed checkpoint, a ``running`` summary), the rejection of an invalid config (which leaves an
existing run untouched), and the final ``summary.json``. ``metrics.csv`` is written by
:class:`ganlab.csv_logger.AppendingCSVLogger`. Fields of the summary are documented in the
README ("What a run leaves behind").
"""

from __future__ import annotations

import csv
import logging
import os
import platform
import socket
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

import ganlab
from ganlab.config import ConfigError
from ganlab.resolvers import choices, in_multirun, new_run_id, targets
from ganlab.summary import write_summary

if TYPE_CHECKING:  # this module is imported by the command line before torch and Lightning are needed
    import pytorch_lightning as pl

    from ganlab.resume import ResumePlan

log = logging.getLogger("ganlab")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _training_device(trainer_cfg: Any) -> str:
    """Where the run's first process trains, probed once at set-up (a CUDA probe costs a ``dlopen``):
    ``cuda:<i> (<name>)`` when the accelerator may use a GPU and one is visible (``<i>`` counts among the
    visible devices, see ``visible_devices``), else the accelerator (``cpu``, or ``auto`` resolved to it)."""
    import torch  # here: the summary of a rejected config is written before torch is imported

    accelerator = str(trainer_cfg.get("accelerator", "auto")) if trainer_cfg is not None else "auto"
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        devices = trainer_cfg.get("devices", 1)
        index = int(devices[0]) if isinstance(devices, Sequence) and not isinstance(devices, str) else 0
        if index < torch.cuda.device_count():
            return describe_device(torch.device("cuda", index))
    return "cpu" if accelerator in ("auto", "gpu", "cuda") else accelerator


def describe_device(device: Any) -> str:
    """A ``torch.device`` as summary.json names it: ``cuda:<i> (<GPU name>)``, else its type (``cpu``)."""
    if device.type != "cuda":
        return str(device.type)
    import torch

    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def _visible_devices() -> list[str] | None:
    """``CUDA_VISIBLE_DEVICES`` as a list (``[]``: no GPU visible), or ``None`` when it is not set."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    return None if listed is None else [d.strip() for d in listed.split(",") if d.strip()]


def new_summary(cfg: DictConfig, overrides: list[str] | None, run_id: str) -> dict[str, Any]:
    """The summary of a run about to start (status ``running``)."""
    return {
        "status": "running",
        "run_id": run_id,
        "g_steps": 0,
        "d_steps": 0,
        "world_size": 1,
        "replica_max_abs_diff": None,
        "wall_s": 0.0,
        "seed": int(cfg.seed) if isinstance(cfg.get("seed"), int) else cfg.get("seed"),
        "overrides": list(overrides or []),
        "choices": choices(cfg),
        "targets": targets(OmegaConf.to_container(cfg, resolve=False)),
        "metrics": {},
        "metrics_protocol": {},
        "metrics_meta": {},
        "error": None,
        "diverged_at": None,
        "checkpoint": None,
        "samples": None,
        "started_at": _now(),
        "finished_at": None,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "device": _training_device(cfg.get("trainer")),
        "visible_devices": _visible_devices(),
        "processes": None,
        "versions": {
            "ganlab": ganlab.__version__,
            "torch": version("torch"),
            "python": platform.python_version(),
        },
    }


# the folder ----------------------------------------------------------------------------------------------
def is_fresh_folder(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds no run: it is missing, or holds only log files (Hydra opens the job's
    ``<job>.log`` before the task starts). Such a folder may be removed or marked; any other is a run's."""
    if not run_dir.exists():
        return True
    return run_dir.is_dir() and all(p.is_file() and p.suffix == ".log" for p in run_dir.iterdir())


def discard_fresh_folder(run_dir: Path) -> None:
    """Remove a run folder that holds no run (see :func:`is_fresh_folder`), and the parents Hydra created
    for it that are now empty (``outputs/runs/<date>/``), up to the working directory."""
    if not run_dir.exists() or not is_fresh_folder(run_dir):
        return
    for p in run_dir.iterdir():
        p.unlink()
    run_dir.rmdir()
    cwd = Path.cwd().resolve()
    parent = run_dir.resolve().parent
    while parent != cwd and cwd in parent.parents and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def write_hydra_files(run_dir: Path, cfg: DictConfig) -> None:
    """Write ``.hydra/`` (config.yaml, hydra.yaml, overrides.yaml) as Hydra does, once the config is
    known to be valid. ganlab sets ``hydra.output_subdir: null`` so that Hydra itself does not write them
    before the task starts: a rejected rerun into an existing run folder must leave its files unchanged."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized() or HydraConfig.get().get("output_subdir") is not None:
        return  # not run through Hydra, or Hydra writes them itself
    folder = run_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    OmegaConf.save(HydraConfig.instance().cfg, folder / "hydra.yaml")
    OmegaConf.save(HydraConfig.get().overrides.task, folder / "overrides.yaml")
    (run_dir / f"{HydraConfig.get().job.name}.log").touch()  # opened lazily (delay: true): make it exist


# metrics.csv ---------------------------------------------------------------------------------------------
def truncate_csv(path: Path, rows: int, g_steps: int) -> None:
    """Cut ``metrics.csv`` back to the state of a checkpoint (atomically): the ``rows`` rows written before
    it was saved, and of the later ones only those of steps it includes (``step < g_steps``: Lightning
    writes a step's row just after the batch-end hooks that save). The rest came from training after the
    checkpoint, which the resume repeats."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        header, *lines = list(csv.reader(f))
    step = header.index("step") if "step" in header else None
    keep = lines[:rows] + [r for r in lines[rows:] if step is not None and r[step] and int(r[step]) < g_steps]
    if len(keep) == len(lines):
        return
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([header, *keep])
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# the run's lifecycle -------------------------------------------------------------------------------------
def reject(cfg: DictConfig, run_dir: Path, overrides: list[str] | None, exc: ConfigError) -> dict[str, Any]:
    """An invalid config: a single run leaves no run folder behind (a folder Hydra created for it is
    removed) and raises; a job of a multirun is marked ``failed`` (summary.json in its new folder) so
    that the sweep's table shows it, and the next job runs. An existing run's folder is never touched."""
    fresh = is_fresh_folder(run_dir)
    if not in_multirun():
        if fresh:
            discard_fresh_folder(run_dir)
        raise exc
    print(f"ganlab: invalid config for {run_dir}: {exc}", file=sys.stderr)
    summary = new_summary(cfg, overrides, new_run_id())
    summary.update(status="failed", error=f"ConfigError: {exc}", finished_at=_now())
    if fresh:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_hydra_files(run_dir, cfg)
        write_summary(run_dir, summary)
    return summary


def start_run(cfg: DictConfig, run_dir: Path, plan: ResumePlan, summary: dict[str, Any]) -> float:
    """Write the run folder's first files: ``.hydra/``, ``metrics.csv`` cut back to the resumed
    checkpoint's rows (or removed on a fresh start: nothing resumable was there), and a ``running``
    summary that continues a resumed run's. Returns the wall time of earlier sessions of a resumed run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_hydra_files(run_dir, cfg)
    csv_path = run_dir / "metrics.csv"
    if plan.ckpt_path is None:
        csv_path.unlink(missing_ok=True)
    elif plan.csv_rows is not None:
        truncate_csv(csv_path, plan.csv_rows, plan.g_steps)
    earlier = 0.0
    previous = plan.previous_summary if plan.ckpt_path is not None else None
    if previous:
        summary["started_at"] = previous.get("started_at") or summary["started_at"]
        summary["metrics"] = dict(previous.get("metrics") or {})
        summary["metrics_protocol"] = dict(previous.get("metrics_protocol") or {})
        summary["metrics_meta"] = dict(previous.get("metrics_meta") or {})
        summary["samples"] = previous.get("samples")
        earlier = float(previous.get("wall_s") or 0.0)
    if plan.ckpt_path is not None:
        log.info("resuming from %s at generator step %d", plan.ckpt_path, plan.g_steps)
        for change in plan.warnings:
            log.warning(
                "resumed with a changed setting (the run will differ from an uninterrupted one): %s", change
            )
    write_summary(run_dir, summary)
    return earlier


def _final_values(trainer: pl.Trainer) -> dict[str, float]:
    """The last logged training values (losses, logits, norms)."""
    return {k: float(v) for k, v in trainer.callback_metrics.items() if "/" in k}


def finish_summary(
    summary: dict[str, Any], run_dir: Path, trainer: pl.Trainer | None, module: Any, started: float
) -> None:
    """Complete ``summary`` with the run's counts, wall time and final values, plus what each callback
    contributes (``summary_fields(run_dir)``: the evaluation its metrics and their protocol, the checkpoint
    and samples callbacks their files), and write it (on the process that owns the run folder)."""
    summary["wall_s"] = round(time.perf_counter() - started, 3)
    summary["finished_at"] = _now()
    summary.update(g_steps=module.g_steps, d_steps=module.d_steps)
    summary["replica_max_abs_diff"] = module.replica_max_abs_diff
    if trainer is not None:
        summary["world_size"] = trainer.world_size
        summary["metrics"] = {**summary["metrics"], **_final_values(trainer)}
        for callback in trainer.callbacks:
            contribute = getattr(callback, "summary_fields", None)
            for key, value in (contribute(run_dir) if callable(contribute) else {}).items():
                merge = isinstance(value, dict) and isinstance(summary.get(key), dict)
                summary[key] = {**summary[key], **value} if merge else value
    if summary["samples"] and not (run_dir / summary["samples"]).exists():
        summary["samples"] = None
    from ganlab.distributed import started_as_rank_zero

    if trainer.is_global_zero if trainer is not None else started_as_rank_zero():
        write_summary(run_dir, summary)
