"""The devices a machine offers to the jobs of a sweep, split into the groups that jobs get.

Light imports only: Hydra imports every module of ``hydra_plugins`` at start-up, and a job process must
get its ``CUDA_VISIBLE_DEVICES`` before anything initialises CUDA. The probe runs once per sweep, in the
launching process (never in a step loop)."""

import os
from dataclasses import dataclass

FAKE_GPUS = "GANLAB_FAKE_GPUS"  # e.g. "0,1": devices the launcher hands out instead of probing (tests)


def machine_gpus() -> list[str]:
    """The GPU ids jobs may use: those of ``$GANLAB_FAKE_GPUS`` when set, else those of an existing
    ``CUDA_VISIBLE_DEVICES`` (a sweep started with ``CUDA_VISIBLE_DEVICES=2,3`` uses only 2 and 3), else
    every CUDA device torch counts. An empty list means no GPU."""
    for variable in (FAKE_GPUS, "CUDA_VISIBLE_DEVICES"):
        listed = os.environ.get(variable)
        if listed is not None:
            return [d.strip() for d in listed.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def machine_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. a SLURM or container limit)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Slot:
    """What one running job gets: its GPUs (empty on a machine without GPUs) and its CPU threads."""

    gpus: tuple[str, ...]
    threads: int

    def environment(self) -> dict[str, str]:
        """The variables set in the job's process before it imports torch: CUDA sees only the slot's
        GPUs (Lightning's ``devices=1`` is then "its" GPU, not cuda:0 of the machine), and the
        OpenMP/MKL pools use the slot's cores instead of every core of the machine."""
        env = {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        return env


def check_request(devices_per_job: int, cpus_per_job: int | None, gpus: list[str]) -> str | None:
    """``None`` when a job can get what it asks for on this machine, else the paragraph that says why
    not, naming the value and the valid ones."""
    if not isinstance(devices_per_job, int) or devices_per_job < 1:
        return f"hydra.launcher.devices_per_job={devices_per_job!r}: Valid: an integer >= 1 (GPUs per job)."
    if gpus and devices_per_job > len(gpus):
        return (
            f"hydra.launcher.devices_per_job={devices_per_job}, but this machine offers {len(gpus)} GPU(s) "
            f"({','.join(gpus)}). Valid: 1 to {len(gpus)}."
        )
    if cpus_per_job is not None and (not isinstance(cpus_per_job, int) or cpus_per_job < 1):
        return (
            f"hydra.launcher.cpus_per_job={cpus_per_job!r}: Valid: an integer >= 1 (CPU threads per job), or "
            f"null (the machine's {machine_cores()} cores shared among the jobs running at once)."
        )
    return None


def slots(devices_per_job: int, cpus_per_job: int | None, gpus: list[str]) -> list[Slot]:
    """One slot per job that may run at once. With GPUs: consecutive groups of ``devices_per_job`` GPUs
    (GPUs left over by an uneven split stay idle), each with ``cpus_per_job`` threads (null: the cores
    shared equally). Without GPUs: one slot per ``cpus_per_job`` cores (null: 1; small GAN jobs run fastest
    as many single-threaded processes), as the joblib launcher with one process per core would."""
    cores = machine_cores()
    if gpus:
        groups = [tuple(gpus[i : i + devices_per_job]) for i in range(0, len(gpus), devices_per_job)]
        groups = [g for g in groups if len(g) == devices_per_job]
        threads = cpus_per_job or max(1, cores // len(groups))
        return [Slot(g, threads) for g in groups]
    threads = cpus_per_job or 1
    return [Slot((), threads) for _ in range(max(1, cores // threads))]
