"""``python -m ganlab.compare SWEEP_DIR [--metric M] [--by data,model] [--baseline C] [--ci t] [--out DIR]``:
compare the runs of a sweep.

Reads every run folder of ``SWEEP_DIR`` (``SWEEP_DIR/<job>/`` of a Hydra multirun), splits the runs into
environments (one per value of the ``--by`` axes, default the data, and per protocol of the metric), groups
each environment's runs into configurations (the swept parameters other than ``seed`` and the ``--by``
axes) and ranks them by ``--metric`` in the direction the metric declares, with statistics over seeds,
tests against the best, probability of improvement over ``--baseline``, failure rates and budget curves.
Writes into ``--out`` (default ``SWEEP_DIR/report/``): ``report.html`` (one self-contained page),
``report.md``, ``report.json`` (every number), ``runs.csv`` and the PNG plots. Bad input (no such folder,
no run folder, unknown metric, axis, baseline or family, unknown direction) is reported in one paragraph on
stderr, exit code 2, and nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ganlab.report import export, plots, render, sections
from ganlab.report.analysis import Environment, Options, environments
from ganlab.report.collect import Run, collect_runs, is_run_folder
from ganlab.report.samples import plot_samples
from ganlab.report.stats import SEED, available_metrics, default_metric, higher_is_better, swept_params

DESCRIPTION = __doc__.split("\n\n")[1].replace("``", "")


class UsageError(Exception):
    """Bad input: printed as one paragraph, exit code 2."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ganlab.compare", description=DESCRIPTION)
    parser.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="sweep folder (hydra.sweep.dir)")
    parser.add_argument(
        "--metric",
        help="ranking metric, e.g. metrics/fid or fid (default: metrics/modes if "
        "present, else metrics/fid, else metrics/kmer_js, else the first metric)",
    )
    parser.add_argument(
        "--by",
        default="data",
        help="comma-separated axes (overrides or config groups) that split the runs into environments ranked "
        "apart (default: data)",
    )
    parser.add_argument(
        "--baseline", help="configuration for the probability of improvement, e.g. fix=non_saturating"
    )
    parser.add_argument(
        "--ci", choices=["bootstrap", "t"], default="bootstrap", help="95%% interval of the mean"
    )
    parser.add_argument(
        "--family",
        help="axis whose values each hold several configurations, for the budget curves (default: the first "
        "swept parameter when configurations differ in more than one)",
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


def resolve_metric(name: str | None, available: list[str]) -> str:
    """The metric to rank by: ``name`` (``fid`` also finds ``metrics/fid``), or the default."""
    if name is None and available:
        return default_metric(available)
    for candidate in (name, f"metrics/{name}"):
        if candidate in available:
            return candidate
    raise UsageError(
        f"unknown metric {name!r}: the runs of this sweep have "
        f"{', '.join(available) if available else 'no final metric at all'}."
    )


def resolve_direction(runs: list[Run], metric: str, higher: bool | None) -> tuple[bool, str]:
    """Whether higher is better, and where that comes from: the flag, else the metric's declaration."""
    if higher is not None:
        return higher, f"set by --{'higher' if higher else 'lower'}-is-better"
    declared = higher_is_better(runs, metric)
    if declared is None:
        raise UsageError(
            f"the direction of metric {metric!r} is unknown (no run's summary.json declares one in "
            "metrics_meta, or the runs declare different ones); pass --higher-is-better or "
            "--lower-is-better."
        )
    return declared, "declared by the metric"


def resolve_axes(
    args: argparse.Namespace, runs: list[Run], params: list[str]
) -> tuple[list[str], str | None]:
    """The ``--by`` axes and the budget family, checked against what the runs have."""
    known = sorted({k for r in runs for k in (*r.overrides, *(r.summary.get("choices") or {}))})
    by = [a.strip() for a in args.by.split(",") if a.strip()]
    bad = [a for a in by if a not in known] or ([] if by else [args.by])
    if bad:
        raise UsageError(
            f"--by {args.by!r}: {', '.join(map(repr, bad))} is not an override or config group of any run; "
            f"valid axes: {', '.join(known)}."
        )
    named = [p for p in params if p != SEED and p not in by]
    if args.family is not None and args.family not in named:
        raise UsageError(
            f"--family {args.family!r} is not a swept parameter outside --by; valid: "
            f"{', '.join(named) or 'none'}."
        )
    return by, args.family if args.family is not None else (named[0] if len(named) > 1 else None)


def check_baseline(baseline: str | None, envs: list[Environment]) -> None:
    names = sorted({c.label for e in envs for c in e.configs})
    if baseline is not None and baseline not in names:
        raise UsageError(
            f"--baseline {baseline!r} is no configuration of this sweep; configurations: {', '.join(names)}."
        )


def load(args: argparse.Namespace) -> tuple[list[Run], list[str], Options, str, list[Environment]]:
    """Read and analyse the sweep; :class:`UsageError` for bad input."""
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
    by, family = resolve_axes(args, runs, params)
    options = Options(metric, higher, by, args.ci, args.baseline, family)
    shown = [metric, *(m for m in metrics if m.startswith("metrics/") and m != metric)]
    envs = environments(runs, params, shown, options)
    check_baseline(args.baseline, envs)
    return runs, params, options, source, envs


def draw(envs: list[Environment], options: Options, out: Path) -> list[tuple[str, Path]]:
    """Every plot, with its caption."""
    metrics = [options.metric, *dict.fromkeys(t.metric for e in envs for t in e.others)]
    drawn = [
        (
            "Metrics against generator steps (line: mean over completed seeds; band: 95% bootstrap of it)",
            plots.plot_series(envs, metrics, ("metrics/",), out / "curves.png"),
        ),
        (
            "Training diagnostics (mean over seeds, 95% bootstrap band)",
            plots.plot_series(
                envs, list(plots.DIAGNOSTICS), ("loss/", "D/", "grad_norm/"), out / "diagnostics.png"
            ),
        ),
        (
            f"Final {options.metric} per configuration (dots: seeds; bar: 95% CI; tick: mean)",
            plots.plot_finals(envs, out / "finals.png"),
        ),
        (f"{options.metric} against wall time per run", plots.plot_wall_time(envs, out / "wall_time.png")),
        (
            "Budget: expected best mean score against configurations tried (band: 95%)",
            plots.plot_budget(envs, out / "budget.png"),
        ),
        *(
            (
                f"Samples: {plots.env_title(e)}, a row per configuration, a column per seed",
                plot_samples(e, out / f"samples_{i}.png"),
            )
            for i, e in enumerate(envs)
        ),
    ]
    return [(title, path) for title, path in drawn if path is not None]


def write(args: argparse.Namespace, loaded: tuple, out: Path) -> list[Path]:
    """Plots, runs.csv, report.md, report.html and report.json into ``out``; the paths written."""
    runs, params, options, source, envs = loaded
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("samples_*.png"):  # an earlier report's environments may have been more
        stale.unlink()
    drawn = draw(envs, options, out)
    sweep = args.sweep_dir.resolve()
    blocks = [
        *sections.header(sweep, runs, options, source, envs),
        *sections.damaged_blocks(runs),
        *(b for e in envs for b in sections.environment_blocks(e)),
        *sections.images(drawn),
        *sections.runs_blocks(runs, params, options.metric),
        *sections.definitions(),
    ]
    (out / "report.md").write_text(render.to_markdown(blocks))
    (out / "report.html").write_text(render.to_html(blocks, f"Sweep report: {sweep.name}"))
    export.write_json(export.report_json(sweep, options, envs, runs), out / "report.json")
    render.write_runs_csv(runs, params, out / "runs.csv")
    return [out / name for name in ("report.html", "report.md", "report.json", "runs.csv")] + [
        p for _, p in drawn
    ]


def main(argv: list[str] | None = None) -> int:
    """Entry point; 0 on success, 2 on bad input (argparse usage errors exit 2 too)."""
    args = parse_args(argv)
    try:
        loaded = load(args)
        if args.out is not None and args.out.exists() and not args.out.is_dir():
            raise UsageError(f"--out {str(args.out)!r} exists and is not a folder.")
    except UsageError as exc:
        print(f"ganlab.compare: error: {exc}", file=sys.stderr)
        return 2
    written = write(args, loaded, args.out or args.sweep_dir / "report")
    for env in loaded[4]:
        print(sections.answer(env))
    print(f"report: {written[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
