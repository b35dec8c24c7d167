"""Random draws for a batch that do not depend on how the batch is split across processes.

Under data parallelism each of ``W`` processes trains on its own ``n`` samples of a global batch of
``W * n``. :class:`BatchNoise` draws every batch-shaped random tensor (latent codes, labels of generated
samples, penalty interpolation weights, augmentation parameters, instance noise) as the *global* tensor,
from a generator seeded identically on every process, and keeps this process's rows
``rank * n ... (rank + 1) * n - 1``. Hence

- the processes draw different values (their rows of one draw), and
- a run on ``W`` processes with per-process batch ``n`` draws exactly the values that one process with
  batch ``W * n`` draws: with networks that score samples independently (no batch norm, or SyncBatchNorm),
  the two runs are the same computation up to floating-point summation order.

The price is that each process generates ``W`` times the random numbers it uses, which is small next to
a forward pass (a ``(W n, z_dim)`` normal draw against a generator's layers).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor

Device = torch.device | str | None


class BatchNoise:
    """Batch-shaped draws from ``generator`` (``None``: torch's global RNG), of which this process, rank
    ``rank`` of ``world_size``, keeps its rows. Each method takes the local batch size ``n`` first and
    returns a tensor of shape ``(n, *shape)``."""

    def __init__(self, generator: torch.Generator | None = None, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= int(rank) < int(world_size):
            raise ValueError(f"BatchNoise: rank must be in [0, world_size={world_size}), got {rank}")
        self.generator, self.rank, self.world_size = generator, int(rank), int(world_size)

    def _device(self, device: Device) -> Device:
        return self.generator.device if self.generator is not None else device

    def _mine(self, full: Tensor, n: int, device: Device) -> Tensor:
        rows = full[self.rank * n : (self.rank + 1) * n]
        return rows.to(device) if device is not None else rows

    def _draw(
        self, draw: Callable[..., Tensor], n: int, shape: tuple[int, ...], device: Device, **kw: Any
    ) -> Tensor:
        full = draw(
            (self.world_size * n, *shape), generator=self.generator, device=self._device(device), **kw
        )
        return self._mine(full, n, device)

    def randn(self, n: int, *shape: int, device: Device = None, dtype: torch.dtype | None = None) -> Tensor:
        """Standard normal draws of shape ``(n, *shape)``."""
        return self._draw(torch.randn, n, shape, device, dtype=dtype)

    def rand(self, n: int, *shape: int, device: Device = None, dtype: torch.dtype | None = None) -> Tensor:
        """``U[0, 1)`` draws of shape ``(n, *shape)``."""
        return self._draw(torch.rand, n, shape, device, dtype=dtype)

    def randint(self, low: int, high: int, n: int, *shape: int, device: Device = None) -> Tensor:
        """Integers drawn uniformly from ``[low, high)``, of shape ``(n, *shape)``."""
        return self._draw(partial(torch.randint, low, high), n, shape, device)

    def __repr__(self) -> str:
        return f"BatchNoise(rank={self.rank}, world_size={self.world_size})"


def as_batch_noise(noise: BatchNoise | torch.Generator | None) -> BatchNoise:
    """``noise`` itself, or a single-process :class:`BatchNoise` over a generator (or the global RNG)."""
    return noise if isinstance(noise, BatchNoise) else BatchNoise(noise)
