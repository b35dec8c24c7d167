"""Exact resume: N steps then a resume to 2N equals 2N uninterrupted, bit for bit on CPU, for every loss;
the data order, the RNG streams, the step counters and metrics.csv continue; resume=auto|never|PATH."""

from __future__ import annotations

import csv
import hashlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from ganlab.config import ConfigError
from ganlab.data.base import EpochBatchSampler
from ganlab.paths import CONF_DIR
from ganlab.summary import read_summary
from ganlab.train import train

LOSSES = sorted(p.stem for p in (CONF_DIR / "loss").glob("*.yaml"))
# 48 samples: 6 step batches per epoch at n_critic 1, 1 at n_critic 5, so that runs cross epoch boundaries
SMALL = ["data.n_train=48", "callbacks.evaluation.n_samples=100"]


def load(run: Path) -> dict[str, Any]:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Recursive equality, tensors with ``torch.equal`` (bit for bit)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (where, set(a) ^ set(b))
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def future_state(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Everything of a checkpoint that the rest of a run depends on."""
    gan = ckpt["ganlab"]
    return {
        "state_dict": ckpt["state_dict"],
        "optimizer_states": ckpt["optimizer_states"],
        "lr_schedulers": ckpt.get("lr_schedulers", []),
        "global_step": ckpt["global_step"],
        "counters": (gan["g_steps"], gan["d_steps"]),
        "rng": (gan["noise_rng"], gan["train_rng"]),
        "parts": gan["parts"],
        "data": [v for v in ckpt.values() if isinstance(v, dict) and "batches_done" in v],
    }


def training_rows(run: Path) -> list[dict[str, str]]:
    """metrics.csv rows of training steps (evaluation rows and Lightning's epoch column left out)."""
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    return [{k: v for k, v in r.items() if k != "epoch"} for r in rows if r.get("loss/d")]


@pytest.mark.parametrize("loss", LOSSES)
def test_n_steps_then_resume_to_2n_equals_2n_uninterrupted(make_cfg, tmp_path, loss):
    n = 3
    full = train(make_cfg(f"loss={loss}", f"trainer.max_steps={2 * n}", *SMALL, run_dir=tmp_path / "full"))
    first = train(make_cfg(f"loss={loss}", f"trainer.max_steps={n}", *SMALL, run_dir=tmp_path / "split"))
    rows_after_first = training_rows(tmp_path / "split")
    second = train(make_cfg(f"loss={loss}", f"trainer.max_steps={2 * n}", *SMALL, run_dir=tmp_path / "split"))
    assert full["status"] == first["status"] == second["status"] == "completed", second["error"]
    assert first["g_steps"] == n and second["g_steps"] == 2 * n == full["g_steps"]
    assert second["d_steps"] == full["d_steps"]
    assert_same(future_state(load(tmp_path / "full")), future_state(load(tmp_path / "split")))
    # metrics.csv is continued (the first session's rows kept), steps continue, values are identical
    assert training_rows(tmp_path / "split")[: len(rows_after_first)] == rows_after_first
    assert training_rows(tmp_path / "split") == training_rows(tmp_path / "full")
    assert second["started_at"] == first["started_at"] and second["wall_s"] >= first["wall_s"]


def test_resume_is_exact_for_gumbel_sequences_with_a_gradient_penalty(make_cfg, tmp_path):
    """Straight-through Gumbel output (its noise is part of z, from the checkpointed noise generator) and
    WGAN-GP on the synthetic DNA set: 3 + 3 steps equal 6, vocabulary and data order included."""
    args = ["data=synthetic_dna", "data.length=16", "data.motifs=[{sequence: TATA, position: 2, rate: 0.5}]"]
    args += ["model=seq_resnet", "model.generator.output=gumbel", "fix=wgan_gp", *SMALL]
    full = train(make_cfg(*args, "trainer.max_steps=6", run_dir=tmp_path / "full"))
    train(make_cfg(*args, "trainer.max_steps=3", run_dir=tmp_path / "split"))
    second = train(make_cfg(*args, "trainer.max_steps=6", run_dir=tmp_path / "split"))
    assert full["status"] == second["status"] == "completed" and second["g_steps"] == 6
    assert_same(future_state(load(tmp_path / "full")), future_state(load(tmp_path / "split")))
    assert load(tmp_path / "split")["SyntheticDNA"]["vocabulary"] == {
        "alphabet": "ACGT",
        "pad": None,
        "length": 16,
    }
    assert training_rows(tmp_path / "split") == training_rows(tmp_path / "full")


def test_a_checkpoint_that_counted_every_optimizer_step_resumes_to_max_steps_generator_updates(
    make_cfg, tmp_path
):
    """Checkpoints of earlier versions hold Lightning's count of every optimizer step (``n_critic + 1`` per
    generator update); now Lightning counts generator updates. Such a checkpoint still resumes to exactly
    ``trainer.max_steps`` generator updates, neither stopping early nor training on."""
    args = ["n_critic=2", *SMALL]
    train(make_cfg(*args, "trainer.max_steps=3", run_dir=tmp_path / "run"))
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 3
    progress = ckpt["loops"]["fit_loop"]["epoch_loop.manual_optimization.optim_step_progress"]
    for counts in progress.values():  # as the old version saved it: 3 generator + 6 discriminator steps
        counts["ready"] = counts["completed"] = 9
    ckpt["global_step"] = 9
    torch.save(ckpt, path)
    resumed = train(make_cfg(*args, "trainer.max_steps=5", run_dir=tmp_path / "run"))
    assert (resumed["status"], resumed["g_steps"], resumed["d_steps"]) == ("completed", 5, 10)


EXTRAS = ["ema/on", "augment/diffaug", "augment/instance_noise", "penalty/r1"]


def test_resume_from_a_checkpoint_at_the_very_end_of_an_epoch_repeats_no_batch(make_cfg, tmp_path):
    """6 step batches per epoch, a periodic checkpoint after exactly 6 steps (saved in the batch-end
    hooks, as a preempted or killed run has). Lightning, resumed there, ends its
    next "epoch" after one batch and asks for a new iterator: the data must continue, not repeat."""
    args = ["loss=hinge", "callbacks.checkpoint.every=2", *SMALL]
    train(make_cfg(*args, "trainer.max_steps=14", run_dir=tmp_path / "full"))
    train(make_cfg(*args, "trainer.max_steps=6", run_dir=tmp_path / "split"))
    second = train(make_cfg(*args, "trainer.max_steps=14", run_dir=tmp_path / "split"))
    assert second["g_steps"] == 14
    assert_same(future_state(load(tmp_path / "full")), future_state(load(tmp_path / "split")))


@pytest.mark.skipif(not all((CONF_DIR / f"{e}.yaml").exists() for e in EXTRAS), reason="needs " + str(EXTRAS))
def test_resume_is_exact_with_an_ema_generator_augmentation_and_instance_noise(make_cfg, tmp_path):
    """Everything stateful at once: the EMA copy of G (a callback's state), DiffAugment and instance noise
    (drawn from the noise generator), R1 (a penalty on augmented inputs), on images."""
    args = [
        "data=digits",
        "model=dcgan",
        "model.discriminator.norm=layer",
        "ema=on",
        "augment=[diffaug,instance_noise]",
        "penalty=r1",
        "augment.instance_noise.anneal_steps=50",
        "n_critic=2",
    ]
    train(make_cfg(*args, "trainer.max_steps=4", run_dir=tmp_path / "full"))
    train(make_cfg(*args, "trainer.max_steps=2", run_dir=tmp_path / "split"))
    assert train(make_cfg(*args, "trainer.max_steps=4", run_dir=tmp_path / "split"))["g_steps"] == 4
    full, split = load(tmp_path / "full"), load(tmp_path / "split")
    assert "ema" in full
    assert_same(future_state(full), future_state(split))
    assert_same(full["ema"], split["ema"])
    assert training_rows(tmp_path / "split") == training_rows(tmp_path / "full")


class SignalAt(pl.Callback):
    """Sends this process ``signum`` at the end of generator step ``at`` (a preemption, in process)."""

    def __init__(self, at: int, signum: int = signal.SIGUSR1) -> None:
        self.at, self.signum = at, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.g_steps == self.at:
            os.kill(os.getpid(), self.signum)


def test_sigusr1_mid_run_saves_stops_interrupted_and_resumes_exactly(make_cfg, tmp_path, monkeypatch):
    """A signal mid-epoch: the checkpoint of that step, status interrupted, exit code 128 + 10; the resume
    (also from a mid-epoch, mid-log-flush state) equals the uninterrupted run, metrics.csv included."""
    args = ["n_critic=2", "penalty=gp", "trainer.max_steps=7", "callbacks.checkpoint.every=2", *SMALL]
    train(make_cfg(*args, run_dir=tmp_path / "full"))

    import ganlab.train as train_module

    original = train_module.build_trainer

    def with_signal(cfg, run_dir, plan=None):
        trainer = original(cfg, run_dir, plan)
        if plan is None or plan.ckpt_path is None:
            trainer.callbacks.insert(0, SignalAt(3))
        return trainer

    monkeypatch.setattr(train_module, "build_trainer", with_signal)
    with pytest.raises(SystemExit) as exit_info:
        train(make_cfg(*args, run_dir=tmp_path / "split"))
    assert exit_info.value.code == 128 + signal.SIGUSR1
    summary = read_summary(tmp_path / "split")
    assert summary["status"] == "interrupted" and "SIGUSR1" in summary["error"]
    assert summary["g_steps"] == 3 == load(tmp_path / "split")["ganlab"]["g_steps"]
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # handlers put back

    resumed = train(make_cfg(*args, run_dir=tmp_path / "split"))
    assert resumed["status"] == "completed" and resumed["g_steps"] == 7
    assert_same(future_state(load(tmp_path / "full")), future_state(load(tmp_path / "split")))
    assert training_rows(tmp_path / "split") == training_rows(tmp_path / "full")


def test_rerun_of_a_completed_run_changes_nothing_but_the_summary_time(make_cfg, tmp_path):
    cfg_args = ["trainer.max_steps=3", *SMALL]
    first = train(make_cfg(*cfg_args))
    run = Path(make_cfg(*cfg_args).paths.output_dir)
    digest = hashlib.sha256((run / "checkpoints" / "last.ckpt").read_bytes()).hexdigest()
    rows = (run / "metrics.csv").read_text()
    again = train(make_cfg(*cfg_args))
    assert again["status"] == "completed" and again["g_steps"] == 3
    assert hashlib.sha256((run / "checkpoints" / "last.ckpt").read_bytes()).hexdigest() == digest
    assert (run / "metrics.csv").read_text() == rows
    assert again["metrics"]["metrics/modes"] == first["metrics"]["metrics/modes"]


def test_resume_never_refuses_a_folder_that_holds_a_run(make_cfg, tmp_path):
    train(make_cfg("trainer.max_steps=2", *SMALL))
    run = tmp_path / "run"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match=r"resume=never.*already holds a run's results.*resume=auto"):
        train(make_cfg("trainer.max_steps=2", "resume=never", *SMALL))
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_resume_path_continues_another_runs_checkpoint_in_a_new_folder(make_cfg, tmp_path):
    train(make_cfg("trainer.max_steps=2", *SMALL, run_dir=tmp_path / "a"))
    ckpt = tmp_path / "a" / "checkpoints" / "last.ckpt"
    summary = train(make_cfg("trainer.max_steps=4", f"resume={ckpt}", *SMALL, run_dir=tmp_path / "b"))
    assert summary["status"] == "completed" and summary["g_steps"] == 4
    steps = [int(r["step"]) for r in training_rows(tmp_path / "b")]
    assert steps == [2, 3]  # the new folder's metrics.csv starts at the resumed step
    with pytest.raises(ConfigError, match="another run's results"):  # b holds a run now
        train(make_cfg("trainer.max_steps=6", f"resume={ckpt}", *SMALL, run_dir=tmp_path / "b"))


def test_epoch_order_depends_on_seed_and_epoch_only_and_resumes_mid_epoch():
    full = EpochBatchSampler(20, 4, seed=3)
    batches = [b.tolist() for _ in range(3) for b in full]  # three epochs (each batch an index tensor)
    assert sorted(i for b in batches[:5] for i in b) == list(range(20))  # an epoch: each sample once
    assert batches[:5] != batches[5:10]  # epochs differ
    resumed = EpochBatchSampler(20, 4, seed=3, start=7)
    assert [b.tolist() for _ in range(2) for b in resumed] == batches[7:15]
    assert [b.tolist() for b in EpochBatchSampler(20, 4, seed=4)] != batches[:5]


def test_resuming_with_another_number_of_processes_or_batch_warns_that_the_run_changes(make_cfg, tmp_path):
    """A resume may change the devices (a requeued job on another allocation) or the batch, but then the
    global batch, and so the run, differs from an uninterrupted one: the plan warns, naming each key."""
    from ganlab.resume import plan_resume

    train(make_cfg("trainer.max_steps=2", run_dir=tmp_path / "run"))
    cfg = make_cfg("trainer.max_steps=4", "trainer.devices=2", "data.batch_size=4", run_dir=tmp_path / "run")
    cfg.data.batch_size = 4  # (tiny configs reset it)
    plan = plan_resume(cfg, tmp_path / "run", (2,))
    assert plan.g_steps == 2
    assert any(w.startswith("trainer.devices: 1 -> 2") for w in plan.warnings), plan.warnings
    assert any(w.startswith("data.batch_size: 8 -> 4") for w in plan.warnings), plan.warnings
