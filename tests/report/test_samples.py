"""The sample panels' pure parts: image tiling and the axes all scatter panels share."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from ganlab.report.samples import _shared_limits, image_grid


def test_image_grid_tiles_row_by_row_and_maps_minus_one_one_to_zero_one():
    images = np.stack([np.full((1, 2, 3), v, dtype=np.float32) for v in (-1.0, 0.0, 1.0, 0.5, -0.5)])
    grid = image_grid(images)  # 5 images: 3 columns, 2 rows, the sixth tile blank (white)
    assert grid.shape == (4, 9, 3)
    assert grid[0:2, 0:3] == pytest.approx(0.0) and grid[0:2, 3:6] == pytest.approx(0.5)
    assert grid[0:2, 6:9] == pytest.approx(1.0) and grid[2:4, 0:3] == pytest.approx(0.75)
    assert grid[2:4, 3:6] == pytest.approx(0.25) and grid[2:4, 6:9] == pytest.approx(1.0)


def test_every_scatter_panel_gets_the_same_square_limits():
    fig, axes = plt.subplots(1, 2)
    rng = np.random.default_rng(0)
    points = [rng.uniform(0, 1, (500, 2)), rng.uniform(-4, 4, (500, 2)) * [1, 0.5]]
    _shared_limits(list(axes), points)
    low, high = np.percentile(np.concatenate(points), [1, 99], axis=0)
    half = 0.55 * np.max(high - low)
    for ax in axes:
        assert ax.get_xlim() == pytest.approx(
            ((low + high)[0] / 2 - half, (low + high)[0] / 2 + half), abs=1e-5
        )
        assert ax.get_ylim() == pytest.approx(
            ((low + high)[1] / 2 - half, (low + high)[1] / 2 + half), abs=1e-5
        )
    plt.close(fig)
