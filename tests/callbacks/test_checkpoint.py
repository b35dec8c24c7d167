"""The checkpoint callback: the preemption decision on several processes, step by step, with a stand-in
for the trainer; the final step's checkpoint written before any callback's end-of-training work, and
metrics.csv continued from a completed run (more end-to-end runs in tests/test_faults.py,
tests/test_resume.py and tests/test_distributed.py)."""

from __future__ import annotations

import csv
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ganlab.callbacks.checkpoint import Checkpoint, Preempted
from ganlab.callbacks.ema import EMA
from ganlab.callbacks.evaluation import Evaluation
from ganlab.callbacks.samples import SampleImages
from ganlab.summary import read_summary
from ganlab.train import build_trainer, train


class Strategy:
    """A process's view of the shared decision: its own flag OR the flags of the other processes."""

    def __init__(self) -> None:
        self.peers_stop = False
        self.decisions: list[bool] = []

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        assert all is False  # "any process": one signal stops them all
        self.decisions.append(decision)
        return decision or self.peers_stop

    def barrier(self, name: str | None = None) -> None:
        pass


def process(tmp_path: Path, rank: int) -> SimpleNamespace:
    strategy = Strategy()

    def save_checkpoint(path) -> None:
        if rank == 0:  # as Lightning's: every process calls it, rank 0 writes
            Path(path).write_bytes(b"state")

    trainer = SimpleNamespace(
        world_size=2,
        is_global_zero=rank == 0,
        strategy=strategy,
        loggers=[],
        save_checkpoint=save_checkpoint,
        global_step=0,
        max_steps=-1,  # no limit (Lightning's -1)
    )
    return SimpleNamespace(trainer=trainer, strategy=strategy, module=SimpleNamespace(g_steps=0))


def step(cb: Checkpoint, proc: SimpleNamespace) -> None:
    """One generator step: its start hook (where a decided stop ends the run), then its end hook."""
    cb.on_train_batch_start(proc.trainer, proc.module, None, 0)
    proc.module.g_steps += 1
    proc.trainer.global_step += 1  # one optimizer step per generator step here
    cb.on_train_batch_end(proc.trainer, proc.module, None, None, 0)


@pytest.fixture
def launcher_then_trainer_handlers():
    """SIGUSR2 as a launcher (submitit) and then the Trainer would leave it: the launcher's handler is in
    place at fit start, the Trainer's own is installed over it before training starts."""
    calls: list[str] = []
    original = signal.getsignal(signal.SIGUSR2)
    signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append("launcher"))
    yield calls, lambda signum, frame: calls.append("trainer")
    signal.signal(signal.SIGUSR2, original)


def start(processes: list[tuple[Checkpoint, SimpleNamespace]], trainer_handler) -> None:
    for cb, proc in processes:
        cb.on_fit_start(proc.trainer, proc.module)
    signal.signal(signal.SIGUSR2, trainer_handler)
    for cb, proc in processes:
        cb.on_train_start(proc.trainer, proc.module)


def test_a_signal_after_the_steps_shared_decision_stops_every_process_one_step_later(
    tmp_path, launcher_then_trainer_handlers
):
    """A signal that reaches rank 0 after this step's all-reduce (e.g. while the step's checkpoint is being
    written) must not stop rank 0 alone before the next step: rank 1, told "go on", would wait forever in
    that step's gradient all-reduce. Both stop after the next step, with its checkpoint."""
    calls, trainer_handler = launcher_then_trainer_handlers
    cb0, cb1 = (Checkpoint(tmp_path, every=5, signals=["SIGUSR2"]) for _ in range(2))
    rank0, rank1 = process(tmp_path, 0), process(tmp_path, 1)
    start([(cb1, rank1), (cb0, rank0)], trainer_handler)  # one OS process here: rank 0's handler is the last
    for _ in range(5):
        step(cb0, rank0)
        step(cb1, rank1)
    assert cb0.saved_at == cb1.saved_at == 5  # the regular checkpoint of step 5, decision "go on"
    signal.raise_signal(signal.SIGUSR2)  # reaches rank 0 now, after the decision of step 5
    cb0.on_train_batch_start(rank0.trainer, rank0.module, None, 0)  # step 6 starts on rank 0: no stop
    rank0.module.g_steps += 1
    rank1.strategy.peers_stop = True  # step 6's all-reduce carries rank 0's signal to rank 1
    cb0.on_train_batch_end(rank0.trainer, rank0.module, None, None, 0)
    step(cb1, rank1)
    assert rank0.strategy.decisions[-1] is True and rank1.strategy.decisions[-1] is False
    assert cb0.saved_at == cb1.saved_at == 6 and (tmp_path / "last.ckpt").exists()
    for cb, proc in ((cb0, rank0), (cb1, rank1)):
        with pytest.raises(Preempted) as stopped:
            cb.on_train_batch_start(proc.trainer, proc.module, None, 0)
        assert (stopped.value.signum, stopped.value.g_step, stopped.value.code) == (signal.SIGUSR2, 6, 140)
        cb.on_exception(proc.trainer, proc.module, stopped.value)
    # the launcher's handler ran once, on the process that got the signal; the Trainer's never ran
    assert calls == ["launcher"]
    assert signal.getsignal(signal.SIGUSR2) is not trainer_handler  # the launcher's is back


