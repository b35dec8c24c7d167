"""``python -m ganlab.train [overrides]``: train one GAN (``-m`` for a multirun sweep).

:func:`train` is the whole run: :func:`prepare` (validate, build everything, plan the resume: nothing is
written before all of it succeeded) -> write the run folder -> :func:`fit` -> write ``summary.json``. The
command line (the Hydra app, exit codes, hints) is :mod:`ganlab.cli`; building is :mod:`ganlab.build`; the
run folder's files are :mod:`ganlab.run_folder`.
"""

from __future__ import annotations

# The command line runs before the imports below: ganlab.cli imports the training code (torch, Lightning)
# only once the config is composed and valid, so that --help and a config error answer at once.
if __name__ == "__main__":
    import sys

    from ganlab.cli import main

    sys.exit(main())

import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, open_dict
from pytorch_lightning.accelerators import CPUAccelerator

from ganlab import run_folder
from ganlab.build import build, build_trainer
from ganlab.callbacks.checkpoint import Preempted
from ganlab.callbacks.pruning import Pruned
from ganlab.callbacks.trackers import close_trackers
from ganlab.config import ConfigError, validate, world_size
from ganlab.distributed import external_world_size, launched_externally, started_as_rank_zero
from ganlab.module import GAN, Diverged
from ganlab.resolvers import in_multirun, new_run_id
from ganlab.resume import ResumePlan, plan_replica, plan_resume

log = logging.getLogger("ganlab")


def _check_processes(cfg: DictConfig) -> None:
    """The trainer must ask for the processes its launcher started (``WORLD_SIZE`` of torchrun or of the
    ``gpus`` launcher). Lightning itself starts the extra processes of a run by rerunning the command
    line: inside a local multirun that would rerun the whole sweep, so there a launcher must start them."""
    started, wanted = external_world_size(), world_size(cfg)
    nodes = cfg.trainer.get("num_nodes", 1)
    if started is not None and started != wanted:
        raise ConfigError(
            f"trainer.devices={cfg.trainer.devices} (with trainer.num_nodes={nodes}) asks for {wanted} "
            f"process(es), but this job was started as {started} (WORLD_SIZE: hydra.launcher.devices_per_job "
            f"of the gpus launcher, or torchrun's --nproc-per-node x --nnodes). Valid: trainer.devices and "
            f"num_nodes making {started} processes, or a launcher starting {wanted}."
        )
    if in_multirun() and wanted > 1 and not launched_externally():
        raise ConfigError(
            f"trainer.devices={cfg.trainer.devices} (with trainer.num_nodes={nodes}) in a multirun (-m) "
            "started by hand: Lightning would start each extra process by rerunning the whole sweep command. "
            f"Valid: hydra/launcher=gpus hydra.launcher.devices_per_job={wanted} (one machine: the launcher "
            f"starts the {wanted} processes of each job), hydra/launcher=slurm with "
            "hydra.launcher.tasks_per_node=<devices> (SLURM starts one process per device), or each "
            "configuration as its own command."
        )


