"""Composing configs as the Hydra app would, shrunk to tiny widths and few steps (used by conftest.py and
by module-scoped fixtures that cannot take the function-scoped ``make_cfg``)."""

from __future__ import annotations

import os
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from ganlab.paths import CONF_DIR

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

TINY = [
    "logger=none",
    "trainer.max_steps=3",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
    "sample_every=0",
    "callbacks.checkpoint.every=0",
    "callbacks.evaluation.n_samples=200",
]


def tiny_model(cfg: DictConfig) -> None:
    """Shrink the networks and the data so that a step takes milliseconds."""
    with open_dict(cfg):
        for net in ("generator", "discriminator"):
            cfg.model[net].width = 8
            if "depth" in cfg.model[net]:
                cfg.model[net].depth = 1
        if "z_dim" in cfg.model:
            cfg.model.z_dim = min(cfg.model.z_dim, 8)
        cfg.data.batch_size = 8
        if "n_train" in cfg.data:  # at most 512 samples (an override asking fewer is kept)
            cfg.data.n_train = min(cfg.data.n_train, 512)


def compose_cfg(overrides: list[str], run_dir: Path, tiny: bool = True) -> DictConfig:
    """A composed config as the Hydra app would see it, with its run folder at ``run_dir``; ``tiny``
    shrinks it (few steps, tiny networks, no tracker), otherwise only the tracker is turned off."""
    GlobalHydra.instance().clear()
    base = TINY if tiny else ["logger=none", "trainer.enable_progress_bar=false"]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*base, *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        del cfg["hydra"]
    if tiny:
        tiny_model(cfg)
    return cfg
