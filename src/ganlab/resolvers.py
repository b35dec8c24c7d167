"""What Hydra knows about the running job (its group choices, overrides, sweep), and the OmegaConf
resolvers that name, tag and group tracker runs with it. Light imports only: the command line reads this
before torch or Lightning are needed."""

from __future__ import annotations

import secrets
import string
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def _hydra():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def in_multirun() -> bool:
    """Whether this job is one of a multirun (``-m``)."""
    hc = _hydra()
    return hc is not None and str(hc.mode) == "RunMode.MULTIRUN"


def task_overrides() -> list[str]:
    """The job's command-line overrides, without Hydra's own (``hydra.*``), as typed: an override's value
    is not resolved (``'+logger.mlflow.run_name=${ganlab.run_name:}'`` would call this function again,
    through the resolver, without end)."""
    hc = _hydra()
    typed = OmegaConf.to_container(hc.overrides.task, resolve=False) if hc else []
    return [str(o) for o in typed if not str(o).startswith("hydra.")]


@lru_cache(maxsize=4)
def _swept_on_command_line(multirun_yaml: Path) -> frozenset[str]:
    """The keys of the sweep overrides (``loss=hinge,wgan``, ``seed=range(3)``) of a multirun's command line,
    read from the ``multirun.yaml`` that Hydra's sweeper saves in the sweep folder before the jobs start:
    a job's own config holds only its single values."""
    if not multirun_yaml.exists():
        return frozenset()
    from hydra.core.override_parser.overrides_parser import OverridesParser

    typed = OmegaConf.to_container(OmegaConf.load(multirun_yaml).hydra.overrides.task, resolve=False)
    parsed = OverridesParser.create().parse_overrides([str(o) for o in typed])
    return frozenset(o.key_or_group for o in parsed if o.is_sweep_override())


def swept_keys() -> frozenset[str]:
    """The keys a multirun varies: its command line's sweep overrides and the sweeper's search space
    (``hydra.sweeper.params``, e.g. an Optuna study's). Empty outside a multirun."""
    hc = _hydra()
    if hc is None or not in_multirun():
        return frozenset()
    space = hc.sweeper.get("params") or {}
    return _swept_on_command_line(Path(hc.sweep.dir) / "multirun.yaml") | {str(k) for k in space}


def choices(cfg: DictConfig | None = None) -> dict[str, Any]:
    """The option picked in each config group, when run through Hydra: ``{"loss": "hinge", ...}``.

    A list-valued group (``penalty=[gp,r1]``), which Hydra leaves out of its runtime choices, is the list of
    its options, read from the names the options put into ``cfg`` (each option of a list group packages
    itself under its own name, as ``conf/penalty/gp.yaml`` does under ``gp``). A component whose ``_target_``
    was overridden (``loss._target_=mypkg.MyLoss``) is recorded by that target, not by the option whose
    other keys it kept."""
    hc = _hydra()
    if hc is None:
        return {}
    from ganlab.paths import CONF_DIR

    picked: dict[str, Any] = {
        k: str(v) for k, v in hc.runtime.choices.items() if v is not None and not k.startswith("hydra")
    }
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()} - set(hc.runtime.choices)
    for group in sorted(groups):
        node = cfg.get(group) if cfg is not None else None
        if isinstance(node, DictConfig) and len(node):
            picked[group] = [str(k) for k in node]
    for override in task_overrides():
        key, _, value = override.lstrip("+").partition("=")
        group = key.removesuffix("._target_")
        if group != key and group in picked:
            picked[group] = value
    return picked


def targets(node: Any, prefix: str = "") -> dict[str, str]:
    """Every component of a config by where it sits and the class (or function) it builds:
    ``{"loss": "ganlab.losses.HingeLoss", "penalty.gp": ..., "model.generator": ...}``."""
    found: dict[str, str] = {}
    items = node.items() if isinstance(node, dict | DictConfig) else []
    for key, value in items:
        if key == "_target_":
            found[prefix.rstrip(".") or "."] = str(value)
        elif isinstance(value, dict | DictConfig):
            found.update(targets(value, f"{prefix}{key}."))
    return found


def varying_overrides() -> list[str]:
    """The overrides that tell this job from the others of its sweep (in a multirun: those of the swept
    keys, ``loss=hinge,seed=1`` but not the constant ``trainer.max_steps=20``), else all of the command
    line's."""
    swept = swept_keys()
    mine = task_overrides()
    picked = [o for o in mine if o.lstrip("+~").partition("=")[0] in swept]
    return picked or mine


def run_name() -> str:
    """The job's varying overrides (:func:`varying_overrides`), or ``default`` when there are none."""
    return ",".join(varying_overrides()) or "default"


def sweep_group() -> str:
    """The sweep folder in a multirun (all jobs of a sweep share it), else ``single``."""
    hc = _hydra()
    return str(hc.sweep.dir) if in_multirun() else "single"


def tags(*, _root_: DictConfig) -> list[str]:
    """Every group choice (``loss:hinge``, ``penalty:gp+r1`` for a list-valued group) and the seed, followed
    by the config's own ``tags``."""
    picked = [
        f"{group}:{'+'.join(value) if isinstance(value, list) else value}"
        for group, value in choices(_root_).items()
    ]
    return [*picked, f"seed:{_root_.get('seed')}", *(str(t) for t in _root_.get("tags", []))]


def new_run_id() -> str:
    """A fresh run id: 8 random lowercase letters and digits (the form of wandb's own ids)."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


OmegaConf.register_new_resolver("ganlab.run_name", run_name, replace=True)
OmegaConf.register_new_resolver("ganlab.sweep_group", sweep_group, replace=True)
OmegaConf.register_new_resolver("ganlab.tags", tags, replace=True)
