"""The speedup of a sweep's jobs run at once over the same jobs run one after another, on this machine.

    python scripts/bench_sweep.py                 # 4 small toy jobs: gpus launcher (CPU core groups) vs basic
    python scripts/bench_sweep.py --rounds 3      # 3 interleaved pairs of sweeps (the median speedup)
    python scripts/bench_sweep.py --start-method spawn  # the gpus launcher without its forkserver
    python scripts/bench_sweep.py --launcher parallel   # joblib instead of ganlab's gpus launcher
    python scripts/bench_sweep.py --gpus          # on a GPU machine: one job per GPU vs all jobs on cuda:0

Both sweeps run the same ``--jobs`` configurations (seeds 0..N-1) through ``python -m ganlab.train -m``,
timed from the command's start to its end (start-up included: that is what a user waits for). On CPU every
job gets one thread (``OMP_NUM_THREADS=1``) in both sweeps, so the speedup is that of running jobs side by
side. Each round runs the two sweeps back to back (alternating which goes first) and prints the load
average before and after each, since other work on the machine skews it.

Where the time goes: ``in train()`` sums the jobs' ``wall_s`` (summary.json: set-up, training, evaluation);
the rest is start-up (interpreter, Hydra, imports of torch and Lightning) and Hydra's per-job work. For the
gpus launcher, each job's process wall time (``gpus_launcher.jsonl``) is split into its time in
``train()`` and its process start-up, and the time until the first job started is the main process's
start-up plus, with ``forkserver``, the server's imports. CPU seconds (less skewed by other work than wall
times) are those of the sweep's main process and the processes it waited for (all of the sequential
sweep; spawned job processes), and each job's own (forked job processes, whose server is not waited for).
"Jobs side by side" is the sum of the jobs' process wall times over the time from the first job's start to
the last one's end: the speedup of the jobs themselves, without the one-time start-up (imports of torch and
Lightning, once in either sweep) that bounds the whole command's speedup for short jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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


@dataclass
class Sweep:
    """One timed multirun: its wall time, the load average around it, and its folder's records."""

    seconds: float
    began: float  # time.time() when the command started
    load: tuple[str, str]
    folder: Path
    cpu: float  # CPU seconds of the command's process and the children it waited for

    def train_seconds(self) -> list[float]:
        """Each job's time in ``train()`` (summary.json ``wall_s``), by job number."""
        paths = sorted(self.folder.glob("*/summary.json"), key=lambda p: int(p.parent.name))
        return [float(json.loads(p.read_text())["wall_s"]) for p in paths]

    def launcher_jobs(self) -> list[dict]:
        """The gpus launcher's record of each job (start and end of its processes), by job number."""
        record = self.folder / "gpus_launcher.jsonl"
        if not record.exists():
            return []
        return sorted(map(json.loads, record.read_text().splitlines()), key=lambda e: e["job"])

    def devices(self) -> list[str]:
        return sorted({json.loads(p.read_text())["device"] for p in self.folder.glob("*/summary.json")})


def load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[0] if Path("/proc/loadavg").exists() else "?"


def timed_sweep(folder: Path, overrides: list[str], env: dict[str, str]) -> Sweep:
    """Run the multirun; raises when it failed (a benchmark of failed jobs measures nothing)."""
    cmd = [sys.executable, "-m", "ganlab.train", "-m", *overrides, f"hydra.sweep.dir={folder}"]
    before, began, cpu, started = load(), time.time(), children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=folder.parent)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench_sweep: the sweep in {folder} failed:\n{proc.stderr[-3000:]}")
    return Sweep(seconds, began, (before, load()), folder, children_cpu() - cpu)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def describe_parallel(sweep: Sweep, before_first: str) -> list[str]:
    """Per job: process wall time, time in train(), start-up; and the time before the first job (what
    ``before_first`` names)."""
    jobs, train = sweep.launcher_jobs(), sweep.train_seconds()
    if not jobs:  # joblib keeps no record of its jobs
        return [f"  in train() per job: {', '.join(f'{s:.1f}' for s in train)} s (sum {sum(train):.1f} s)"]
    first = min(e["start"] for e in jobs) - sweep.began
    lines = [
        f"  command start -> first job's processes started: {first:.1f} s ({before_first})",
        "  job  process wall  in train()  process start-up (share)  CPU of its processes",
    ]
    for entry, inside in zip(jobs, train, strict=True):
        wall, cpu = entry["end"] - entry["start"], sum(c or 0.0 for c in entry["cpu_s"])
        share = 1 - inside / wall
        lines.append(
            f"  {entry['job']:>3}  {wall:10.1f} s  {inside:8.1f} s  {wall - inside:8.1f} s ({share:4.0%})"
            f"  {cpu:8.1f} s"
        )
    last = max(e["end"] for e in jobs) - sweep.began
    lines.append(f"  last job ended at {last:.1f} s; the command ended at {sweep.seconds:.1f} s")
    busy = sum(e["end"] - e["start"] for e in jobs)
    lines.append(
        f"  jobs side by side: their processes' wall times sum to {busy:.1f} s within {last - first:.1f} s "
        f"from the first start to the last end: {busy / (last - first):.2f} jobs at once on average (the "
        "speedup the sweep would show without the one-time start-up that both sweeps pay)"
    )
    lines.append(f"  CPU of the main process and the processes it waited for: {sweep.cpu:.1f} s")
    return lines


