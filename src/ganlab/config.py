"""Checks on a composed config, run before anything is built or written.

Each failure raises :class:`ConfigError` with one paragraph naming the key, its value and what is valid.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig

log = logging.getLogger("ganlab")


class ConfigError(ValueError):
    """An invalid configuration value or combination."""


def _positive(cfg: DictConfig, key: str, kind: type, allow_zero: bool = False) -> None:
    value: Any = cfg
    for part in key.split("."):
        if not isinstance(value, DictConfig) or part not in value:
            raise ConfigError(
                f"{key} is missing from the config. Valid: {'an integer' if kind is int else 'a number'}."
            )
        value = value[part]
    ok_type = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        ok_type = ok_type and float(value).is_integer()
    if not ok_type or value < 0 or (value == 0 and not allow_zero):
        want = "an integer" if kind is int else "a number"
        raise ConfigError(f"{key}={value!r} is invalid: it must be {want} {'>= 0' if allow_zero else '> 0'}.")


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for values and combinations no run could train with (static checks; the
    dataset, the networks and a resumed checkpoint are checked when ganlab.train builds them, also before
    anything is written)."""
    _check_numbers(cfg)  # first: no import needed, so that a wrong value is reported at once
    _check_compile(cfg)
    _check_components(cfg)
    _check_penalty_numbers(cfg)
    _check_resume(cfg)
    _check_penalties_with_batch_norm(cfg)
    _check_devices(cfg)
    _check_strategy(cfg)
    _check_precision(cfg)


def _check_compile(cfg: DictConfig) -> None:
    value = cfg.get("compile", False)
    if not isinstance(value, bool):
        raise ConfigError(f"compile={value!r} is invalid. Valid: true (torch.compile G and D) or false.")


def _check_numbers(cfg: DictConfig) -> None:
    _positive(cfg, "seed", int, allow_zero=True)
    _positive(cfg, "n_critic", int)
    _positive(cfg, "trainer.max_steps", int)
    _positive(cfg, "data.batch_size", int)
    if "log_every_n_steps" in cfg.trainer:
        _positive(cfg, "trainer.log_every_n_steps", int)
    if "sample_every" in cfg:
        _positive(cfg, "sample_every", int, allow_zero=True)
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is not None and "every" in node:
            _positive(cfg, f"callbacks.{name}.every", int, allow_zero=True)
    for net in ("g", "d"):
        _positive(cfg, f"optim.{net}.lr", float)
        if cfg.clip_grad_norm[net] is not None:
            _positive(cfg, f"clip_grad_norm.{net}", float)


def _check_penalty_numbers(cfg: DictConfig) -> None:
    """After :func:`_check_components`, which tells an entry that belongs in another group where it goes."""
    for name in cfg.penalty:
        _positive(cfg, f"penalty.{name}.weight", float)
        if "every" in cfg.penalty[name]:
            _positive(cfg, f"penalty.{name}.every", int)


# the groups that hold a dict name -> component: the base class every component of the group subclasses,
# and what such a component is
COMPONENT_GROUPS = {
    "penalty": ("ganlab.penalties.Penalty", "a regulariser added to D's loss"),
    "augment": ("ganlab.augment.InputTransform", "a transform of every D input"),
}


def _component_class(group: str, name: str, node: Any) -> type:
    """The class ``{group}.{name}._target_`` names, or a :class:`ConfigError` saying what is wrong."""
    base = COMPONENT_GROUPS[group][0]
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(
            f"{group}.{name}={node!r} is not a component: {group} holds name -> config with a _target_, "
            f"filled by the {group} group ({group}=<option> puts it under {group}.<option>). Valid: a "
            f"{base} subclass under each name."
        )
    try:
        return get_class(node._target_)
    except Exception as exc:
        raise ConfigError(
            f"{group}.{name}._target_={node._target_!r} cannot be imported ({exc}). Valid: a {base} subclass."
        ) from exc


