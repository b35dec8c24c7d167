"""``hydra/launcher=gpus``: the jobs of a sweep at once on one machine, each in its own processes with its
own device group (conf/hydra/launcher/gpus.yaml documents the options).

Hydra multiruns otherwise give every job every GPU, and Lightning's ``devices=1`` then means cuda:0 for all
of them (facebookresearch/hydra #1331, #2757). Here each job gets new processes whose
``CUDA_VISIBLE_DEVICES`` is set before CUDA initialises, so an unmodified run config trains on "its"
GPU(s). There are as many jobs running as free device groups; the rest wait in order, and a job's devices
go to the next one when it ends. Without GPUs, the groups are CPU core groups.

A job of ``devices_per_job=k > 1`` devices is started as k processes, as ``torchrun --nproc-per-node=k``
would start them (:meth:`Slot.process_environment`): Lightning joins them into one DDP run instead of
starting processes itself. Only rank 0's ``JobReturn`` counts; the job fails when any of its processes
fails. Once one of them has failed, or rank 0 has ended, the others get :data:`GRACE_S` seconds to end
too (they meet in a collective at every step, so they end together) before they are killed: a process
that died never leaves its siblings waiting in a collective, and the sweep goes on; a rank 0 still
closing its trackers after the others ended is not hurried.

How job processes start (``start_method``): ``forkserver`` (default) forks each process from a server
process that imported :data:`PRELOAD` (torch, Lightning, ganlab: seconds of CPU per process otherwise)
but never initialised CUDA nor started a thread pool; ``spawn`` starts a fresh interpreter per process.
Forking after ``import torch`` is still in time for ``CUDA_VISIBLE_DEVICES``: ``torch.cuda`` is lazily
initialised (torch/cuda/__init__.py), and it is the CUDA runtime's initialisation (``cuInit``, first
reached through ``cudaGetDeviceCount`` in ``torch.cuda.is_available()`` or any CUDA call) that reads the
variable; ``torch.cuda.device_count()`` before initialisation asks NVML, honours the variable at each call
and caches nothing (since torch 2.3: pytorch/pytorch #122815). Importing :data:`PRELOAD` calls neither
(tests/test_launchers.py checks it: an import that counted devices, as ``torch._dynamo``'s once did,
pytorch/pytorch #122085, would show there). What the server fixed at import from the launcher's environment is
set again in each process (:func:`_adopt`): torch's intra-op threads (``torch.set_num_threads``; GNU
OpenMP read ``OMP_NUM_THREADS`` when torch loaded it) and Lightning's rank for ``rank_zero_only``.

Each job returns Hydra's ``JobReturn`` (a sweeper and ganlab's ``MultirunOutcome`` work as with any
launcher); a job that fails, or whose process dies, is reported failed and the others go on.
``<sweep>/gpus_launcher.jsonl`` records each job's start, end, devices, and its processes' ids, exit codes
and CPU seconds.
"""

import json
import logging
import multiprocessing.forkserver
import os
import resource
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import cloudpickle
from hydra._internal.callbacks import Callbacks
from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from hydra_plugins.ganlab_gpus.devices import (
    Slot,
    check_request,
    check_trainer,
    known_gpus,
    machine_gpus,
    slots,
)

log = logging.getLogger(__name__)

START_METHODS = ("forkserver", "spawn")
# What the forkserver imports once: what a job imports, but for ganlab.train itself, which each process
# re-executes as ``__mp_main__`` when the sweep runs as ``python -m ganlab.train`` (runpy warns when that
# module is already imported); its own lines are quick once these are imported.
PRELOAD = [
    "torch",
    "pytorch_lightning",
    "ganlab.build",
    "ganlab.resume",
    "ganlab.callbacks.pruning",
    "ganlab.cli",
    "ganlab.forkserver",  # last: the server ends without tearing these modules down
]
GRACE_S = 30.0  # seconds a job's processes get to end after one failed or rank 0 ended, before SIGKILL

