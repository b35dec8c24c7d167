"""Fake jobs for the scheduler of ganlab's ``gpus`` launcher (tests/test_launchers.py): each process of a
job acts as told, without Hydra or training, and imports torch only to report what it found. A module of
its own, so that a spawned job process imports only this."""

from __future__ import annotations

import json
import os
import time
from functools import partial
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus


def fake_job(idx: int, overrides: list[str], rank: int) -> partial:
    """Process ``rank`` of a fake job does what ``overrides[rank]`` says (the scheduler's ``job``)."""
    return partial(act, overrides[rank], overrides, rank)


def act(action: str, overrides: list[str], rank: int) -> JobReturn:
    """``hang`` (as a process waiting in a collective for one that died), ``slow`` (3 s, then complete),
    ``exit3`` (a process that dies),
    ``raise`` (a job that raised, as Hydra's run_job returns it), or complete, returning its rank; a
    ``report=<folder>`` entry has it write there what it found (its rank as the environment and Lightning
    say, torch's threads and a sum over them, CUDA's state) as ``<rank>.json``."""
    if action == "hang":
        time.sleep(600)
    if action == "slow":  # e.g. rank 0 uploading to a tracker after the other ranks ended
        time.sleep(3)
    if action == "exit3":
        os._exit(3)
    ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
    if action == "raise":
        ret.status, ret.return_value = JobStatus.FAILED, ValueError("rank 1 broke")
        return ret
    for folder in (o.removeprefix("report=") for o in overrides if o.startswith("report=")):
        Path(folder, f"{rank}.json").write_text(json.dumps(findings()))
    ret.return_value = rank
    return ret


def findings() -> dict:
    """What a job process found: its rank as the environment and Lightning say, torch's threads and a
    sum computed on them, whether CUDA was initialised, its visible devices."""
    import torch
    from lightning_fabric.utilities.rank_zero import rank_zero_only

    return {
        "RANK": os.environ.get("RANK"),
        "lightning_rank": rank_zero_only.rank,
        "torch_threads": torch.get_num_threads(),
        "parallel_sum": float(torch.ones(4_000_000).sum()),  # a parallel region on those threads
        "cuda_initialized": torch.cuda.is_initialized(),
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