def _check_components(cfg: DictConfig) -> None:
    """Each entry of a component group subclasses the group's base class, so that a penalty and an input
    transform are never confused; one in the wrong group is told which group holds it."""
    for group, (base, kind) in COMPONENT_GROUPS.items():
        for name, node in (cfg.get(group) or {}).items():
            cls = _component_class(group, name, node)
            if issubclass(cls, get_class(base)):
                continue
            message = f"{group}.{name}._target_={node._target_!r} is not {kind} ({base})."
            for other, (other_base, other_kind) in COMPONENT_GROUPS.items():
                if issubclass(cls, get_class(other_base)):
                    message += (
                        f" It is {other_kind}: choose it in the {other} group ({other}={name}, its "
                        f"settings under {other}.{name}.*), not in {group}."
                    )
            raise ConfigError(f"{message} Valid under {group}: a {base} subclass.")


def _check_resume(cfg: DictConfig) -> None:
    value = cfg.get("resume", "auto")
    if value is None or value is False or (isinstance(value, str) and value.strip()):
        return
    raise ConfigError(
        f"resume={value!r} is invalid. Valid: auto (continue the run folder's last checkpoint when "
        "there is one), never (or null: start fresh), or the path of a checkpoint file."
    )


def is_per_sample(penalty_class: type) -> bool:
    """Whether a penalty differentiates D with respect to each input sample (gradient penalties), which
    batch normalisation in D invalidates. Penalties declare it with a ``per_sample`` class attribute;
    without one, a subclass of ``GradientPenalty`` counts as per sample."""
    flag = getattr(penalty_class, "per_sample", None)
    if flag is not None:
        return bool(flag)
    from ganlab.penalties import GradientPenalty

    return issubclass(penalty_class, GradientPenalty)


def _check_penalties_with_batch_norm(cfg: DictConfig) -> None:
    """A per-sample gradient penalty needs a critic that scores each sample on its own; batch norm mixes
    the samples of a batch (Gulrajani et al. 2017, section 4). Refused unless ``allow_bn_with_penalty``."""
    norm = cfg.model.discriminator.get("norm")
    if norm != "batch" or not cfg.penalty:
        return
    per_sample = [name for name, node in cfg.penalty.items() if is_per_sample(get_class(node._target_))]
    if not per_sample:
        return
    message = (
        f"model.discriminator.norm=batch with the per-sample gradient penalty "
        f"{', '.join(f'penalty.{n}' for n in per_sample)}: batch norm mixes the samples of a batch, so the "
        "penalty no longer constrains each sample's gradient (Gulrajani et al. 2017, section 4)."
    )
    if cfg.get("allow_bn_with_penalty", False):
        log.warning("!!! %s Training anyway because allow_bn_with_penalty=true. !!!", message)
        return
    raise ConfigError(
        f"{message} Valid: model.discriminator.norm=layer, spectral or none (or "
        "allow_bn_with_penalty=true to train anyway)."
    )


def available_devices(accelerator: str) -> int:
    """How many devices of ``accelerator`` this machine has (``auto``: GPUs when any, else CPUs)."""
    import torch  # here, not at the top: a config error is reported before torch is imported

    gpus = torch.cuda.device_count()
    mps = int(bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()))
    if accelerator == "auto":
        return gpus or mps or (os.cpu_count() or 1)
    return {"cpu": os.cpu_count() or 1, "gpu": gpus or mps, "cuda": gpus, "mps": mps}.get(accelerator, -1)


def requested_devices(devices: Any) -> list[int] | int | None:
    """``trainer.devices`` as a count, a list of device ids, or ``None`` (auto / all)."""
    if isinstance(devices, str):
        text = devices.strip()
        if text in ("auto", "-1"):
            return None
        if "," in text:
            return [int(d) for d in text.split(",") if d.strip()]
        return int(text)
    if isinstance(devices, int) and not isinstance(devices, bool):
        return None if devices == -1 else devices
    return [int(d) for d in devices]


def _check_devices(cfg: DictConfig) -> None:
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    devices = cfg.trainer.get("devices", "auto")
    available = available_devices(accelerator)
    if available < 0:
        return  # an accelerator ganlab does not know (tpu, hpu, ...): Lightning checks it
    if available == 0:
        raise ConfigError(
            f"trainer.accelerator={accelerator!r}: this machine has no such device. Valid: "
            "trainer=cpu (or trainer.accelerator=cpu / auto)."
        )
    try:
        requested = requested_devices(devices)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"trainer.devices={devices!r} is invalid. Valid: a count 1..{available}, a list of "
            "device ids, -1 or auto."
        ) from exc
    too_many = (isinstance(requested, int) and not 1 <= requested <= available) or (
        isinstance(requested, list) and (not requested or any(not 0 <= d < available for d in requested))
    )
    if too_many:
        raise ConfigError(
            f"trainer.devices={devices!r} asks for more {accelerator} devices than this machine has "
            f"({available}). Valid: a count 1..{available}, ids 0..{available - 1}, -1 or auto."
        )


