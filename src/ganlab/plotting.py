"""Pictures of samples: a grid for images, a scatter over the real data for 2-D vectors."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402


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


def scatter_figure(fake: Tensor, real: Tensor | None = None, title: str = "") -> plt.Figure:
    """Generated points (first two coordinates) over the real data."""
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if real is not None:
        r = real.detach().cpu().numpy()
        ax.scatter(r[:, 0], r[:, 1], s=4, c="tab:gray", alpha=0.4, label="real")
    f = fake.detach().cpu().numpy()
    ax.scatter(f[:, 0], f[:, 1], s=4, c="tab:red", alpha=0.6, label="generated")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=3)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def save_samples(
    path: str | Path, fake: Tensor, real: Tensor | None = None, title: str = "", nrow: int | None = None
) -> np.ndarray:
    """Write a PNG of ``fake`` (grid for images, ``nrow`` per row or a square; scatter for vectors) and
    return it as an RGB array."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fake.dim() == 4:
        array = image_grid(fake, nrow)
        plt.imsave(path, array)
        return array
    fig = scatter_figure(fake, real, title)
    fig.canvas.draw()
    array = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    fig.savefig(path)
    plt.close(fig)
    return array
