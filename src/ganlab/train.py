"""``python -m ganlab.train [overrides]``: train one GAN (``-m`` for a multirun sweep).

compose (Hydra) -> validate, plan the resume, build (all before anything is written) -> write the run
folder -> fit -> write ``summary.json``; returns the metric named by ``optimized_metric`` so that an
Optuna sweep can optimise it.

Exit codes: 0 when every run completed or diverged (divergence is a result of the experiment, recorded
in summary.json); 1 when a run failed with an exception (a multirun runs all its jobs first, then exits
1 and lists the failed run folders); 2 for an invalid config of a single run (one paragraph on stderr,
no run folder left behind); 128 + signal number when a run was interrupted (143 for SIGTERM, 138 for
SIGUSR1, 130 for Ctrl-C): the checkpoint is saved and a multirun stops, so that rerunning the same
command resumes it (``resume=auto``).
"""

from __future__ import annotations

import difflib
import importlib
import logging
import os
import platform
import socket
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback as HydraCallback
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import ganlab
from ganlab.callbacks.checkpoint import Checkpoint, Preempted
from ganlab.callbacks.evaluation import Evaluation
from ganlab.callbacks.samples import SampleImages
from ganlab.config import ConfigError, renamed_option_hints, validate, world_size
from ganlab.distributed import ReplicaDDPStrategy, launched_externally, started_as_rank_zero
from ganlab.module import GAN, Diverged
from ganlab.nets import build_net
from ganlab.resolvers import new_run_id
from ganlab.resume import (
    AppendingCSVLogger,
    ResumePlan,
    discard_fresh_folder,
    is_fresh_folder,
    plan_replica,
    plan_resume,
    truncate_csv,
    write_hydra_files,
)
from ganlab.summary import read_summary, write_summary

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
log = logging.getLogger("ganlab")
FAILED_RUNS: list[Path] = []  # run folders of this process's multirun jobs that failed (exit code 1)


# building ----------------------------------------------------------------------------------------------
def _choice(group: str) -> str:
    return _choices().get(group, "?")


def _cause(exc: BaseException) -> BaseException:
    """The error behind Hydra's InstantiationException wrapper."""
    return exc.__cause__ if exc.__cause__ is not None else exc


def _built(key: str, node: Any, **kwargs: Any) -> Any:
    """``instantiate(node)``, with any error turned into a :class:`ConfigError` that names ``key``."""
    try:
        return instantiate(node, **kwargs)
    except Exception as exc:
        cause = _cause(exc)
        target = node.get("_target_") if isinstance(node, DictConfig) else None
        raise ConfigError(
            f"{key} (_target_={target!r}) cannot be built: {type(cause).__name__}: {cause}"
        ) from exc


def _build_data(cfg: DictConfig) -> pl.LightningDataModule:
    """The data module, loaded, so that missing or corrupt files fail before anything is written."""
    datamodule = _built("data", cfg.data, batches_per_step=cfg.n_critic, shuffle_seed=cfg.seed)
    try:
        datamodule.setup("fit")
    except (OSError, ValueError, RuntimeError, EOFError) as exc:
        raise ConfigError(f"data={_choice('data')}: the dataset cannot be loaded: {exc}") from exc
    processes = world_size(cfg)
    n, step_batch = len(datamodule.train_set), cfg.data.batch_size * cfg.n_critic * processes
    if n < step_batch:
        on = f" on {processes} processes" if processes > 1 else ""
        raise ConfigError(
            f"data.batch_size={cfg.data.batch_size} with n_critic={cfg.n_critic}{on}: one step needs "
            f"{step_batch} samples but data={_choice('data')} has {n}. "
            f"Valid: data.batch_size * n_critic{' * processes' if on else ''} <= {n}."
        )
    return datamodule


def _build_net(cfg: DictConfig, net: str, shape: tuple[int, ...], num_classes: int | None) -> torch.nn.Module:
    try:
        return build_net(cfg.model[net], shape, num_classes)
    except Exception as exc:
        cause = _cause(exc)
        raise ConfigError(
            f"model={_choice('model')} with data={_choice('data')} (samples of shape {shape}): model.{net} "
            f"cannot be built: {cause}"
        ) from exc


