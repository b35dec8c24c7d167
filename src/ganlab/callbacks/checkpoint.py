"""Atomic checkpoints counted in generator steps."""

from __future__ import annotations

import os
from pathlib import Path

import pytorch_lightning as pl


class Checkpoint(pl.Callback):
    """Saves ``<dirpath>/last.ckpt`` every ``every`` generator steps and at the end of training.

    Lightning's ModelCheckpoint counts ``global_step`` (all optimizer steps); this counts generator
    updates. The file is written to a temporary name, flushed to disk and renamed over the previous one,
    so a process killed at any moment leaves the last good checkpoint intact.
    """

    def __init__(self, dirpath: str | Path, every: int = 1000) -> None:
        if int(every) < 0:
            raise ValueError(f"Checkpoint: every must be >= 0 (0: only at the end), got {every}")
        self.dirpath = Path(dirpath)
        self.every = int(every)

    @property
    def last(self) -> Path:
        return self.dirpath / "last.ckpt"

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.every and pl_module.g_steps % self.every == 0:
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        self.save(trainer)

    def save(self, trainer: pl.Trainer) -> None:
        tmp = self.dirpath / f".last.ckpt.tmp{os.getpid()}"
        trainer.save_checkpoint(tmp)  # every rank calls it; only rank 0 writes
        if trainer.is_global_zero:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.last)
            dir_fd = os.open(self.dirpath, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        trainer.strategy.barrier("ganlab.checkpoint")
