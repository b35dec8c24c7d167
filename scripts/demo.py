"""`make demo`: which stability fix covers the 25 Gaussians of grid25 best? A study sized so that the
answer survives the statistics of the comparison report, in about six minutes on two CPU cores.

The study is ``experiment=demo_study`` (its YAML gives the fixes, seeds, training recipe and the
measurements behind them): each fix trained with five seeds, two jobs at a time, then
``python -m ganlab.compare`` ranks the fixes by mode coverage and tests the best against each other one
(Holm-corrected Mann-Whitney U). This script prints the answer from the report's ``report.json``: the
winner with its 95% interval, the fixes the test cannot separate from it, those it separates (with p),
and the report's path.

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


def run(cmd: list[str]) -> int:
    print("running:", " ".join(cmd), flush=True)
    return subprocess.call(cmd, env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"})


def interval(conf: dict) -> str:
    """``24.6 [24.2, 25.0]``: the mean and the configuration's 95% interval."""
    lo, hi = conf["ci"]
    return f"{conf['mean']:.3g} [{lo:.3g}, {hi:.3g}]"


def describe(env: dict) -> list[str]:
    """The answer for one environment of ``report.json`` (a dataset): the winner with its interval, the
    fixes tied with it and the ones the test separates from it, each with its Holm-corrected p."""
    configs = env["configurations"]
    winner = next(c for c in configs if c["name"] == env["winner"])
    key = ", ".join(f"{k}={v}" for k, v in env["key"].items()) or "all runs"
    better = "higher" if env["direction"] == "max" else "lower"
    tied = [c for c in configs if c["name"] in env["tied_with_winner"]]
    separated = [c for c in configs if c is not winner and c["name"] not in env["tied_with_winner"]]
    lines = [
        f"{key}: {env['metric']} ({better} is better, range {env['range'][0]:g} to {env['range'][1]:g})",
        f"  winner:    {winner['name']}  {interval(winner)}  (mean [95% interval, {winner['ci_method']}], "
        f"{winner['n']} seeds)",
    ]
    lines.append("  tied with it (the test cannot separate them):")
    lines += [f"    {c['name']}  {interval(c)}  p = {c['p_vs_best']:.3g}" for c in tied] or ["    none"]
    lines.append("  separated from it (Holm-corrected Mann-Whitney U, p < 0.05):")
    lines += [f"    {c['name']}  {interval(c)}  p = {c['p_vs_best']:.3g}" for c in separated] or ["    none"]
    lines += [f"  warning: {w}" for w in env.get("warnings", [])]
    return lines


def answer(report_json: Path) -> str:
    """What the study found, read from the comparison report's ``report.json``; the report's path last."""
    report = json.loads(report_json.read_text())
    lines = [line for env in report["environments"] for line in describe(env)]
    lines += [f"damaged run folder {d['run']}: {d['reason']}" for d in report.get("damaged", [])]
    lines.append(f"report: {report_json.parent / 'report.html'}  (report.json, plots and runs.csv beside it)")
    return "\n".join(lines)


def study(out: Path, extra: list[str]) -> int:
    code = run(
        [sys.executable, "-m", "ganlab.train", "experiment=demo_study", *extra, f"hydra.sweep.dir={out}"]
    )
    if not out.is_dir():  # ganlab.train checks the whole config before it writes anything
        print(
            f"demo: the study did not start: ganlab.train rejected its configuration (exit code {code}, "
            f"message above) and wrote nothing. Extra arguments are overrides of experiment=demo_study, "
            f"e.g. seed=0,1,2,3,4,5 or trainer.max_steps=3000.",
            file=sys.stderr,
        )
        return 2
    report = out / "report"
    reported = run([sys.executable, "-m", "ganlab.compare", str(out), "--out", str(report)])
    if reported == 0 and (report / "report.json").is_file():
        print("\n" + answer(report / "report.json"))
    print(f"runs:   {out}/<job>/ (summary.json, metrics.csv, samples/, checkpoints/)")
    return reported or code  # 1 when a training job failed (the report lists it), 2 for compare's bad input


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