Job = Callable[[], JobReturn]


@dataclass
class GpusLauncherConf:
    _target_: str = "hydra_plugins.ganlab_gpus.gpus_launcher.GpusLauncher"
    devices_per_job: int = 1  # devices (one process each) per job: set trainer.devices to the same number
    cpus_per_job: Any = None  # CPU cores per job; null: 1 per process without GPUs, else shared equally
    start_method: str = "forkserver"  # forkserver (fork of a process that imported torch) or spawn


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
    rank: int,
) -> JobReturn:
    """Process ``rank`` of one job: Hydra's globals, the job's config, then ``run_job`` (as joblib's). A
    process of rank > 0 logs to ``<job name>_rank<r>.log`` and calls no Hydra callback: those report the
    job, which rank 0 does."""
    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
        if rank > 0:
            sweep_config.hydra.job.name = f"{sweep_config.hydra.job.name}_rank{rank}"
    if rank > 0:
        hydra_context = HydraContext(config_loader=hydra_context.config_loader, callbacks=Callbacks())
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(sweep_config)
    return run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


def _adopt(env: dict[str, str], threads: int, rank: int) -> None:
    """Make this new process the slot's: its variables, then what a module imported before them (by the
    forkserver, with the launcher's environment) fixed at import: torch's intra-op threads and
    Lightning's ``rank_zero_only.rank``. A spawned process has imported neither: they read the variables."""
    os.environ.update(env)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    rank_zero = sys.modules.get("lightning_fabric.utilities.rank_zero")
    if rank_zero is not None:
        rank_zero.rank_zero_only.rank = rank


def _child(env: dict[str, str], threads: int, rank: int, payload: bytes, conn: Connection) -> None:
    """Entry point of a job's process: the slot's variables first (:func:`_adopt`), then the job; its
    ``JobReturn`` and the CPU seconds the process used go back through ``conn``."""
    _adopt(env, threads, rank)
    result = cloudpickle.loads(payload)()
    usage = resource.getrusage(resource.RUSAGE_SELF)  # this process's own: not the server's imports
    cpu = round(usage.ru_utime + usage.ru_stime, 2)
    try:
        data = cloudpickle.dumps((result, cpu))
    except Exception as exc:  # e.g. an exception in the JobReturn that cannot be pickled
        failed = _failed(result.overrides, f"the job's result cannot be sent back: {exc}")
        data = cloudpickle.dumps((failed, cpu))
    conn.send_bytes(data)


def _failed(overrides: Sequence[str] | None, message: str) -> JobReturn:
    ret = JobReturn(overrides=list(overrides or []), status=JobStatus.FAILED)
    ret.return_value = RuntimeError(message)
    return ret


def _failure(result: JobReturn | None, code: int | None) -> str | None:
    """Why one process of a job failed (``None`` when it returned a completed job and exited 0)."""
    if result is None:
        return f"ended with exit code {code} before returning"
    if result.status == JobStatus.FAILED:
        try:
            _ = result.return_value
        except Exception as exc:
            return f"failed: {type(exc).__name__}: {exc}"
    return None if code == 0 else f"exited with code {code}"


def _context(start_method: str) -> Any:
    """The multiprocessing context of the job processes (with ``forkserver``: the server's imports set;
    it starts with the first process)."""
    context = get_context(start_method)
    if start_method == "forkserver":
        context.set_forkserver_preload(PRELOAD)
    return context


def _send_gpus(conn: Connection) -> None:
    conn.send(machine_gpus())


def _probe_gpus(context: Any) -> list[str]:
    """:func:`machine_gpus` counted by torch in a process of ``context``, so that this process never
    imports torch: with ``forkserver``, a fork of the server, whose imports the jobs need next anyway."""
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_send_gpus, args=(send,))
    process.start()
    send.close()
    try:
        return receive.recv()
    finally:
        process.join()


