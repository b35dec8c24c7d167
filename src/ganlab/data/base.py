"""The data-module contract every dataset of ganlab follows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

if TYPE_CHECKING:
    from ganlab.data.vocabulary import Vocabulary


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

    def to(self, device: torch.device) -> TensorBatches:
        """Move the samples and labels to ``device`` (a no-op where they already are)."""
        self.x, self.y = self.x.to(device), self.y.to(device)
        return self

    def __len__(self) -> int:
        return len(self.x)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample as a batch holds it."""
        return tuple(self.x.shape[1:])

    def __getitem__(self, index: Tensor) -> tuple[Tensor, Tensor]:
        x = self.x[index]
        if x.dtype == torch.uint8:
            x = x.float().div_(127.5).sub_(1.0)
        return x, self.y[index]


class InProcessBatches:
    """The batches of ``dataset`` in the order of ``sampler``, gathered in the training process: what a
    ``DataLoader`` without workers does, without its per-batch machinery (fetcher, collation of the
    already whole batch; about 0.1 ms per batch on a CPU, over 1% of a small model's step)."""

    def __init__(self, dataset: TensorBatches, sampler: EpochBatchSampler) -> None:
        self.dataset, self.sampler = dataset, sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for index in self.sampler:
            yield self.dataset[index]


