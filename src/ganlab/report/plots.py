"""The report's pictures (matplotlib, Agg): metric curves, final values per seed, and final samples.

Like the tables, the curves and the final values use the *completed* runs only. Each function returns the
path it wrote, or ``None`` when there is nothing to draw.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ganlab.report.collect import Run, read_curves  # noqa: E402
from ganlab.report.stats import Config  # noqa: E402

DPI = 90


def _grid(n: int, ncols: int, width: float, height: float) -> tuple[plt.Figure, list[plt.Axes]]:
    """A figure of ``n`` panels, ``ncols`` per row; unused panels hidden."""
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), dpi=DPI, squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _color(i: int) -> tuple[float, ...]:
    return plt.get_cmap("tab10" if i < 10 else "tab20")(i % 20)


def mean_band(series: list[list[tuple[int, float]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps (union over runs), and at each step the mean, min and max over the runs that logged it."""
    by_step: dict[int, list[float]] = {}
    for curve in series:
        for step, value in curve:
            by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    mean, low, high = ([f(by_step[s]) for s in steps] for f in (np.mean, min, max))
    return np.array(steps), np.array(mean), np.array(low), np.array(high)


def plot_curves(configs: list[Config], metrics: list[str], path: Path) -> Path | None:
    """Each metric against generator steps: per configuration the mean over seeds, band = min-max."""
    curves = {id(c): [read_curves(r) for r in c.runs if r.status == "completed"] for c in configs}
    metrics = [m for m in metrics if any(m in run for runs in curves.values() for run in runs)]
    if not metrics:
        return None
    fig, axes = _grid(len(metrics), 3, 5.0, 3.6)
    for ax, metric in zip(axes, metrics, strict=True):
        for i, config in enumerate(configs):
            series = [run[metric] for run in curves[id(config)] if metric in run]
            if not series:
                continue
            steps, mean, low, high = mean_band(series)
            ax.plot(steps, mean, marker=".", color=_color(i), label=config.label)
            ax.fill_between(steps, low, high, color=_color(i), alpha=0.2, linewidth=0)
        ax.set(title=metric, xlabel="generator step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small", title="mean over seeds, band min-max", title_fontsize="small")
    return _save(fig, path)


def plot_finals(configs: list[Config], metrics: list[str], path: Path) -> Path | None:
    """Final value of each metric per configuration: one dot per seed, mean with its 95% CI as a bar."""
    metrics = [m for m in metrics if any(c.values(m) for c in configs)]
    if not metrics:
        return None
    fig, axes = _grid(len(metrics), 2, max(5.0, 1.1 * len(configs) + 1.5), 3.8)
    fig.suptitle("Final values: a dot per seed; bar: mean and 95% CI (completed runs)")
    offsets = np.random.default_rng(0).uniform(-0.12, 0.12, size=max(len(c.runs) for c in configs))
    for ax, metric in zip(axes, metrics, strict=True):
        for i, config in enumerate(configs):
            values = config.values(metric)
            ax.scatter(i + offsets[: len(values)], values, s=18, color=_color(i), alpha=0.8, zorder=3)
            summary = config.stats(metric)
            if summary.mean is not None:
                ax.errorbar(
                    i,
                    summary.mean,
                    yerr=summary.ci or 0.0,
                    fmt="_",
                    markersize=16,
                    capsize=4,
                    color="black",
                    zorder=4,
                )
        ax.set_xticks(range(len(configs)), [textwrap.fill(c.label, 22) for c in configs], fontsize="small")
        ax.set(title=metric, xlim=(-0.6, len(configs) - 0.4))
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def first_seed_picture(config: Config) -> Run | None:
    """The run with the lowest seed that has a final sample picture (completed runs preferred)."""
    runs = [r for r in config.runs if r.samples is not None]
    runs.sort(key=lambda r: (r.status != "completed", r.seed if r.seed is not None else math.inf, r.name))
    return runs[0] if runs else None


def plot_samples(configs: list[Config], path: Path) -> Path | None:
    """A montage of the final sample picture of each configuration (its first seed), labelled."""
    picks = [(c, first_seed_picture(c)) for c in configs]
    picks = [(c, r) for c, r in picks if r is not None]
    if not picks:
        return None
    fig, axes = _grid(len(picks), 4, 4.4, 4.7)
    for ax, (config, run) in zip(axes, picks, strict=True):
        ax.imshow(plt.imread(run.samples))
        title = f"{textwrap.fill(config.label, 34)}\n(run {run.name}, seed {run.seed})"
        ax.set_title(title, fontsize="small")
        ax.axis("off")
    return _save(fig, path)