def test_a_single_process_stops_after_the_step_in_which_the_signal_came(tmp_path):
    cb = Checkpoint(tmp_path, every=0, signals=["SIGUSR1"])
    proc = process(tmp_path, 0)
    proc.trainer.world_size = 1
    cb.on_fit_start(proc.trainer, proc.module)
    cb.on_train_start(proc.trainer, proc.module)
    try:
        step(cb, proc)
        signal.raise_signal(signal.SIGUSR1)  # after step 1's end hook
        step(cb, proc)
        assert proc.strategy.decisions == []  # no collective on one process
        with pytest.raises(Preempted) as stopped:
            step(cb, proc)
        assert stopped.value.g_step == 2 == cb.saved_at
    finally:
        cb.teardown(proc.trainer, proc.module, "fit")
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_the_last_step_is_saved_at_its_end_before_the_end_of_training_hooks(tmp_path):
    cb = Checkpoint(tmp_path, every=0, signals=[])
    proc = process(tmp_path, 0)
    proc.trainer.world_size, proc.trainer.max_steps = 1, 3
    for _ in range(2):
        step(cb, proc)
    assert cb.saved_at is None and not (tmp_path / "last.ckpt").exists()  # every=0: nothing periodic
    step(cb, proc)
    assert cb.saved_at == 3 and (tmp_path / "last.ckpt").exists()


def test_ema_runs_first_and_the_checkpoint_after_every_callback_that_samples_or_logs(make_cfg, tmp_path):
    """Lightning keeps the config's order for ganlab's callbacks (it moves only its own Checkpoint
    subclasses last): EMA updates the average before anything samples it, and the checkpoint of a step
    counts the rows the others logged at that step's end."""
    trainer = build_trainer(make_cfg("ema=on"), tmp_path)
    kinds = [type(cb) for cb in trainer.callbacks if type(cb) in (EMA, SampleImages, Evaluation, Checkpoint)]
    assert kinds == [EMA, SampleImages, Evaluation, Checkpoint]


@pytest.mark.parametrize("failing", [SampleImages, Evaluation])
def test_a_callback_failing_at_the_end_fails_the_run_but_not_its_final_checkpoint(
    make_cfg, tmp_path, monkeypatch, failing
):
    args = ["trainer.max_steps=3", "n_critic=2"]
    train(make_cfg(*args, run_dir=tmp_path / "completed"))

    def fail(self, trainer, pl_module):
        raise RuntimeError(f"{type(self).__name__} failed at step {pl_module.g_steps}")

    monkeypatch.setattr(failing, "on_train_end", fail)
    with pytest.raises(RuntimeError, match="failed at step 3"):
        train(make_cfg(*args, run_dir=tmp_path / "failed"))
    summary = read_summary(tmp_path / "failed")
    assert (
        summary["status"] == "failed"
        and summary["error"] == f"RuntimeError: {failing.__name__} failed at step 3"
    )
    assert summary["checkpoint"] == "checkpoints/last.ckpt"
    got, want = (torch.load(tmp_path / run / "checkpoints" / "last.ckpt") for run in ("failed", "completed"))
    assert (got["ganlab"]["g_steps"], got["global_step"]) == (3, 3)  # Lightning counts generator updates
    assert got["state_dict"].keys() == want["state_dict"].keys()
    for key, value in want["state_dict"].items():  # the completed run's final weights
        assert torch.equal(got["state_dict"][key], value), key


def _rows(run: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(run / "metrics.csv")))


def test_resuming_a_completed_run_with_more_steps_keeps_its_rows_and_continues_them(make_cfg, tmp_path):
    """The final checkpoint counts the rows of the end of training (the final evaluation's): a resume to
    more steps keeps every row of the first session, once, and appends the new steps' rows."""
    first = train(make_cfg("trainer.max_steps=3"))
    rows_first = _rows(tmp_path / "run")
    second = train(make_cfg("trainer.max_steps=6"))
    assert first["status"] == second["status"] == "completed" and second["g_steps"] == 6
    rows = _rows(tmp_path / "run")
    assert rows[: len(rows_first)] == rows_first
    training = [int(r["step"]) for r in rows if r["loss/d"]]
    evaluations = [int(r["step"]) for r in rows if r["metrics/modes"]]
    assert training == [0, 1, 2, 3, 4, 5]  # generator steps 1..6, each once
    assert evaluations == [3, 6]  # the end of each session
