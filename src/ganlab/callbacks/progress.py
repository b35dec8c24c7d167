"""The console's progress bar of a single run: generator steps out of ``trainer.max_steps``.

Lightning's own bars count batches per epoch of an endless loader ("Epoch 0/-2 ... 60/120" for
``trainer.max_steps=60``); ganlab's ``trainer.max_steps`` counts generator updates (``ganlab.module``), so
this bar counts those.
"""

from __future__ import annotations

import sys
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks.progress import ProgressBar
from tqdm import tqdm

from ganlab.resolvers import in_multirun


class StepProgressBar(ProgressBar):
    """One bar: the module's ``g_steps`` out of ``total`` generator steps, followed by the latest values
    the module shows (``GAN.shown``: ``loss/g`` and ``loss/d`` as ``g`` and ``d``), read at each logging
    step only (``trainer.log_every_n_steps``): reading a value on a GPU waits for the device. A resumed run
    starts the bar at its checkpoint's step.

    Off in a multirun, whose console has one line per job start and end instead (``ganlab.cli``), and on
    processes other than rank 0.

    Args:
        total: the run's generator steps (``trainer.max_steps``).
        min_interval: seconds between redraws (tqdm's ``mininterval``): a redraw costs a terminal write,
            and each write is also copied by trackers that capture the console.
    """

    def __init__(self, total: int, min_interval: float = 0.5) -> None:
        super().__init__()
        self.total, self.min_interval = int(total), float(min_interval)
        self._enabled = True
        self._bar: tqdm | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._enabled and trainer.is_global_zero and not in_multirun():
            self._bar = tqdm(
                total=self.total,
                initial=pl_module.g_steps,
                desc="generator steps",
                unit="step",
                mininterval=self.min_interval,
                dynamic_ncols=True,
                file=sys.stderr,
            )

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._bar is None:
            return
        if pl_module.g_steps % trainer.log_every_n_steps == 0:  # new values (reading them: a device sync)
            shown = {key: f"{float(value):.4g}" for key, value in pl_module.shown.items()}
            self._bar.set_postfix(shown, refresh=False)
        self._bar.update(pl_module.g_steps - self._bar.n)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
