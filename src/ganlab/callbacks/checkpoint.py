"""Atomic checkpoints counted in generator steps; a preemption signal saves one and stops the run."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

log = logging.getLogger("ganlab")


class CheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable or not written by ganlab."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The ganlab checkpoint at ``path``, loaded on the CPU with ``weights_only=True`` (plain tensors and
    containers: a checkpoint cannot run code); :class:`CheckpointError` naming the path when it is missing,
    corrupt or truncated, or not ganlab's (no ``ganlab`` and ``state_dict`` entries)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"no such checkpoint file: {str(path)!r} does not exist. Valid: the path of a ganlab checkpoint "
            "(a run's checkpoints/last.ckpt)."
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"the checkpoint {str(path)!r} cannot be read ({type(exc).__name__}: {exc}); it is corrupt or "
            "truncated. Valid: an intact ganlab checkpoint."
        ) from exc
    if not isinstance(ckpt, dict) or "ganlab" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(
            f"{str(path)!r} is not a ganlab checkpoint (no 'ganlab' and 'state_dict' entries). Valid: a "
            "checkpoint written by ganlab.train."
        )
    return ckpt


class Preempted(SystemExit):
    """A preemption signal (SIGTERM, SIGUSR1) stopped the run after a checkpoint was saved.

    A ``SystemExit`` with code ``128 + signal`` (the shell's convention for a process ended by a signal),
    so that a scheduler sees the job did not finish, a multirun stops instead of starting its next job,
    and no ``except Exception`` on the way swallows it.
    """

    def __init__(self, signum: int, g_step: int) -> None:
        super().__init__(128 + signum)
        self.signum, self.g_step = signum, g_step

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        return f"{name} at generator step {self.g_step}: checkpoint saved, run stopped"


def _last_step(trainer: pl.Trainer) -> bool:
    """Whether the step that just ended is the last of ``trainer.max_steps`` (the same on every process)."""
    return 0 <= trainer.max_steps <= trainer.global_step


class Checkpoint(pl.Callback):
    """Saves ``<dirpath>/last.ckpt`` every ``every`` generator steps and at the end of training, and on
    a preemption signal.

    The final step is saved at that step's end, like a periodic checkpoint, so that it is on disk before
    any callback's end-of-training work (the last sample picture, the final evaluation): a failure there
    fails the run but cannot cost the checkpoint. It is saved again at the end of training, after that
    work, so that it counts the rows that work added to ``metrics.csv`` (a resume keeps them). Place this
    callback after those that log at a step's end (``conf/train.yaml`` lists it last), so that their rows
    of a step are counted in that step's checkpoint. Lightning moves only subclasses of its own
    ``Checkpoint`` to the end of the list; this class is not one, so the config's order holds.

    This counts generator updates (the module's ``g_steps``). The file is written to a temporary name, flushed
    to disk (``fsync``) and renamed over the previous one (``os.replace`` is atomic within a file system), and
    the folder is synced; so a process killed at any moment leaves the last good checkpoint intact. Temporary
    files of killed processes are removed when training starts. Loggers are flushed before each save and the
    number of ``metrics.csv`` rows written is stored in the checkpoint, so that a resume drops the rows of the
    steps after it.

    ``signals`` (default SIGTERM, SIGUSR1 and SIGUSR2: what clusters and submitit send before preempting or
    timing out a job) are handled while training runs: the current step finishes, a checkpoint is saved,
    the launcher's handler for that signal is called (the one installed before the Trainer put in its own:
    submitit's, which requeues the job and exits), and :class:`Preempted` ends the run (status
    ``interrupted``) before the next step. On several processes the decision is shared (one boolean
    all-reduce at the end of each step): a signal to any process stops all of them after the same step, and
    a signal that arrives after that all-reduce waits for the next one, so that no process leaves while the
    others enter the next step's collectives. Only a process that received the signal calls the launcher's
    handler. This replaces, for that time, Lightning's own SIGTERM handler, which stops without saving and,
    on several processes, runs a collective (a broadcast) inside the signal handler, and its SIGUSR1
    handler, installed only under SLURM with auto-requeue. ``resume=auto`` continues the run when the
    requeued job starts again.
    """

    def __init__(
        self,
        dirpath: str | Path,
        every: int = 1000,
        signals: list[str] | tuple[str, ...] = ("SIGTERM", "SIGUSR1", "SIGUSR2"),
    ) -> None:
        if int(every) < 0:
            raise ValueError(f"Checkpoint: every must be >= 0 (0: only at the end), got {every}")
        unknown = [s for s in signals if not hasattr(signal, str(s))]
        if unknown:
            raise ValueError(
                f"Checkpoint: unknown signal names {unknown}; valid e.g. SIGTERM, SIGUSR1, SIGUSR2"
            )
        self.dirpath = Path(dirpath)
        self.every = int(every)
        self.signals = [getattr(signal, str(s)) for s in signals]
        self.received: int | None = None  # a signal this process got
        self.stopping: int | None = None  # the signal the run stops for, decided at a step's end
        self.saved_at: int | None = None  # generator steps of this session's latest save
        self._launcher_handlers: dict[int, Any] = {}  # in place before the Trainer installed its own
        self._installed = False
        self._flush_pending = False

    @property
    def last(self) -> Path:
        return self.dirpath / "last.ckpt"

    def summary_fields(self, run_dir: Path) -> dict[str, str]:
        """``checkpoint``: the last checkpoint, relative to the run folder (summary.json)."""
        return {"checkpoint": os.path.relpath(self.last, run_dir)} if self.last.exists() else {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:
            for stale in self.dirpath.glob(".last.ckpt.tmp*"):  # left by a killed process
                stale.unlink(missing_ok=True)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Called before the Trainer installs its signal handlers: those in place are the launcher's."""
        self._launcher_handlers = {signum: signal.getsignal(signum) for signum in self.signals}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.received = self.stopping = None
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                signal.signal(signum, self._on_signal)
            self._installed = True

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.received = signum  # acted on at the end of the current step (saving here could tear a step)

    def _restore_handlers(self) -> None:
        """Puts back the launcher's handlers, which the Trainer's teardown restores too, rather than the
        Trainer's: a signal repeated while the run shuts down must not start the Trainer's broadcast."""
        if self._installed:
            for signum, handler in self._launcher_handlers.items():
                if handler is not None:  # None: a handler not installed from Python, left as it is
                    signal.signal(signum, handler)
            self._installed = False

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        stop = self.received is not None
        if trainer.world_size > 1:  # all processes stop after the same step when any got a signal
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop and self.stopping is None:
            self.stopping = self.received if self.received is not None else self.signals[0]
        due = self.every and pl_module.g_steps % self.every == 0
        if (due or self.stopping is not None or _last_step(trainer)) and self.saved_at != pl_module.g_steps:
            self.save(trainer, pl_module)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx: int) -> None:
        """Lightning writes a finished step's logged row after the batch-end hooks, so the row of the step
        just saved is flushed here (a process killed later keeps it), and a preemption stops here."""
        if self.saved_at == pl_module.g_steps and self._flush_pending:
            self._flush_pending = False
            for logger in trainer.loggers:
                logger.save()
        if self.stopping is not None and self.saved_at == pl_module.g_steps:
            signum = self.stopping
            log.warning(
                "%s received%s: saved a checkpoint at generator step %d, stopping",
                signal.Signals(signum).name,
                "" if self.received == signum else " by another process",
                pl_module.g_steps,
            )
            launcher = self._launcher_handlers.get(signum)
            if self.received == signum and callable(launcher):  # e.g. submitit's requeue, which exits
                launcher(signum, None)
            raise Preempted(signum, pl_module.g_steps)

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        self._restore_handlers()
        self.save(trainer, pl_module)

    def on_exception(self, trainer: pl.Trainer, pl_module, exception: BaseException) -> None:
        self._restore_handlers()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore_handlers()

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        rows = [lg.rows_written for lg in trainer.loggers if hasattr(lg, "rows_written")]
        checkpoint["ganlab_logs"] = {"metrics_csv_rows": rows[0] if rows else None}

    def save(self, trainer: pl.Trainer, pl_module: pl.LightningModule | None = None) -> None:
        for logger in trainer.loggers:  # so that metrics.csv holds every row up to this state
            logger.save()
        tmp = self.dirpath / f".last.ckpt.tmp{os.getpid()}"
        try:
            trainer.save_checkpoint(tmp)  # every rank calls it; only rank 0 writes
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if trainer.is_global_zero:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.last)
            dir_fd = os.open(self.dirpath, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        trainer.strategy.barrier("ganlab.checkpoint")
        self.saved_at = getattr(pl_module, "g_steps", None)
        self._flush_pending = True
