"""The data-module contract every dataset of ganlab follows."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler


class TensorBatches(Dataset):
    """Samples held in memory, indexed a whole batch at a time (a list of indices in, a batch out),
    so that a data loader over it makes one gather per batch instead of collating sample by sample.

    ``x`` may be ``uint8`` images in [0, 255]; they are mapped to [-1, 1] per batch, so that the
    dataset holds a quarter of the float32 memory.
    """

    def __init__(self, x: Tensor, y: Tensor) -> None:
        if len(x) != len(y):
            raise ValueError(f"TensorBatches: {len(x)} samples but {len(y)} labels")
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: list[int] | Tensor) -> tuple[Tensor, Tensor]:
        x = self.x[index]
        if x.dtype == torch.uint8:
            x = x.float().div_(127.5).sub_(1.0)
        return x, self.y[index]


class GANDataModule(pl.LightningDataModule):
    """Base class: subclasses implement :meth:`load` returning all training samples in memory.

    One training step of the GAN module takes ``batches_per_step`` discriminator batches at once (one per
    critic update, so that each update sees fresh real data), hence each loader batch holds
    ``batch_size * batches_per_step`` samples. ``batches_per_step`` is set by ganlab.train to ``n_critic``.
    Batches are drawn without replacement and the last incomplete one is dropped; the order follows the
    global torch seed (``seed=``).
    """

    shape: tuple[int, ...] = ()
    num_classes: int | None = None

    def __init__(self, batch_size: int = 64, batches_per_step: int = 1, num_workers: int = 0) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("batches_per_step", batches_per_step)):
            if int(value) < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be an integer >= 1, got {value}")
        self.batch_size = int(batch_size)
        self.batches_per_step = int(batches_per_step)
        self.num_workers = int(num_workers)
        self.train_set: TensorBatches | None = None

    def load(self) -> tuple[Tensor, Tensor]:
        """All training samples ``(x, y)``; raise a clear error when the data is missing or corrupt."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            x, y = self.load()
            if tuple(x.shape[1:]) != tuple(self.shape):
                raise ValueError(
                    f"{type(self).__name__}: loaded samples of shape {tuple(x.shape[1:])}, "
                    f"expected {self.shape}; the data files are corrupt or of another dataset"
                )
            self.train_set = TensorBatches(x, y)

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        step_batch = self.batch_size * self.batches_per_step
        if len(self.train_set) < step_batch:
            raise ValueError(
                f"{type(self).__name__}: {len(self.train_set)} training samples are fewer than one step's "
                f"batch_size * n_critic = {self.batch_size} * {self.batches_per_step} = {step_batch}"
            )
        sampler = BatchSampler(RandomSampler(self.train_set), step_batch, drop_last=True)
        return DataLoader(self.train_set, batch_size=None, sampler=sampler, num_workers=self.num_workers)

    def real_sample(self, n: int, seed: int = 0) -> Tensor:
        """``n`` training samples drawn without replacement (all of them if fewer), for plots and metrics."""
        self.setup("fit")
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self.train_set), generator=g)[:n]
        return self.train_set[idx][0]
