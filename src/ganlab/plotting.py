"""Pictures of samples: a grid for images; for vectors of ``D`` values, generated points over real ones:
a histogram for ``D = 1``, a scatter plot for ``D = 2``, two projections for ``D > 2``; for one-hot
sequences ``(A, L)``, the per-position symbol frequencies of the real and the generated ones."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from torch import Tensor  # noqa: E402

REAL = {"color": "tab:gray", "alpha": 0.4, "label": "real"}
FAKE = {"color": "tab:red", "alpha": 0.6, "label": "generated"}


def image_grid(images: Tensor, nrow: int | None = None) -> np.ndarray:
    """``(N, C, H, W)`` images in [-1, 1] -> one ``(H', W', C)`` uint8 array, 2-pixel gaps."""
    from torchvision.utils import make_grid

    nrow = nrow or max(1, int(np.ceil(np.sqrt(len(images)))))
    grid = make_grid(
        images.detach().float().cpu().clamp(-1, 1),
        nrow=nrow,
        padding=2,
        normalize=True,
        value_range=(-1, 1),
        pad_value=1.0,
    )
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _numpy(x: Tensor | None) -> np.ndarray | None:
    return None if x is None else x.detach().float().cpu().numpy()


def histogram_bins(fake: np.ndarray, real: np.ndarray | None = None, bins: int = 50) -> np.ndarray:
    """``bins + 1`` equal-width edges spanning the finite values of ``fake`` and ``real`` together, so that
    both histograms share them and neither is cut off (non-finite values are left out)."""
    values = np.concatenate([fake.ravel(), real.ravel() if real is not None else []])
    return np.histogram_bin_edges(values[np.isfinite(values)], bins=bins)


def histogram_figure(fake: Tensor, real: Tensor | None = None, title: str = "") -> plt.Figure:
    """1-D samples: the density histogram of the generated values over that of the real ones, on shared
    bins (:func:`histogram_bins`); each integrates to 1 over the bins."""
    f, r = _numpy(fake)[:, 0], _numpy(real)
    r = r[:, 0] if r is not None else None
    edges = histogram_bins(f, r)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if r is not None:
        ax.hist(r[np.isfinite(r)], bins=edges, density=True, **REAL)
    ax.hist(f[np.isfinite(f)], bins=edges, density=True, **FAKE)
    ax.set(xlabel="x[0]", ylabel="density", title=title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def _scatter(ax: Axes, fake: np.ndarray, real: np.ndarray | None, xlabel: str, ylabel: str) -> None:
    """The first two columns of ``fake`` over those of ``real``."""
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=4, **REAL)
    ax.scatter(fake[:, 0], fake[:, 1], s=4, **FAKE)
    ax.set(xlabel=xlabel, ylabel=ylabel, aspect="equal")
    ax.legend(loc="upper right", markerscale=3)


def scatter_figure(fake: Tensor, real: Tensor | None = None, title: str = "") -> plt.Figure:
    """2-D samples: generated points over the real data."""
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    _scatter(ax, _numpy(fake), _numpy(real), "x[0]", "x[1]")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def principal_axes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal component analysis of the rows of ``x`` (``N x D``, ``D >= 2``; Pearson 1901, Hotelling
    1933): their mean ``m``, the first two principal axes (``2 x D``: the eigenvectors of the scatter matrix
    ``(x - m)^T (x - m)`` with the largest eigenvalues ``l_1 >= l_2``, each signed so that its largest entry
    is positive, which keeps successive pictures alike) and the fraction of the total variance along each,
    ``l_k / sum_j l_j`` (0 for constant rows). Project with ``(y - m) @ axes.T``."""
    mean = x.mean(axis=0)
    centred = x - mean
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)  # ascending
    variances = np.clip(eigenvalues[::-1], 0.0, None)
    axes = eigenvectors[:, ::-1][:, :2].T
    axes = axes * np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])[:, None]
    total = float(variances.sum())
    return mean, axes, variances[:2] / total if total > 0 else np.zeros(2)


