"""``python -m ganlab.train [overrides]``: train one GAN (``-m`` for a multirun sweep).

compose (Hydra) -> validate -> instantiate -> fit -> write ``summary.json``; returns the metric named
by ``optimized_metric`` so that an Optuna sweep can optimise it.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger

import ganlab
from ganlab.config import validate
from ganlab.module import GAN, Diverged
from ganlab.summary import write_summary

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
log = logging.getLogger("ganlab")


def build(cfg: DictConfig) -> tuple[GAN, pl.LightningDataModule]:
    """The data module (loaded, so that missing files fail here) and the GAN module, from a config."""
    datamodule = instantiate(cfg.data, batches_per_step=cfg.n_critic)
    datamodule.setup("fit")
    shape = tuple(datamodule.shape)
    module = GAN(
        generator=instantiate(cfg.model.generator, data_shape=shape),
        discriminator=instantiate(cfg.model.discriminator, data_shape=shape),
        loss=instantiate(cfg.loss),
        optim_g=instantiate(cfg.optim.g),
        optim_d=instantiate(cfg.optim.d),
        penalties={name: instantiate(p) for name, p in cfg.penalty.items()},
        n_critic=cfg.n_critic,
        clip_grad_norm_g=cfg.clip_grad_norm.g,
        clip_grad_norm_d=cfg.clip_grad_norm.d,
        noise_seed=cfg.seed,
        lr_schedule=instantiate(cfg.lr_schedule) if cfg.lr_schedule is not None else None,
    )
    module.run_config = OmegaConf.to_container(cfg, resolve=True)
    return module, datamodule


def build_trainer(cfg: DictConfig, run_dir: Path) -> pl.Trainer:
    """A Trainer whose ``max_steps`` is ``trainer.max_steps`` generator updates, with metrics.csv always
    written and the trackers and callbacks of the config."""
    loggers = [CSVLogger(save_dir=str(run_dir), name="", version="")]
    loggers += [instantiate(c) for c in cfg.logger.values()]
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    optimizer_steps_per_g_step = cfg.n_critic + 1
    return instantiate(
        cfg.trainer,
        max_steps=cfg.trainer.max_steps * optimizer_steps_per_g_step,
        logger=loggers,
        callbacks=callbacks,
        default_root_dir=str(run_dir),
    )


def _callback(trainer: pl.Trainer | None, name: str) -> Any:
    for cb in trainer.callbacks if trainer else []:
        if type(cb).__name__ == name:
            return cb
    return None


def _final_metrics(trainer: pl.Trainer | None) -> dict[str, float]:
    """The last logged training values (losses, logits, norms) and the last evaluation's metrics."""
    if trainer is None:
        return {}
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if "/" in k}
    evaluation = _callback(trainer, "Evaluation")
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


def train(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train one run into ``cfg.paths.output_dir`` and return its summary (also written as summary.json)."""
    validate(cfg)
    run_dir = Path(cfg.paths.output_dir)
    summary: dict[str, Any] = {
        "status": "running",
        "g_steps": 0,
        "d_steps": 0,
        "wall_s": 0.0,
        "seed": int(cfg.seed),
        "overrides": list(overrides or []),
        "choices": _choices(),
        "metrics": {},
        "metrics_protocol": {},
        "error": None,
        "diverged_at": None,
        "checkpoint": None,
        "samples": None,
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "finished_at": None,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "versions": {"ganlab": ganlab.__version__, "torch": torch.__version__, "python": platform.python_version()},
    }
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    start = time.perf_counter()
    trainer: pl.Trainer | None = None
    module: GAN | None = None
    try:
        module, datamodule = build(cfg)
        run_dir.mkdir(parents=True, exist_ok=True)
        trainer = build_trainer(cfg, run_dir)
        trainer.fit(module, datamodule=datamodule)
        summary["status"] = "interrupted" if trainer.interrupted else "completed"
    except Diverged as exc:
        summary.update(status="diverged", error=str(exc), diverged_at={"g_step": exc.g_step, "d_step": exc.d_step})
        log.error("run diverged: %s", exc)
    except (KeyboardInterrupt, SystemExit) as exc:
        summary.update(status="interrupted", error=f"{type(exc).__name__}")
    except Exception as exc:
        summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        log.exception("run failed")
        if not _in_multirun():  # in a sweep the failure is recorded and the next job runs
            raise
    finally:
        _close_trackers()
        summary["wall_s"] = round(time.perf_counter() - start, 3)
        summary["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if module is not None:
            summary.update(g_steps=module.g_steps, d_steps=module.d_steps)
        summary["metrics"] = _final_metrics(trainer)
        evaluation = _callback(trainer, "Evaluation")
        summary["metrics_protocol"] = evaluation.protocols() if evaluation else {}
        checkpoint, samples = _callback(trainer, "Checkpoint"), _callback(trainer, "SampleImages")
        summary["checkpoint"] = _relative(checkpoint.last if checkpoint else None, run_dir)
        summary["samples"] = _relative(samples.last_path if samples else None, run_dir)
        if trainer is None or trainer.is_global_zero:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_summary(run_dir, summary)
    return summary


def _in_multirun() -> bool:
    return HydraConfig.initialized() and str(HydraConfig.get().mode) == "RunMode.MULTIRUN"


def _choices() -> dict[str, str]:
    """The option picked in each config group (``{"loss": "hinge", ...}``), when run through Hydra."""
    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices.items()
    return {k: str(v) for k, v in choices if v is not None and not k.startswith("hydra")}


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("hydra.")]
    summary = train(cfg, overrides)
    metric = cfg.get("optimized_metric")
    if not metric:
        return None
    value = summary["metrics"].get(metric)
    return float("nan") if value is None else value  # a sweeper records NaN as a failed trial


if __name__ == "__main__":
    main()
