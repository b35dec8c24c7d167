"""The processes that trained a run and where each trained: ``summary.json``'s ``processes``."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from ganlab.distributed import gather_objects
from ganlab.run_folder import describe_device


class ProcessRecord(pl.Callback):
    """One entry per process of the run, in rank order: ``{"rank", "host", "pid", "device"}`` (``device``
    as in summary.json's ``device``: ``cuda:<i> (<name>)``, ``<i>`` among the process's visible devices,
    or ``cpu``). Gathered once, when training is set up (one all-gather on several processes), and
    contributed to summary.json by rank 0 (:meth:`summary_fields`)."""

    def __init__(self) -> None:
        self.processes: list[Any] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        mine = {
            "rank": trainer.global_rank,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "device": describe_device(trainer.strategy.root_device),
        }
        self.processes = gather_objects(mine)

    def summary_fields(self, run_dir: Path) -> dict[str, list[Any]]:
        return {"processes": self.processes} if self.processes else {}
