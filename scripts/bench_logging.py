"""What the default tracker costs per generator step: ``python scripts/bench_logging.py``.

Runs ``python -m ganlab.train`` with the given overrides (a DCGAN on digits by default) and each variant
(``--loggers``: ``logger=none`` and ``logger=wandb``, offline, by default), each for a short and a long
run, interleaved (none-short, wandb-short, none-long, wandb-long, repeated), with one torch thread. The
cost of a generator step is the difference of the two run lengths' times divided by the difference of
their step counts, so that start-up and end-of-training work (imports, wandb start and finish, the final
evaluation) cancel. Two clocks: the wall time of the whole process, which counts a tracker's background
process (wandb-core) when it takes the CPU from training, and the CPU time of the process and its
waited-for children (wandb-core included), which a shared machine's load disturbs less. Prints each
repeat and, per clock, the median ms per generator step of each variant and its ratio to the first;
interleaving makes a change of machine load hit all variants alike. Measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_CONFIG = ["data=digits", "model=dcgan", "metrics=none", "callbacks.checkpoint.every=0"]


def run_seconds(variant: str, steps: int, config: list[str], workdir: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, of the process and the children it waited for: wandb-core)
    of one training process of ``steps`` generator steps."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "ganlab.train", *variant.split(), f"trainer.max_steps={steps}", *config]
    cmd += [f"hydra.run.dir={workdir / f'{steps}-{time.time_ns()}'}"]
    started = time.perf_counter()
    process = subprocess.Popen(
        cmd, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (wait status {status})")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def measure(loggers: list[str], short: int, long: int, config: list[str], workdir: Path) -> dict[str, tuple]:
    """One interleaved measurement: per logger, the long run's extra (wall, CPU) time per extra generator
    step in ms, the runs in the order short of each logger, then long of each logger."""
    seconds = {(name, n): run_seconds(name, n, config, workdir) for n in (short, long) for name in loggers}
    return {
        name: tuple(
            1000 * (b - a) / (long - short)
            for a, b in zip(seconds[name, short], seconds[name, long], strict=True)
        )
        for name in loggers
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", type=int, default=100, help="generator steps of the short run")
    parser.add_argument(
        "--long",
        type=int,
        default=2100,
        help="generator steps of the long run (2000 more: start-up varies by seconds)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="interleaved measurements per logger")
    parser.add_argument(
        "--loggers",
        nargs="+",
        default=["logger=none", "logger=wandb"],
        help="variants, each a space-separated list of overrides; the first is the baseline",
    )
    parser.add_argument("config", nargs="*", default=DEFAULT_CONFIG, help="overrides of every run")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    results: dict[str, list[tuple]] = {name: [] for name in args.loggers}
    with tempfile.TemporaryDirectory(prefix="bench_logging_") as tmp:
        for repeat in range(args.repeats):
            for name, value in measure(args.loggers, args.short, args.long, args.config, Path(tmp)).items():
                results[name].append(value)
            row = "  ".join(f"{name}: wall {v[-1][0]:.2f} cpu {v[-1][1]:.2f}" for name, v in results.items())
            print(f"repeat {repeat + 1}/{args.repeats}, ms per generator step: {row}", flush=True)
    for kind, index in (("wall", 0), ("cpu", 1)):
        base = statistics.median(v[index] for v in results[args.loggers[0]])
        for name, values in results.items():
            column = [v[index] for v in values]
            median = statistics.median(column)
            print(
                f"{kind}: {name!r} median {median:.2f} ms per generator step (min {min(column):.2f}, "
                f"max {max(column):.2f}), ratio to {args.loggers[0]!r}: {median / base:.3f}"
            )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