def _check_optimizers(module: GAN) -> None:
    """Build the optimizers (and schedules) once, so that a bad argument is a config error, not a crash
    after the run folder was written. Nothing of them is kept."""
    optimizers = {}
    for key, factory, net in (
        ("optim.g", module.optim_g, module.generator),
        ("optim.d", module.optim_d, module.discriminator),
    ):
        try:
            optimizers[key] = factory(net.parameters())
        except Exception as exc:
            given = ", ".join(f"{key}.{k}={v!r}" for k, v in getattr(factory, "keywords", {}).items())
            raise ConfigError(
                f"{key} cannot be built from {given or 'no arguments'}: {type(exc).__name__}: {exc}"
            ) from exc
    schedule = getattr(module, "lr_schedule", None)
    for opt in optimizers.values() if schedule is not None else []:
        try:
            schedule(opt)
        except Exception as exc:
            raise ConfigError(f"lr_schedule cannot be built: {type(exc).__name__}: {exc}") from exc


def build(cfg: DictConfig) -> tuple[GAN, pl.LightningDataModule]:
    """The data module (loaded, so that missing files fail here) and the GAN module, from a config.
    Every error a config can cause here is a :class:`ConfigError` naming the keys involved."""
    datamodule = _build_data(cfg)
    shape, num_classes = tuple(datamodule.shape), datamodule.num_classes
    schedule, augment = cfg.get("lr_schedule"), cfg.get("augment")
    module = GAN(
        generator=_build_net(cfg, "generator", shape, num_classes),
        discriminator=_build_net(cfg, "discriminator", shape, num_classes),
        loss=_built("loss", cfg.loss),
        optim_g=_built("optim.g", cfg.optim.g),
        optim_d=_built("optim.d", cfg.optim.d),
        penalties={name: _built(f"penalty.{name}", p) for name, p in cfg.penalty.items()},
        n_critic=cfg.n_critic,
        clip_grad_norm_g=cfg.clip_grad_norm.g,
        clip_grad_norm_d=cfg.clip_grad_norm.d,
        noise_seed=cfg.seed,
        lr_schedule=_built("lr_schedule", schedule) if schedule is not None else None,
        augment={name: _built(f"augment.{name}", t) for name, t in (augment or {}).items()},
    )
    _check_optimizers(module)
    module.run_config = OmegaConf.to_container(cfg, resolve=True)
    return module, datamodule


def build_trainer(cfg: DictConfig, run_dir: Path, plan: ResumePlan | None = None) -> pl.Trainer:
    """A Trainer whose ``max_steps`` is ``trainer.max_steps`` generator updates, with metrics.csv always
    written (and continued on a resume) and the trackers and callbacks of the config.

    Lightning counts every optimizer step (``n_critic + 1`` per generator update); on a resume the steps
    left are counted from the checkpoint's own counts, so that a changed ``n_critic`` still stops at
    ``trainer.max_steps`` generator updates."""
    loggers = [AppendingCSVLogger(save_dir=str(run_dir), name="", version="")]
    loggers += [instantiate(c) for c in cfg.logger.values()]
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if c is not None]  # null: switched off
    per_g_step = cfg.n_critic + 1
    max_steps = cfg.trainer.max_steps * per_g_step
    if plan is not None and plan.ckpt_path is not None:
        max_steps = plan.global_step + max(cfg.trainer.max_steps - plan.g_steps, 0) * per_g_step
    extra: dict[str, Any] = {}
    if cfg.trainer.get("strategy", "auto") == "ddp" or world_size(cfg) > 1:
        extra["strategy"] = ReplicaDDPStrategy()  # no DistributedDataParallel wrapper: ganlab.distributed
    return instantiate(
        cfg.trainer,
        max_steps=max_steps,
        logger=loggers,
        callbacks=callbacks,
        default_root_dir=str(run_dir),
        use_distributed_sampler=False,  # the data module shards the data itself (ganlab.data.base)
        **extra,
    )


# the run -----------------------------------------------------------------------------------------------
C = TypeVar("C", bound=pl.Callback)


def _callback(trainer: pl.Trainer | None, kind: type[C]) -> C | None:
    """The trainer's callback of class ``kind`` (by type, so a user's callback of the same name is not
    mistaken for it), or ``None``."""
    for cb in trainer.callbacks if trainer else []:
        if isinstance(cb, kind):
            return cb
    return None


