"""Sweep launchers: ganlab's ``gpus`` launcher (one job per device group, simulated here with
``GANLAB_FAKE_GPUS``; jobs of several processes; its scheduler and forkserver), the GPU settings of
ray/cluster_local/slurm, the launcher's bad input, and a real local Ray (slow, only where
``pip install "ganlab[ray]"`` was done)."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import deque
from dataclasses import astuple
from itertools import combinations
from multiprocessing import get_context
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from ddptools import COMMON, TOY, assert_same_metrics, assert_same_run, one_process, weights
from fakejobs import fake_job
from ganlab.paths import CONF_DIR
from hydra_plugins.ganlab_gpus.devices import (
    FAKE_GPUS,
    Slot,
    check_request,
    check_trainer,
    machine_cores,
    slots,
)
from hydra_plugins.ganlab_gpus.gpus_launcher import PRELOAD, _context, _Scheduler

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "logger=none",
    "trainer.max_steps=4",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "model.generator.width=8",
    "model.discriminator.width=8",
    "data.n_train=512",
    "data.batch_size=8",
    "callbacks.evaluation.n_samples=200",
    "sample_every=0",
]


def multirun(
    sweep: Path, *overrides: str, env: dict[str, str] | None = None, base: list[str] = TINY
) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if k != FAKE_GPUS}
    environment = {**inherited, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", **(env or {})}
    cmd = [sys.executable, "-m", "ganlab.train", "-m", *base, *overrides, f"hydra.sweep.dir={sweep}"]
    return subprocess.run(cmd, env=environment, capture_output=True, text=True, timeout=900, cwd=sweep.parent)


# device groups -----------------------------------------------------------------------------------------
def test_gpus_are_split_into_consecutive_groups_with_the_cores_shared():
    five = ["0", "1", "2", "3", "4"]
    cores = machine_cores()
    # compared as tuples: Hydra's plugin scan re-executes this module in place (a new Slot class)
    assert [astuple(s) for s in slots(2, None, five)] == [
        (("0", "1"), max(1, cores // 2 // 2), 2),
        (("2", "3"), max(1, cores // 2 // 2), 2),
    ]
    assert [astuple(s) for s in slots(1, 3, ["7", "5"])] == [(("7",), 3, 1), (("5",), 3, 1)]  # ids as given
    assert [astuple(s) for s in slots(2, 8, ["0", "1"])] == [(("0", "1"), 4, 2)]  # a job's cores, shared
    assert Slot(("2", "3"), 4).environment() == {
        "CUDA_VISIBLE_DEVICES": "2,3",
        "OMP_NUM_THREADS": "4",
        "MKL_NUM_THREADS": "4",
    }


def test_without_gpus_each_job_gets_a_core_per_process_and_no_cuda_variable():
    cores = machine_cores()
    assert [astuple(s) for s in slots(1, None, [])] == [((), 1, 1)] * cores
    assert len(slots(1, 2, [])) == max(1, cores // 2)
    assert [astuple(s) for s in slots(2, None, [])] == [((), 1, 2)] * max(1, cores // 2)
    assert "CUDA_VISIBLE_DEVICES" not in Slot((), 1).environment()


def test_each_process_of_a_job_gets_what_torchrun_would_set():
    slot = Slot(("2", "3"), 1, 2)
    assert slot.process_environment(1, 29511, "run") == {
        **slot.environment(),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29511",
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
        "RANK": "1",
        "LOCAL_RANK": "1",
        "GROUP_RANK": "0",
        "NODE_RANK": "0",
        "TORCHELASTIC_RUN_ID": "run",
    }
    single = Slot(("2",), 1)
    assert single.process_environment(0, 0, "run") == single.environment()  # one process: no process group


def test_gpus_are_known_without_torch_from_the_variables_or_a_missing_driver(tmp_path, monkeypatch):
    devices = sys.modules[Slot.__module__]
    driver = tmp_path / "nvidiactl"
    monkeypatch.setattr(devices, "GPU_DRIVER_FILES", (str(driver),))
    monkeypatch.delenv(FAKE_GPUS, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert devices.known_gpus() == []  # no driver: no GPU, and no torch to import
    driver.touch()
    assert devices.known_gpus() is None  # a driver: torch must count them
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3")
    assert devices.known_gpus() == ["2", "3"]
    monkeypatch.setenv(FAKE_GPUS, "")
    assert devices.known_gpus() == []


@pytest.mark.parametrize(
    "devices, cpus, gpus, named",
    [
        (0, None, ["0"], "devices_per_job=0"),
        (3, None, ["0", "1"], "devices_per_job=3, but this machine offers 2 GPU(s) (0,1). Valid: 1 to 2"),
        (machine_cores() + 1, None, [], f"no GPU and {machine_cores()} CPU core(s)"),
        (1, 0, [], "cpus_per_job=0"),
    ],
)
def test_a_request_the_machine_cannot_meet_is_named(devices, cpus, gpus, named):
    assert named in check_request(devices, cpus, gpus)
    assert check_request(1, None, gpus) is None and check_request(2, 1, ["0", "1"]) is None


@pytest.mark.parametrize(
    "trainer, per_job, gpus, named",
    [
        ({"devices": 2, "accelerator": "cpu"}, 2, ["0", "1"], None),
        ({"devices": "0,1"}, 2, ["0", "1"], None),
        ({"devices": [0, 1]}, 2, [], None),
        ({"devices": "auto", "accelerator": "gpu"}, 2, ["0", "1"], None),  # a job sees its 2 GPUs
        ({"devices": "auto", "accelerator": "cpu"}, 2, ["0", "1"], "asks for 1. Valid: trainer.devices=2"),
        ({"devices": 1}, 2, ["0", "1"], "trainer.devices=1 with hydra.launcher.devices_per_job=2"),
        ({"devices": 2}, 1, ["0", "1"], "or hydra.launcher.devices_per_job=2."),
        ({"devices": 2, "num_nodes": 2}, 2, ["0", "1"], "trainer.num_nodes=2 with hydra/launcher=gpus"),
    ],
)
def test_the_trainer_must_ask_for_the_processes_of_a_job(trainer, per_job, gpus, named):
    problem = check_trainer(trainer, per_job, gpus)
    assert problem is None if named is None else named in problem


# bad input on the command line ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, named",
    [
        (["hydra.launcher.devices_per_job=3"], "devices_per_job=3, but this machine offers 2 GPU(s)"),
        (["hydra.launcher.devices_per_job=0"], "devices_per_job=0"),
        (
            ["hydra.launcher.devices_per_job=2", "trainer.accelerator=cpu"],
            "trainer.devices=1 with hydra.launcher.devices_per_job=2",
        ),
        (
            ["hydra.launcher.devices_per_job=2", "trainer.devices=2", "trainer.num_nodes=2"],
            "trainer.num_nodes=2",
        ),
        (["hydra.launcher.start_method=fork"], "start_method='fork'"),
    ],
)
def test_a_request_the_launcher_cannot_meet_exits_2_and_leaves_an_earlier_sweep_untouched(
    tmp_path, overrides, named
):
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / "summary.json").write_text('{"status": "completed"}')
    before = sorted(p.relative_to(sweep) for p in sweep.rglob("*"))
    proc = multirun(sweep, "hydra/launcher=gpus", *overrides, "seed=0,1", env={FAKE_GPUS: "0,1"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    message = [line for line in proc.stderr.splitlines() if line.startswith("ganlab:")]
    assert len(message) == 1 and named in message[0] and "Valid: " in message[0]
    assert sorted(p.relative_to(sweep) for p in sweep.rglob("*")) == before
    assert (sweep / "0" / "summary.json").read_text() == '{"status": "completed"}'


def test_a_mistyped_launcher_gets_hydras_message_and_a_hint_listing_the_launchers(tmp_path):
    proc = multirun(tmp_path / "sweep", "hydra/launcher=gpu", "seed=0,1")
    assert proc.returncode == 1
    assert "Could not find 'hydra/launcher/gpu'" in proc.stderr
    (hint,) = [line for line in proc.stderr.splitlines() if line.startswith("ganlab:")]
    assert "did you mean 'gpus'?" in hint
    launchers = {p.stem for p in (CONF_DIR / "hydra" / "launcher").glob("*.yaml")} | {"basic", "joblib"}
    assert all(name in hint for name in launchers)
    assert not (tmp_path / "sweep").exists()


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="ray is installed here")
def test_ray_without_the_extra_names_the_missing_plugin(tmp_path):
    proc = multirun(tmp_path / "sweep", "hydra/launcher=ray", "seed=0,1")
    assert proc.returncode == 1
    assert "ganlab: hydra/launcher=ray needs the plugin hydra_plugins.hydra_ray_launcher" in proc.stderr
    assert "ray.yaml say how to install it" in proc.stderr and not (tmp_path / "sweep").exists()


# the scheduler of jobs of several processes (fake jobs) --------------------------------------------------
def schedule(tmp_path: Path, context, slot: Slot, jobs: list[list[str]]) -> tuple[list[JobReturn], dict]:
    record = tmp_path / "gpus_launcher.jsonl"
    scheduler = _Scheduler([slot], context, fake_job, record, grace_s=1.0)
    results = scheduler.run(deque(enumerate(jobs)))
    entries = {e["job"]: e for e in map(json.loads, record.read_text().splitlines())}
    return results, entries


def failure(result: JobReturn) -> str:
    assert result.status == JobStatus.FAILED
    with pytest.raises(Exception) as err:
        _ = result.return_value
    return str(err.value)


def test_a_dead_process_fails_its_job_its_waiting_sibling_is_killed_and_the_next_job_runs(tmp_path):
    """Rank 1 dies while rank 0 waits (as in a collective): after the grace period rank 0 is killed,
    the job is failed, naming the process that failed first, and the next job gets the slot."""
    results, entries = schedule(
        tmp_path, get_context("spawn"), Slot((), 1, 2), [["hang", "exit3"], ["ok", "ok"]]
    )
    assert failure(results[0]).startswith("process 1 of job #0 ended with exit code 3 before returning")
    assert entries[0]["exitcodes"] == [-signal.SIGKILL, 3]
    assert results[1].status == JobStatus.COMPLETED and results[1].return_value == 0  # rank 0's
    assert entries[1]["exitcodes"] == [0, 0] and entries[1]["start"] >= entries[0]["end"]


def test_a_rank_0_slower_to_end_than_the_others_is_not_killed(tmp_path):
    """Rank 1 ended, completed; rank 0 takes longer than the grace period (closing its trackers): the
    clock starts only when a process fails or rank 0 ends."""
    results, entries = schedule(tmp_path, get_context("spawn"), Slot((), 1, 2), [["slow", "ok"]])
    assert results[0].status == JobStatus.COMPLETED and results[0].return_value == 0
    assert entries[0]["exitcodes"] == [0, 0]


def test_a_process_of_rank_above_0_that_raised_fails_its_job(tmp_path):
    results, entries = schedule(tmp_path, get_context("spawn"), Slot((), 1, 2), [["ok", "raise"]])
    assert failure(results[0]).startswith("process 1 of job #0 failed: ValueError: rank 1 broke")
    assert entries[0]["exitcodes"] == [0, 0]


def test_forked_processes_take_their_slots_threads_rank_and_devices(tmp_path, monkeypatch):
    """Forked from a server that imported torch and Lightning with the launcher's environment (one
    thread, no rank), each process still gets its slot's threads (and runs a parallel region on them:
    no thread pool was started before the fork), its rank and its GPUs; nothing initialised CUDA."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what the server's GNU OpenMP reads when torch loads
    slot = Slot(("0", "1"), 2, 2)
    results, entries = schedule(tmp_path, _context("forkserver"), slot, [["ok", "ok", f"report={tmp_path}"]])
    assert results[0].return_value == 0 and entries[0]["exitcodes"] == [0, 0]
    for rank in (0, 1):
        assert json.loads((tmp_path / f"{rank}.json").read_text()) == {
            "RANK": str(rank),
            "lightning_rank": rank,
            "torch_threads": 2,
            "parallel_sum": 4_000_000.0,
            "cuda_initialized": False,
            "CUDA_VISIBLE_DEVICES": "0,1",
        }


