"""Multi-process (DDP) training: batch-sharded noise and data, and 2 gloo processes on CPU against one
process fed the same global batches and noise (the comparison and its tolerance: ddptools.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cfgtools import compose_cfg
from ddptools import ATOL, COMMON, RTOL, TOY, assert_same_run, one_process
from ganlab.augment import DiffAugment, InstanceNoise
from ganlab.config import ConfigError, validate, world_size
from ganlab.data.base import EpochBatchSampler
from ganlab.noise import BatchNoise
from ganlab.penalties import GradientPenalty
from ganlab.train import build, build_trainer, train


# batch-sharded randomness and data (one process) --------------------------------------------------------
def shards(seed: int, world_size: int) -> list[BatchNoise]:
    return [BatchNoise(torch.Generator().manual_seed(seed), r, world_size) for r in range(world_size)]


@pytest.mark.parametrize("draw", ["randn", "rand", "randint"])
def test_ranks_together_draw_exactly_what_one_process_draws_for_the_global_batch(draw):
    def take(noise: BatchNoise, n: int) -> torch.Tensor:
        return noise.randint(-3, 4, n, 5) if draw == "randint" else getattr(noise, draw)(n, 5)

    whole = take(BatchNoise(torch.Generator().manual_seed(4)), 12)
    parts = [take(noise, 4) for noise in shards(4, 3)]
    assert torch.equal(torch.cat(parts), whole)
    assert not torch.equal(parts[0], parts[1])  # the ranks draw different values


def test_penalty_points_and_transforms_of_the_shards_are_those_of_the_global_batch():
    real, fake = torch.randn(8, 3, 8, 8), torch.randn(8, 3, 8, 8)
    # (DRAGAN also needs the std of the global batch: checked by the 2-process run "vanilla+dragan")
    whole = GradientPenalty().points(real, fake, BatchNoise(torch.Generator().manual_seed(1)))
    parts = [
        GradientPenalty().points(real[4 * r : 4 * r + 4], fake[4 * r : 4 * r + 4], noise)
        for r, noise in enumerate(shards(1, 2))
    ]
    torch.testing.assert_close(torch.cat(parts), whole, rtol=0, atol=0)
    for transform in (DiffAugment(), InstanceNoise(sigma0=0.5)):
        whole = transform(real, 0, BatchNoise(torch.Generator().manual_seed(2)))
        parts = [transform(real[4 * r : 4 * r + 4], 0, n) for r, n in enumerate(shards(2, 2))]
        torch.testing.assert_close(torch.cat(parts), whole, rtol=0, atol=0)


def test_each_rank_gets_its_rows_of_every_critic_chunk_of_the_global_batch():
    """Per process 2 critic chunks of 3 samples, 2 processes: the single process with the global batch
    (2 chunks of 6) trains its k-th critic update on chunk k; rank r must get rows 3r..3r+2 of it."""
    one = EpochBatchSampler(40, 12, seed=5, chunks=2)
    ranks = [EpochBatchSampler(40, 6, seed=5, rank=r, world_size=2, chunks=2) for r in range(2)]
    assert len(one) == len(ranks[0]) == len(ranks[1]) == 3
    for step in zip(*([b.tolist() for b in s] for s in (one, *ranks)), strict=True):
        global_batch, mine = step[0], step[1:]
        for k in range(2):
            chunk = global_batch[6 * k : 6 * k + 6]
            assert [b[3 * k : 3 * k + 3] for b in mine] == [chunk[:3], chunk[3:]]
        assert not set(mine[0]) & set(mine[1])
    # a resumed sampler continues at the same global batch
    late = EpochBatchSampler(40, 6, seed=5, start=4, rank=1, world_size=2, chunks=2)
    assert next(iter(late)).tolist() == list(ranks[1])[1].tolist()


# validation -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, words",
    [
        (["trainer.strategy=ddp_spawn"], ["trainer.strategy='ddp_spawn'", "Valid: auto, ddp"]),
        (["trainer.strategy=fsdp"], ["trainer.strategy='fsdp'", "Valid: auto, ddp"]),
        (
            ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.sync_batchnorm=true"],
            ["trainer.sync_batchnorm=true", "GPUs only", "Valid: trainer.sync_batchnorm=false"],
        ),
    ],
)
def test_unsupported_strategies_and_sync_batchnorm_on_cpu_are_refused(overrides, words, tmp_path):
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg(overrides, tmp_path / "run"))
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize(
    "overrides, processes",
    [
        ([], 1),
        (["trainer.accelerator=cpu", "trainer.devices=auto"], 1),  # Lightning: one CPU process
        (["trainer.devices=2"], 2),
        (["trainer.devices=[0,1]", "trainer.num_nodes=3"], 6),
    ],
)
def test_the_number_of_processes_is_devices_times_nodes(overrides, processes, tmp_path):
    assert world_size(compose_cfg(overrides, tmp_path / "run")) == processes


def test_a_dataset_smaller_than_the_global_batch_is_refused_before_anything_is_written(tmp_path):
    cfg = compose_cfg(
        ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"], tmp_path / "run"
    )
    cfg.data.n_train, cfg.data.batch_size = 24, 8  # one process would fit (8), two need 16 * n_critic 2
    cfg.n_critic = 2
    with pytest.raises(ConfigError, match=r"n_critic=2 on 2 processes: one step needs 32 samples"):
        train(cfg)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("devices, started", [("1", "2"), ("2", "4")])
def test_a_trainer_asking_for_other_processes_than_its_launcher_started_is_refused(
    tmp_path, monkeypatch, devices, started
):
    """torchrun or the gpus launcher started WORLD_SIZE processes: each must be one of trainer.devices
    x num_nodes, else the processes would wait for each other forever (or train a wrong global batch)."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", started)
    cfg = compose_cfg(["trainer.accelerator=cpu", f"trainer.devices={devices}"], tmp_path / "run")
    with pytest.raises(
        ConfigError, match=f"asks for {devices} process.es., but this job was started as {started}"
    ):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_sync_batchnorm_is_selectable_and_converts_every_batch_norm(tmp_path):
    cfg = compose_cfg(
        [
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.strategy=ddp",
            "trainer.sync_batchnorm=true",
            "model.generator.norm=batch",
        ],
        tmp_path / "run",
    )
    module, _ = build(cfg)
    trainer = build_trainer(cfg, tmp_path / "run")
    assert type(trainer.strategy).__name__ == "ReplicaDDPStrategy"
    converted = trainer.strategy._layer_sync.apply(module)
    kinds = {type(m).__name__ for m in converted.modules()}
    assert "SyncBatchNorm" in kinds and "BatchNorm1d" not in kinds


