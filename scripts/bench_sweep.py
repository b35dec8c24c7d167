"""The speedup of a sweep's jobs run at once over the same jobs run one after another, on this machine.

    python scripts/bench_sweep.py                 # 4 small toy jobs: gpus launcher (CPU core groups) vs basic
    python scripts/bench_sweep.py --launcher parallel   # joblib instead of ganlab's gpus launcher
    python scripts/bench_sweep.py --gpus          # on a GPU machine: one job per GPU vs all jobs on cuda:0

Both sweeps run the same ``--jobs`` configurations (seeds 0..N-1) through ``python -m ganlab.train -m``,
timed from the command's start to its end (start-up included: that is what a user waits for). On CPU every
job gets one thread (``OMP_NUM_THREADS=1``) in both sweeps, so the speedup is that of running jobs side by
side; the machine's load average is printed before and after, since other work on the machine skews it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMALL = [
    "logger=none",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "model.generator.width=64",
    "model.discriminator.width=64",
    "data.n_train=4096",
    "sample_every=0",
    "callbacks.checkpoint.every=0",
    "callbacks.evaluation.n_samples=500",
]


def timed_sweep(folder: Path, overrides: list[str], env: dict[str, str]) -> float:
    """Seconds the multirun took; raises when it failed (a benchmark of failed jobs measures nothing)."""
    cmd = [sys.executable, "-m", "ganlab.train", "-m", *overrides, f"hydra.sweep.dir={folder}"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=folder.parent)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench_sweep: the sweep in {folder} failed:\n{proc.stderr[-3000:]}")
    return seconds


def load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[0] if Path("/proc/loadavg").exists() else "?"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=4, help="jobs in each sweep (default 4)")
    parser.add_argument("--steps", type=int, default=300, help="generator steps per job (default 300)")
    parser.add_argument("--launcher", default="gpus", choices=["gpus", "parallel"], help="the parallel one")
    parser.add_argument("--gpus", action="store_true", help="train on GPUs (trainer=gpu): one job per GPU")
    args = parser.parse_args()

    seeds = f"seed={','.join(str(s) for s in range(args.jobs))}"
    common = [*SMALL, f"trainer.max_steps={args.steps}", seeds, "trainer=gpu" if args.gpus else "trainer=cpu"]
    parallel = [f"hydra/launcher={args.launcher}"]
    if args.launcher == "parallel":
        parallel.append(f"hydra.launcher.n_jobs={os.cpu_count() if not args.gpus else args.jobs}")
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1"}
    if not args.gpus:
        env["OMP_NUM_THREADS"] = "1"
    before = load()
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        one_by_one = timed_sweep(Path(tmp) / "sequential", common, env)
        at_once = timed_sweep(Path(tmp) / "parallel", [*common, *parallel], env)
        devices = sorted(
            {json.loads(p.read_text())["device"] for p in (Path(tmp) / "parallel").glob("*/summary.json")}
        )
    print(f"{args.jobs} jobs x {args.steps} generator steps, {'GPUs' if args.gpus else 'CPU'}")
    print(f"one after another (basic launcher): {one_by_one:8.1f} s")
    print(f"at once (hydra/launcher={args.launcher}):    {at_once:8.1f} s   devices: {', '.join(devices)}")
    print(f"speedup: {one_by_one / at_once:.2f}x")
    print(f"(cores: {os.cpu_count()}, load average before/after: {before}/{load()})")


if __name__ == "__main__":
    main()