PROBE_CUDA = """
import importlib, json, sys
import torch, torch.cuda
calls = []
def spy(name, function):
    def called(*args, **kwargs):
        calls.append(name)
        return function(*args, **kwargs)
    return called
torch._C._cuda_getDeviceCount = spy("cudaGetDeviceCount", torch._C._cuda_getDeviceCount)
torch._C._cuda_init = spy("cuda_init", torch._C._cuda_init)
torch.cuda._raw_device_count_nvml = spy("nvml", torch.cuda._raw_device_count_nvml)
torch.cuda.device_count = spy("device_count", torch.cuda.device_count)
torch.cuda.is_available = spy("is_available", torch.cuda.is_available)
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
print(json.dumps({"calls": calls, "initialized": torch.cuda.is_initialized()}), flush=True)
"""


def test_the_forkserver_imports_ask_cuda_nothing():
    """Neither ``cudaGetDeviceCount`` (``torch.cuda.is_available()``: it initialises the CUDA driver,
    which reads CUDA_VISIBLE_DEVICES once) nor NVML is called while the server imports its modules, so a
    job's CUDA_VISIBLE_DEVICES, set after the fork, is the one CUDA reads."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE_CUDA, json.dumps(PRELOAD)], capture_output=True, text=True, check=True
    )
    assert json.loads(proc.stdout.splitlines()[-1]) == {"calls": [], "initialized": False}


# the launchers' GPU settings ---------------------------------------------------------------------------
def launcher_cfg(launcher: str, *overrides: str) -> dict:
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", [f"hydra/launcher={launcher}", *overrides], return_hydra_config=True)
    GlobalHydra.instance().clear()
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


@pytest.mark.parametrize("gpus, expected", [("", 0), ("0,1,2,3", 2)])
def test_cluster_local_and_ray_give_gpus_only_where_they_exist(monkeypatch, gpus, expected):
    monkeypatch.setenv(FAKE_GPUS, gpus)
    local = launcher_cfg("cluster_local", "trainer.devices=2")
    assert local["gpus_per_node"] == expected and local["tasks_per_node"] == 1
    ray = launcher_cfg("ray")
    assert ray["ray"]["remote"]["num_gpus"] == min(expected, 1) and ray["ray"]["remote"]["max_calls"] == 1


def test_slurm_gives_each_process_of_a_job_its_gpu():
    slurm = launcher_cfg("slurm", "trainer.devices=4", "trainer.num_nodes=2")
    assert (slurm["gpus_per_node"], slurm["tasks_per_node"], slurm["nodes"]) == (4, 4, 2)


# real sweeps -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_fake_gpus_five_jobs_never_share_a_device(tmp_path):
    sweep = tmp_path / "sweep"
    # job 2 fails when its model is built: recorded, and the others still run
    proc = multirun(
        sweep,
        "hydra/launcher=gpus",
        "model.generator.activation=relu,relu,bogus,relu,relu",
        env={FAKE_GPUS: "0,1"},
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # one job failed: the sweep says so
    assert "1 job(s) of the sweep failed" in proc.stderr
    jobs = {e["job"]: e for e in map(json.loads, (sweep / "gpus_launcher.jsonl").read_text().splitlines())}
    assert sorted(jobs) == [0, 1, 2, 3, 4] and all(e["exitcodes"] == [0] for e in jobs.values())
    for a, b in combinations(jobs.values(), 2):
        overlap = a["start"] < b["end"] and b["start"] < a["end"]
        assert not (overlap and a["gpus"] == b["gpus"]), (a, b)
    assert max(sum(e["start"] <= s["start"] < e["end"] for e in jobs.values()) for s in jobs.values()) == 2
    for idx, entry in jobs.items():
        summary = json.loads((sweep / str(idx) / "summary.json").read_text())
        assert summary["status"] == ("failed" if idx == 2 else "completed"), summary["error"]
        assert summary["visible_devices"] == entry["gpus"] and len(entry["gpus"]) == 1
        assert summary["device"] == "cpu"  # fake GPUs: torch sees none, the run trains on CPU
        assert [summary["pid"]] == entry["pids"]  # the run trained in the process the launcher started
        if idx != 2:  # (job 2 failed before training)
            assert [(p["rank"], p["pid"], p["device"]) for p in summary["processes"]] == [
                (0, *entry["pids"], "cpu")
            ]


@pytest.mark.slow
def test_jobs_of_two_processes_train_what_one_process_trains_on_the_global_batch(tmp_path):
    """2 fake devices, devices_per_job=2: each of the 2 jobs is 2 gloo processes that the launcher started
    as torchrun would; both complete, each summary records both processes, and a job equals one process
    fed the same global batches (the comparison of tests/test_distributed.py, ddptools.py)."""
    sweep, toy = tmp_path / "sweep", [*TOY, "trainer.max_steps=6"]
    per_job = ["hydra.launcher.devices_per_job=2", "trainer.devices=2", "trainer.strategy=ddp"]
    ddp = [*COMMON, *toy, "data.batch_size=16", "hydra/launcher=gpus", *per_job, "seed=0,1"]
    proc = multirun(sweep, *ddp, env={FAKE_GPUS: "0,1"}, base=[])
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = {e["job"]: e for e in map(json.loads, (sweep / "gpus_launcher.jsonl").read_text().splitlines())}
    for idx, entry in jobs.items():
        assert (entry["gpus"], entry["processes"], entry["exitcodes"]) == (["0", "1"], 2, [0, 0])
        summary = json.loads((sweep / str(idx) / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["visible_devices"] == ["0", "1"]
        ranks = [(p["rank"], p["pid"], p["device"]) for p in summary["processes"]]
        assert ranks == [(0, entry["pids"][0], "cpu"), (1, entry["pids"][1], "cpu")]
    assert sorted(jobs) == [0, 1] and sorted(p.name for p in (sweep / "1").glob("*.log")) == [
        "train.log",
        "train_rank1.log",
    ]
    console = proc.stdout + proc.stderr  # a job's lines come from its rank 0 only
    assert [console.count(f"[job {j}] {what}:") for j in (0, 1) for what in ("started", "ended")] == [1] * 4
    single = one_process(tmp_path / "one", 32, *toy, "seed=1")
    ddp_summary = json.loads((sweep / "1" / "summary.json").read_text())
    assert_same_run(sweep / "1", tmp_path / "one", ddp_summary, single)
    assert_same_metrics(sweep / "1", tmp_path / "one")


@pytest.mark.slow
def test_forked_and_spawned_jobs_train_bit_identical_runs(tmp_path):
    for method in ("forkserver", "spawn"):
        proc = multirun(
            tmp_path / method, "hydra/launcher=gpus", f"hydra.launcher.start_method={method}", "seed=0,1"
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    for job in ("0", "1"):
        forked, spawned = tmp_path / "forkserver" / job, tmp_path / "spawn" / job
        assert (forked / "metrics.csv").read_bytes() == (spawned / "metrics.csv").read_bytes()
        assert len((forked / "metrics.csv").read_text().splitlines()) > 4
        a, b = weights(forked), weights(spawned)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
    reason='hydra-ray-launcher is not installed (pip install "ganlab[ray]", in its own environment)',
)
def test_ray_runs_four_jobs_and_a_job_equals_the_basic_launchers(tmp_path):
    ray_sweep, basic_sweep = tmp_path / "ray", tmp_path / "basic"
    proc = multirun(ray_sweep, "hydra/launcher=ray", "hydra.launcher.ray.init.num_cpus=2", "seed=0,1,2,3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    statuses = [json.loads((ray_sweep / str(i) / "summary.json").read_text())["status"] for i in range(4)]
    assert statuses == ["completed"] * 4
    assert multirun(basic_sweep, "seed=3").returncode == 0
    ray_rows = list(csv.reader(open(ray_sweep / "3" / "metrics.csv")))
    basic_rows = list(csv.reader(open(basic_sweep / "0" / "metrics.csv")))
    assert len(ray_rows) > 4 and ray_rows == basic_rows


@pytest.mark.slow
def test_an_installed_wheel_brings_the_gpus_launcher(tmp_path):
    """Hydra finds the plugin in the wheel's hydra_plugins (not only in a checkout's src/)."""

    def pip(*args: str | Path) -> None:
        offline = ["--no-deps", "--no-index", "--no-build-isolation", "-q"]
        subprocess.run([sys.executable, "-m", "pip", *map(str, args), *offline], check=True, cwd=tmp_path)

    source, site = tmp_path / "source", tmp_path / "site"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "src", "conf"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    pip("wheel", source, "-w", tmp_path)
    (wheel,) = tmp_path.glob("ganlab-*.whl")
    pip("install", "--target", site, wheel)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); from hydra.core.plugins import Plugins; "
        "from hydra.plugins.launcher import Launcher; import hydra_plugins.ganlab_gpus as p; "
        "print(p.__file__); print([c.__name__ for c in Plugins.instance().discover(Launcher)])"
    )
    cmd = [sys.executable, "-I", "-c", probe, str(site)]  # -I: no PYTHONPATH, so no checkout's src/
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=tmp_path).stdout.splitlines()
    assert out[0].startswith(str(site)) and "GpusLauncher" in out[1]
