"""Read the run folders of a sweep: ``summary.json``, ``.hydra/overrides.yaml`` and ``metrics.csv``.

A *run folder* is a direct subfolder of the sweep folder that holds ``.hydra/``, ``summary.json`` or
``metrics.csv``. Every run folder becomes a :class:`Run`, also the ones whose ``summary.json`` is missing
or unreadable (status ``missing``): a run that crashed hard is never silently dropped.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ganlab.metrics.meta import MetricMeta
from ganlab.summary import is_alive

MISSING = "missing"  # no (readable) summary.json: the process died before writing it, or still starts
KILLED = "killed"  # summary.json says "running" but no such process is alive
DEFAULT = "(default)"  # the value of a parameter in a run that does not set it
# Protocol entries that follow the run's own seed (the evaluation's noise seed is ${seed}): they differ
# between the seeds of one configuration by design, so runs need not agree on them to be compared.
PER_RUN_PROTOCOL_KEYS = ("fake_seed",)


@dataclass
class Run:
    """One run folder: its overrides, its final status and metrics (``None``: undefined), and the number of
    modes of its data (``metrics/n_modes``, which the mode metrics report; ``None`` for other data)."""

    name: str
    path: Path
    status: str
    overrides: dict[str, str]
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    n_modes: int | None = None
    error: str | None = None
    damage: str | None = None  # why the folder is damaged (unreadable summary.json, empty metrics.csv)
    choices: dict[str, str] = field(default_factory=dict)  # config group -> option, as Hydra recorded it

    @property
    def seed(self) -> int | None:
        """The seed of the run (summary.json, else the ``seed`` override)."""
        seed = self.summary.get("seed", self.overrides.get("seed"))
        return int(seed) if seed is not None else None

    def meta(self, metric: str) -> MetricMeta | None:
        """What ``metric`` means (direction, range), as its metric declared it in summary.json's
        ``metrics_meta``; ``None`` when it declared nothing."""
        declared = self.summary.get("metrics_meta")
        return MetricMeta.from_json(declared.get(metric)) if isinstance(declared, dict) else None

    def protocol(self, metric: str) -> dict[str, Any]:
        """How ``metric`` (``metrics/<value>``) was computed: the ``metrics_protocol`` entry of the metric
        that reports it (the entry whose name is the value's, or its prefix before ``_``: ``kid`` for
        ``kid_mean``), else every entry (a value such as ``hq`` that its metric reports under another
        name is compared only where all protocols agree); ``{}`` when the run recorded none."""
        protocols = self.summary.get("metrics_protocol")
        if not isinstance(protocols, dict):
            return {}
        shared = {
            name: {k: v for k, v in p.items() if k not in PER_RUN_PROTOCOL_KEYS} if isinstance(p, dict) else p
            for name, p in protocols.items()
        }
        value = metric.removeprefix("metrics/")
        for name, protocol in shared.items():
            if value == name or value.startswith(f"{name}_"):
                return {name: protocol}
        return shared

    def axis(self, key: str) -> str:
        """The run's value of ``key``: its override, else its config group choice, else ``(default)``."""
        return self.overrides.get(key) or str(self.choices.get(key, DEFAULT))

    @property
    def samples(self) -> Path | None:
        """The final sample picture, if it exists."""
        relative = self.summary.get("samples") or "samples/final.png"
        path = self.path / relative
        return path if path.is_file() else None


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` looks like the output folder of one training job."""
    return path.is_dir() and any((path / name).exists() for name in (".hydra", "summary.json", "metrics.csv"))


def _natural(path: Path) -> tuple[int, int, str]:
    return (0, int(path.name), "") if path.name.isdigit() else (1, 0, path.name)


def parse_overrides(lines: list[str]) -> dict[str, str]:
    """``["loss=hinge", "+x=1", "~y"]`` -> ``{"loss": "hinge", "x": "1", "y": "(deleted)"}``.

    ``hydra.*`` overrides are skipped: they choose where a run is written, not what it does."""
    parsed: dict[str, str] = {}
    for line in lines:
        key, sep, value = str(line).partition("=")
        if key.startswith("~"):
            key, value = key[1:], "(deleted)"
        elif not sep:
            continue
        key = key.lstrip("+")
        if not key.startswith("hydra."):
            parsed[key] = value
    return parsed


def _read_overrides(path: Path, summary: dict[str, Any]) -> dict[str, str]:
    """summary.json's overrides, else ``.hydra/overrides.yaml`` (a run without summary.json has only this)."""
    if isinstance(summary.get("overrides"), list):
        return parse_overrides(summary["overrides"])
    file = path / ".hydra" / "overrides.yaml"
    if not file.is_file():
        return {}
    return parse_overrides(yaml.safe_load(file.read_text()) or [])


def _read_choices(path: Path, summary: dict[str, Any]) -> dict[str, str]:
    """summary.json's ``choices``, else Hydra's (``.hydra/hydra.yaml``: a run that died before its own)."""
    if isinstance(summary.get("choices"), dict):
        return summary["choices"]
    try:
        hydra = yaml.safe_load((path / ".hydra" / "hydra.yaml").read_text()) or {}
        return dict(hydra["hydra"]["runtime"]["choices"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return {}


def _read_summary(path: Path) -> tuple[dict[str, Any], str | None]:
    """The summary and ``None``, or ``{}`` and why it could not be read."""
    file = path / "summary.json"
    if not file.is_file():
        return {}, "no summary.json"
    try:
        summary = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        return {}, f"summary.json unreadable: {exc}"
    return (summary, None) if isinstance(summary, dict) else ({}, "summary.json is not a JSON object")


def _number(value: Any) -> float | None:
    """A metric value as a float; ``None`` for JSON null, NaN, infinities and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _csv_damage(path: Path) -> str | None:
    """Why ``metrics.csv`` is damaged (present but empty: not even its header), else ``None``."""
    try:
        with open(path / "metrics.csv") as f:
            header = f.readline()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"metrics.csv unreadable: {exc}"
    return None if header.strip() else "metrics.csv is empty"


def read_run(path: Path) -> Run:
    """One run folder as a :class:`Run`. A folder whose summary.json exists but cannot be read (truncated)
    or whose metrics.csv is empty is *damaged*: kept, with the reason in ``damage``."""
    summary, problem = _read_summary(path)
    damage = [p for p in (problem if (path / "summary.json").is_file() else None, _csv_damage(path)) if p]
    status = MISSING if problem else str(summary.get("status"))
    error = problem or summary.get("error")
    if status == "running" and not is_alive(summary):
        status, error = KILLED, "summary.json says running, but no process with its pid/host is alive"
    metrics = {str(k): _number(v) for k, v in (summary.get("metrics") or {}).items()}
    n_modes = metrics.get("metrics/n_modes")
    n_modes = int(n_modes) if n_modes is not None else None
    overrides, choices = _read_overrides(path, summary), _read_choices(path, summary)
    damaged = "; ".join(damage) or None
    return Run(path.name, path, status, overrides, summary, metrics, n_modes, error, damaged, choices)


def collect_runs(sweep_dir: Path) -> list[Run]:
    """Every run folder directly under ``sweep_dir``, in natural order (``0, 1, ..., 10``)."""
    folders = sorted((p for p in sweep_dir.iterdir() if is_run_folder(p)), key=_natural)
    return [read_run(p) for p in folders]


def read_curves(run: Run, prefix: str | tuple[str, ...] = "metrics/") -> dict[str, list[tuple[int, float]]]:
    """The ``(step, value)`` series of each ``metrics.csv`` column that starts with ``prefix`` (empty
    cells skipped; ``{}`` when the file is missing or unreadable)."""
    curves: dict[str, list[tuple[int, float]]] = {}
    try:
        with open(run.path / "metrics.csv", newline="") as f:
            for row in csv.DictReader(f):
                for key, cell in row.items():
                    if key and key.startswith(prefix) and cell not in (None, "") and row.get("step"):
                        curves.setdefault(key, []).append((int(float(row["step"])), float(cell)))
    except (OSError, ValueError, csv.Error):
        return {}
    return {k: sorted(v) for k, v in curves.items()}
