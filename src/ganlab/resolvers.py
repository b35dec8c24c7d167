"""OmegaConf resolvers used by the configs to name and group tracker runs."""

from __future__ import annotations

import json
import secrets
import string
from pathlib import Path

from omegaconf import OmegaConf


def _hydra():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def run_name() -> str:
    """The job's command-line overrides (``loss=hinge,seed=1``), or ``default`` when there are none."""
    hc = _hydra()
    overrides = list(hc.overrides.task) if hc else []
    return ",".join(o for o in overrides if not o.startswith("hydra.")) or "default"


def sweep_group() -> str:
    """The sweep folder in a multirun (all jobs of a sweep share it), else ``single``."""
    hc = _hydra()
    if hc is None or str(hc.mode) != "RunMode.MULTIRUN":
        return "single"
    return str(hc.sweep.dir)


def tags(*, _root_) -> list[str]:
    """The loss, model and data choices (``loss:hinge``) followed by the config's own ``tags``."""
    hc = _hydra()
    choices = hc.runtime.choices if hc else {}
    picked = [f"{group}:{choices[group]}" for group in ("loss", "model", "data") if choices.get(group)]
    return picked + [str(t) for t in _root_.get("tags", [])]


def new_run_id() -> str:
    """A fresh run id: 8 random lowercase letters and digits (the form of wandb's own ids)."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def run_id(output_dir: str) -> str:
    """The id of the run in ``output_dir``, from its ``summary.json`` (written before the trackers start,
    and kept over the sessions of a resumed run), so that every session of a run logs to one tracker run
    (wandb ``id`` with ``resume: allow``); a fresh id when there is none."""
    try:
        value = json.loads((Path(output_dir) / "summary.json").read_text()).get("run_id")
    except (OSError, ValueError):
        value = None
    return str(value) if value else new_run_id()


OmegaConf.register_new_resolver("ganlab.run_name", run_name, replace=True)
OmegaConf.register_new_resolver("ganlab.sweep_group", sweep_group, replace=True)
OmegaConf.register_new_resolver("ganlab.tags", tags, replace=True)
OmegaConf.register_new_resolver("ganlab.run_id", run_id, replace=True)