class EpochBatchSampler(Sampler[Tensor]):
    """Batches of ``batch_size`` indices (a tensor each) drawn without replacement (the last incomplete
    batch dropped), in an order that depends on ``(seed, epoch)`` only, and able to start part-way through
    an epoch.

    Why: an exact resume must see the same batches as an uninterrupted run. ``RandomSampler`` draws its
    order from the global RNG at the start of each epoch, so the order after a resume depends on whatever
    else drew from that RNG; here epoch ``e`` is always the permutation of ``torch.randperm`` seeded by
    ``(seed, e)``, and ``start`` batches already consumed are skipped.

    Each ``iter()`` starts at the position :meth:`position` gives, the number of batches consumed so far:
    with a callable ``start``, what it returns (the data module passes its count of batches *trained on*,
    so that an iteration starts at exactly the next batch to train on whenever the loop calling it decides
    an epoch ended or drops a prefetched batch: Lightning, resumed from a checkpoint saved at the very end
    of an epoch, ends its next "epoch" after one batch and asks for a new iterator); with an integer
    ``start``, that number plus the batches this sampler has handed out.

    Several processes (``world_size`` > 1): ``batch_size`` is one process's batch; each batch of the
    permutation is the *global* batch of ``world_size * batch_size`` indices, seen as ``chunks`` slices
    (one per critic update) each split into ``world_size`` equal parts, and rank ``rank`` gets its part of
    every slice. So its ``k``-th critic update trains on its rows of the ``k``-th slice, exactly the
    shard of the batch a single process with the global batch uses for that update.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        start: int | Callable[[], int] = 0,
        rank: int = 0,
        world_size: int = 1,
        chunks: int = 1,
    ) -> None:
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self.rank, self.world_size, self.chunks = int(rank), int(world_size), int(chunks)
        if self.batch_size % self.chunks:
            raise ValueError(
                f"EpochBatchSampler: batch_size={batch_size} does not split into {chunks} chunks"
            )
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"EpochBatchSampler: rank must be in [0, {world_size}), got {rank}")
        if n < self.global_batch:
            raise ValueError(
                f"EpochBatchSampler: {n} samples are fewer than one global batch of {self.global_batch} "
                f"({world_size} process(es) x {batch_size})"
            )
        self._start = start
        self._handed_out = 0  # batches yielded by this sampler

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        return self.n // self.global_batch

    def order(self, epoch: int) -> Tensor:
        """The permutation of epoch ``epoch``: a function of ``(seed, epoch)`` alone."""
        mixed = np.random.SeedSequence([self.seed, epoch]).generate_state(1, dtype=np.uint64)[0]
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(int(mixed)))

    def position(self) -> int:
        """Batches consumed so far, over all epochs: where the next iteration starts."""
        if callable(self._start):
            return int(self._start())
        return int(self._start) + self._handed_out

    def __iter__(self) -> Iterator[Tensor]:
        epoch, skip = divmod(self.position(), len(self))
        perm = self.order(epoch)
        for b in range(skip, len(self)):
            self._handed_out += 1
            batch = perm[b * self.global_batch : (b + 1) * self.global_batch]
            # (chunks, world, rows) -> this rank's rows of every chunk (the whole batch on one process)
            yield batch.view(self.chunks, self.world_size, -1)[:, self.rank].reshape(-1)


class GANDataModule(pl.LightningDataModule):
    """Base class: subclasses implement :meth:`load` returning all training samples in memory.

    One training step of the GAN module takes ``batches_per_step`` discriminator batches at once (one per
    critic update, so that each update sees fresh real data), hence each loader batch holds
    ``batch_size * batches_per_step`` samples. ``batches_per_step`` is set by ganlab.train to ``n_critic``.
    Batches are drawn without replacement and the last incomplete one is dropped, in an order fixed by
    ``shuffle_seed`` and the epoch (:class:`EpochBatchSampler`; ganlab.train passes ``seed=``; ``None``
    draws one from the global torch RNG). ``batch_size`` is per process: training on ``W`` processes, each
    takes its shard of a global batch of ``W * batch_size`` per critic update. The module counts the
    batches handed to training steps and saves that count and the seed in checkpoints
    (:meth:`state_dict`), so that a resumed run continues with the very batch an uninterrupted run would
    have seen next.

    ``in_memory``: once a trainer is attached, the whole training set is moved to its device (the GPU when
    training there) and batches are gathered there in the training process (``num_workers`` is then 0):
    for small sets this saves the worker processes and the per-batch host-to-device copy.
    :meth:`real_sample` still returns CPU tensors.

    What the metrics need to know of the data, declared here rather than guessed from the class name:
    ``n_modes`` (the number of modes of a mixture, for the mode metrics; ``None``: data without modes) and
    ``feature_net`` (the name of the data's own feature network for ``metrics=domain``,
    ``ganlab/assets/feature_net_<name>.pt``; ``None``: it has none) and ``vocabulary`` (the symbols of
    sequence data, :class:`ganlab.data.vocabulary.Vocabulary`, by which samples decode to text for the
    sequence metrics and the sample files; ``None``: the data is not sequences).
    """

    shape: tuple[int, ...] = ()
    num_classes: int | None = None
    n_modes: int | None = None
    feature_net: str | None = None
    vocabulary: Vocabulary | None = None

    def __init__(
        self,
        batch_size: int = 64,
        batches_per_step: int = 1,
        num_workers: int = 0,
        shuffle_seed: int | None = None,
        in_memory: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("batches_per_step", batches_per_step)):
            if int(value) < 1:
                raise ValueError(f"{type(self).__name__}: {name} must be an integer >= 1, got {value}")
        self.batch_size = int(batch_size)
        self.batches_per_step = int(batches_per_step)
        self.num_workers = int(num_workers)
        self.shuffle_seed = None if shuffle_seed is None else int(shuffle_seed)
        self.batches_done = 0  # batches handed to training steps, over all epochs and resumed sessions
        self.in_memory = bool(in_memory)
        self.train_set: TensorBatches | None = None

    def load(self) -> tuple[Tensor, Tensor]:
        """All training samples ``(x, y)``; raise a clear error when the data is missing or corrupt."""
        raise NotImplementedError

    def dataset(self, x: Tensor, y: Tensor) -> TensorBatches:
        """The in-memory dataset of what :meth:`load` returned (a subclass may store samples compactly,
        e.g. sequences as symbol indices, and expand them per batch)."""
        return TensorBatches(x, y)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            train_set = self.dataset(*self.load())
            if train_set.sample_shape != tuple(self.shape):
                raise ValueError(
                    f"{type(self).__name__}: loaded samples of shape {train_set.sample_shape}, "
                    f"expected {self.shape}; the data files are corrupt or of another dataset"
                )
            self.train_set = train_set
        if self.in_memory and self.trainer is not None:
            self.train_set.to(self.trainer.strategy.root_device)

    def train_dataloader(self) -> DataLoader | InProcessBatches:
        self.setup("fit")
        step_batch = self.batch_size * self.batches_per_step
        if len(self.train_set) < step_batch:
            raise ValueError(
                f"{type(self).__name__}: {len(self.train_set)} training samples are fewer than one step's "
                f"batch_size * n_critic = {self.batch_size} * {self.batches_per_step} = {step_batch}"
            )
        if self.shuffle_seed is None:
            self.shuffle_seed = int(torch.randint(2**62, ()).item())
        seed = self.shuffle_seed
        rank, size = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        sampler = EpochBatchSampler(
            len(self.train_set),
            step_batch,
            seed,
            start=self.trained_batches,
            rank=rank,
            world_size=size,
            chunks=self.batches_per_step,
        )
        if self.in_memory or self.num_workers == 0:  # in memory: the samples already lie on the device
            return InProcessBatches(self.train_set, sampler)
        # own generator: the loader's base seed for workers must not draw from the global RNG either
        rng = torch.Generator().manual_seed(seed)
        return DataLoader(
            self.train_set, batch_size=None, sampler=sampler, num_workers=self.num_workers, generator=rng
        )

    def trained_batches(self) -> int:
        """Batches handed to training steps so far: where the next iteration of the data starts."""
        return self.batches_done

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Count the batches that reach a training step (not those a loader prefetched): the position
        an exact resume starts from."""
        if self.trainer is not None and self.trainer.training:
            self.batches_done += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The data order's state, saved by Lightning in every checkpoint."""
        return {"shuffle_seed": self.shuffle_seed, "batches_done": self.batches_done}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restored before the loader is built, so that :meth:`train_dataloader` starts at the next batch."""
        self.shuffle_seed = state_dict.get("shuffle_seed", self.shuffle_seed)
        self.batches_done = int(state_dict.get("batches_done", 0))

    def real_sample(self, n: int, seed: int = 0) -> Tensor:
        """``n`` training samples drawn without replacement (all of them if fewer), for plots and metrics."""
        self.setup("fit")
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self.train_set), generator=g)[:n]
        return self.train_set[idx][0].cpu()
