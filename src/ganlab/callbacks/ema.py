"""An exponential moving average of the generator's weights, used for sampling and evaluation."""

from __future__ import annotations

import copy
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ganlab.nets import run

CHECKPOINT_KEY = "ema"  # checkpoint["ema"] = {"decay", "start", "state_dict"}: read by ganlab.sample
STANDING_SEED = 0x5EED  # the standing statistics' noise at generator step t: seed STANDING_SEED + t


class EMA(pl.Callback):
    """Keeps ``average``, a copy of G whose parameters follow, after generator step ``t``,

    ``avg_t = theta_t`` for ``t <= start``, then ``avg_t = decay * avg_{t-1} + (1 - decay) * theta_t``,

    i.e. ``avg_n = decay^(n-s) theta_s + sum_{t=s+1..n} (1 - decay) decay^(n-t) theta_t`` with ``s = start``
    (Karras et al. 2018, "Progressive Growing of GANs", decay 0.999; Yazici et al. 2019, "The Unusual
    Effectiveness of Averaging in GAN Training"). Buffers (batch-norm running statistics, spectral-norm
    ``u``/``v``) are *copied* from G at every step: an average of running statistics or of power-iteration
    vectors describes no network.

    Batch norm's running statistics describe G's activations, not the average's: in eval mode the average
    would normalise its layers with the means and variances of another network (on grid25 with decay
    0.999 that alone took the high-quality share from 58% to 24%). So, before the average is used (a sample
    picture, an evaluation, a checkpoint), its batch-norm layers get *standing statistics* (Brock et al.
    2019, "Large Scale GAN Training", appendix C.1): the cumulative mean and (unbiased) variance of each
    layer's inputs over ``standing_batches`` batches of the training batch size drawn through the average,
    its batch-norm layers normalising by batch statistics meanwhile and every other layer in eval mode (no
    dropout, no power iteration). The batches' noise (and labels) come from a generator seeded with
    ``STANDING_SEED + g_step``, never from the training streams, so a resumed run computes the same
    statistics. ``standing_batches=0`` keeps G's statistics.

    The copy lives in this callback, outside the LightningModule, so that DDP never wraps it and no
    gradient or buffer broadcast touches it (Lightning #17847). The module's ``generate`` draws from it
    (``set_sampling_generator``), so the sample pictures and the evaluation show the average. It is saved
    under ``checkpoint["ema"]`` and restored on resume. Place this callback before those that sample or
    save, so that they see the average of the step they run at (``conf/train.yaml`` lists it first).
    """

    def __init__(self, decay: float = 0.999, start: int = 0, standing_batches: int = 16) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA: decay must be in [0, 1), got {decay}")
        if int(start) < 0:
            raise ValueError(f"EMA: start must be an integer >= 0 (generator steps), got {start}")
        if int(standing_batches) < 0:
            raise ValueError(
                f"EMA: standing_batches must be an integer >= 0 (0 keeps G's batch-norm statistics), got "
                f"{standing_batches}"
            )
        self.decay, self.start, self.standing_batches = float(decay), int(start), int(standing_batches)
        self.average: nn.Module | None = None
        self.g_step = 0  # the generator step the average is at
        self.stale = False  # batch-norm statistics not yet recomputed for the average of ``g_step``
        self.batch_size = 0
        self.z_dim = 0
        self.num_classes: int | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """A frozen copy of G as it starts (before a checkpoint, if any, is restored)."""
        if self.average is None:
            self.average = copy.deepcopy(pl_module.generator).requires_grad_(False).eval()

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.average.to(pl_module.device)
        self.batch_size = int(trainer.datamodule.batch_size)
        self.z_dim, self.num_classes = int(pl_module.z_dim), pl_module.num_classes
        pl_module.set_sampling_generator(self.average, prepare=self.standing_statistics)

    @torch.no_grad()
    def update(self, generator: nn.Module, g_step: int) -> None:
        """Fold in G's weights after generator step ``g_step`` (1-based): copy them while ``g_step <=
        start``, else ``avg += (1 - decay) (theta - avg)``; copy every buffer."""
        weight = 1.0 if g_step <= self.start else 1.0 - self.decay
        for avg, theta in zip(self.average.parameters(), generator.parameters(), strict=True):
            avg.lerp_(theta, weight)
        for avg, buffer in zip(self.average.buffers(), generator.buffers(), strict=True):
            avg.copy_(buffer)
        self.g_step, self.stale = g_step, True

    @torch.no_grad()
    def standing_statistics(self) -> None:
        """Recompute the average's batch-norm statistics for its current weights (see the class), once
        per generator step: a no-op when they are current, without batch norm or with
        ``standing_batches=0``."""
        norms = [m for m in self.average.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
        if not (self.stale and norms and self.standing_batches):
            self.stale = False
            return
        device = next(self.average.parameters()).device
        noise = torch.Generator(device).manual_seed(STANDING_SEED + self.g_step)
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches, each weighted alike
            m.train()
        try:
            for _ in range(self.standing_batches):
                z = torch.randn(self.batch_size, self.z_dim, generator=noise, device=device)
                labels = None
                if self.num_classes is not None:
                    labels = torch.randint(
                        0, self.num_classes, (self.batch_size,), generator=noise, device=device
                    )
                run(self.average, z, labels)
        finally:
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum
            self.average.eval()
        self.stale = False

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.update(pl_module.generator, pl_module.g_steps)  # each training step is one generator update

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        """The average with its standing statistics (what ``ganlab.sample`` draws from)."""
        self.standing_statistics()
        checkpoint[CHECKPOINT_KEY] = {
            "decay": self.decay,
            "start": self.start,
            "state_dict": self.average.state_dict(),
        }

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        """Restore the average (Lightning restores G first); a checkpoint saved without one (averaging
        switched on at resume) starts the average from the restored G. Its standing statistics are
        recomputed before the next use."""
        state = checkpoint.get(CHECKPOINT_KEY)
        self.average.load_state_dict(state["state_dict"] if state else pl_module.generator.state_dict())
        # recomputed before the next use, from the restored weights: the statistics an uninterrupted run has
        # (and correct ones where an older checkpoint saved G's)
        self.g_step, self.stale = int(checkpoint["ganlab"]["g_steps"]), True
