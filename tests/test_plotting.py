"""Sample pictures of vector and sequence data: what each figure plots, checked against independent
computations."""

from __future__ import annotations

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from ganlab.plotting import (
    histogram_bins,
    position_frequencies,
    principal_axes,
    save_samples,
    sequence_figure,
    vector_figure,
)


def points(*columns_and_rows: float, n: int = 500, seed: int = 0, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, len(columns_and_rows), generator=g) * torch.tensor(columns_and_rows) + shift


def test_1d_histograms_are_densities_on_shared_bins_that_cover_both_samples():
    fake, real = points(0.5, shift=4.0), points(1.0, seed=1)
    fig = vector_figure(fake, real)
    ax = fig.axes[0]
    (real_bars, fake_bars) = ax.containers
    lo = min(fake.min(), real.min()).item()
    hi = max(fake.max(), real.max()).item()
    for values, bars in ((real[:, 0].numpy(), real_bars), (fake[:, 0].numpy(), fake_bars)):
        left = np.array([b.get_x() for b in bars])
        width = np.array([b.get_width() for b in bars])
        assert left[0] == pytest.approx(lo, rel=1e-6) and (left + width)[-1] == pytest.approx(hi, rel=1e-6)
        inside = (values[:, None] >= left) & (values[:, None] < left + width)
        inside[:, -1] |= values == left[-1] + width[-1]  # the last bin includes its right edge
        counts = inside.sum(axis=0)
        assert counts.sum() == len(values)
        heights = [b.get_height() for b in bars]
        assert heights == pytest.approx(counts / (len(values) * width), rel=1e-6)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x[0]", "density")
    plt.close(fig)


def test_histogram_bins_leave_out_non_finite_values():
    fake = np.array([0.0, 1.0, np.nan, np.inf])
    edges = histogram_bins(fake, np.array([-3.0, 2.0]), bins=5)
    assert edges == pytest.approx([-3.0, -2.0, -1.0, 0.0, 1.0, 2.0])


def test_2d_scatter_plots_the_points_themselves():
    fake, real = points(1.0, 2.0), points(3.0, 0.5, seed=1)
    fig = vector_figure(fake, real)
    (ax,) = fig.axes
    real_dots, fake_dots = ax.collections
    np.testing.assert_array_equal(real_dots.get_offsets(), real.numpy())
    np.testing.assert_array_equal(fake_dots.get_offsets(), fake.numpy())
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x[0]", "x[1]")
    plt.close(fig)


