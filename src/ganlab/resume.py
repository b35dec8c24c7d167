"""Resuming a run: where from (``resume=auto|never|PATH``), whether the checkpoint fits the config, and
the run folder's files (``metrics.csv`` is continued, not wiped; nothing of another run is overwritten).

``resume=auto`` (the default) continues from ``<run>/checkpoints/last.ckpt`` when it exists, so that
rerunning a command with the same ``hydra.run.dir`` (or a requeued job of a sweep, same
``hydra.sweep.dir``) picks up where it stopped. ``resume=never`` (or ``null``) starts fresh and refuses a
run folder that already holds a run's results. ``resume=PATH`` continues from that checkpoint; into a
folder other than the checkpoint's own, only when that folder holds no results.
"""

from __future__ import annotations

import csv
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from ganlab.config import ConfigError

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
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def load_checkpoint(path: Path, key: str) -> dict[str, Any]:
    """A ganlab checkpoint (on CPU), or a :class:`ConfigError` naming ``key=path`` when it is missing,
    unreadable or not ganlab's."""
    if not path.is_file():
        raise ConfigError(
            f"{key}={str(path)!r}: no such checkpoint file. Valid: the path of a ganlab "
            "checkpoint (a run's checkpoints/last.ckpt), auto or never."
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(
            f"{key}={str(path)!r}: the checkpoint cannot be read ({type(exc).__name__}: {exc}); "
            "it is corrupt or truncated. Valid: an intact ganlab checkpoint."
        ) from exc
    if not isinstance(ckpt, dict) or "ganlab" not in ckpt or "state_dict" not in ckpt:
        raise ConfigError(
            f"{key}={str(path)!r} is not a ganlab checkpoint (no 'ganlab' and 'state_dict' "
            "entries). Valid: a checkpoint written by ganlab.train."
        )
    return ckpt


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
    """Refuse a folder that a live process on this machine is still training into."""
    if not previous or previous.get("status") != "running" or previous.get("host") != socket.gethostname():
        return
    pid = previous.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return
    try:
        os.kill(pid, 0)
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and b"ganlab" not in cmdline.read_bytes():
            return  # the id was reused by another program
    except OSError:
        return
    raise ConfigError(
        f"hydra.run.dir={str(run_dir)!r}: the run folder is in use by the running process {pid} "
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
    ckpt = load_checkpoint(path, key)
    warnings = compare_configs(ckpt["ganlab"], cfg, data_shape, key)
    return ResumePlan(
        ckpt_path=path,
        g_steps=int(ckpt["ganlab"]["g_steps"]),
        global_step=int(ckpt.get("global_step", 0)),
        csv_rows=ckpt.get("ganlab_logs", {}).get("metrics_csv_rows"),
        previous_summary=previous,
        warnings=warnings,
    )


def truncate_csv(path: Path, rows: int, g_steps: int) -> None:
    """Cut ``metrics.csv`` back to the state of a checkpoint (atomically): the ``rows`` rows written before
    it was saved, and of the later ones only those of steps it includes (``step < g_steps``: Lightning
    writes a step's row just after the batch-end hooks that save). The rest came from training after the
    checkpoint, which the resume repeats."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        header, *lines = list(csv.reader(f))
    step = header.index("step") if "step" in header else None
    keep = lines[:rows] + [r for r in lines[rows:] if step is not None and r[step] and int(r[step]) < g_steps]
    if len(keep) == len(lines):
        return
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows([header, *keep])
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued: Lightning's deletes it
    when the writer is created, which would wipe a resumed run's history. Counts the rows on disk so that a
    checkpoint can record how many belong to the state it saves."""

    def _check_log_dir_exists(self) -> None:
        self.rows_written = 0
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                reader = csv.DictReader(f)
                self.metrics_keys = list(reader.fieldnames or [])
                self.rows_written = sum(1 for _ in reader)

    def save(self) -> None:
        pending = len(self.metrics)
        super().save()
        self.rows_written += pending


class AppendingCSVLogger(CSVLogger):
    """``metrics.csv`` through :class:`AppendingWriter`; ``rows_written`` is the number of rows on disk."""

    @property
    def experiment(self) -> AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(log_dir=self.log_dir)
        return self._experiment

    @property
    def rows_written(self) -> int:
        return self.experiment.rows_written if self._experiment is not None else 0


# run folders ---------------------------------------------------------------------------------------------
def is_fresh_folder(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds no run: it is missing, or holds only log files (Hydra opens the job's
    ``<job>.log`` before the task starts). Such a folder may be removed or marked; any other is a run's."""
    if not run_dir.exists():
        return True
    return run_dir.is_dir() and all(p.is_file() and p.suffix == ".log" for p in run_dir.iterdir())


def discard_fresh_folder(run_dir: Path) -> None:
    """Remove a run folder that holds no run (see :func:`is_fresh_folder`), and the parents Hydra created
    for it that are now empty (``outputs/runs/<date>/``), up to the working directory."""
    if not run_dir.exists() or not is_fresh_folder(run_dir):
        return
    for p in run_dir.iterdir():
        p.unlink()
    run_dir.rmdir()
    cwd = Path.cwd().resolve()
    parent = run_dir.resolve().parent
    while parent != cwd and cwd in parent.parents and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def write_hydra_files(run_dir: Path, cfg: DictConfig) -> None:
    """Write ``.hydra/`` (config.yaml, hydra.yaml, overrides.yaml) as Hydra does, once the config is
    known to be valid. ganlab sets ``hydra.output_subdir: null`` so that Hydra itself does not write them
    before the task starts: a rejected rerun into an existing run folder must leave its files unchanged."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized() or HydraConfig.get().get("output_subdir") is not None:
        return  # not run through Hydra, or Hydra writes them itself
    folder = run_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    OmegaConf.save(HydraConfig.instance().cfg, folder / "hydra.yaml")
    OmegaConf.save(HydraConfig.get().overrides.task, folder / "overrides.yaml")
    (run_dir / f"{HydraConfig.get().job.name}.log").touch()  # opened lazily (delay: true): make it exist
