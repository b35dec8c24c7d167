"""Samples of every configuration and seed of an environment, drawn directly on shared axes.

Each run's generator is rebuilt from ``checkpoints/last.ckpt`` (``ganlab.sample``) and draws
:data:`N_POINTS` samples from noise seed 0. Vector data in 2-D is drawn as a scatter over the real data
(the modes, drawn on top), every panel on the same axes; images as one grid of :data:`N_IMAGES` per seed.
A run without a readable checkpoint shows its saved final picture, else an empty panel that says so.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from hydra.utils import instantiate

from ganlab.report.analysis import Environment
from ganlab.report.collect import Run
from ganlab.report.plots import DPI, _save, env_title
from ganlab.sample import draw, load_generator

N_POINTS = 2500  # the toy protocol's sample count (PITFALLS.md, benchmark protocols)
N_IMAGES = 16
MAX_SEEDS = 8  # columns per configuration; more seeds are listed in the tables only


def generated(run: Run) -> tuple[np.ndarray | None, object]:
    """The run's samples (points ``(n, 2)`` or images ``(n, C, H, W)`` in [-1, 1]) and its data config;
    ``(None, None)`` without a readable checkpoint."""
    path = run.path / str(run.summary.get("checkpoint") or "checkpoints/last.ckpt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        generator, cfg = load_generator(ckpt)
        n = N_POINTS if len(ckpt["ganlab"]["data_shape"]) == 1 else N_IMAGES
        return draw(generator, n, seed=0).numpy(), cfg.data
    except (OSError, KeyError, RuntimeError, ValueError):
        return None, None


def real_points(data_cfg: object) -> np.ndarray | None:
    """:data:`N_POINTS` points of the run's training data, or ``None`` when it cannot be built."""
    try:
        return instantiate(data_cfg).real_sample(N_POINTS).numpy()
    except Exception:  # noqa: BLE001 - a data set that is not here only costs the background
        return None


def image_grid(images: np.ndarray) -> np.ndarray:
    """``(n, C, H, W)`` in [-1, 1] tiled into one ``(rows·H, cols·W, 3)`` picture in [0, 1]."""
    n, c, h, w = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    tiles = np.ones((rows * cols, 3, h, w), dtype=np.float32)
    tiles[:n] = np.clip((images + 1) / 2, 0, 1).repeat(3 // c, axis=1)
    return tiles.reshape(rows, cols, 3, h, w).transpose(0, 3, 1, 4, 2).reshape(rows * h, cols * w, 3)


def _panel(ax: plt.Axes, run: Run, sample: np.ndarray | None, real: np.ndarray | None) -> None:
    if sample is not None and sample.ndim == 2 and sample.shape[1] == 2:
        ax.scatter(sample[:, 0], sample[:, 1], s=2, alpha=0.4, color="tab:blue")
        if real is not None:
            ax.scatter(real[:, 0], real[:, 1], s=1, color="tab:red", zorder=3)
    elif sample is not None and sample.ndim == 4:
        ax.imshow(image_grid(sample))
    elif run.samples is not None:
        ax.imshow(plt.imread(run.samples))
    else:
        ax.text(0.5, 0.5, f"no checkpoint ({run.status})", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _shared_limits(axes: list[plt.Axes], points: list[np.ndarray]) -> None:
    """The same square limits on every scatter panel: the 1st-99th percentile box of all points, plus 10%."""
    if not points:
        return
    stacked = np.concatenate(points)
    low, high = np.percentile(stacked, [1, 99], axis=0)
    centre, half = (low + high) / 2, 0.55 * float(np.max(high - low)) + 1e-6
    for ax in axes:
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)


def _draw_all(env: Environment, ncols: int) -> list[tuple[str, list[tuple[Run, np.ndarray | None, Any]]]]:
    """Per configuration (ranking order): its first ``ncols`` runs by seed, each with its samples."""
    rows = []
    for row in env.ranking.rows:
        runs = sorted(row.config.runs, key=lambda r: (r.seed is None, r.seed or 0))[:ncols]
        rows.append((row.config.label, [(r, *generated(r)) for r in runs]))
    return rows


def plot_samples(env: Environment, path: Path) -> Path | None:
    """A row per configuration (ranking order), a column per seed; ``None`` when no run has a checkpoint or
    a final picture to show."""
    ncols = min(MAX_SEEDS, max(len(row.config.runs) for row in env.ranking.rows))
    rows = _draw_all(env, ncols)
    if all(sample is None and run.samples is None for _, runs in rows for run, sample, _ in runs):
        return None
    data_cfg = next((cfg for _, runs in rows for _, s, cfg in runs if s is not None and s.ndim == 2), None)
    real = real_points(data_cfg) if data_cfg is not None else None
    size = (2.4 * ncols, 2.5 * len(rows))
    fig, axes = plt.subplots(len(rows), ncols, figsize=size, dpi=DPI, squeeze=False)
    scatters = []
    for (label, runs), line in zip(rows, axes, strict=True):
        for ax in line[len(runs) :]:
            ax.axis("off")
        for ax, (run, sample, _) in zip(line, runs, strict=False):
            _panel(ax, run, sample, real)
            ax.set_title(f"seed {run.seed} ({run.status})", fontsize="small")
            if sample is not None and sample.ndim == 2:
                scatters.append((ax, sample))
        line[0].set_ylabel(label, fontsize="small")
    points = [sample for _, sample in scatters] + ([real] if real is not None else [])
    _shared_limits([ax for ax, _ in scatters], points)
    fig.suptitle(f"Samples — {env_title(env)} (blue: generated; red: real data)")
    return _save(fig, path)