def known_axes(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ``+-a_k q_k`` around ``m`` for an orthonormal basis ``q`` of R^5: the scatter matrix is
    ``sum_k 2 a_k^2 q_k q_k^T``, so the principal axes are ``q_0, q_1`` and their shares of the variance
    ``a_k^2 / sum_j a_j^2``."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(5, 5)))
    a = np.array([3.0, 2.0, 1.0, 0.5, 0.25])
    mean = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    rows = np.concatenate([mean + a[:, None] * q.T, mean - a[:, None] * q.T])
    return rows, q, mean


def test_principal_axes_of_a_known_scatter_matrix():
    rows, q, mean = known_axes()
    got_mean, axes, explained = principal_axes(rows)
    assert got_mean == pytest.approx(mean, abs=1e-12)
    for k in range(2):
        sign = np.sign(q[np.abs(q[:, k]).argmax(), k])  # largest entry positive
        assert axes[k] == pytest.approx(sign * q[:, k], abs=1e-9)
    assert explained == pytest.approx(np.array([9.0, 4.0]) / (9 + 4 + 1 + 0.25 + 0.0625), rel=1e-9)


def test_more_than_2_dimensions_project_both_sets_on_the_real_datas_principal_axes():
    rows, q, mean = known_axes()
    real = torch.from_numpy(rows)
    signs = np.sign(q[np.abs(q[:, :2]).argmax(axis=0), [0, 1]])
    fake = torch.from_numpy(np.stack([mean + 1.5 * q[:, 0] - 0.5 * q[:, 1] + 0.3 * q[:, 2], mean]))
    fig = vector_figure(fake, real, title="step 7")
    projection, coordinates = fig.axes
    np.testing.assert_allclose(
        projection.collections[1].get_offsets(), [[1.5 * signs[0], -0.5 * signs[1]], [0.0, 0.0]], atol=1e-6
    )
    real_projected = projection.collections[0].get_offsets()  # +-a_k along axis k for k < 2, else 0
    np.testing.assert_allclose(np.abs(real_projected).max(axis=0), [3.0, 2.0], atol=1e-6)
    assert projection.get_xlabel() == "PC1 of real data (63% of variance)"
    assert projection.get_ylabel() == "PC2 of real data (28% of variance)"
    np.testing.assert_array_equal(coordinates.collections[1].get_offsets(), fake[:, :2].float().numpy())
    assert (coordinates.get_xlabel(), coordinates.get_ylabel()) == ("x[0]", "x[1]")
    assert fig.get_suptitle() == "step 7 (5 dimensions)"
    plt.close(fig)


@pytest.mark.parametrize("dims,size", [(1, (500, 500)), (2, (500, 500)), (5, (500, 1000))])
def test_save_samples_writes_the_picture_it_returns(tmp_path, dims, size):
    fake, real = points(*[1.0] * dims), points(*[2.0] * dims, seed=1)
    array = save_samples(tmp_path / "s" / "p.png", fake, real)
    assert array.shape == (*size, 3) and array.dtype == np.uint8
    on_disk = (matplotlib.image.imread(tmp_path / "s" / "p.png")[..., :3] * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(on_disk, array)
    assert save_samples(tmp_path / "no_real.png", fake).shape == (*size, 3)


@pytest.mark.parametrize(
    "fake,real,match",
    [
        (torch.zeros(4), None, r"shape \(N, D\) with D >= 1, got \(4,\)"),
        (
            torch.zeros(4, 2, 3),
            torch.zeros(4, 3, 3),
            r"real sequences of shape \(4, 3, 3\) do not match generated \(4, 2, 3\)",
        ),
        (torch.zeros(4, 0), None, r"got \(4, 0\)"),
        (
            torch.zeros(4, 3),
            torch.zeros(4, 2),
            r"real samples of shape \(4, 2\) do not match generated \(4, 3\)",
        ),
    ],
)
def test_bad_shapes_are_refused_before_anything_is_written(tmp_path, fake, real, match):
    with pytest.raises(ValueError, match=match):
        save_samples(tmp_path / "s" / "p.png", fake, real)
    assert not (tmp_path / "s").exists()


def test_sequence_frequencies_match_counting_and_are_what_each_panel_shows():
    texts = ["ACGA", "ACTA", "GCTA"]
    real = torch.nn.functional.one_hot(torch.tensor([["ACGT".index(c) for c in t] for t in texts]), 4)
    real = real.permute(0, 2, 1).float()  # (3, A=4, L=4)
    fake = torch.softmax(torch.randn(5, 4, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    counted = np.array([[sum(t[j] == s for t in texts) / 3 for j in range(4)] for s in "ACGT"])
    np.testing.assert_allclose(position_frequencies(real), counted, rtol=1e-12)
    argmax = fake.argmax(dim=1)
    by_hand = np.array([[float((argmax[:, j] == s).double().mean()) for j in range(4)] for s in range(4)])
    np.testing.assert_allclose(position_frequencies(fake), by_hand, rtol=1e-12)
    fig = sequence_figure(fake, real, symbols=("A", "C", "G", " "), title="step 2")
    top, bottom = fig.axes[:2]
    np.testing.assert_allclose(top.images[0].get_array(), counted, rtol=1e-12)
    np.testing.assert_allclose(bottom.images[0].get_array(), by_hand, rtol=1e-12)
    assert [t.get_text() for t in top.get_yticklabels()] == ["A", "C", "G", "' '"]
    assert (top.get_title(), bottom.get_title()) == ("real (3 sequences)", "generated (5 sequences)")
    assert fig.get_suptitle() == "step 2"
    plt.close(fig)