def projection_figure(fake: Tensor, real: Tensor | None = None, title: str = "") -> plt.Figure:
    """``D > 2`` samples, two views: both sets projected on the first two principal axes of the real data
    (of the generated data when there is none; :func:`principal_axes`), and the coordinates ``x[0]``,
    ``x[1]``."""
    f, r = _numpy(fake), _numpy(real)
    basis = r if r is not None else f
    mean, axes, explained = principal_axes(basis[np.isfinite(basis).all(axis=1)])
    of = "real" if r is not None else "generated"
    pc = [f"PC{k + 1} of {of} data ({100 * explained[k]:.0f}% of variance)" for k in range(2)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 5), dpi=100)
    _scatter(left, (f - mean) @ axes.T, None if r is None else (r - mean) @ axes.T, *pc)
    _scatter(right, f, r, "x[0]", "x[1]")
    fig.suptitle(f"{title} ({f.shape[1]} dimensions)".strip())
    fig.tight_layout()
    return fig


def vector_figure(fake: Tensor, real: Tensor | None = None, title: str = "") -> plt.Figure:
    """``(N, D)`` generated points over real ones, drawn as suits ``D`` (see the module docstring)."""
    if fake.dim() != 2 or fake.shape[1] < 1:
        raise ValueError(f"vector samples must have shape (N, D) with D >= 1, got {tuple(fake.shape)}")
    if real is not None and (real.dim() != 2 or real.shape[1] != fake.shape[1]):
        raise ValueError(
            f"real samples of shape {tuple(real.shape)} do not match generated {tuple(fake.shape)}"
        )
    draw = {1: histogram_figure, 2: scatter_figure}.get(fake.shape[1], projection_figure)
    return draw(fake, real, title)


def position_frequencies(x: Tensor) -> np.ndarray:
    """``(A, L)``: the fraction of the sequences ``x`` (``(N, A, L)`` one-hot or soft, decoded by argmax
    over ``A``) that hold each symbol at each position."""
    symbols = x.shape[1]
    decoded = x.detach().argmax(dim=1).cpu().numpy()  # (N, L)
    return (decoded[:, None, :] == np.arange(symbols)[None, :, None]).mean(axis=0)


def sequence_figure(
    fake: Tensor, real: Tensor | None = None, symbols: Sequence[str] | None = None, title: str = ""
) -> plt.Figure:
    """``(N, A, L)`` sequences: a logo-like heat map of :func:`position_frequencies` per panel, the real
    sequences' above the generated ones' (one row per symbol, one column per position, 0 white, 1 dark)."""
    if real is not None and real.shape[1:] != fake.shape[1:]:
        raise ValueError(
            f"real sequences of shape {tuple(real.shape)} do not match generated {tuple(fake.shape)}"
        )
    panels = ([("real", real)] if real is not None else []) + [("generated", fake)]
    n_symbols, length = fake.shape[1], fake.shape[2]
    labels = (
        [repr(s) if s.isspace() else s for s in symbols] if symbols else [str(i) for i in range(n_symbols)]
    )
    size = (max(5.0, 0.12 * length + 2.0), (1.0 + 0.2 * n_symbols) * len(panels) + 0.8)
    fig, axes = plt.subplots(len(panels), 1, figsize=size, dpi=100, squeeze=False, layout="constrained")
    for ax, (name, x) in zip(axes[:, 0], panels, strict=True):
        shown = ax.imshow(position_frequencies(x), aspect="auto", cmap="Greys", vmin=0.0, vmax=1.0)
        ax.set_yticks(range(n_symbols), labels, fontsize="small" if n_symbols <= 30 else "xx-small")
        ax.set_title(f"{name} ({len(x)} sequences)", fontsize="medium")
    axes[-1, 0].set_xlabel("position")
    fig.colorbar(shown, ax=axes[:, 0].tolist(), label="symbol frequency")
    fig.suptitle(title)
    return fig


def save_samples(
    path: str | Path,
    fake: Tensor,
    real: Tensor | None = None,
    title: str = "",
    nrow: int | None = None,
    symbols: Sequence[str] | None = None,
) -> np.ndarray:
    """Write a PNG of ``fake`` (a grid for ``(N, C, H, W)`` images, ``nrow`` per row or a square; for
    ``(N, A, L)`` sequences :func:`sequence_figure` with the ``symbols`` as row labels; for ``(N, D)``
    vectors :func:`vector_figure`, both over ``real``) and return it as an RGB array."""
    path = Path(path)
    if fake.dim() == 4:
        array = image_grid(fake, nrow)
        path.parent.mkdir(parents=True, exist_ok=True)
        plt.imsave(path, array)
        return array
    fig = sequence_figure(fake, real, symbols, title) if fake.dim() == 3 else vector_figure(fake, real, title)
    try:
        fig.canvas.draw()
        array = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return array
