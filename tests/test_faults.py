"""Faults: a killed or preempted run resumes; divergence and exceptions end a run cleanly and let a
multirun go on; checkpoints never hold non-finite weights."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from ganlab.module import Diverged
from ganlab.train import build, build_trainer, train

TINY_CLI = [
    "logger=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "trainer.log_every_n_steps=1",
    "model.generator.width=8",
    "model.discriminator.width=8",
    "model.generator.depth=1",
    "model.discriminator.depth=1",
    "data.n_train=512",
    "data.batch_size=8",
    "sample_every=0",
    "callbacks.evaluation.n_samples=100",
]


def start(*args: str, cwd: Path) -> subprocess.Popen:
    """``python -m ganlab.train`` with tiny settings (``-m`` among ``args`` makes it a multirun)."""
    flags = [a for a in args if a == "-m"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1"}
    cmd = [sys.executable, "-m", "ganlab.train", *flags, *TINY_CLI, *(a for a in args if a != "-m")]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = start(*args, cwd=cwd)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def csv_steps(run_dir: Path) -> list[int]:
    return [int(r["step"]) for r in csv.DictReader(open(run_dir / "metrics.csv")) if r.get("loss/d")]


def resume_in_process(make_cfg, run_dir: Path, *overrides: str) -> dict:
    """The rerun of a run started by :func:`start`, in this process (a subprocess costs seconds of imports):
    the same tiny settings, so the checkpoint fits."""
    return train(
        make_cfg("data.n_train=512", "callbacks.evaluation.n_samples=100", *overrides, run_dir=run_dir)
    )


def test_sigterm_saves_a_checkpoint_ends_interrupted_and_the_rerun_resumes(tmp_path, make_cfg):
    run_dir = tmp_path / "run"
    proc = start(
        f"hydra.run.dir={run_dir}", "callbacks.checkpoint.every=20", "trainer.max_steps=1000000", cwd=tmp_path
    )
    wait_for(run_dir / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    stopped = summary(run_dir)
    assert stopped["status"] == "interrupted" and "SIGTERM" in stopped["error"]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    g = ckpt["ganlab"]["g_steps"]
    assert g == stopped["g_steps"] >= 20  # saved at the step the signal came in
    assert csv_steps(run_dir) == list(range(g))

    done = resume_in_process(make_cfg, run_dir, f"trainer.max_steps={g + 5}", "callbacks.checkpoint.every=20")
    assert done["status"] == "completed" and done["g_steps"] == g + 5
    assert done["started_at"] == stopped["started_at"]
    assert csv_steps(run_dir) == list(range(g + 5))  # appended, step numbering continued


def test_sigkill_at_any_moment_leaves_a_loadable_checkpoint_and_the_rerun_completes(tmp_path, make_cfg):
    run_dir = tmp_path / "run"
    proc = start(
        f"hydra.run.dir={run_dir}", "callbacks.checkpoint.every=1", "trainer.max_steps=1000000", cwd=tmp_path
    )  # a save on every step
    wait_for(run_dir / "checkpoints" / "last.ckpt", proc)
    time.sleep(0.7)  # some steps (and saves) later, at an arbitrary point of a step or a save
    proc.kill()
    proc.communicate(timeout=60)
    assert summary(run_dir)["status"] == "running"  # killed: nothing could record it
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    g = ckpt["ganlab"]["g_steps"]
    assert g >= 1 and all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())

    done = resume_in_process(make_cfg, run_dir, f"trainer.max_steps={g + 4}", "callbacks.checkpoint.every=1")
    assert done["status"] == "completed" and done["g_steps"] == g + 4
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["ganlab"]["g_steps"] == g + 4
    assert not list((run_dir / "checkpoints").glob(".last.ckpt.tmp*"))  # a killed save's leftovers removed
    steps = csv_steps(run_dir)
    assert steps == sorted(set(steps))  # no step twice: rows after the checkpoint were dropped
    # every step is there, except possibly the one whose row was still in memory when the kill came
    assert set(range(g + 4)) - set(steps) <= {g - 1}


def test_divergence_and_an_exception_in_a_multirun_end_those_jobs_and_the_others_run(tmp_path):
    """Four jobs: D learning rate 1e10 (diverges) or 2e-4, each with a valid or a bad activation (an
    exception when the job builds its networks): diverged, failed, completed, failed; exit code 1."""
    sweep = tmp_path / "sweep"
    proc = run(
        "-m",
        "optim.d.lr=1e10,2e-4",
        "model.generator.activation=relu,nope",
        "trainer.max_steps=30",
        "callbacks.checkpoint.every=1",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # a job failed (divergence alone would give 0)
    jobs = [summary(sweep / str(i)) for i in range(4)]
    assert [j["status"] for j in jobs] == ["diverged", "failed", "completed", "failed"]
    diverged = jobs[0]
    at = diverged["diverged_at"]["g_step"]
    assert "not finite" in diverged["error"] and 0 <= at < 30 and diverged["g_steps"] in (at, at + 1)
    assert diverged["checkpoint"] == "checkpoints/last.ckpt"
    ckpt = torch.load(sweep / "0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["ganlab"]["g_steps"] <= at  # the last good state, before the divergence
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())
    assert "nope" in jobs[1]["error"] and "model.generator" in jobs[1]["error"]
    assert (sweep / "1" / ".hydra" / "overrides.yaml").is_file()  # a marked folder, readable by compare
    assert jobs[2]["g_steps"] == 30 and jobs[2]["error"] is None
    assert "2 job(s) of the sweep failed" in proc.stderr and str(sweep / "3") in proc.stderr


class Boom(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.g_steps == 2:
            raise RuntimeError("boom at step 2")


def test_a_runtime_exception_in_a_multirun_job_is_recorded_not_raised(make_cfg, monkeypatch):
    cfg = make_cfg("trainer.max_steps=5")
    import ganlab.train as train_module

    monkeypatch.setattr(train_module, "in_multirun", lambda: True)

    original = train_module.build_trainer
    monkeypatch.setattr(train_module, "build_trainer", lambda *a: _with(original(*a), Boom()))
    result = train(cfg)
    assert result["status"] == "failed" and result["error"] == "RuntimeError: boom at step 2"
    assert (
        result["g_steps"] == 2
        and json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text()) == result
    )


def test_a_process_of_rank_above_0_reraises_in_a_multirun_so_that_its_launcher_sees_it(make_cfg, monkeypatch):
    """Rank 0 records a failed job and the sweep goes on; another rank has no record of its own, so its
    failure must reach the launcher that started it (its JobReturn, its exit code)."""
    cfg = make_cfg("trainer.max_steps=5")
    import ganlab.train as train_module

    monkeypatch.setattr(train_module, "in_multirun", lambda: True)
    monkeypatch.setattr(train_module, "started_as_rank_zero", lambda: False)
    original = train_module.build_trainer
    monkeypatch.setattr(train_module, "build_trainer", lambda *a: _with(original(*a), Boom()))
    with pytest.raises(RuntimeError, match="boom at step 2"):
        train(cfg)


def _with(trainer: pl.Trainer, callback: pl.Callback) -> pl.Trainer:
    trainer.callbacks.append(callback)
    return trainer


class NaNAfterStep(torch.optim.SGD):
    """An optimizer whose update makes the weights NaN while the loss and gradients are finite."""

    def step(self, closure=None):
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    p.fill_(float("nan"))


def test_non_finite_weights_stop_the_run_after_the_step_that_made_them(make_cfg, tmp_path):
    cfg = make_cfg("trainer.max_steps=5")
    module, datamodule = build(cfg)
    module.optim_g = lambda params: NaNAfterStep(params, lr=0.1)
    with pytest.raises(Diverged, match="weights of generator") as info:
        build_trainer(cfg, tmp_path).fit(module, datamodule=datamodule)
    assert info.value.g_step == 0  # the first generator update made them
    assert not (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").exists()


def test_non_finite_discriminator_weights_are_named_with_the_step_that_made_them(make_cfg, tmp_path):
    """Weights are not checked every step: the next loss that uses them is non-finite, and the check it
    triggers names the network and the generator step of the update that made them."""
    cfg = make_cfg("trainer.max_steps=5", "n_critic=2")
    module, datamodule = build(cfg)
    module.optim_d = lambda params: NaNAfterStep(params, lr=0.1)
    with pytest.raises(Diverged, match="weights of discriminator") as info:
        build_trainer(cfg, tmp_path).fit(module, datamodule=datamodule)
    assert info.value.g_step == 0 and info.value.d_step == 1  # found by the step's second D loss


@pytest.mark.parametrize("checkpoint", ["default", "null"])
def test_weights_made_non_finite_by_the_last_update_are_caught_before_the_run_completes(
    make_cfg, tmp_path, checkpoint
):
    """No later loss sees the last generator update: the final checkpoint, the final picture or the end of
    training checks the weights, so the run cannot end 'completed' with a non-finite G."""
    extra = ["callbacks.checkpoint=null"] if checkpoint == "null" else []
    cfg = make_cfg("trainer.max_steps=2", *extra)
    module, datamodule = build(cfg)
    module.optim_g = lambda params: NaNAtUpdate(params, at=2)
    with pytest.raises(Diverged, match="weights of generator") as info:
        build_trainer(cfg, tmp_path).fit(module, datamodule=datamodule)
    assert info.value.g_step == 1
    assert not (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").exists()


class NaNAtUpdate(torch.optim.SGD):
    """Plain SGD, except that its ``at``-th update (counted from 1) and every later one make the weights
    NaN."""

    def __init__(self, params, at: int) -> None:
        super().__init__(params, lr=0.01)
        self.at, self.calls = at, 0

    def step(self, closure=None):
        self.calls += 1
        if self.calls < self.at:
            return super().step(closure)
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    p.fill_(float("nan"))


def test_a_checkpoint_is_never_written_with_non_finite_weights(make_cfg, tmp_path):
    cfg = make_cfg("trainer.max_steps=2", "callbacks.checkpoint.every=1")
    module, datamodule = build(cfg)
    trainer = build_trainer(cfg, tmp_path)
    trainer.fit(module, datamodule=datamodule)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    digest = hashlib.sha256(last.read_bytes()).hexdigest()
    with torch.no_grad():
        next(module.discriminator.parameters()).view(-1)[0] = float("inf")
    checkpoint = next(cb for cb in trainer.callbacks if type(cb).__name__ == "Checkpoint")
    with pytest.raises(Diverged, match="weights of discriminator"):
        checkpoint.save(trainer, module)
    assert hashlib.sha256(last.read_bytes()).hexdigest() == digest
    assert not list(last.parent.glob(".last.ckpt.tmp*"))


def test_a_launchers_signal_handler_runs_after_the_checkpoint_is_saved(make_cfg, monkeypatch):
    """submitit requeues a job from its own SIGUSR2 handler: ganlab saves first, then calls that handler."""
    import ganlab.train as train_module
    from test_resume import SignalAt

    cfg = make_cfg("trainer.max_steps=6")
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    calls: list[tuple[int, int]] = []

    def launcher_handler(signum, frame):
        calls.append((signum, torch.load(ckpt, weights_only=True)["ganlab"]["g_steps"]))

    original = train_module.build_trainer

    def with_signal(*args):  # the signal comes before the checkpoint callback looks, at step 2
        trainer = original(*args)
        trainer.callbacks.insert(0, SignalAt(2, signal.SIGUSR2))
        return trainer

    monkeypatch.setattr(train_module, "build_trainer", with_signal)
    previous = signal.signal(signal.SIGUSR2, launcher_handler)
    try:
        with pytest.raises(SystemExit) as info:
            train(cfg)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert info.value.code == 128 + signal.SIGUSR2
    assert calls == [(signal.SIGUSR2, 2)]  # called once, with the checkpoint of step 2 on disk


def test_a_divergence_between_logging_steps_is_found_at_the_next_one_and_named_at_its_own_step(
    make_cfg, tmp_path
):
    """Losses are read on the host at logging steps only (one device sync for the queue): a NaN made by
    D's 4th update (generator step 3) shows in the loss of step 4, is found at the logging step 10, and is
    reported with the step of the update that made it, as a check after every update would."""
    cfg = make_cfg("trainer.max_steps=30", "trainer.log_every_n_steps=10", "sample_every=0")
    module, datamodule = build(cfg)
    module.optim_d = lambda params: NaNAtUpdate(params, at=4)
    with pytest.raises(Diverged, match="weights of discriminator") as info:
        build_trainer(cfg, tmp_path).fit(module, datamodule=datamodule)
    assert info.value.g_step == 3 and module.g_steps == 10
