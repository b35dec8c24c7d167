"""The devices a machine offers to the jobs of a sweep, split into the groups that jobs get.

Light imports only: Hydra imports every module of ``hydra_plugins`` at start-up, and a job process must
get its ``CUDA_VISIBLE_DEVICES`` before anything initialises CUDA. The GPUs are counted once per sweep
(never in a step loop), by torch only where a GPU driver is installed and no variable lists them."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FAKE_GPUS = "GANLAB_FAKE_GPUS"  # e.g. "0,1": devices the launcher hands out instead of probing (tests)
# The device files through which CUDA or ROCm reach a GPU: NVIDIA's driver, WSL2's GPU paravirtualisation,
# NVIDIA Jetson's integrated GPU, AMD ROCm's (torch.cuda on HIP). Without any of them (a CPU machine or
# container) torch sees no GPU, so there is nothing to count.
GPU_DRIVER_FILES = ("/dev/nvidiactl", "/dev/dxg", "/dev/nvhost-ctrl-gpu", "/dev/kfd")


def known_gpus() -> list[str] | None:
    """The GPU ids jobs may use, when known without torch: those of ``$GANLAB_FAKE_GPUS`` when set, else
    those of an existing ``CUDA_VISIBLE_DEVICES`` (a sweep started with ``CUDA_VISIBLE_DEVICES=2,3`` uses
    only 2 and 3), else none where no GPU driver is installed; ``None`` when torch must count them."""
    for variable in (FAKE_GPUS, "CUDA_VISIBLE_DEVICES"):
        listed = os.environ.get(variable)
        if listed is not None:
            return [d.strip() for d in listed.split(",") if d.strip()]
    return None if any(os.path.exists(f) for f in GPU_DRIVER_FILES) else []


def machine_gpus() -> list[str]:
    """The GPU ids jobs may use: :func:`known_gpus`, else every CUDA device torch counts (through NVML:
    CUDA itself is not initialised). An empty list means no GPU."""
    known = known_gpus()
    if known is not None:
        return known
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def machine_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. a SLURM or container limit)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Slot:
    """What one running job gets: its GPUs (empty on a machine without GPUs), the number of processes it
    runs as (one per device: ``devices_per_job``) and the CPU threads of each of them."""

    gpus: tuple[str, ...]
    threads: int
    processes: int = 1

    def environment(self) -> dict[str, str]:
        """The variables set in each of the job's processes before it imports torch: CUDA sees only the
        slot's GPUs (Lightning's ``devices=1`` is then "its" GPU, not cuda:0 of the machine), and the
        OpenMP/MKL pools use the slot's cores instead of every core of the machine."""
        env = {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        return env

    def process_environment(self, rank: int, port: int, run_id: str) -> dict[str, str]:
        """:meth:`environment` plus, for a job of several processes, what ``torchrun --nproc-per-node``
        sets for process ``rank`` of one node: Lightning then detects processes created outside it
        (``TorchElasticEnvironment``, chosen first, also inside a SLURM allocation, by
        ``TORCHELASTIC_RUN_ID``; it reads ``RANK``, ``LOCAL_RANK``, ``GROUP_RANK``, ``WORLD_SIZE`` and
        checks ``WORLD_SIZE`` against ``trainer.devices``), joins the process group at
        ``MASTER_ADDR:MASTER_PORT``, and does not start processes itself. ganlab's own checks read
        ``RANK`` (:func:`ganlab.distributed.launched_externally`) and ``NODE_RANK``/``LOCAL_RANK``."""
        env = self.environment()
        if self.processes == 1:
            return env
        return {
            **env,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "WORLD_SIZE": str(self.processes),
            "LOCAL_WORLD_SIZE": str(self.processes),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "GROUP_RANK": "0",
            "NODE_RANK": "0",
            "TORCHELASTIC_RUN_ID": run_id,
        }


def check_request(devices_per_job: int, cpus_per_job: int | None, gpus: list[str]) -> str | None:
    """``None`` when a job can get what it asks for on this machine, else the paragraph that says why
    not, naming the value and the valid ones."""
    if not isinstance(devices_per_job, int) or isinstance(devices_per_job, bool) or devices_per_job < 1:
        return (
            f"hydra.launcher.devices_per_job={devices_per_job!r}: Valid: an integer >= 1 (devices, one "
            "process each, per job)."
        )
    if gpus and devices_per_job > len(gpus):
        return (
            f"hydra.launcher.devices_per_job={devices_per_job}, but this machine offers {len(gpus)} GPU(s) "
            f"({','.join(gpus)}). Valid: 1 to {len(gpus)}."
        )
    cores = machine_cores()
    if not gpus and devices_per_job > cores:
        return (
            f"hydra.launcher.devices_per_job={devices_per_job}, but this machine has no GPU and {cores} CPU "
            f"core(s), one per process of a job. Valid: 1 to {cores}."
        )
    if cpus_per_job is not None and (not isinstance(cpus_per_job, int) or cpus_per_job < 1):
        return (
            f"hydra.launcher.cpus_per_job={cpus_per_job!r}: Valid: an integer >= 1 (CPU cores per job, "
            f"shared by its processes), or null (the machine's {cores} cores shared among the jobs running "
            "at once)."
        )
    return None


def check_trainer(trainer: Mapping[str, Any], devices_per_job: int, gpus: list[str]) -> str | None:
    """``None`` when the run config trains on exactly the ``devices_per_job`` devices the launcher starts
    a job's processes for, else the paragraph naming the values and the valid ones. Each job sees its
    group of GPUs only, so ``trainer.devices=auto`` (or -1) means the whole group on GPUs, one process on
    CPU (Lightning's reading)."""
    from ganlab.config import requested_devices  # light: no torch

    devices, nodes = trainer.get("devices", "auto"), trainer.get("num_nodes", 1) or 1
    if nodes != 1:
        return (
            f"trainer.num_nodes={nodes} with hydra/launcher=gpus, which runs every job on this machine. "
            "Valid: trainer.num_nodes=1, or hydra/launcher=slurm for jobs over several nodes."
        )
    try:
        requested = requested_devices(devices)
    except (TypeError, ValueError):
        return None  # an invalid trainer.devices: the job's own check names it
    if requested is None:
        on_gpus = bool(gpus) and str(trainer.get("accelerator", "auto")) in ("auto", "gpu", "cuda")
        processes = devices_per_job if on_gpus else 1
    else:
        processes = len(requested) if isinstance(requested, list) else requested
    if processes == devices_per_job:
        return None
    return (
        f"trainer.devices={devices!r} with hydra.launcher.devices_per_job={devices_per_job}: the gpus "
        f"launcher starts each job as {devices_per_job} process(es), one per device, but the trainer asks "
        f"for {processes}. Valid: trainer.devices={devices_per_job} (with trainer.strategy=ddp when above "
        f"1), or hydra.launcher.devices_per_job={processes}."
    )


def slots(devices_per_job: int, cpus_per_job: int | None, gpus: list[str]) -> list[Slot]:
    """One slot per job that may run at once, each job being ``devices_per_job`` processes whose threads
    share the job's ``cpus_per_job`` cores (at least one thread each). With GPUs: consecutive groups of
    ``devices_per_job`` GPUs (GPUs left over by an uneven split stay idle), the cores (null) shared
    equally among the groups. Without GPUs: one slot per ``cpus_per_job`` cores (null: one core per
    process; small GAN jobs run fastest as many single-threaded processes), as the joblib launcher with
    one process per core would."""
    cores = machine_cores()
    if gpus:
        groups = [tuple(gpus[i : i + devices_per_job]) for i in range(0, len(gpus), devices_per_job)]
        groups = [g for g in groups if len(g) == devices_per_job]
        per_job = cpus_per_job or max(1, cores // len(groups))
        return [Slot(g, max(1, per_job // devices_per_job), devices_per_job) for g in groups]
    per_job = cpus_per_job or devices_per_job
    threads = max(1, per_job // devices_per_job)
    return [Slot((), threads, devices_per_job) for _ in range(max(1, cores // per_job))]
