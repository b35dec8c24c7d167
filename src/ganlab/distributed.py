"""Data-parallel training of the two networks without DistributedDataParallel's wrapper.

Lightning's ``ddp`` wraps the LightningModule in ``DistributedDataParallel``, which reduces gradients in
hooks of each backward pass. A GAN step breaks its assumptions: each backward touches one network only
(the other's parameters are unused), D runs several forwards (real, fake, penalty points) before one
backward, the gradient penalty differentiates twice, and the default ``broadcast_buffers`` overwrites
batch-norm buffers between forwards (pitfalls collected in ganlab's docs: Lightning #20328, PyTorch #47562,
#175024). ganlab therefore keeps every replica of the networks unwrapped and averages each network's
gradients itself, once per update, between its backward and its optimizer step
(:func:`average_gradients`): one all-reduce per update, after every forward and backward of that update
(double backward included) is complete. Replicas start equal (:func:`broadcast_module`) and stay equal,
since every process applies the same averaged gradient with the same optimizer.

Batch norm: each process normalises its own shard and keeps its own running statistics, as in plain DDP
with ``broadcast_buffers=False``; ``trainer.sync_batchnorm=true`` converts batch norm to
``SyncBatchNorm`` (statistics over the global batch; torch runs it on GPUs only).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from pytorch_lightning.strategies import DDPStrategy
from torch import Tensor, nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process in the default process group (``(0, 1)`` without one)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def started_as_rank_zero() -> bool:
    """Whether this process is rank 0 of its job, from the environment its launcher set, before any
    process group exists: Lightning's ``ddp`` children have ``LOCAL_RANK`` > 0 (and other nodes
    ``NODE_RANK`` > 0), torchrun sets ``RANK``, SLURM ``SLURM_PROCID`` (in a job of several tasks).
    A process started by hand is rank 0."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"]) == 0
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ:
        return int(os.environ["SLURM_PROCID"]) == 0
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0


def launched_externally() -> bool:
    """Whether a launcher outside Lightning started this job's processes (torchrun, ganlab's ``gpus``
    launcher with ``devices_per_job`` > 1, or SLURM with several tasks), so that Lightning need not start
    them by rerunning the command line."""
    return "RANK" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) > 1


def external_world_size() -> int | None:
    """The number of processes a torchrun-style launcher started for this job (``WORLD_SIZE`` beside
    ``RANK``), else ``None``."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["WORLD_SIZE"])
    return None


def gather_objects(obj: object) -> list[object]:
    """``obj`` of every process, in rank order (``[obj]`` on one process): one all-gather of pickled
    objects, called on every process."""
    _, size = world()
    if size == 1:
        return [obj]
    gathered: list[object] = [None] * size
    dist.all_gather_object(gathered, obj)
    return gathered


def average_gradients(module: nn.Module, extra: Tensor | None = None) -> Tensor | None:
    """Replace the gradient of each parameter of ``module`` by its mean over the processes, in a single
    all-reduce of one flat buffer; ``extra`` (e.g. the loss) rides along and is returned averaged too.

    Parameters without a gradient are left out (every process runs the same code, so the same ones have
    none). The mean of the per-process gradients of per-process mean losses over equal shards is the
    gradient of the mean loss over the global batch. A no-op returning ``extra`` on a single process.
    """
    _, size = world()
    if size == 1:
        return extra
    tensors = [p.grad for p in module.parameters() if p.grad is not None]
    if extra is not None:
        tensors.append(extra.detach().reshape(1).to(tensors[0].dtype if tensors else extra.dtype))
    if not tensors:
        return extra
    flat = _flatten_dense_tensors(tensors)
    dist.all_reduce(flat)
    flat.div_(size)
    for tensor, reduced in zip(tensors, _unflatten_dense_tensors(flat, tensors), strict=True):
        tensor.copy_(reduced)
    return tensors[-1].reshape(()) if extra is not None else None


def mean_over_processes(values: Tensor) -> Tensor:
    """The mean of ``values`` over the processes (one all-reduce; ``values`` itself on one process)."""
    _, size = world()
    if size == 1:
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values.div_(size)


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy the parameters and buffers of rank ``src``'s replica to every process (what DDP does when it
    wraps a module), so that all replicas start equal whatever their initialisation drew."""
    if world()[1] == 1:
        return
    with torch.no_grad():
        for tensor in (*module.parameters(), *module.buffers()):
            dist.broadcast(tensor.data, src)


def replica_spread(module: nn.Module) -> float:
    """The largest difference, over all parameters of ``module``, between the values the processes hold
    (0.0 when every replica is identical, which ganlab's averaging guarantees; checked at the end of
    training and recorded in summary.json). Two all-reduces of the flattened parameters."""
    _, size = world()
    if size == 1:
        return 0.0
    with torch.no_grad():
        flat = torch.cat([p.detach().reshape(-1).double() for p in module.parameters()])
        high, low = flat.clone(), flat.clone()
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        return float((high - low).max()) if flat.numel() else 0.0


def batch_std(x: Tensor) -> Tensor:
    """The standard deviation (no correction) of all elements of the global batch, ``x`` being this
    process's shard of equal size: two all-reduces (mean, then mean squared deviation); ``x.std()`` on a
    single process."""
    _, size = world()
    if size == 1:
        return x.std(correction=0)
    moments = torch.stack([x.sum(), torch.tensor(float(x.numel()), device=x.device, dtype=x.dtype)])
    dist.all_reduce(moments)
    mean = moments[0] / moments[1]
    squares = (x - mean).pow(2).sum()
    dist.all_reduce(squares)
    return (squares / moments[1]).sqrt()


class ReplicaDDPStrategy(DDPStrategy):
    """Lightning's DDP strategy (process launch, process group, samplers, checkpoint IO on rank 0) with
    the LightningModule left unwrapped: ganlab's GAN module averages gradients itself
    (:func:`average_gradients`). ``trainer.strategy=ddp`` selects it (``ganlab.train``)."""

    strategy_name = "ganlab_ddp"

    def configure_ddp(self) -> None:
        broadcast_module(self.model)
