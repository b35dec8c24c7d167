"""The report's content as blocks (``render``): the answer per environment, warnings, the ranking with its
tests, every other metric in its own order, failures, budget, plots, runs, damaged folders, definitions."""

from __future__ import annotations

import json
from pathlib import Path

from ganlab.report import inference
from ganlab.report.analysis import Environment, MetricTable, Options, Row, failures, mean_of
from ganlab.report.collect import Run
from ganlab.report.plots import env_title
from ganlab.report.render import UNDEFINED, Block, Heading, Image, Para, Table, fmt
from ganlab.report.stats import COLLAPSE_DEFINITION, FAILED_DEFINITION

CI_NAMES = {"bootstrap": "percentile bootstrap", "t": "Student t"}
DEFINITIONS = [
    "A configuration is the runs that differ only by their seed; it is named by the swept parameters other "
    "than the seed and the --by axes. An environment is one value of the --by axes (default: the data); "
    "configurations are ranked only within an environment, and only among runs whose metric was computed "
    "under the same protocol (metrics_protocol in summary.json: feature network and its sha256, sample "
    "counts, split, seeds); runs under another protocol form their own table.",
    "Statistics over the completed runs of a configuration with a value: n, mean, median, IQM (interquartile "
    "mean: scipy.stats.trim_mean(x, 0.25), nothing cut below 4 values; Agarwal et al. 2021), sample std "
    f"(ddof=1). 95% CI of the mean: percentile bootstrap, {inference.BOOTSTRAP_RESAMPLES:,} resamples of the "
    f"seeds drawn from numpy seed {inference.BOOTSTRAP_SEED} (reproducible), or with --ci t the Student-t "
    "interval mean ± t(0.975, n-1)·std/√n; either clipped to the range the metric declares. Configurations "
    "are ranked by the mean, in the direction the metric declares.",
    "p vs best: two-sided Mann-Whitney U test (Mann & Whitney 1947; scipy.stats.mannwhitneyu, exact for "
    "small samples without ties) of the best configuration against each other one, Holm-corrected over "
    "those comparisons (Holm 1979). Tied with the best: corrected p ≥ 0.05, i.e. the test cannot separate "
    "them. With n and m seeds the exact test cannot give p below 2/C(n+m, n): 0.1 for 3 vs 3, 0.029 for 4 "
    "vs 4, so fewer than 4 seeds per configuration can never separate two configurations.",
    "P(improve): probability of improvement over the --baseline configuration (Agarwal et al. 2021): "
    "P(X better than Y) + P(X = Y)/2; paired by seed (the share of seeds where the configuration beats the "
    "baseline, ties half) when both have the same seeds, else over all pairs of runs (= U/(n·m)).",
    "Seeds hint: the normal-theory sample size of the two-sample t-test at 5% with 80% power, "
    "2·((z0.975 + z0.8)·s/Δ)² with Δ the difference of the top two means and s their pooled std, divided "
    "by the Mann-Whitney test's efficiency 3/π, and at least 4. A rough guide: it assumes the observed "
    "means and spread are the true ones, and one comparison (Holm over several needs more).",
    "Budget: for sweeps with more than one configuration per value of the family axis (--family), the "
    "expected best mean score when k of its K configurations are tried at random, k = 1..K (Lucic et al. "
    "2018; Kurach et al. 2019): exact, Σ s(i)·C(i-1, k-1)/C(K, k) over the scores sorted worst to best; "
    f"band: 2.5%-97.5% of the best of k over {inference.BOOTSTRAP_RESAMPLES:,} random orders.",
    "Failures: diverged = status diverged (diverged at: the generator step it stopped); "
    f"{COLLAPSE_DEFINITION}; "
    f"{FAILED_DEFINITION}. Rates with 95% Wilson score intervals (Wilson 1927).",
    "Curves: mean over the completed seeds at each logged step (steps every seed logged), band = 95% "
    "percentile bootstrap of that mean "
    "(1,000 resamples per step). Samples: each run's generator (the averaged one where the run kept one) "
    "rebuilt from checkpoints/last.ckpt, 2,500 "
    "points (toy data, blue, under the real data in red, shared axes) or a grid of 16 images, noise seed 0; "
    "for other data (sequences) the run's own samples/final.png.",
]
REFERENCES = [
    "Agarwal, Schwarzer, Castro, Courville, Bellemare 2021. Deep reinforcement learning at the edge of the "
    "statistical precipice. NeurIPS.",
    "Lucic, Kurach, Michalski, Gelly, Bousquet 2018. Are GANs created equal? A large-scale study. NeurIPS.",
    "Kurach, Lucic, Zhai, Michalski, Gelly 2019. A large-scale study on regularization and normalization in "
    "GANs. ICML.",
    "Mann, Whitney 1947. On a test of whether one of two random variables is stochastically larger than the "
    "other. Annals of Mathematical Statistics 18(1).",
    "Holm 1979. A simple sequentially rejective multiple test procedure. Scandinavian Journal of "
    "Statistics 6(2).",
    "Wilson 1927. Probable inference, the law of succession, and statistical inference. JASA 22(158).",
]


