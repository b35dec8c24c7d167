"""``python -m ganlab.compare SWEEP_DIR [--metric NAME] [--out DIR]``: compare the runs of a sweep.

Reads every run folder of ``SWEEP_DIR`` (``SWEEP_DIR/<job>/`` of a Hydra multirun), groups the runs into
configurations (the swept parameters other than ``seed``), and writes into ``--out`` (default
``SWEEP_DIR/report/``): ``runs.csv`` (one row per run folder), ``report.md`` and a self-contained
``report.html`` (statistics over seeds, counts of completed/diverged/failed/collapsed runs, the ranking by
``--metric``, in the direction its metric declares in the runs' summary.json), and the PNG plots they
show. Bad input (no such folder, no run folder, unknown metric, unknown direction) is reported in one
paragraph on stderr, exit code 2, and nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ganlab.report import plots, render
from ganlab.report.collect import Run, collect_runs, is_run_folder
from ganlab.report.stats import available_metrics, default_metric, group, higher_is_better, rank, swept_params

DESCRIPTION = __doc__.split("\n\n")[1].replace("``", "")


class UsageError(Exception):
    """Bad input: printed as one paragraph, exit code 2."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ganlab.compare", description=DESCRIPTION)
    parser.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="sweep folder (hydra.sweep.dir)")
    parser.add_argument(
        "--metric",
        help="ranking metric, e.g. metrics/fid or fid (default: metrics/modes if "
        "present, else metrics/fid, else the first metric)",
    )
    parser.add_argument("--out", type=Path, help="output folder (default: SWEEP_DIR/report)")
    direction = parser.add_mutually_exclusive_group()
    direction.add_argument(
        "--higher-is-better",
        dest="higher",
        action="store_true",
        default=None,
        help="rank by decreasing metric (overrides the direction the metric declares)",
    )
    direction.add_argument(
        "--lower-is-better", dest="higher", action="store_false", help="rank by increasing metric"
    )
    return parser.parse_args(argv)


def resolve_metric(name: str | None, available: list[str]) -> str | None:
    """The metric to rank by: ``name`` (``fid`` also finds ``metrics/fid``), or the default."""
    if name is None:
        return default_metric(available)
    for candidate in (name, f"metrics/{name}"):
        if candidate in available:
            return candidate
    raise UsageError(
        f"unknown metric {name!r}: the runs of this sweep have "
        f"{', '.join(available) if available else 'no final metric at all'}."
    )


def resolve_direction(runs: list[Run], metric: str | None, higher: bool | None) -> tuple[bool | None, str]:
    """Whether higher is better, and where that comes from: the flag, else the metric's declaration."""
    if higher is not None:
        return higher, f"set by --{'higher' if higher else 'lower'}-is-better"
    if metric is None:
        return None, ""
    declared = higher_is_better(runs, metric)
    if declared is None:
        raise UsageError(
            f"the direction of metric {metric!r} is unknown (no run's summary.json declares one in "
            "metrics_meta, or the runs declare different ones); pass --higher-is-better or "
            "--lower-is-better."
        )
    return declared, "declared by the metric"


def load(args: argparse.Namespace) -> render.Report:
    """Read and rank the sweep; :class:`UsageError` for bad input."""
    sweep = args.sweep_dir
    if not sweep.is_dir():
        raise UsageError(f"sweep folder {str(sweep)!r} does not exist or is not a folder.")
    runs = collect_runs(sweep)
    if not runs:
        hint = (
            "it is itself a run folder: pass the folder above it"
            if is_run_folder(sweep)
            else "pass the folder of a multirun (hydra.sweep.dir)"
        )
        raise UsageError(
            f"sweep folder {str(sweep)!r} holds no run folder (a subfolder with .hydra/, "
            f"summary.json or metrics.csv); {hint}."
        )
    metrics = available_metrics(runs)
    metric = resolve_metric(args.metric, metrics)
    higher, source = resolve_direction(runs, metric, args.higher)
    params = swept_params(runs)
    configs = group(runs, params)
    configs = rank(configs, metric, bool(higher)) if metric else configs
    shown = [m for m in metrics if m.startswith("metrics/")]
    if metric and metric not in shown:
        shown.insert(0, metric)
    return render.Report(sweep.resolve(), runs, params, configs, metric, higher, source, shown)


def write(report: render.Report, out: Path) -> list[Path]:
    """Plots, runs.csv, report.md and report.html into ``out``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    drawn = {
        "curves": plots.plot_curves(report.configs, report.metrics, out / "curves.png"),
        "finals": plots.plot_finals(report.configs, report.metrics, out / "finals.png"),
        "samples": plots.plot_samples(report.configs, out / "samples.png"),
    }
    report.plots = {name: path for name, path in drawn.items() if path is not None}
    blocks = render.build(report)
    (out / "report.md").write_text(render.to_markdown(blocks))
    (out / "report.html").write_text(render.to_html(blocks, f"Sweep report: {report.sweep_dir.name}"))
    render.write_runs_csv(report.runs, report.params, out / "runs.csv")
    return [out / "runs.csv", out / "report.md", out / "report.html", *report.plots.values()]


def main(argv: list[str] | None = None) -> int:
    """Entry point; 0 on success, 2 on bad input (argparse usage errors exit 2 too)."""
    args = parse_args(argv)
    try:
        report = load(args)
        if args.out is not None and args.out.exists() and not args.out.is_dir():
            raise UsageError(f"--out {str(args.out)!r} exists and is not a folder.")
    except UsageError as exc:
        print(f"ganlab.compare: error: {exc}", file=sys.stderr)
        return 2
    written = write(report, args.out or args.sweep_dir / "report")
    print(render.best_sentence(report))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
