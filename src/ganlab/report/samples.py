"""Samples of every configuration and seed of an environment, drawn directly on shared axes.

Each run's generator is rebuilt from ``checkpoints/last.ckpt`` (``ganlab.sample``) and draws
:data:`N_POINTS` samples from noise seed 0. Vector data in 2-D is drawn as a scatter over the real data
(the modes, drawn on top), every panel on the same axes; images as one grid of :data:`N_IMAGES` per seed.
A run without a readable checkpoint shows its saved final picture, else an empty panel that says so.
"""

from __future__ import annotations

import math
from pathlib import Path

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


def plot_samples(env: Environment, path: Path) -> Path | None:
    """A row per configuration (ranking order), a column per seed; ``None`` when nothing can be shown."""
    configs = [row.config for row in env.ranking.rows if row.config.runs]
    ncols = min(MAX_SEEDS, max(len(c.runs) for c in configs))
    fig, axes = plt.subplots(
        len(configs), ncols, figsize=(2.4 * ncols, 2.5 * len(configs)), dpi=DPI, squeeze=False
    )
    real, scatters, points = None, [], []
    for row, config in enumerate(configs):
        runs = sorted(config.runs, key=lambda r: (r.seed is None, r.seed or 0))[:ncols]
        for col in range(ncols):
            ax = axes[row][col]
            if col >= len(runs):
                ax.axis("off")
                continue
            sample, data_cfg = generated(runs[col])
            if real is None and data_cfg is not None and sample is not None and sample.ndim == 2:
                real = real_points(data_cfg)
            _panel(ax, runs[col], sample, real)
            if sample is not None and sample.ndim == 2:
                scatters.append(ax)
                points.append(sample)
            ax.set_title(f"seed {runs[col].seed} ({runs[col].status})", fontsize="small")
        axes[row][0].set_ylabel(config.label, fontsize="small")
    _shared_limits(scatters, points + ([real] if real is not None else []))
    fig.suptitle(f"Samples — {env_title(env)} (blue: generated; red: real data)")
    return _save(fig, path)
