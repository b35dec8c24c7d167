"""Sweep launchers: ganlab's ``gpus`` launcher (one job per device group, simulated here with
``GANLAB_FAKE_GPUS``), the GPU settings of ray/cluster_local/slurm, the launcher's bad input, and a real
local Ray (slow, only where ``pip install "ganlab[ray]"`` was done)."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import astuple
from itertools import combinations
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from ganlab.paths import CONF_DIR
from hydra_plugins.ganlab_gpus.devices import FAKE_GPUS, Slot, check_request, machine_cores, slots

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


def multirun(sweep: Path, *overrides: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if k != FAKE_GPUS}
    environment = {**inherited, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", **(env or {})}
    cmd = [sys.executable, "-m", "ganlab.train", "-m", *TINY, *overrides, f"hydra.sweep.dir={sweep}"]
    return subprocess.run(cmd, env=environment, capture_output=True, text=True, timeout=900, cwd=sweep.parent)


# device groups -----------------------------------------------------------------------------------------
def test_gpus_are_split_into_consecutive_groups_with_the_cores_shared():
    five = ["0", "1", "2", "3", "4"]
    cores = machine_cores()
    # compared as tuples: Hydra's plugin scan re-executes this module in place (a new Slot class)
    assert [astuple(s) for s in slots(2, None, five)] == [
        (("0", "1"), max(1, cores // 2)),
        (("2", "3"), max(1, cores // 2)),
    ]
    assert [astuple(s) for s in slots(1, 3, ["7", "5"])] == [(("7",), 3), (("5",), 3)]  # ids as given
    assert Slot(("2", "3"), 4).environment() == {
        "CUDA_VISIBLE_DEVICES": "2,3",
        "OMP_NUM_THREADS": "4",
        "MKL_NUM_THREADS": "4",
    }


def test_without_gpus_each_job_gets_a_core_group_and_no_cuda_variable():
    cores = machine_cores()
    assert [astuple(s) for s in slots(1, None, [])] == [((), 1)] * cores
    assert len(slots(1, 2, [])) == max(1, cores // 2)
    assert "CUDA_VISIBLE_DEVICES" not in Slot((), 1).environment()


@pytest.mark.parametrize(
    "devices, cpus, gpus, named",
    [
        (0, None, ["0"], "devices_per_job=0"),
        (3, None, ["0", "1"], "devices_per_job=3, but this machine offers 2 GPU(s) (0,1). Valid: 1 to 2"),
        (1, 0, [], "cpus_per_job=0"),
    ],
)
def test_a_request_the_machine_cannot_meet_is_named(devices, cpus, gpus, named):
    assert named in check_request(devices, cpus, gpus)
    assert check_request(1, None, gpus) is None and check_request(2, 1, ["0", "1"]) is None


# bad input on the command line ---------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["3", "0"])
def test_more_devices_per_job_than_exist_exits_2_and_leaves_an_earlier_sweep_untouched(tmp_path, value):
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / "summary.json").write_text('{"status": "completed"}')
    before = sorted(p.relative_to(sweep) for p in sweep.rglob("*"))
    proc = multirun(
        sweep,
        "hydra/launcher=gpus",
        f"hydra.launcher.devices_per_job={value}",
        "seed=0,1",
        env={FAKE_GPUS: "0,1"},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    message = [line for line in proc.stderr.splitlines() if line.startswith("ganlab:")]
    assert len(message) == 1 and f"devices_per_job={value}" in message[0] and "Valid: " in message[0]
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
    assert sorted(jobs) == [0, 1, 2, 3, 4] and all(e["exitcode"] == 0 for e in jobs.values())
    for a, b in combinations(jobs.values(), 2):
        overlap = a["start"] < b["end"] and b["start"] < a["end"]
        assert not (overlap and a["gpus"] == b["gpus"]), (a, b)
    assert max(sum(e["start"] <= s["start"] < e["end"] for e in jobs.values()) for s in jobs.values()) == 2
    for idx, entry in jobs.items():
        summary = json.loads((sweep / str(idx) / "summary.json").read_text())
        assert summary["status"] == ("failed" if idx == 2 else "completed"), summary["error"]
        assert summary["visible_devices"] == entry["gpus"] and len(entry["gpus"]) == 1
        assert summary["device"] == "cpu"  # fake GPUs: torch sees none, the run trains on CPU
        assert summary["pid"] == entry["pid"]  # the run trained in the process the launcher started


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