# 2 gloo processes against 1 ------------------------------------------------------------------------------
def cli(run_dir: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, int]:
    """``python -m ganlab.train`` and the pid of the process started (rank 0; Lightning starts rank 1)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1"}
    cmd = [sys.executable, "-m", "ganlab.train", *COMMON, *overrides, f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), proc.pid


def two_processes(run_dir: Path, batch: int, *overrides: str) -> dict:
    proc, pid = cli(
        run_dir, "trainer.devices=2", "trainer.strategy=ddp", f"data.batch_size={batch}", *overrides
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["pid"] == pid  # written by rank 0, the process started here
    return summary


CASES = {
    "vanilla+dragan": ["loss=vanilla", "penalty=dragan"],
    "non_saturating+gp+r1": ["loss=non_saturating", "penalty=[gp,r1]", "n_critic=2"],
    "wgan_gp": ["fix=wgan_gp"],
    "hinge+r2+instance_noise": ["loss=hinge", "penalty=r2", "augment=instance_noise"],
    "lsgan+lazy_r1": ["loss=lsgan", "penalty=r1", "penalty.r1.every=2", "n_critic=2"],
    "wgan(clip)": ["fix=wgan", "callbacks.evaluation.batch_size=500"],  # one batch: split to 2 of 100
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_what_one_process_trains_on_the_global_batch_for_every_loss_and_penalty(tmp_path):
    """Each case on 2 processes with batch 16 (one pair of worker processes trains them all, started as
    Lightning starts its extra processes) against 1 process with batch 32, in this process."""
    cases = {name: [*COMMON, *TOY, *extra, "trainer.max_steps=6"] for name, extra in CASES.items()}
    ddp_cases = {
        name: [*o, "trainer.devices=2", "trainer.strategy=ddp", "data.batch_size=16"]
        for name, o in cases.items()
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "MASTER_ADDR": "127.0.0.1"}
    env.update(MASTER_PORT=str(free_port()), WORLD_SIZE="2", NODE_RANK="0")
    worker = [
        sys.executable,
        str(Path(__file__).with_name("ddp_worker.py")),
        str(tmp_path / "ddp"),
        json.dumps(ddp_cases),
    ]
    procs = [
        subprocess.Popen(worker, env={**env, "LOCAL_RANK": str(r)}, stderr=subprocess.PIPE, text=True)
        for r in range(2)
    ]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    for proc, err in zip(procs, errors, strict=True):
        assert proc.returncode == 0, err[-4000:]
    for name, overrides in cases.items():
        single = one_process(tmp_path / "one" / name, 32, *overrides)
        ddp = json.loads((tmp_path / "ddp" / name / "summary.json").read_text())
        assert ddp["pid"] == procs[0].pid  # rank 0 wrote it
        assert_same_run(tmp_path / "ddp" / name, tmp_path / "one" / name, ddp, single)


@pytest.mark.slow
def test_conditional_images_with_augmentation_ema_and_fid_over_both_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("GANLAB_CACHE", str(tmp_path / "cache"))
    overrides = [
        "data=digits",
        "model=dcgan_cond",
        "model.z_dim=8",
        "model.generator.embed_dim=4",
        "model.generator.width=8",
        "model.discriminator.width=8",
        "model.generator.norm=none",
        "model.discriminator.norm=none",
        "augment=diffaug",
        "ema=on",
        "ema.decay=0.5",
        "loss=hinge",
        "trainer.max_steps=4",
    ]
    ddp = two_processes(tmp_path / "ddp", 8, *overrides)
    single = one_process(tmp_path / "one", 16, *overrides)
    assert_same_run(tmp_path / "ddp", tmp_path / "one", ddp, single)
    assert ddp["metrics"]["metrics/fid"] == pytest.approx(single["metrics"]["metrics/fid"], rel=1e-4)
    assert ddp["metrics_protocol"]["fid"]["n_fake"] == 200  # all samples, not one rank's 100
    ema_ddp = torch.load(tmp_path / "ddp/checkpoints/last.ckpt", weights_only=False)["ema"]["state_dict"]
    ema_one = torch.load(tmp_path / "one/checkpoints/last.ckpt", weights_only=False)["ema"]["state_dict"]
    for key in ema_one:
        torch.testing.assert_close(ema_ddp[key], ema_one[key], atol=ATOL, rtol=RTOL, msg=key)


@pytest.mark.slow
def test_a_resumed_two_process_run_continues_the_one_process_run(tmp_path):
    """3 steps on 2 processes, then a rerun to 6 (resume=auto): the data position, the noise generator
    and the optimizers continue as in 6 uninterrupted steps of one process on the global batch."""
    overrides = [*TOY, "fix=wgan_gp", "callbacks.checkpoint.every=1"]
    two_processes(tmp_path / "ddp", 16, *overrides, "trainer.max_steps=3")
    ddp = two_processes(tmp_path / "ddp", 16, *overrides, "trainer.max_steps=6")
    single = one_process(tmp_path / "one", 32, *overrides, "trainer.max_steps=6")
    assert_same_run(tmp_path / "ddp", tmp_path / "one", ddp, single)
    # each process continued its own training RNG stream (for code that draws from torch's global RNG)
    states = torch.load(tmp_path / "ddp/checkpoints/last.ckpt", weights_only=True)["ganlab"][
        "train_rng_by_rank"
    ]
    assert len(states) == 2 and not torch.equal(states[0]["torch"], states[1]["torch"])


def processes_training_into(run_dir: Path) -> list[int]:
    """Pids of live processes whose command line names ``run_dir`` (Lightning's children do)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if str(run_dir).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_sigterm_to_rank_zero_alone_stops_both_processes_after_the_same_step_with_a_checkpoint(tmp_path):
    """A preemption signal reaching one process only, after the step's shared stop decision (as when it
    lands while that step's checkpoint is written): both processes stop after the next step, none waits
    forever in a collective; rank 0 saves the checkpoint and, although slow to close its trackers, is not
    killed by Lightning's observer of rank 1 (which exits 0: rank 0 reports the run); the summary says
    interrupted, and the rerun (resume=auto) on 2 processes completes."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "STEP": "5", "CLOSE_S": "7"}
    args = [*COMMON, *TOY, "trainer.devices=2", "trainer.strategy=ddp", "data.batch_size=16"]
    cmd = [*args, f"hydra.run.dir={run_dir}", "callbacks.checkpoint.every=5"]
    script = str(Path(__file__).with_name("preempt_after_decision.py"))
    proc = subprocess.Popen(
        [sys.executable, script, *cmd, "trainer.max_steps=1000"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        _, err = proc.communicate(timeout=240)  # a process stuck in a collective would time out here
        deadline = time.monotonic() + 60  # and rank 1 (which got no signal) ended too
        while processes_training_into(run_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = processes_training_into(run_dir)
    finally:
        for pid in [proc.pid, *processes_training_into(run_dir)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert not left
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Forcefully terminating" not in err
    stopped = json.loads((run_dir / "summary.json").read_text())
    assert stopped["status"] == "interrupted" and stopped["world_size"] == 2
    assert stopped["g_steps"] == 6 and "SIGTERM at generator step 6" in stopped["error"]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["ganlab"]["g_steps"] == 6
    rerun = subprocess.run(
        [sys.executable, "-m", "ganlab.train", *cmd, f"trainer.max_steps={stopped['g_steps'] + 3}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    done = json.loads((run_dir / "summary.json").read_text())
    assert done["status"] == "completed" and done["g_steps"] == stopped["g_steps"] + 3
    assert done["replica_max_abs_diff"] == 0.0