def _final_metrics(trainer: pl.Trainer | None) -> dict[str, float]:
    """The last logged training values (losses, logits, norms) and the last evaluation's metrics."""
    if trainer is None:
        return {}
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if "/" in k}
    evaluation = _callback(trainer, Evaluation)
    if evaluation is not None:
        metrics.update({k: v for k, v in evaluation.latest.items() if k.startswith("metrics/")})
    return metrics


def _relative(path: Path | None, run_dir: Path) -> str | None:
    return str(path.relative_to(run_dir)) if path is not None and path.exists() else None


def _close_trackers() -> None:
    """Finish the wandb run of this job, so that the next job of a multirun starts its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_summary(cfg: DictConfig, overrides: list[str] | None) -> dict[str, Any]:
    return {
        "status": "running",
        "run_id": new_run_id(),
        "g_steps": 0,
        "d_steps": 0,
        "world_size": 1,
        "replica_max_abs_diff": None,
        "wall_s": 0.0,
        "seed": int(cfg.seed) if isinstance(cfg.get("seed"), int) else cfg.get("seed"),
        "overrides": list(overrides or []),
        "choices": _choices(),
        "metrics": {},
        "metrics_protocol": {},
        "error": None,
        "diverged_at": None,
        "checkpoint": None,
        "samples": None,
        "started_at": _now(),
        "finished_at": None,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "versions": {
            "ganlab": ganlab.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }


def _check_multirun_processes(cfg: DictConfig) -> None:
    """Lightning starts the extra processes of a run by rerunning the command line: inside a local
    multirun that would rerun the whole sweep. Allowed when a launcher started them (SLURM, torchrun)."""
    if _in_multirun() and world_size(cfg) > 1 and not launched_externally():
        raise ConfigError(
            f"trainer.devices={cfg.trainer.devices} (with trainer.num_nodes={cfg.trainer.num_nodes}) in a "
            "multirun (-m) started by hand: Lightning would start each extra process by rerunning the whole "
            "sweep command. Valid: run each configuration as its own command, or launch the sweep with "
            "hydra/launcher=slurm and hydra.launcher.tasks_per_node=<devices> (SLURM starts one process per "
            "device)."
        )


def prepare(cfg: DictConfig, run_dir: Path) -> tuple[GAN, pl.LightningDataModule, ResumePlan]:
    """Everything that can reject a run, in order, before anything is written: the config's values and
    combinations, the callbacks, the dataset and the networks, the resume (checkpoint and run folder).

    A process other than rank 0 of a multi-process run builds the same things but leaves the run folder
    to rank 0, which checked it and may already have written to it: it continues from the checkpoint the
    ``resume`` value names (:func:`ganlab.resume.plan_replica`)."""
    validate(cfg)
    _check_multirun_processes(cfg)
    for name, node in cfg.callbacks.items():  # built again by build_trainer: here only to fail early
        if node is not None:
            _built(f"callbacks.{name}", node)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module, datamodule = build(cfg)
    if started_as_rank_zero():
        plan = plan_resume(cfg, run_dir, tuple(datamodule.shape))
    else:
        plan = plan_replica(cfg, run_dir, tuple(datamodule.shape))
    return module, datamodule, plan


def reject(cfg: DictConfig, run_dir: Path, summary: dict[str, Any], exc: ConfigError) -> dict[str, Any]:
    """An invalid config: a single run leaves no run folder behind (a folder Hydra created for it is
    removed) and raises; a job of a multirun is marked ``failed`` (summary.json in its new folder) so
    that the sweep's table shows it, and the next job runs. An existing run's folder is never touched."""
    fresh = is_fresh_folder(run_dir)
    if not _in_multirun():
        if fresh:
            discard_fresh_folder(run_dir)
        raise exc
    print(f"ganlab: invalid config for {run_dir}: {exc}", file=sys.stderr)
    FAILED_RUNS.append(run_dir.resolve())
    summary.update(status="failed", error=f"ConfigError: {exc}", finished_at=_now())
    if fresh:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_hydra_files(run_dir, cfg)
        write_summary(run_dir, summary)
    return summary


def start_run(cfg: DictConfig, run_dir: Path, plan: ResumePlan, summary: dict[str, Any]) -> float:
    """Write the run folder's first files: ``.hydra/``, ``metrics.csv`` cut back to the resumed
    checkpoint's rows (or removed on a fresh start: nothing resumable was there), and a ``running``
    summary. Returns the wall time of earlier sessions of a resumed run."""
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
        summary["run_id"] = previous.get("run_id") or summary["run_id"]
        summary["metrics"] = dict(previous.get("metrics") or {})
        summary["metrics_protocol"] = dict(previous.get("metrics_protocol") or {})
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


def fit(trainer: pl.Trainer, module: GAN, datamodule: pl.LightningDataModule, plan: ResumePlan) -> None:
    ckpt = str(plan.ckpt_path) if plan.ckpt_path is not None else None
    with warnings.catch_warnings():
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


def finish_summary(
    summary: dict[str, Any], run_dir: Path, trainer: pl.Trainer | None, module: GAN, started: float
) -> None:
    _close_trackers()
    summary["wall_s"] = round(time.perf_counter() - started, 3)
    summary["finished_at"] = _now()
    summary.update(g_steps=module.g_steps, d_steps=module.d_steps)
    summary["world_size"] = trainer.world_size if trainer is not None else summary["world_size"]
    summary["replica_max_abs_diff"] = module.replica_max_abs_diff
    summary["metrics"] = {**summary["metrics"], **_final_metrics(trainer)}
    evaluation = _callback(trainer, Evaluation)
    if evaluation is not None and evaluation.metrics:
        summary["metrics_protocol"] = evaluation.protocols()
    checkpoint, samples = _callback(trainer, Checkpoint), _callback(trainer, SampleImages)
    summary["checkpoint"] = _relative(checkpoint.last if checkpoint else None, run_dir)
    summary["samples"] = _relative(samples.last_path if samples else None, run_dir) or (
        summary["samples"] if summary["samples"] and (run_dir / summary["samples"]).exists() else None
    )
    if trainer.is_global_zero if trainer is not None else started_as_rank_zero():
        write_summary(run_dir, summary)


def train(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train one run into ``cfg.paths.output_dir`` and return its summary (also written as summary.json).

    Raises :class:`ConfigError` for an invalid config (single run; nothing written) and re-raises an
    exception of the run after recording it (single run); ends with ``SystemExit(128 + signal)`` when the
    run was interrupted, after saving its checkpoint and summary. A process that Lightning started for
    another rank returns instead: rank 0 reports the run, and Lightning's observer of those processes
    kills rank 0 (SIGKILL, while it may still be writing the summary or closing wandb) as soon as one of
    them exits with a non-zero code."""
    run_dir = Path(cfg.paths.output_dir)
    started = time.perf_counter()
    summary = new_summary(cfg, overrides)
    rank_zero = started_as_rank_zero()
    try:
        module, datamodule, plan = prepare(cfg, run_dir)
    except ConfigError as exc:
        if not rank_zero:
            raise
        return reject(cfg, run_dir, summary, exc)
    if rank_zero:
        started -= start_run(cfg, run_dir, plan, summary)
    trainer: pl.Trainer | None = None
    exit_code: int | None = None
    try:
        trainer = build_trainer(cfg, run_dir, plan)
        fit(trainer, module, datamodule, plan)
        summary["status"] = "completed"
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
        if not _in_multirun():  # in a sweep the failure is recorded and the next job runs
            raise
    finally:
        finish_summary(summary, run_dir, trainer, module, started)
    if exit_code is not None and (rank_zero or launched_externally()):
        raise SystemExit(exit_code)
    return summary


