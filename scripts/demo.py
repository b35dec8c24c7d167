"""`make demo`: which stability fix wins on the toy benchmarks? A small stability_toy study (five fixes x
ring8 and grid25 x two seeds = 20 short jobs, two at a time) followed by its comparison report.

`python scripts/demo.py --single` instead trains one non-saturating GAN on grid25 to convergence
(experiment=demo, `make demo-single`). Extra arguments are passed to ganlab.train as overrides.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

# the study at a size that finishes in a few minutes on two CPU cores
STUDY = [
    "experiment=stability_toy",
    "fix=vanilla,non_saturating,wgan_gp,hinge,ns_r1",
    "seed=0,1",
    "trainer.max_steps=800",
    "model.generator.width=64",
    "model.discriminator.width=64",
    "data.batch_size=256",
    "callbacks.evaluation.every=200",
    "sample_every=0",
    "logger=none",
]


def run(cmd: list[str]) -> int:
    print("running:", " ".join(cmd), flush=True)
    return subprocess.call(cmd, env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"})


def study(out: Path, extra: list[str]) -> int:
    code = run([sys.executable, "-m", "ganlab.train", *STUDY, *extra, f"hydra.sweep.dir={out}"])
    if not out.is_dir():
        return code or 1
    code = run([sys.executable, "-m", "ganlab.compare", str(out)]) or code
    print(f"\nreport:   {out / 'report' / 'report.html'}  (and report.md, runs.csv, *.png beside it)")
    print(f"runs:     {out}/<job>/ (samples/, summary.json, metrics.csv, checkpoints/)")
    return code


def single(out: Path, extra: list[str]) -> int:
    code = run([sys.executable, "-m", "ganlab.train", "experiment=demo", f"hydra.run.dir={out}", *extra])
    if not (out / "summary.json").is_file():
        return code or 1
    summary = json.loads((out / "summary.json").read_text())
    m = summary["metrics"]
    print(
        f"\nstatus: {summary['status']} after {summary['g_steps']} generator steps "
        f"in {summary['wall_s']:.0f} s"
    )
    if "metrics/modes" in m:
        print(
            f"modes covered: {m['metrics/modes']:.0f} of {m['metrics/n_modes']:.0f}; "
            f"high-quality samples: {100 * m['metrics/hq']:.1f}% (of 2500, within 3 std of a mode)"
        )
    print(f"samples:  {out / (summary['samples'] or 'samples')}")
    print(f"summary:  {out / 'summary.json'}")
    return code


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", action="store_true", help="one converged run instead of the study")
    args, extra = parser.parse_known_args(argv)
    out = Path("outputs/demo") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return single(out, extra) if args.single else study(out, extra)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
