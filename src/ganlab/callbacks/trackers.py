"""Sending images to whichever trackers the run has."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger


def log_image(trainer: pl.Trainer, key: str, image: np.ndarray, step: int) -> None:
    """Log an ``(H, W, 3)`` uint8 image to every tracker that takes images (wandb, TensorBoard)."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[image], step=step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, global_step=step, dataformats="HWC")
