"""An exponential moving average of the generator's weights, used for sampling and evaluation."""

from __future__ import annotations

import copy
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

CHECKPOINT_KEY = "ema"  # checkpoint["ema"] = {"decay", "start", "state_dict"}: read by ganlab.sample


class EMA(pl.Callback):
    """Keeps ``average``, a copy of G whose parameters follow, after generator step ``t``,

    ``avg_t = theta_t`` for ``t <= start``, then ``avg_t = decay * avg_{t-1} + (1 - decay) * theta_t``,

    i.e. ``avg_n = decay^(n-s) theta_s + sum_{t=s+1..n} (1 - decay) decay^(n-t) theta_t`` with ``s = start``
    (Karras et al. 2018, "Progressive Growing of GANs", decay 0.999; Yazici et al. 2019, "The Unusual
    Effectiveness of Averaging in GAN Training"). Buffers (batch-norm running statistics, spectral-norm
    ``u``/``v``) are *copied* from G at every step: an average of running statistics or of power-iteration
    vectors describes no network.

    The copy lives in this callback, outside the LightningModule, so that DDP never wraps it and no
    gradient or buffer broadcast touches it (Lightning #17847). The module's ``generate`` draws from it
    (``set_sampling_generator``), so the sample pictures and the evaluation show the average. It is saved
    under ``checkpoint["ema"]`` and restored on resume. Place this callback before those that sample or
    save, so that they see the average of the step they run at (``conf/train.yaml`` lists it first).
    """

    def __init__(self, decay: float = 0.999, start: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA: decay must be in [0, 1), got {decay}")
        if int(start) < 0:
            raise ValueError(f"EMA: start must be an integer >= 0 (generator steps), got {start}")
        self.decay, self.start = float(decay), int(start)
        self.average: nn.Module | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """A frozen copy of G as it starts (before a checkpoint, if any, is restored)."""
        if self.average is None:
            self.average = copy.deepcopy(pl_module.generator).requires_grad_(False).eval()

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.average.to(pl_module.device)
        pl_module.set_sampling_generator(self.average)

    @torch.no_grad()
    def update(self, generator: nn.Module, g_step: int) -> None:
        """Fold in G's weights after generator step ``g_step`` (1-based): copy them while ``g_step <=
        start``, else ``avg += (1 - decay) (theta - avg)``; copy every buffer."""
        weight = 1.0 if g_step <= self.start else 1.0 - self.decay
        for avg, theta in zip(self.average.parameters(), generator.parameters(), strict=True):
            avg.lerp_(theta, weight)
        for avg, buffer in zip(self.average.buffers(), generator.buffers(), strict=True):
            avg.copy_(buffer)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.update(pl_module.generator, pl_module.g_steps)  # each training step is one generator update

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "decay": self.decay,
            "start": self.start,
            "state_dict": self.average.state_dict(),
        }

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        """Restore the average (Lightning restores G first); a checkpoint saved without one (averaging
        switched on at resume) starts the average from the restored G."""
        state = checkpoint.get(CHECKPOINT_KEY)
        self.average.load_state_dict(state["state_dict"] if state else pl_module.generator.state_dict())