class GpusLauncher(Launcher):
    def __init__(
        self, devices_per_job: int = 1, cpus_per_job: int | None = None, start_method: str = "forkserver"
    ) -> None:
        self.devices_per_job, self.cpus_per_job = devices_per_job, cpus_per_job
        self.start_method = start_method
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Check the request against the machine and the run config before anything is written (exit 2
        with one paragraph, as ganlab does for every invalid config), and plan the slots. The forkserver
        starts its imports here at the latest, while Hydra prepares the sweep folder."""
        if self.start_method not in START_METHODS:
            valid = ", ".join(START_METHODS)
            self._refuse(f"hydra.launcher.start_method={self.start_method!r}. Valid: {valid}.")
        self.context = _context(self.start_method)
        gpus = known_gpus()
        if gpus is None:
            gpus = _probe_gpus(self.context)
        problem = check_request(self.devices_per_job, self.cpus_per_job, gpus)
        if problem is None and "trainer" in config:
            problem = check_trainer(config.trainer, self.devices_per_job, gpus)
        if problem:
            self._refuse(problem)
        if self.start_method == "forkserver":
            multiprocessing.forkserver.ensure_running()
        self.slots = slots(self.devices_per_job, self.cpus_per_job, gpus)
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    @staticmethod
    def _refuse(problem: str) -> None:
        print(f"ganlab: invalid config: {problem}", file=sys.stderr)
        sys.exit(2)

    def job(self, idx: int, overrides: Sequence[str], rank: int) -> Job:
        """Process ``rank`` of job ``idx``, as a callable to send to that process."""
        return partial(
            _execute,
            idx,
            overrides,
            self.hydra_context,
            self.config,
            self.task_function,
            Singleton.get_state(),
            rank,
        )

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        where = [f"GPU {','.join(s.gpus)}" if s.gpus else f"{s.threads} CPU thread(s)" for s in self.slots]
        log.info(f"gpus launcher: {len(job_overrides)} jobs, {len(where)} at once ({', '.join(where)})")
        queue = deque((initial_job_idx + i, o) for i, o in enumerate(job_overrides))
        scheduler = _Scheduler(self.slots, self.context, self.job, sweep_dir / "gpus_launcher.jsonl")
        return scheduler.run(queue)


@dataclass
class _Process:
    """One process of a running job, and what it returned once it ended."""

    rank: int
    process: Any
    conn: Connection
    ended: bool = False
    killed: bool = False
    ended_at: float = 0.0
    result: JobReturn | None = None
    cpu_s: float | None = None  # CPU seconds the process used (None: it died before returning)


@dataclass
class _Running:
    idx: int
    overrides: Sequence[str]
    slot: Slot
    port: int
    started: float  # when its processes had started
    processes: list[_Process]
    deadline: float | None = None  # set when a process failed or rank 0 ended: the others are killed after it


class _Scheduler:
    """Hands free slots to waiting jobs until every job has returned. ``job(idx, overrides, rank)`` is
    what process ``rank`` of job ``idx`` runs."""

    def __init__(
        self,
        slots: Sequence[Slot],
        context: Any,
        job: Callable[[int, Sequence[str], int], Job],
        record: Path,
        grace_s: float = GRACE_S,
    ) -> None:
        self.context, self.job, self.record, self.grace_s = context, job, record, grace_s
        self.free: list[Slot] = list(slots)
        self.running: list[_Running] = []
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
                self.wait()
        except BaseException:  # Ctrl-C or a signal to the launcher: the jobs save their checkpoints
            processes = [p.process for job in self.running for p in job.processes if not p.ended]
            for process in processes:
                process.terminate()
            for process in processes:
                process.join()
            raise
        if self.interrupted is not None:
            raise SystemExit(self.interrupted)
        return [self.results[idx] for idx in order]

    def free_port(self) -> int:
        """A TCP port free on this machine and not given to another running job (its rank 0 binds it)."""
        taken = {job.port for job in self.running}
        while True:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            if port not in taken:
                return port

    def start(self, idx: int, overrides: Sequence[str], slot: Slot) -> None:
        port = self.free_port() if slot.processes > 1 else 0
        log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))} ({slot.environment()})")
        processes = []
        for rank in range(slot.processes):
            env = slot.process_environment(rank, port, f"ganlab_job_{idx}_{port}")
            payload = cloudpickle.dumps(self.job(idx, overrides, rank))
            receive, send = self.context.Pipe(duplex=False)
            process = self.context.Process(target=_child, args=(env, slot.threads, rank, payload, send))
            process.start()  # the first start waits for the forkserver's imports
            send.close()  # the child holds the only writer: its end reads as EOF when it dies
            processes.append(_Process(rank, process, receive))
        self.running.append(_Running(idx, overrides, slot, port, time.time(), processes))

    def wait(self) -> None:
        """Until a process ends or a job's grace period is over; then collect what ended, kill the
        processes whose grace period is over, and finish the jobs of which every process has ended."""
        ends = {p.conn: (job, p) for job in self.running for p in job.processes if not p.ended}
        deadlines = [job.deadline for job in self.running if job.deadline is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        for conn in wait(list(ends), timeout):
            self.collect(*ends[conn])
        now = time.monotonic()
        for job in list(self.running):
            if job.deadline is not None and now >= job.deadline:
                for process in (p for p in job.processes if not p.ended):
                    process.killed = True
                    process.process.kill()  # a process blocked in a collective runs no signal handler
                    self.collect(job, process)
            if all(p.ended for p in job.processes):
                self.finish(job)

    def collect(self, job: _Running, process: _Process) -> None:
        try:
            process.result, process.cpu_s = cloudpickle.loads(process.conn.recv_bytes())
        except EOFError:
            process.result = None
        process.conn.close()
        process.process.join()
        process.ended, process.ended_at = True, time.monotonic()
        failed = _failure(process.result, process.process.exitcode) is not None
        if job.deadline is None and (process.rank == 0 or failed):
            job.deadline = time.monotonic() + self.grace_s

    def finish(self, job: _Running) -> None:
        self.running.remove(job)
        self.free.append(job.slot)
        codes = [p.process.exitcode for p in job.processes]
        entry = {
            "job": job.idx,
            "gpus": list(job.slot.gpus),
            "threads": job.slot.threads,
            "processes": job.slot.processes,
            "start": job.started,
            "end": time.time(),
            "pids": [p.process.pid for p in job.processes],
            "exitcodes": codes,
            "cpu_s": [p.cpu_s for p in job.processes],
        }
        with open(self.record, "a") as f:
            f.write(json.dumps(entry) + "\n")
        self.results[job.idx] = self.outcome(job)

    def outcome(self, job: _Running) -> JobReturn:
        """Rank 0's ``JobReturn`` when every process of the job completed, or when rank 0's own job failed;
        else a failed one naming the process that failed first, and how. A rank 0 stopped by a signal (not
        by this launcher) stops the sweep."""
        zero = job.processes[0]
        code = zero.process.exitcode
        if zero.result is None and not zero.killed and code is not None:
            if code >= 128 or (code < 0 and -code in (signal.SIGTERM, signal.SIGINT)):
                self.interrupted = code if code > 0 else 128 - code
        failures = [(p, _failure(p.result, p.process.exitcode)) for p in job.processes]
        failures = sorted(((p, why) for p, why in failures if why is not None), key=lambda f: f[0].ended_at)
        if zero.result is not None and (zero.result.status == JobStatus.FAILED or not failures):
            return zero.result
        process, why = failures[0]
        if process.killed:
            why = f"was killed {self.grace_s:g} s after another process of the job had ended"
        where = f"job #{job.idx}" if len(job.processes) == 1 else f"process {process.rank} of job #{job.idx}"
        return _failed(job.overrides, f"{where} {why} (see its train*.log)")
