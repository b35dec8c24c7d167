"""``metrics.csv``, the record every run writes whatever its trackers: Lightning's CSV logger, continued
across the sessions of a resumed run (:func:`ganlab.run_folder.truncate_csv` cuts it back to a checkpoint
first)."""

from __future__ import annotations

import csv

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued: Lightning's deletes it
    when the writer is created, which would wipe a resumed run's history. Counts the rows on disk so that a
    checkpoint can record how many belong to the state it saves."""

    def _check_log_dir_exists(self) -> None:
        self.rows_written = 0
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                reader = csv.DictReader(f)
                self.metrics_keys = list(reader.fieldnames or [])
                self.rows_written = sum(1 for _ in reader)

    def save(self) -> None:
        pending = len(self.metrics)
        super().save()
        self.rows_written += pending


class AppendingCSVLogger(CSVLogger):
    """``metrics.csv`` through :class:`AppendingWriter`; ``rows_written`` is the number of rows on disk."""

    @property
    def experiment(self) -> AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(log_dir=self.log_dir)
        return self._experiment

    @property
    def rows_written(self) -> int:
        return self.experiment.rows_written if self._experiment is not None else 0