def prepare(cfg: DictConfig, run_dir: Path) -> tuple[GAN, pl.LightningDataModule, ResumePlan, pl.Trainer]:
    """Everything that can reject a run, in order, before anything is written: the config's values and
    combinations, the dataset and the networks, the resume (checkpoint and run folder), then the trackers,
    the callbacks and the Trainer (which get the run's id: a resumed run's own, else a new one, set as
    ``cfg.run_id``), and each callback's ``check_data(datamodule)`` where it has one.

    A process other than rank 0 of a multi-process run builds the same things but leaves the run folder
    to rank 0, which checked it and may already have written to it: it continues from the checkpoint the
    ``resume`` value names (:func:`ganlab.resume.plan_replica`)."""
    validate(cfg)
    _check_processes(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module, datamodule = build(cfg)
    plan = (plan_resume if started_as_rank_zero() else plan_replica)(cfg, run_dir, tuple(datamodule.shape))
    if cfg.get("run_id") is None:
        with open_dict(cfg):
            cfg.run_id = plan.run_id or new_run_id()
    trainer = build_trainer(cfg, run_dir, plan)
    for callback in trainer.callbacks:  # e.g. metrics that do not fit the data (Evaluation)
        check = getattr(callback, "check_data", None)
        if callable(check):
            check(datamodule)
    return module, datamodule, plan, trainer


NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


@contextmanager
def cuda_probed_once(trainer: pl.Trainer) -> Iterator[None]:
    """While a run trains on CPU on a machine where NVML sees no GPU: torch's own CUDA check, which asks
    the CUDA runtime once per process, instead of the NVML one that Lightning's import switches on for every
    process (``PYTORCH_NVML_BASED_CUDA_CHECK=1``, a check that cannot poison a later fork). Before CUDA is
    initialised, the NVML check opens the NVML library on every call, about 30 us, and torch's optimizers
    call it in every ``step()`` (their CUDA-graph capture check): a CPU run paid it on every optimizer step,
    which a loop written without Lightning does not. Without a visible GPU there is nothing a fork could
    poison. On a GPU run, CUDA is initialised and torch caches the count, so the variable costs nothing and
    stays; so it does on a CPU run of a machine with visible GPUs. Restored when the block ends."""
    switch = (
        isinstance(trainer.accelerator, CPUAccelerator)
        and os.environ.get(NVML_CHECK) == "1"
        and torch.cuda.device_count() == 0  # NVML's count here: nothing initialised
    )
    if switch:
        del os.environ[NVML_CHECK]
    try:
        yield
    finally:
        if switch:
            os.environ[NVML_CHECK] = "1"


def fit(trainer: pl.Trainer, module: GAN, datamodule: pl.LightningDataModule, plan: ResumePlan) -> None:
    ckpt = str(plan.ckpt_path) if plan.ckpt_path is not None else None
    with warnings.catch_warnings(), cuda_probed_once(trainer):
        # the data module restores the data order itself (ganlab.data.base); Lightning cannot see that
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before")
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)


def _interruption_code(exc: BaseException) -> int:
    """128 + signal for a preemption, 130 for Ctrl-C (Lightning turns KeyboardInterrupt into exit(1)),
    else the code of the ``sys.exit`` that ended the run (submitit's requeue exits with -1)."""
    if isinstance(exc, Preempted):
        return int(exc.code)
    if type(exc).__name__ == "SIGTERMException":  # Lightning's, for a SIGTERM before training started
        return 143
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) and code not in (0, 1) else 130


def train(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train one run into ``cfg.paths.output_dir`` and return its summary (also written as summary.json).

    Raises :class:`ConfigError` for an invalid config (single run; nothing written) and re-raises an
    exception of the run after recording it (single run; in a multirun the failure is recorded and the next
    job runs, but a process of rank > 0 re-raises: its launcher learns of the failure from it); ends with
    ``SystemExit(128 + signal)`` when the run was interrupted, after saving its checkpoint and summary. A
    process that Lightning started for another rank returns instead: rank 0 reports the run, and
    Lightning's observer of those processes kills rank 0 (SIGKILL, while it may still be writing the
    summary or closing wandb) as soon as one of them exits with a non-zero code."""
    run_dir = Path(cfg.paths.output_dir)
    started = time.perf_counter()
    rank_zero = started_as_rank_zero()
    try:
        module, datamodule, plan, trainer = prepare(cfg, run_dir)
    except ConfigError as exc:
        if not rank_zero:
            raise
        return run_folder.reject(cfg, run_dir, overrides, exc)
    summary = run_folder.new_summary(cfg, overrides, cfg.run_id)
    if rank_zero:
        started -= run_folder.start_run(cfg, run_dir, plan, summary)
    exit_code: int | None = None
    try:
        fit(trainer, module, datamodule, plan)
        summary["status"] = "completed"
    except Pruned as exc:  # an Optuna trial stopped by its study's pruner: a result, checkpoint saved
        summary.update(status="pruned", error=str(exc))
    except Diverged as exc:
        summary.update(
            status="diverged", error=str(exc), diverged_at={"g_step": exc.g_step, "d_step": exc.d_step}
        )
        log.error("run diverged: %s", exc)
    except (KeyboardInterrupt, SystemExit) as exc:
        exit_code = _interruption_code(exc)
        summary.update(
            status="interrupted", error=str(exc) if isinstance(exc, Preempted) else type(exc).__name__
        )
    except Exception as exc:
        summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        log.exception("run failed")
        if not in_multirun() or not rank_zero:  # a sweep records it and goes on; the launcher of a
            raise  # process of rank > 0 learns of its failure from its exit code or JobReturn
    finally:
        try:
            run_folder.finish_summary(summary, run_dir, trainer, module, started)
        finally:  # after summary.json: the trackers get its final values and file
            close_trackers(trainer, summary, run_dir)
    if exit_code is not None and (rank_zero or launched_externally()):
        raise SystemExit(exit_code)
    return summary
