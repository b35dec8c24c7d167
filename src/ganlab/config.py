"""Checks on a composed config, run before anything is built or written.

Each failure raises :class:`ConfigError` with one paragraph naming the key, its value and what is valid.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig


class ConfigError(ValueError):
    """An invalid configuration value or combination."""


def _positive(cfg: DictConfig, key: str, kind: type, allow_zero: bool = False) -> None:
    value: Any = cfg
    for part in key.split("."):
        value = value[part]
    ok_type = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        ok_type = ok_type and float(value).is_integer()
    if not ok_type or value < 0 or (value == 0 and not allow_zero):
        want = "an integer" if kind is int else "a number"
        raise ConfigError(f"{key}={value!r} is invalid: it must be {want} {'>= 0' if allow_zero else '> 0'}.")


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for values no run could train with."""
    _positive(cfg, "seed", int, allow_zero=True)
    _positive(cfg, "n_critic", int)
    _positive(cfg, "trainer.max_steps", int)
    _positive(cfg, "data.batch_size", int)
    for net in ("g", "d"):
        _positive(cfg, f"optim.{net}.lr", float)
        if cfg.clip_grad_norm[net] is not None:
            _positive(cfg, f"clip_grad_norm.{net}", float)
    for name in cfg.penalty:
        _positive(cfg, f"penalty.{name}.weight", float)