# strategies ganlab trains with: "auto" (one process, or ganlab's DDP when several devices are asked for) and
# "ddp" (ganlab.distributed.ReplicaDDPStrategy, started by Lightning, torchrun or SLURM)
STRATEGIES = ("auto", "ddp")


def world_size(cfg: DictConfig) -> int:
    """The number of training processes the trainer config asks for: devices per node x nodes."""
    trainer = cfg.trainer
    requested = requested_devices(trainer.get("devices", "auto"))
    if requested is None:  # auto / -1: Lightning takes one CPU process, or every GPU
        requested = 1 if _runs_on_cpu(cfg) else max(available_devices(str(trainer.get("accelerator"))), 1)
    per_node = len(requested) if isinstance(requested, list) else int(requested)
    return per_node * int(trainer.get("num_nodes", 1) or 1)


def _runs_on_cpu(cfg: DictConfig) -> bool:
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator == "cpu":
        return True
    import torch

    return accelerator == "auto" and not torch.cuda.is_available()


def _check_strategy(cfg: DictConfig) -> None:
    strategy = cfg.trainer.get("strategy", "auto")
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"trainer.strategy={strategy!r} is not supported: ganlab trains both networks with manual "
            "optimisation and averages their gradients itself, on full replicas (ganlab.distributed). "
            f"Valid: {', '.join(STRATEGIES)} (ddp on any number of devices and nodes)."
        )
    if cfg.trainer.get("sync_batchnorm", False) and world_size(cfg) > 1 and _runs_on_cpu(cfg):
        raise ConfigError(
            "trainer.sync_batchnorm=true on CPU: torch's SyncBatchNorm runs on GPUs only. Valid: "
            "trainer.sync_batchnorm=false on CPU (each process then normalises its own shard), or GPUs."
        )


def _check_precision(cfg: DictConfig) -> None:
    """Lightning turns ``precision=16-mixed`` on CPU into ``bf16-mixed`` with a warning: the run would then
    train in another precision than its config (and summary.json) names. Refused, naming what is valid."""
    precision = str(cfg.trainer.get("precision"))
    if precision in ("16-mixed", "16") and _runs_on_cpu(cfg):
        raise ConfigError(
            f"trainer.precision={precision} on CPU: Lightning has no float16 mixed precision on CPU and "
            "would train in bf16-mixed instead, which the run's record would not say. Valid on CPU: "
            "32-true or bf16-mixed; 16-mixed on GPUs (trainer=gpu)."
        )


# options that were renamed: (group, old option) -> what to write instead. Hydra fails first on a missing
# option file ("Could not find 'loss/wgan_gp'"); the command line then prints these hints.
RENAMED_OPTIONS: dict[tuple[str, str], str] = {
    ("loss", "wgan_gp"): (
        "fix=wgan_gp (the Wasserstein loss with its gradient penalty, optimizer and n_critic); "
        "loss=wasserstein is the loss alone"
    ),
    ("loss", "wgan"): (
        "fix=wgan (the Wasserstein loss with weight clipping 0.01, RMSProp and n_critic 5); "
        "loss=wasserstein is the loss alone, without clipping"
    ),
    ("penalty", "instance_noise"): (
        "augment=instance_noise (an input transform of D, not a penalty; its settings are under "
        "augment.instance_noise.*)"
    ),
}


def renamed_option_hints(args: list[str]) -> list[str]:
    """One line per renamed option (:data:`RENAMED_OPTIONS`) that the command-line arguments choose, in a
    plain choice (``loss=wgan_gp``), a list (``penalty=[instance_noise,r1]``) or a sweep
    (``loss=hinge,wgan``)."""
    hints: list[str] = []
    for arg in args:
        key, _, value = arg.partition("=")
        group = key.lstrip("+~").split("@", 1)[0]
        for option in re.findall(r"[\w.-]+", value):
            new = RENAMED_OPTIONS.get((group, option))
            line = f"ganlab: {group}={option} was renamed: use {new}."
            if new is not None and line not in hints:
                hints.append(line)
    return hints