def fmt_ci(ci: tuple[float, float] | list[float] | None, n: int) -> str:
    if ci is None:
        return "undefined (n=1)" if n == 1 else UNDEFINED
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def _rate(k: int, n: int, ci: tuple[float, float] | None) -> str:
    return f"{k}/{n} {fmt_ci(ci, n)}" if n else UNDEFINED


def _stats_cells(row: Row) -> list[str]:
    s = row.summary
    return [str(s.n), fmt(s.mean), fmt(s.median), fmt(s.iqm), fmt(s.std), fmt_ci(s.ci, s.n)]


def _rank_cells(table: MetricTable) -> list[str]:
    return [
        str(i + 1) if r.summary.n and table.higher is not None else UNDEFINED
        for i, r in enumerate(table.rows)
    ]


def ranking_table(table: MetricTable) -> Table:
    """The ranking: statistics, test against the best, improvement over the baseline, compute, failures."""
    rows = []
    for rank, row in zip(_rank_cells(table), table.rows, strict=True):
        f = failures(row.config)
        tied = (
            "best"
            if row.best
            else ("tied" if row.tied_with_best else ("separated" if row.p_vs_best is not None else UNDEFINED))
        )
        rows.append(
            [
                rank,
                row.name,
                *_stats_cells(row),
                fmt(row.p_vs_best),
                tied,
                fmt(row.prob_improvement),
                fmt(mean_of(row.config, "wall_s")),
                fmt(mean_of(row.config, "g_steps")),
                _rate(f["diverged"], f["n"], f["diverged_ci"]),
                _rate(f["collapsed"], f["n"], f["collapsed_ci"]),
            ]
        )
    headers = [
        "rank",
        "configuration",
        "n",
        "mean",
        "median",
        "IQM",
        "std",
        "95% CI",
        "p vs best (Holm)",
        "vs best",
        "P(improve) vs baseline",
        "wall s/run",
        "G steps/run",
        "diverged",
        "collapsed",
    ]
    return Table(headers, rows)


def metric_table(table: MetricTable) -> Table:
    """Another metric's statistics, sorted by that metric in its own direction."""
    rows = [[rank, r.name, *_stats_cells(r)] for rank, r in zip(_rank_cells(table), table.rows, strict=True)]
    return Table(["rank", "configuration", "n", "mean", "median", "IQM", "std", "95% CI"], rows)


def _protocol(table: MetricTable) -> Para:
    direction = {
        "max": "higher is better",
        "min": "lower is better",
        None: "no declared direction: not ranked",
    }
    protocol = json.dumps(table.protocol, sort_keys=True) if table.protocol else "none recorded"
    return Para(
        f"{table.metric}: {direction[table.direction]}, range [{fmt(table.low)}, {fmt(table.high)}]; "
        f"protocol: {protocol}."
    )


def answer(env: Environment) -> str:
    """The one-line answer of an environment."""
    best = next((r for r in env.ranking.rows if r.best), None)
    if best is None:
        return f"{env_title(env)}: no completed run has a value of {env.ranking.metric}."
    tied = [r.name for r in env.ranking.rows if r.tied_with_best]
    s = best.summary
    return (
        f"{env_title(env)}: best {best.name}, {env.ranking.metric} mean {fmt(s.mean)} "
        f"(95% CI {fmt_ci(s.ci, s.n)}, n={s.n}); tied with it: {', '.join(tied) or 'none'}."
    )


