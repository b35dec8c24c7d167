"""Building a run's objects from its config: the data module, the GAN module, the trackers, the callbacks
and the Trainer. Everything here only builds (nothing is written to the run folder), so that every error a
config can cause is a :class:`ganlab.config.ConfigError` that names the keys involved, raised before the
run folder is touched.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ganlab.callbacks.processes import ProcessRecord
from ganlab.callbacks.trackers import ExperimentRecord, experiment
from ganlab.config import ConfigError, world_size
from ganlab.csv_logger import AppendingCSVLogger
from ganlab.distributed import ReplicaDDPStrategy
from ganlab.module import GAN
from ganlab.nets import build_net
from ganlab.resolvers import choices
from ganlab.resume import ResumePlan

log = logging.getLogger("ganlab")


def _choice(group: str) -> str:
    return choices().get(group, "?")


def _cause(exc: BaseException) -> BaseException:
    """The error behind Hydra's InstantiationException wrapper."""
    return exc.__cause__ if exc.__cause__ is not None else exc


def built(key: str, node: Any, **kwargs: Any) -> Any:
    """``instantiate(node)``, with any error turned into a :class:`ConfigError` that names ``key``."""
    try:
        return instantiate(node, **kwargs)
    except Exception as exc:
        cause = _cause(exc)
        target = node.get("_target_") if isinstance(node, DictConfig) else None
        raise ConfigError(
            f"{key} (_target_={target!r}) cannot be built: {type(cause).__name__}: {cause}"
        ) from exc


def build_data(cfg: DictConfig) -> pl.LightningDataModule:
    """The data module, loaded, so that missing or corrupt files fail before anything is written."""
    datamodule = built("data", cfg.data, batches_per_step=cfg.n_critic, shuffle_seed=cfg.seed)
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
    schedule = module.lr_schedule
    for opt in optimizers.values() if schedule is not None else []:
        try:
            schedule(opt)
        except Exception as exc:
            raise ConfigError(f"lr_schedule cannot be built: {type(exc).__name__}: {exc}") from exc


def build(cfg: DictConfig) -> tuple[GAN, pl.LightningDataModule]:
    """The data module (loaded, so that missing files fail here) and the GAN module, from a config.
    Every error a config can cause here is a :class:`ConfigError` naming the keys involved."""
    datamodule = build_data(cfg)
    shape, num_classes = tuple(datamodule.shape), datamodule.num_classes
    schedule, augment = cfg.get("lr_schedule"), cfg.get("augment")
    module = GAN(
        generator=_build_net(cfg, "generator", shape, num_classes),
        discriminator=_build_net(cfg, "discriminator", shape, num_classes),
        loss=built("loss", cfg.loss),
        optim_g=built("optim.g", cfg.optim.g),
        optim_d=built("optim.d", cfg.optim.d),
        penalties={name: built(f"penalty.{name}", p) for name, p in cfg.penalty.items()},
        n_critic=cfg.n_critic,
        clip_grad_norm_g=cfg.clip_grad_norm.g,
        clip_grad_norm_d=cfg.clip_grad_norm.d,
        noise_seed=cfg.seed,
        lr_schedule=built("lr_schedule", schedule) if schedule is not None else None,
        augment={name: built(f"augment.{name}", t) for name, t in (augment or {}).items()},
        run_config=OmegaConf.to_container(cfg, resolve=True),
    )
    _check_optimizers(module)
    if cfg.get("compile", False):
        compile_networks(module)
    return module, datamodule


def compile_networks(module: GAN) -> None:
    """``compile=true``: ``torch.compile`` G and D in place (``nn.Module.compile``), so that the state dict
    keeps its keys and checkpoints load into compiled and uncompiled runs alike; compilation happens at
    the first forward of each input kind (training, autocast, eval mode).

    D stays uncompiled when a penalty trains through D's input gradient (``Penalty.double_backward``: gp,
    r1, r2, dragan): torch.compile's backward cannot be differentiated again (torch 2.14 raises "torch.compile
    with aot_autograd does not currently support double backward" at the penalty's backward)."""
    module.generator.compile()
    double = [name for name, penalty in module.penalties.items() if penalty.double_backward]
    if double:
        log.info(
            "compile=true: the generator is compiled, the discriminator stays eager: %s trains through D's "
            "input gradient, and torch.compile has no double backward",
            ", ".join(f"penalty.{name}" for name in double),
        )
        return
    module.discriminator.compile()


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """The callbacks of ``cfg.callbacks``, in order (a ``null`` entry is switched off)."""
    return [built(f"callbacks.{name}", node) for name, node in cfg.callbacks.items() if node is not None]


def build_trainer(cfg: DictConfig, run_dir: Path, plan: ResumePlan | None = None) -> pl.Trainer:
    """A Trainer whose ``max_steps`` is ``trainer.max_steps`` generator updates, with metrics.csv always
    written (and continued on a resume), the trackers and callbacks of the config, and the records of the
    experiment and of the processes (summary.json's ``processes``). Builds only: the trackers start
    writing when training starts.

    Lightning's ``global_step`` counts generator updates (``ganlab.module``); on a resume the steps left
    are counted from the checkpoint's own counts (a checkpoint of a version that counted every optimizer
    step, ``n_critic + 1`` per generator update, still stops at ``trainer.max_steps`` generator updates)."""
    loggers = [AppendingCSVLogger(save_dir=str(run_dir), name="", version="")]
    loggers += [built(f"logger.{name}", node) for name, node in cfg.logger.items()]
    record = ExperimentRecord(experiment(OmegaConf.to_container(cfg, resolve=True)))  # with its run_id
    max_steps = cfg.trainer.max_steps
    if plan is not None and plan.ckpt_path is not None:
        max_steps = plan.global_step + max(cfg.trainer.max_steps - plan.g_steps, 0)
    extra: dict[str, Any] = {}
    if cfg.trainer.get("strategy", "auto") == "ddp" or world_size(cfg) > 1:
        extra["strategy"] = ReplicaDDPStrategy()  # no DistributedDataParallel wrapper: ganlab.distributed
    return built(
        "trainer",
        cfg.trainer,
        max_steps=max_steps,
        logger=loggers,
        callbacks=[*build_callbacks(cfg), record, ProcessRecord()],
        default_root_dir=str(run_dir),
        use_distributed_sampler=False,  # the data module shards the data itself (ganlab.data.base)
        **extra,
    )