def _in_multirun() -> bool:
    return HydraConfig.initialized() and str(HydraConfig.get().mode) == "RunMode.MULTIRUN"


def _choices() -> dict[str, str]:
    """The option picked in each config group (``{"loss": "hinge", ...}``), when run through Hydra."""
    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices.items()
    return {k: str(v) for k, v in choices if v is not None and not k.startswith("hydra")}


# the command line --------------------------------------------------------------------------------------
class MultirunOutcome(HydraCallback):
    """Hydra callback (``hydra.callbacks`` in conf/train.yaml): after a multirun, list the jobs whose
    run failed, so that :func:`main` exits 1. It reads the summaries, so it works with any launcher
    (jobs in other processes or on other machines included)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()
        FAILED_RUNS.clear()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        for path in sorted(sweep.glob("**/summary.json")):
            folder = path.parent.resolve()
            if path.stat().st_mtime >= getattr(self, "started", 0) - 1 and folder not in FAILED_RUNS:
                try:
                    failed = read_summary(folder).get("status") == "failed"
                except (OSError, ValueError):
                    continue
                if failed:
                    FAILED_RUNS.append(folder)
        if FAILED_RUNS:
            folders = ", ".join(str(p) for p in FAILED_RUNS)
            print(
                f"ganlab: {len(FAILED_RUNS)} job(s) of the sweep failed (see the errors above): {folders}",
                file=sys.stderr,
            )


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _app(cfg: DictConfig) -> float | None:
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("hydra.")]
    try:
        summary = train(cfg, overrides)
    except ConfigError as exc:
        print(f"ganlab: invalid config: {exc}", file=sys.stderr)
        sys.exit(2)
    metric = cfg.get("optimized_metric")
    if not metric:
        return None
    value = summary["metrics"].get(metric)
    return float("nan") if value is None else value  # a sweeper records NaN as a failed trial


def _config_groups() -> set[str]:
    return {p.name for p in CONF_DIR.iterdir() if p.is_dir()}


def _known_top_level_keys() -> set[str]:
    keys = set(OmegaConf.load(CONF_DIR / "train.yaml").keys()) - {"defaults"}
    return keys | _config_groups() | {"hydra"}


def _unknown_key_hint(arg: str, name: str, known: Any, where: str) -> str:
    close = difflib.get_close_matches(name, list(known), n=3)
    return (
        f"ganlab: unknown key {name!r} in override {arg!r}"
        + (f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ".")
        + f" Valid {where}: {', '.join(sorted(str(k) for k in known))}."
    )


def _composed(group_choices: list[str]) -> DictConfig | None:
    """The config the group choices compose to (no other override), or ``None`` when it does not."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return compose("train", overrides=group_choices)
    except Exception:
        return None
    finally:
        GlobalHydra.instance().clear()


