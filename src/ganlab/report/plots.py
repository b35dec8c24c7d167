"""The report's pictures (matplotlib, Agg), one panel per environment, drawn directly from the numbers:
metric curves against generator steps with bootstrap bands, training diagnostics, finals as strip plots
with their intervals, score against wall time, and budget curves. Samples are drawn in ``samples.py``.

Each function returns the path it wrote, or ``None`` when there is nothing to draw.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ganlab.report import inference  # noqa: E402
from ganlab.report.analysis import Environment, MetricTable  # noqa: E402
from ganlab.report.collect import read_curves  # noqa: E402

DPI = 80
BAND_RESAMPLES = 1_000  # per step of a curve; the tables' intervals use inference.BOOTSTRAP_RESAMPLES
MAX_POINTS = 60  # steps drawn per curve (evenly thinned), so that long runs stay quick to bootstrap
DIAGNOSTICS = ("loss/d", "loss/g", "D/real - D/fake", "grad_norm/D", "grad_norm/G")


def _grid(nrows: int, ncols: int, width: float, height: float) -> tuple[plt.Figure, np.ndarray]:
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), dpi=DPI, squeeze=False)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def color(i: int) -> tuple[float, ...]:
    return plt.get_cmap("tab10" if i < 10 else "tab20")(i % 20)


def env_title(env: Environment) -> str:
    return ", ".join(f"{k}={v}" for k, v in env.key.items()) or "all runs"


def step_band(series: list[list[tuple[int, float]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps that every series logged, the mean over the series there, and the 95% percentile-bootstrap band
    of that mean (equal to the mean for a single series)."""
    by_step: dict[int, list[float]] = {}
    for curve in series:
        for step, value in curve:
            by_step.setdefault(step, []).append(value)
    steps = [s for s in sorted(by_step) if len(by_step[s]) == len(series)]
    steps = steps[:: max(1, math.ceil(len(steps) / MAX_POINTS))]
    mean = np.array([np.mean(by_step[s]) for s in steps])
    bands = [
        inference.bootstrap_ci(np.array(by_step[s]), BAND_RESAMPLES) if len(series) > 1 else (m, m)
        for s, m in zip(steps, mean, strict=True)
    ]
    low, high = (np.array([b[i] for b in bands]) for i in (0, 1))
    return np.array(steps), mean, low, high


def _with_margin(curves: dict[str, list[tuple[int, float]]]) -> dict[str, list[tuple[int, float]]]:
    """The derived diagnostic ``D/real - D/fake`` (the critic's gap) beside the logged columns."""
    real, fake = dict(curves.get("D/real", [])), dict(curves.get("D/fake", []))
    gap = [(s, real[s] - fake[s]) for s in sorted(real) if s in fake]
    return {**curves, "D/real - D/fake": gap} if gap else curves


def _curves(env: Environment, prefix: tuple[str, ...]) -> dict[str, dict[str, list]]:
    """Configuration label -> series name -> one curve per completed run."""
    found: dict[str, dict[str, list]] = {}
    for config in env.configs:
        for run in (r for r in config.runs if r.status == "completed"):
            for name, curve in _with_margin(read_curves(run, prefix)).items():
                found.setdefault(config.label, {}).setdefault(name, []).append(curve)
    return found


def _draw_series(ax: plt.Axes, env: Environment, curves: dict[str, dict[str, list]], name: str) -> bool:
    drawn = False
    for i, config in enumerate(env.configs):
        series = curves.get(config.label, {}).get(name)
        if not series:
            continue
        steps, mean, low, high = step_band(series)
        ax.plot(steps, mean, color=color(i), label=f"{config.label} (n={len(series)})")
        ax.fill_between(steps, low, high, color=color(i), alpha=0.2, linewidth=0)
        drawn = True
    return drawn


def plot_series(
    envs: list[Environment], names: list[str], prefix: tuple[str, ...], path: Path
) -> Path | None:
    """One row per series name, one column per environment: each configuration's mean over its completed
    seeds against generator steps, with the 95% bootstrap band of the mean."""
    curves = [_curves(env, prefix) for env in envs]
    names = [n for n in names if any(n in per for c in curves for per in c.values())]
    if not names:
        return None
    fig, axes = _grid(len(names), len(envs), 5.2, 3.3)
    for col, (env, env_curves) in enumerate(zip(envs, curves, strict=True)):
        for row, name in enumerate(names):
            ax = axes[row][col]
            if _draw_series(ax, env, env_curves, name):
                ax.legend(fontsize="x-small")
            else:
                ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
            ax.set(title=f"{name} — {env_title(env)}", xlabel="generator step")
            ax.grid(alpha=0.3)
    return _save(fig, path)


