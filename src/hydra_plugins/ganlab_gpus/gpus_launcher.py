"""``hydra/launcher=gpus``: the jobs of a sweep at once on one machine, each in its own fresh process with
its own device group (conf/hydra/launcher/gpus.yaml documents the options).

Hydra multiruns otherwise give every job every GPU, and Lightning's ``devices=1`` then means cuda:0 for all
of them (facebookresearch/hydra #1331, #2757). Here each job is a *spawned* process (no CUDA state or
thread pool inherited from the launcher) whose ``CUDA_VISIBLE_DEVICES`` is set before it imports torch, so
an unmodified run config trains on "its" GPU(s). There are as many jobs running as free device groups; the
rest wait in order, and a job's devices go to the next one when it ends. Without GPUs, the groups are CPU
core groups. Each job returns Hydra's ``JobReturn`` (a sweeper and ganlab's ``MultirunOutcome`` work as
with any launcher); a job that fails, or whose process dies, is reported failed and the others go on.
``<sweep>/gpus_launcher.jsonl`` records each job's start, end, devices and exit code.
"""

import json
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import cloudpickle
from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from hydra_plugins.ganlab_gpus.devices import Slot, check_request, machine_gpus, slots

log = logging.getLogger(__name__)


@dataclass
class GpusLauncherConf:
    _target_: str = "hydra_plugins.ganlab_gpus.gpus_launcher.GpusLauncher"
    devices_per_job: int = 1  # GPUs each job sees (set trainer.devices to the same number)
    cpus_per_job: Any = None  # CPU threads per job; null: 1 without GPUs, else the cores shared equally


ConfigStore.instance().store(group="hydra/launcher", name="ganlab_gpus", node=GpusLauncherConf)


def gpus_per_job(wanted: int) -> int:
    """``${ganlab.gpus_per_job:N}`` in a launcher config (ray, cluster_local): N GPUs per job where this
    machine has GPUs, else 0, so that the same config trains on CPU (a Ray task asking for a GPU that
    does not exist would wait forever)."""
    return int(wanted) if machine_gpus() else 0


OmegaConf.register_new_resolver("ganlab.gpus_per_job", gpus_per_job, replace=True)


def _execute(
    idx: int,
    overrides: Sequence[str],
    hydra_context: HydraContext,
    config: DictConfig,
    task_function: TaskFunction,
    singleton_state: dict[Any, Any],
) -> JobReturn:
    """One job, in its own process: Hydra's globals, the job's config, then ``run_job`` (as joblib's)."""
    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(sweep_config)
    return run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


def _child(env: dict[str, str], payload: bytes, conn: Connection) -> None:
    """Entry point of a job's process: the slot's variables first (before torch is imported by
    unpickling the job), then the job; its ``JobReturn`` goes back through ``conn``."""
    os.environ.update(env)
    result = cloudpickle.loads(payload)()
    try:
        data = cloudpickle.dumps(result)
    except Exception as exc:  # e.g. an exception in the JobReturn that cannot be pickled
        data = cloudpickle.dumps(_failed(result.overrides, f"the job's result cannot be sent back: {exc}"))
    conn.send_bytes(data)


def _failed(overrides: Sequence[str] | None, message: str) -> JobReturn:
    ret = JobReturn(overrides=list(overrides or []), status=JobStatus.FAILED)
    ret.return_value = RuntimeError(message)
    return ret


@dataclass
class _Running:
    idx: int
    overrides: Sequence[str]
    process: Any
    slot: Slot
    started: float


class GpusLauncher(Launcher):
    def __init__(self, devices_per_job: int = 1, cpus_per_job: int | None = None) -> None:
        self.devices_per_job, self.cpus_per_job = devices_per_job, cpus_per_job
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Check the request against the machine before anything is written (exit 2 with one paragraph,
        as ganlab does for every invalid config), and plan the slots."""
        gpus = machine_gpus()
        problem = check_request(self.devices_per_job, self.cpus_per_job, gpus)
        if problem:
            print(f"ganlab: invalid config: {problem}", file=sys.stderr)
            sys.exit(2)
        self.slots = slots(self.devices_per_job, self.cpus_per_job, gpus)
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        where = [f"GPU {','.join(s.gpus)}" if s.gpus else f"{s.threads} CPU thread(s)" for s in self.slots]
        log.info(f"gpus launcher: {len(job_overrides)} jobs, {len(where)} at once ({', '.join(where)})")
        queue = deque((initial_job_idx + i, o) for i, o in enumerate(job_overrides))
        return _Scheduler(self, sweep_dir / "gpus_launcher.jsonl").run(queue)


class _Scheduler:
    """Hands free slots to waiting jobs until every job has returned."""

    def __init__(self, launcher: GpusLauncher, record: Path) -> None:
        self.launcher, self.record = launcher, record
        self.context = get_context("spawn")
        self.free: list[Slot] = list(launcher.slots)
        self.running: dict[Connection, _Running] = {}
        self.results: dict[int, JobReturn] = {}
        self.interrupted: int | None = None  # exit code of a job interrupted by a signal: stop the sweep

    def run(self, queue: deque[tuple[int, Sequence[str]]]) -> list[JobReturn]:
        order = [idx for idx, _ in queue]
        try:
            while queue or self.running:
                while queue and self.free and self.interrupted is None:
                    self.start(*queue.popleft(), self.free.pop(0))
                if not self.running:
                    break
                for conn in wait(list(self.running)):
                    self.finish(conn)
        except BaseException:  # Ctrl-C or a signal to the launcher: the jobs save their checkpoints
            for job in self.running.values():
                job.process.terminate()
            for job in self.running.values():
                job.process.join()
            raise
        if self.interrupted is not None:
            raise SystemExit(self.interrupted)
        return [self.results[idx] for idx in order]

    def start(self, idx: int, overrides: Sequence[str], slot: Slot) -> None:
        la = self.launcher
        log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))} ({slot.environment()})")
        job = partial(
            _execute, idx, overrides, la.hydra_context, la.config, la.task_function, Singleton.get_state()
        )
        receive, send = self.context.Pipe(duplex=False)
        process = self.context.Process(target=_child, args=(slot.environment(), cloudpickle.dumps(job), send))
        process.start()
        send.close()  # the child holds the only writer: its end reads as EOF when it dies
        self.running[receive] = _Running(idx, overrides, process, slot, time.time())

    def finish(self, conn: Connection) -> None:
        job = self.running.pop(conn)
        try:
            result = cloudpickle.loads(conn.recv_bytes())
        except EOFError:
            result = None
        conn.close()
        job.process.join()
        ended, code = time.time(), job.process.exitcode
        self.free.append(job.slot)
        entry = {
            "job": job.idx,
            "gpus": list(job.slot.gpus),
            "threads": job.slot.threads,
            "start": job.started,
            "end": ended,
            "exitcode": code,
            "pid": job.process.pid,
        }
        with open(self.record, "a") as f:
            f.write(json.dumps(entry) + "\n")
        if result is None:
            if code is not None and (code >= 128 or code < 0 and -code in (signal.SIGTERM, signal.SIGINT)):
                self.interrupted = code if code > 0 else 128 - code
            message = f"job #{job.idx} ended with exit code {code} before returning (see its train.log)"
            result = _failed(job.overrides, message)
        self.results[job.idx] = result
