"""Tables: per-column standardisation, the way back to the original units, and errors that name the
offending column."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fakedata import make_table
from ganlab.data.tabular import STATS_FILE, ColumnStats, Tabular
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
    assert ColumnStats.from_dict(dm.state_dict()) == dm.stats


def test_training_run_writes_the_statistics_and_checkpoints_them(make_cfg, tmp_path):
    make_table(tmp_path / "t.csv")
    cfg = make_cfg("data=tabular", f"data.path={tmp_path / 't.csv'}", "trainer.max_steps=2")
    assert train(cfg)["status"] == "completed"
    stats = ColumnStats.load(f"{cfg.paths.output_dir}/{STATS_FILE}")
    assert stats.columns == ("income", "temperature", "score")
    ckpt = torch.load(f"{cfg.paths.output_dir}/checkpoints/last.ckpt", weights_only=True)
    assert ColumnStats.from_dict(ckpt["Tabular"]) == stats


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