def _failures_table(env: Environment) -> Table:
    rows = []
    for config in env.configs:
        f = failures(config)
        rows.append(
            [
                config.label,
                str(f["n"]),
                _rate(f["diverged"], f["n"], f["diverged_ci"]),
                ", ".join(str(s) for s in f["diverged_at"]) or UNDEFINED,
                _rate(f["collapsed"], f["n"], f["collapsed_ci"]),
            ]
        )
    return Table(
        ["configuration", "runs", "diverged (95% Wilson)", "diverged at G step", "collapsed (95% Wilson)"],
        rows,
    )


def _budget_table(env: Environment) -> list[Block]:
    if not env.budget:
        return []
    rows = [
        [name, str(k), fmt(e), f"[{fmt(lo)}, {fmt(hi)}]"]
        for name, c in env.budget.items()
        for k, e, lo, hi in zip(c.k, c.expected, c.low, c.high, strict=True)
    ]
    return [
        Heading("Budget: expected best against configurations tried", 4),
        Table(["family", "k", f"expected best mean {env.ranking.metric}", "95% band"], rows),
    ]


def environment_blocks(env: Environment) -> list[Block]:
    """Everything about one environment."""
    blocks: list[Block] = [Heading(f"Environment {env_title(env)}", 2), Para(answer(env), strong=True)]
    blocks += [Para(w, warning=True) for w in env.warnings]
    blocks += [
        Heading(f"Ranking by {env.ranking.metric}", 3),
        _protocol(env.ranking),
        ranking_table(env.ranking),
    ]
    blocks += [Para(env.seeds_hint)] if env.seeds_hint else []
    for table in env.others:
        blocks += [Heading(f"{table.metric} (sorted by itself)", 4), _protocol(table), metric_table(table)]
    blocks += [Heading("Failures", 3), _failures_table(env), *_budget_table(env)]
    return blocks


def header(
    sweep: Path, runs: list[Run], options: Options, direction_source: str, envs: list[Environment]
) -> list[Block]:
    statuses = [r.status for r in runs]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
    direction = "higher" if options.higher else "lower"
    return [
        Heading(f"Sweep report: {sweep.name}", 1),
        Para(
            f"Sweep folder: {sweep}. Runs: {len(runs)} run folders ({counts}). Environments by: "
            f"{', '.join(options.by)} ({len(envs)}). Ranking metric: {options.metric}, {direction} is better "
            f"({direction_source}). Intervals: {CI_NAMES[options.ci]}. "
            f"Baseline: {options.baseline or 'none (--baseline)'}."
        ),
        *[Para(answer(e), strong=True) for e in envs],
    ]


def damaged_blocks(runs: list[Run]) -> list[Block]:
    damaged = [[r.name, r.damage or ""] for r in runs if r.damage]
    return [Heading("Damaged run folders"), Table(["run", "reason"], damaged)] if damaged else []


def definitions() -> list[Block]:
    return [
        Heading("Definitions"),
        *[Para(d) for d in DEFINITIONS],
        Heading("References", 3),
        *[Para(r) for r in REFERENCES],
    ]


def images(plots: list[tuple[str, Path]]) -> list[Block]:
    return [Heading("Plots"), *[Image(title, path) for title, path in plots]] if plots else []


def _first_line(text: str | None, width: int = 100) -> str:
    return text.strip().splitlines()[0][:width] if text and text.strip() else ""


def runs_blocks(runs: list[Run], params: list[str], metric: str) -> list[Block]:
    """Every run folder, so that failed, missing and damaged runs are visible."""
    rows = [
        [
            r.name,
            *(r.overrides.get(p, "") for p in params),
            r.status,
            str(r.summary.get("g_steps", "")),
            fmt(r.summary.get("wall_s")),
            fmt(r.metrics.get(metric)),
            _first_line(r.error or r.damage),
        ]
        for r in runs
    ]
    return [Heading("Runs"), Table(["run", *params, "status", "g_steps", "wall_s", metric, "error"], rows)]