def _strip(ax: plt.Axes, table: MetricTable, configs: list) -> None:
    """A row per configuration (best on top): a dot per seed, the mean and its interval as a bar; each
    configuration in its colour of the other plots (its position in ``configs``)."""
    rows = [r for r in table.rows if r.summary.n > 0][::-1]
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, size=max((r.summary.n for r in rows), default=0))
    for y, row in enumerate(rows):
        dots = color(configs.index(row.config))
        ax.scatter(list(row.seeds.values()), y + jitter[: row.summary.n], s=16, alpha=0.7, color=dots)
        s = row.summary
        if s.ci is not None:
            ax.hlines(y, *s.ci, color="black", linewidth=2)
        ax.plot([s.mean], [y], marker="|", markersize=14, color="black")
    ax.set_yticks(range(len(rows)), [f"{r.name} (n={r.summary.n})" for r in rows], fontsize="small")
    ax.set_ylim(-0.6, len(rows) - 0.4)
    if table.low is not None and table.high is not None:
        ax.set_xlim(table.low - 0.03 * (table.high - table.low), table.high + 0.03 * (table.high - table.low))
    ax.grid(alpha=0.3, axis="x")


def plot_finals(envs: list[Environment], path: Path) -> Path | None:
    """Finals of the ranking metric as strip plots, one panel per environment, x axis = declared range."""
    envs = [e for e in envs if any(r.summary.n for r in e.ranking.rows)]
    if not envs:
        return None
    height = max(2.5, 0.45 * max(len(e.ranking.rows) for e in envs) + 1.2)
    fig, axes = _grid(1, len(envs), 6.0, height)
    for ax, env in zip(axes[0], envs, strict=True):
        _strip(ax, env.ranking, env.configs)
        ax.set(
            title=env_title(env),
            xlabel=f"{env.ranking.metric} (bar: 95% {env.ranking.rows[0].summary.ci_method})",
        )
    return _save(fig, path)


def plot_wall_time(envs: list[Environment], path: Path) -> Path | None:
    """The ranking metric of each completed run against its wall time, a colour per configuration."""
    if not any(r.summary.n for e in envs for r in e.ranking.rows):
        return None
    fig, axes = _grid(1, len(envs), 5.5, 4.0)
    for ax, env in zip(axes[0], envs, strict=True):
        for i, config in enumerate(env.configs):
            points = [
                (r.summary["wall_s"], r.metrics[env.ranking.metric])
                for r in config.runs
                if r.status == "completed"
                and r.metrics.get(env.ranking.metric) is not None
                and isinstance(r.summary.get("wall_s"), int | float)
            ]
            if points:
                ax.scatter(*zip(*points, strict=True), color=color(i), s=20, label=config.label)
        ax.set(title=env_title(env), xlabel="wall time per run (s)", ylabel=env.ranking.metric)
        ax.grid(alpha=0.3)
        if ax.collections:
            ax.legend(fontsize="x-small")
    return _save(fig, path)


def plot_budget(envs: list[Environment], path: Path) -> Path | None:
    """Expected best mean score against the number of configurations tried, with its 95% band."""
    envs = [e for e in envs if e.budget]
    if not envs:
        return None
    fig, axes = _grid(1, len(envs), 5.5, 4.0)
    for ax, env in zip(axes[0], envs, strict=True):
        for i, (name, curve) in enumerate(env.budget.items()):
            ax.plot(curve.k, curve.expected, marker="o", color=color(i), label=name)
            ax.fill_between(curve.k, curve.low, curve.high, color=color(i), alpha=0.2, linewidth=0)
        ax.set_xticks(range(1, max(len(c.k) for c in env.budget.values()) + 1))
        ax.set(
            title=env_title(env),
            xlabel="configurations tried (k)",
            ylabel=f"expected best mean {env.ranking.metric}",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    return _save(fig, path)