def report(number: int, seq: Sweep, par: Sweep, before_first: str) -> float:
    """Print one round (the two sweeps' times, loads and where the time went); return its speedup."""
    ratio = seq.seconds / par.seconds
    print(
        f"round {number}: one after another {seq.seconds:6.1f} s (load {' -> '.join(seq.load)}), "
        f"at once {par.seconds:6.1f} s (load {' -> '.join(par.load)}): speedup {ratio:.2f}x"
    )
    inside = sum(seq.train_seconds())
    print(
        f"  one after another: in train() {inside:.1f} s, start-up and Hydra "
        f"{seq.seconds - inside:.1f} s ({1 - inside / seq.seconds:.0%} of the sweep); CPU {seq.cpu:.1f} s"
    )
    for line in describe_parallel(par, before_first):
        print(line)
    print(f"  devices (at once): {', '.join(par.devices())}", flush=True)
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=4, help="jobs in each sweep (default 4)")
    parser.add_argument("--steps", type=int, default=300, help="generator steps per job (default 300)")
    parser.add_argument("--rounds", type=int, default=1, help="pairs of sweeps, interleaved (default 1)")
    parser.add_argument("--launcher", default="gpus", choices=["gpus", "parallel"], help="the parallel one")
    parser.add_argument(
        "--start-method", default="forkserver", choices=["forkserver", "spawn"], help="gpus launcher's"
    )
    parser.add_argument("--gpus", action="store_true", help="train on GPUs (trainer=gpu): one job per GPU")
    args = parser.parse_args()

    seeds = f"seed={','.join(str(s) for s in range(args.jobs))}"
    common = [*SMALL, f"trainer.max_steps={args.steps}", seeds, "trainer=gpu" if args.gpus else "trainer=cpu"]
    parallel = [f"hydra/launcher={args.launcher}"]
    if args.launcher == "parallel":
        parallel.append(f"hydra.launcher.n_jobs={os.cpu_count() if not args.gpus else args.jobs}")
        label, before_first = "hydra/launcher=parallel", "main process start-up"
    else:
        parallel.append(f"hydra.launcher.start_method={args.start_method}")
        label = f"hydra/launcher=gpus ({args.start_method})"
        forkserver = args.start_method == "forkserver"
        before_first = "main process start-up" + (", forkserver imports" if forkserver else "")
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "1"}
    if not args.gpus:
        env["OMP_NUM_THREADS"] = "1"
    device = "GPUs" if args.gpus else "CPU"
    print(
        f"{args.jobs} jobs x {args.steps} generator steps, {device}, {os.cpu_count()} cores; at once: {label}"
    )
    ratios = []
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        for r in range(args.rounds):
            runs = {}
            for kind in ("seq", "par") if r % 2 == 0 else ("par", "seq"):  # alternate which goes first
                overrides = common if kind == "seq" else [*common, *parallel]
                runs[kind] = timed_sweep(Path(tmp) / f"{r}_{kind}", overrides, env)
            ratios.append(report(r + 1, runs["seq"], runs["par"], before_first))
    if len(ratios) > 1:
        print(
            f"speedup: median {statistics.median(ratios):.2f}x over {len(ratios)} rounds "
            f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)"
        )
    else:
        print(f"speedup: {ratios[0]:.2f}x")


if __name__ == "__main__":
    main()