def hint_unknown_keys(args: list[str]) -> list[str]:
    """For each override naming a key that does not exist, a line naming it, the closest valid names and
    all valid ones at that level (Hydra says only 'not in struct'): a top-level key that is neither a
    config group nor a key of conf/train.yaml, or a nested one (``model.generator.widht``) checked against
    the config the command's group choices compose to."""
    known, hints, nested = _known_top_level_keys(), [], []
    overrides = [a for a in args if not a.startswith("-") and "=" in a]
    for arg in overrides:
        key = arg.split("=", 1)[0].split("@", 1)[0]
        top = key.lstrip("+~").split(".", 1)[0].split("/", 1)[0]
        if top and top not in known:
            hints.append(_unknown_key_hint(arg, top, known, "top-level keys and groups"))
        elif "." in key and not key.startswith(("+", "~", "hydra.")):
            nested.append((arg, key.split(".")))
    choices = [a for a in overrides if a.split("=", 1)[0] in _config_groups()]
    cfg = _composed(choices) if nested else None
    if cfg is None:  # no nested key, or the group choices themselves are wrong (Hydra says which)
        return hints
    tree = OmegaConf.to_container(cfg, resolve=False)
    for arg, parts in nested:
        node: Any = tree
        for depth, part in enumerate(parts):
            if not isinstance(node, dict):  # below a value: Hydra's own message says it
                break
            if part not in node:
                hints.append(_unknown_key_hint(arg, part, node.keys(), f"keys of {'.'.join(parts[:depth])}"))
                break
            node = node[part]
    return hints


def main() -> int:
    """Console entry point (``python -m ganlab.train``, ``ganlab-train``): runs the Hydra app, adds a hint
    to Hydra's error for a mistyped key, and returns the exit code (see the module docstring)."""
    try:
        _app()
    except SystemExit as exc:
        if exc.code == 1:
            for hint in [*renamed_option_hints(sys.argv[1:]), *hint_unknown_keys(sys.argv[1:])]:
                print(hint, file=sys.stderr)
        raise
    return 1 if FAILED_RUNS else 0


if __name__ == "__main__":
    # run the importable module's main, not this __main__ copy's, so that Hydra's callback
    # (ganlab.train.MultirunOutcome) and the exit code share one FAILED_RUNS
    sys.exit(importlib.import_module("ganlab.train").main())
