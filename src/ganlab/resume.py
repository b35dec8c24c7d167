"""Where a run starts: from scratch or from which checkpoint (``resume=auto|never|PATH``), and whether the
checkpoint fits the config and the run folder may be used (nothing of another run is overwritten). Reads
only; the run folder's files are :mod:`ganlab.run_folder`'s.

``resume=auto`` (the default) continues from ``<run>/checkpoints/last.ckpt`` when it exists, so that
rerunning a command with the same ``hydra.run.dir`` (or a requeued job of a sweep, same
``hydra.sweep.dir``) picks up where it stopped. ``resume=never`` (or ``null``) starts fresh and refuses a
run folder that already holds a run's results. ``resume=PATH`` continues from that checkpoint; into a
folder other than the checkpoint's own, only when that folder holds no results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ganlab.callbacks.checkpoint import CheckpointError, load_checkpoint
from ganlab.config import ConfigError
from ganlab.summary import is_alive, read_summary

NEVER = {None, False, "never", "null", "none"}
RESULT_FILES = ("summary.json", "metrics.csv", "checkpoints/last.ckpt")
# keys whose change makes a checkpoint unusable: the networks' shapes and the optimizers' state layout
STRICT_KEYS = ("model.", "optim.g._target_", "optim.d._target_", "lr_schedule._target_")
# keys whose change is allowed but makes the continuation differ from an uninterrupted run: warned about
WARN_PREFIXES = (
    "loss.",
    "penalty.",
    "augment.",
    "optim.",
    "n_critic",
    "data.",
    "seed",
    "clip_grad_norm.",
    "lr_schedule.",
    "trainer.devices",  # the number of processes sets the global batch (ganlab.distributed)
    "trainer.num_nodes",
    "trainer.sync_batchnorm",
)


@dataclass
class ResumePlan:
    """Where a run starts: ``ckpt_path`` ``None`` is a fresh start."""

    ckpt_path: Path | None = None
    g_steps: int = 0
    global_step: int = 0
    csv_rows: int | None = None
    previous_summary: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str | None:
        """The id of the run this one continues (its summary's), or ``None`` for a new run."""
        previous = self.previous_summary if self.ckpt_path is not None else None
        return (previous or {}).get("run_id") or None


def checkpoint_path(cfg: DictConfig, run_dir: Path) -> Path:
    """The run's own ``last.ckpt`` (the checkpoint callback's folder, ``<run>/checkpoints`` by default)."""
    node = cfg.get("callbacks", {}).get("checkpoint")
    folder = Path(node.dirpath) if node is not None and node.get("dirpath") else run_dir / "checkpoints"
    return folder / "last.ckpt"


def results_in(run_dir: Path, cfg: DictConfig) -> list[str]:
    """The result files of a run that ``run_dir`` already holds."""
    found = [name for name in RESULT_FILES[:2] if (run_dir / name).exists()]
    return found + ([str(checkpoint_path(cfg, run_dir))] if checkpoint_path(cfg, run_dir).exists() else [])


def read_previous_summary(run_dir: Path) -> dict[str, Any] | None:
    """The run folder's summary.json, or ``None`` when there is none or it is unreadable."""
    try:
        return read_summary(run_dir)
    except (OSError, ValueError):
        return None


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def compare_configs(
    saved: dict[str, Any], cfg: DictConfig, data_shape: tuple[int, ...], key: str
) -> list[str]:
    """Raise :class:`ConfigError` naming every key whose change makes the checkpoint unusable (the model,
    the data shape, the optimizer types); return warnings for the keys that merely change the run."""
    now = _flatten(OmegaConf.to_container(cfg, resolve=True))
    old = _flatten(saved.get("config", {}))
    differ = sorted(k for k in set(now) | set(old) if now.get(k) != old.get(k))
    strict = [k for k in differ if k.startswith(STRICT_KEYS[0]) or k in STRICT_KEYS[1:]]
    lines = [f"{k}: {old.get(k)!r} in the checkpoint, {now.get(k)!r} now" for k in strict]
    if list(saved.get("data_shape", data_shape)) != list(data_shape):
        lines.append(
            f"data shape: {tuple(saved['data_shape'])} in the checkpoint, {tuple(data_shape)} now (data=)"
        )
    if lines:
        raise ConfigError(
            f"{key}: the checkpoint was trained with another architecture and cannot be continued with this "
            f"config; differing: {'; '.join(lines)}. Resume with the checkpoint's settings, or start a new "
            "run (resume=never, in a new folder)."
        )
    return [f"{k}: {old.get(k)!r} -> {now.get(k)!r}" for k in differ if k.startswith(WARN_PREFIXES)]


def _check_not_in_use(previous: dict[str, Any] | None, run_dir: Path) -> None:
    """Refuse a folder that another live process on this machine is still training into."""
    if not previous or not is_alive(previous) or previous["pid"] == os.getpid():
        return
    raise ConfigError(
        f"hydra.run.dir={str(run_dir)!r}: the run folder is in use by the running process {previous['pid']} "
        "(summary.json status 'running'). Valid: wait for it, stop it, or use another folder."
    )


def _resume_value(cfg: DictConfig) -> Any:
    """``cfg.resume``, with the keywords lower-cased."""
    value = cfg.get("resume", "auto")
    keywords = ("auto", "never", "null", "none")
    return value.lower() if isinstance(value, str) and value.lower() in keywords else value


def plan_resume(cfg: DictConfig, run_dir: Path, data_shape: tuple[int, ...]) -> ResumePlan:
    """Decide where the run starts from, before anything is written; :class:`ConfigError` when the
    ``resume`` value, the checkpoint or the run folder forbids it."""
    value = _resume_value(cfg)
    previous = read_previous_summary(run_dir)
    _check_not_in_use(previous, run_dir)
    own = checkpoint_path(cfg, run_dir)
    if value in NEVER:
        if found := results_in(run_dir, cfg):
            raise ConfigError(
                f"resume={value}: the run folder {str(run_dir)!r} already holds a run's results "
                f"({', '.join(found)}) and resume=never does not overwrite them. Valid: resume=auto to "
                "continue that run, or another folder (hydra.run.dir=...)."
            )
        return ResumePlan()
    if value == "auto":
        if own.exists():
            return _plan_from(own, cfg, data_shape, "resume=auto (checkpoint)", previous)
        if previous is not None and previous.get("status") == "completed":
            raise ConfigError(
                f"resume=auto: the run folder {str(run_dir)!r} holds a completed run without a checkpoint to "
                f"continue from ({own} is missing), and it is not overwritten. Valid: another folder "
                "(hydra.run.dir=...), or resume=PATH with a checkpoint."
            )
        return ResumePlan(previous_summary=None)
    if not isinstance(value, str):
        raise ConfigError(
            f"resume={value!r} is invalid. Valid: auto, never (or null), or the path of a checkpoint."
        )
    path = Path(value).expanduser()
    same_run = path.resolve() == own.resolve()
    if not same_run and (found := results_in(run_dir, cfg)):
        raise ConfigError(
            f"resume={value!r}: the run folder {str(run_dir)!r} already holds another run's results "
            f"({', '.join(found)}), which are not overwritten. Valid: a new folder (hydra.run.dir=...), or "
            "resume=auto to continue the run in this folder."
        )
    return _plan_from(path, cfg, data_shape, f"resume={value!r}", previous if same_run else None)


def plan_replica(cfg: DictConfig, run_dir: Path, data_shape: tuple[int, ...]) -> ResumePlan:
    """The plan of a process other than rank 0 of a multi-process run, which rank 0 has already planned
    and checked (:func:`plan_resume`; its summary.json now says the folder is in use): the checkpoint
    ``resume`` names, or a fresh start. Reads, never writes."""
    value = _resume_value(cfg)
    if value in NEVER:
        return ResumePlan()
    own = checkpoint_path(cfg, run_dir)
    if value == "auto":
        return _plan_from(own, cfg, data_shape, "resume=auto", None) if own.exists() else ResumePlan()
    return _plan_from(Path(str(value)).expanduser(), cfg, data_shape, f"resume={value!r}", None)


def _plan_from(
    path: Path, cfg: DictConfig, data_shape: tuple[int, ...], key: str, previous: dict[str, Any] | None
) -> ResumePlan:
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as exc:
        raise ConfigError(f"{key}: {exc}") from exc
    warnings = compare_configs(ckpt["ganlab"], cfg, data_shape, key)
    return ResumePlan(
        ckpt_path=path,
        g_steps=int(ckpt["ganlab"]["g_steps"]),
        global_step=int(ckpt.get("global_step", 0)),
        csv_rows=ckpt.get("ganlab_logs", {}).get("metrics_csv_rows"),
        previous_summary=previous,
        warnings=warnings,
    )
