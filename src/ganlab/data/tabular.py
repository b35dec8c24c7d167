"""Tables of numbers (CSV or NPY) for the MLP model, standardised per column.

A GAN models the standardised columns (mean 0, std 1), so that columns in very different units weigh
alike; :class:`ColumnStats` maps generated rows back to the original units, ``x = z * std + mean``. The
statistics are written to ``tabular_stats.json`` (``stats_dir``) and saved in every checkpoint (Lightning
stores the data module's :meth:`Tabular.state_dict` under the key ``"Tabular"``, beside the data order).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganlab.data.base import GANDataModule

STATS_FILE = "tabular_stats.json"


@dataclass(frozen=True)
class ColumnStats:
    """Per-column mean and standard deviation of the training rows, and the columns' names.

    A constant column (standard deviation 0) keeps ``std = 1``: it standardises to 0 and maps back to its
    value.
    """

    columns: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, values: np.ndarray, columns: list[str]) -> ColumnStats:
        std = values.std(axis=0)
        std[std == 0] = 1.0
        return cls(tuple(columns), tuple(values.mean(axis=0).tolist()), tuple(std.tolist()))

    def _like(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.shape[-1] != len(self.columns):
            raise ValueError(
                f"ColumnStats: rows of {x.shape[-1]} values, but the table has {len(self.columns)}"
            )
        return tuple(torch.tensor(v, dtype=x.dtype, device=x.device) for v in (self.mean, self.std))

    def from_original(self, x: Tensor) -> Tensor:
        """Rows in the original units -> standardised rows, ``(x - mean) / std``."""
        mean, std = self._like(x)
        return (x - mean) / std

    def to_original(self, z: Tensor) -> Tensor:
        """Standardised rows (e.g. generator samples) -> the original units, ``z * std + mean``."""
        mean, std = self._like(z)
        return z * std + mean

    def to_dict(self) -> dict[str, list]:
        return {key: list(value) for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, state: dict[str, list]) -> ColumnStats:
        return cls(*(tuple(state[key]) for key in ("columns", "mean", "std")))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> ColumnStats:
        """Statistics written by :meth:`save`, e.g. ``ColumnStats.load(run / "tabular_stats.json")``."""
        return cls.from_dict(json.loads(Path(path).read_text()))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_csv(path: Path) -> tuple[np.ndarray, list[str]]:
    """``(rows x columns)`` float64 values and the column names: the first row's fields when any of them is
    not a number (a header), else ``"0"``, ``"1"``, ... Blank lines are skipped."""
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    if not rows:
        raise ValueError(f"Tabular: {str(path)!r} holds no data rows")
    header = not all(_is_number(cell) for cell in rows[0])
    columns = [cell.strip() for cell in rows[0]] if header else [str(i) for i in range(len(rows[0]))]
    body = rows[1:] if header else rows
    values = np.empty((len(body), len(columns)))
    for r, row in enumerate(body, start=1):
        if len(row) != len(columns):
            raise ValueError(
                f"Tabular: data row {r} of {str(path)!r} has {len(row)} fields, "
                f"but the table has {len(columns)} columns"
            )
        for c, cell in enumerate(row):
            if not _is_number(cell):
                raise ValueError(
                    f"Tabular: column {columns[c]!r} of {str(path)!r} holds the non-numeric value {cell!r} "
                    f"(data row {r}); only numeric columns can be modelled: drop or encode that column"
                )
            values[r - 1, c] = float(cell)
    return values, columns


def read_npy(path: Path) -> tuple[np.ndarray, list[str]]:
    """A 2-D numeric array saved with ``numpy.save``; its columns are named ``"0"``, ``"1"``, ..."""
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"Tabular: cannot read {str(path)!r} as a numeric NPY array ({exc})") from exc
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(
            f"Tabular: {str(path)!r} holds a {array.ndim}-D {array.dtype} array; a table is a 2-D numeric "
            "array (rows x columns); save one column as shape (rows, 1)"
        )
    return array.astype(np.float64), [str(i) for i in range(array.shape[1])]


READERS = {".csv": read_csv, ".npy": read_npy}


class Tabular(GANDataModule):
    """Rows of a CSV or NPY table at ``path``, each column standardised with the statistics of all rows
    (:class:`ColumnStats`, in :attr:`stats` once loaded). ``y`` is 0. ``stats_dir``: the folder that
    receives ``tabular_stats.json`` when the data is loaded (``None``: none is written)."""

    def __init__(self, path: str, stats_dir: str | None = None, **loader) -> None:
        super().__init__(**loader)
        self.path = Path(path).expanduser()
        if self.path.suffix.lower() not in READERS:
            raise ValueError(f"Tabular: data.path={str(self.path)!r} must be one of {sorted(READERS)}")
        self.stats_dir = Path(stats_dir) if stats_dir is not None else None
        self.stats: ColumnStats | None = None

    def load(self) -> tuple[Tensor, Tensor]:
        if not self.path.is_file():
            raise FileNotFoundError(f"Tabular: data.path={str(self.path)!r} is not a file")
        values, columns = READERS[self.path.suffix.lower()](self.path)
        if len(values) == 0:
            raise ValueError(f"Tabular: {str(self.path)!r} holds no data rows")
        bad = ~np.isfinite(values)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(
                f"Tabular: column {columns[c]!r} of {str(self.path)!r} holds {values[r, c]} in data row "
                f"{r + 1}; fill or drop the missing and infinite values"
            )
        self.stats = ColumnStats.of(values, columns)
        self.shape = (len(columns),)
        if self.stats_dir is not None:
            self.stats.save(self.stats_dir / STATS_FILE)
        x = self.stats.from_original(torch.from_numpy(values)).float()
        return x, torch.zeros(len(x), dtype=torch.long)

    def to_original(self, z: Tensor) -> Tensor:
        """Generated (standardised) rows in the table's original units."""
        return self._loaded_stats().to_original(z)

    def from_original(self, x: Tensor) -> Tensor:
        """Rows in the table's units, standardised as the training data is."""
        return self._loaded_stats().from_original(x)

    def state_dict(self) -> dict[str, Any]:
        """The data order's state (:class:`GANDataModule`: what an exact resume continues from) and the
        column statistics; Lightning saves them in each checkpoint."""
        return {**super().state_dict(), "column_stats": self._loaded_stats().to_dict()}

    def _loaded_stats(self) -> ColumnStats:
        self.setup("fit")
        return self.stats
