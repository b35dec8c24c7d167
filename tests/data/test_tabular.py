"""Tables: per-column standardisation, the way back to the original units, errors that name the
offending column, and tables of one or several columns trained to the end with their sample pictures."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

import ganlab.plotting
from fakedata import make_table
from ganlab.data.tabular import STATS_FILE, ColumnStats, Tabular
from ganlab.sample import main as sample_main
from ganlab.train import train


def _loaded(path, **kwargs) -> Tabular:
    dm = Tabular(path=str(path), batch_size=4, **kwargs)
    dm.setup()
    return dm


def test_columns_are_standardised_with_their_own_statistics(tmp_path):
    values = make_table(tmp_path / "t.csv", n=500)  # means 100, -3, 0; stds 20, 0.01, 1
    dm = _loaded(tmp_path / "t.csv")
    assert dm.shape == (3,) and dm.stats.columns == ("income", "temperature", "score")
    assert dm.stats.mean == pytest.approx(values.mean(axis=0).tolist(), rel=1e-12)
    assert dm.stats.std == pytest.approx(values.std(axis=0).tolist(), rel=1e-12)
    x = dm.train_set.x
    assert x.dtype == torch.float32 and x.shape == (500, 3)
    assert x.mean(0).tolist() == pytest.approx([0.0] * 3, abs=1e-5)
    assert x.std(0, correction=0).tolist() == pytest.approx([1.0] * 3, rel=1e-5)
    torch.testing.assert_close(dm.to_original(x.double()), torch.from_numpy(values), rtol=1e-6, atol=1e-6)


def test_standard_normal_samples_map_back_to_the_columns_scale(tmp_path):
    """What a perfect generator of the standardised data produces has, mapped back, each column's mean and
    standard deviation in the original units."""
    values = make_table(tmp_path / "t.csv", n=500)
    dm = _loaded(tmp_path / "t.csv")
    back = dm.to_original(
        torch.randn(200_000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    )
    assert back.mean(0).tolist() == pytest.approx(
        values.mean(axis=0).tolist(), abs=0.01 * values.std(axis=0).max()
    )
    for got, want in zip(back.std(0).tolist(), values.std(axis=0), strict=True):
        assert got == pytest.approx(want, rel=0.01)
    torch.testing.assert_close(dm.from_original(back), dm.stats.from_original(back))


def test_constant_column_standardises_to_zero_and_maps_back(tmp_path):
    np.save(tmp_path / "t.npy", np.column_stack([np.arange(10.0), np.full(10, 7.5)]))
    dm = _loaded(tmp_path / "t.npy")
    assert dm.stats.columns == ("0", "1") and dm.stats.std[1] == 1.0
    assert (dm.train_set.x[:, 1] == 0).all()
    assert (dm.to_original(torch.zeros(4, 2))[:, 1] == 7.5).all()


def test_headerless_csv_names_columns_by_index(tmp_path):
    (tmp_path / "t.csv").write_text("1,2\n3,4\n\n5,6.5\n")  # blank lines skipped
    dm = _loaded(tmp_path / "t.csv")
    assert dm.stats.columns == ("0", "1") and dm.stats.mean == pytest.approx([3.0, 4.1666666666666667])
    assert len(dm.train_set) == 3


def test_statistics_are_written_as_json_and_reload(tmp_path):
    make_table(tmp_path / "t.csv")
    dm = _loaded(tmp_path / "t.csv", stats_dir=str(tmp_path / "run"))
    assert ColumnStats.load(tmp_path / "run" / STATS_FILE) == dm.stats
    assert ColumnStats.from_dict(dm.state_dict()["column_stats"]) == dm.stats


def test_training_run_writes_the_statistics_and_checkpoints_them(make_cfg, tmp_path):
    make_table(tmp_path / "t.csv")
    cfg = make_cfg("data=tabular", f"data.path={tmp_path / 't.csv'}", "trainer.max_steps=2")
    assert train(cfg)["status"] == "completed"
    stats = ColumnStats.load(f"{cfg.paths.output_dir}/{STATS_FILE}")
    assert stats.columns == ("income", "temperature", "score")
    ckpt = torch.load(f"{cfg.paths.output_dir}/checkpoints/last.ckpt", weights_only=True)
    assert ColumnStats.from_dict(ckpt["Tabular"]["column_stats"]) == stats


def test_a_resumed_tabular_run_continues_the_data_order(make_cfg, tmp_path):
    """The checkpoint holds the data order with the statistics: 2 steps, then a resume to 4, trains on the
    batches of steps 3 and 4 of an uninterrupted run, not on its first two again."""
    make_table(tmp_path / "t.csv")
    args = ["data=tabular", f"data.path={tmp_path / 't.csv'}"]
    train(make_cfg(*args, "trainer.max_steps=4", run_dir=tmp_path / "full"))
    train(make_cfg(*args, "trainer.max_steps=2", run_dir=tmp_path / "split"))
    first = torch.load(tmp_path / "split" / "checkpoints" / "last.ckpt", weights_only=True)["Tabular"]
    assert first["batches_done"] == 2 and first["shuffle_seed"] is not None
    assert train(make_cfg(*args, "trainer.max_steps=4", run_dir=tmp_path / "split"))["g_steps"] == 4
    full, split = (
        torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)
        for run in ("full", "split")
    )
    assert full["Tabular"] == split["Tabular"]
    for key, value in full["state_dict"].items():
        assert torch.equal(split["state_dict"][key], value), key


def record_figures(monkeypatch) -> list[dict]:
    """What each sample picture drawn from now on plots: its samples, axis labels and histogram bars."""
    drawn: list[dict] = []
    draw = ganlab.plotting.vector_figure

    def recording(fake, real=None, title=""):
        fig = draw(fake, real, title)
        bars = [[(b.get_x(), b.get_x() + b.get_width()) for b in c] for ax in fig.axes for c in ax.containers]
        labels = [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes]
        drawn.append({"fake": fake, "real": real, "labels": labels, "bars": bars})
        return fig

    monkeypatch.setattr(ganlab.plotting, "vector_figure", recording)
    return drawn


def check_picture(picture: dict, columns: int) -> None:
    """A histogram of 1-D samples whose shared bins span both samples; two labelled projections of more."""
    fake, real = picture["fake"], picture["real"]
    assert fake.shape[1] == real.shape[1] == columns
    if columns == 1:
        assert picture["labels"] == [("x[0]", "density")]
        real_bars, fake_bars = picture["bars"]
        assert real_bars == fake_bars
        assert real_bars[0][0] == pytest.approx(min(fake.min(), real.min()).item(), rel=1e-6)
        assert real_bars[-1][1] == pytest.approx(max(fake.max(), real.max()).item(), rel=1e-6)
    else:
        (pc1, pc2), coordinates = picture["labels"]
        assert pc1.startswith("PC1 of real data (") and pc2.startswith("PC2 of real data (")
        assert coordinates == ("x[0]", "x[1]") and picture["bars"] == []


@pytest.mark.parametrize("columns,width", [(1, 500), (5, 1000)])
def test_tables_of_one_or_five_columns_train_to_the_end_with_a_picture(
    make_cfg, tmp_path, monkeypatch, columns, width
):
    """Seen on main: a one-column table trained, then crashed drawing its final picture (status failed,
    no final checkpoint). Also the picture of ``ganlab.sample ... out=FILE.png`` from its checkpoint."""
    values = np.random.default_rng(0).normal(size=(64, columns)) * np.arange(1, columns + 1)
    np.savetxt(
        tmp_path / "t.csv",
        values,
        delimiter=",",
        header=",".join(f"c{i}" for i in range(columns)),
        comments="",
    )
    drawn = record_figures(monkeypatch)
    cfg = make_cfg("data=tabular", f"data.path={tmp_path / 't.csv'}", "trainer.max_steps=3")
    summary = train(cfg)
    run = Path(cfg.paths.output_dir)
    assert summary["status"] == "completed", summary["error"]
    assert summary["samples"] == "samples/final.png"
    assert matplotlib.image.imread(run / "samples" / "final.png").shape[:2] == (500, width)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["ganlab"]["g_steps"] == 3
    (final,) = drawn
    assert final["real"].shape[0] == 64  # every row (fewer than n_points)
    check_picture(final, columns)

    out = tmp_path / "sampled.png"
    assert sample_main([f"ckpt={run / 'checkpoints' / 'last.ckpt'}", "n=300", f"out={out}"]) == 0
    assert matplotlib.image.imread(out).shape[:2] == (500, width)
    assert drawn[-1]["fake"].shape[0] == 300
    check_picture(drawn[-1], columns)


@pytest.mark.parametrize(
    "text,match",
    [
        ("a,b,c\n1,2,3\n4,x,6\n", "column 'b' .* non-numeric value 'x' \\(data row 2\\)"),
        ("a,b\n1,\n", "column 'b' .* non-numeric value ''"),
        ("a,b\n1,2\n3\n", "data row 2 .* has 1 fields, but the table has 2 columns"),
        ("a,b\n1,nan\n", "column 'b' .* holds nan in data row 1"),
        ("a,b\n", "holds no data rows"),
        ("\n\n", "holds no data rows"),
    ],
)
def test_bad_csv_errors_name_the_column_and_row(tmp_path, text, match):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(ValueError, match=match):
        _loaded(tmp_path / "t.csv")


def test_bad_files_are_refused_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a file"):
        _loaded(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="must be one of"):
        Tabular(path=str(tmp_path / "t.parquet"))
    np.save(tmp_path / "v.npy", np.arange(5.0))
    with pytest.raises(ValueError, match="1-D float64 array; a table is a 2-D numeric"):
        _loaded(tmp_path / "v.npy")
