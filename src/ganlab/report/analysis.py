"""The comparison itself: runs split into environments (one per value of the ``--by`` axes, and per protocol
of the ranking metric), each metric ranked within its environment with statistics over seeds, tests
against the best, probability of improvement over a baseline, failure rates and budget curves. Every number
of the report is computed here, once; ``render`` and ``plots`` only show them, ``to_json`` writes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ganlab.report import inference
from ganlab.report.collect import Run
from ganlab.report.stats import SEED, Config, declared_range, group, higher_is_better, is_collapsed

MIN_SEEDS = 3  # below this a configuration's interval is not worth much: the report says so


@dataclass
class Row:
    """One configuration in the table of one metric."""

    config: Config
    seeds: dict[int, float]
    summary: inference.Summary
    best: bool = False
    tied_with_best: bool = False
    p_vs_best: float | None = None  # Holm-corrected
    p_raw: float | None = None
    prob_improvement: float | None = None

    @property
    def name(self) -> str:
        return self.config.label


@dataclass
class MetricTable:
    """One metric's ranking within an environment, best first (configurations without a value last)."""

    metric: str
    higher: bool | None
    low: float | None
    high: float | None
    protocol: dict[str, Any]
    rows: list[Row]
    warnings: list[str] = field(default_factory=list)

    @property
    def direction(self) -> str | None:
        return None if self.higher is None else ("max" if self.higher else "min")


@dataclass
class Options:
    """What the user chose: the ranking metric and its direction, the CI method, the baseline, the family
    axis of the budget curves."""

    metric: str
    higher: bool
    by: list[str]
    ci: str = "bootstrap"
    baseline: str | None = None
    family: str | None = None


@dataclass
class Environment:
    key: dict[str, str]
    runs: list[Run]
    configs: list[Config]
    ranking: MetricTable
    others: list[MetricTable]
    budget: dict[str, inference.BudgetCurve]
    seeds_hint: str | None
    warnings: list[str]


def _sort_key(row: Row, higher: bool | None) -> tuple[bool, float]:
    mean = row.summary.mean
    return (mean is None, 0.0 if mean is None or higher is None else (-mean if higher else mean))


def _test_against_best(rows: list[Row]) -> None:
    """Mann-Whitney U of the best row against each other row with a value, Holm-corrected over them."""
    best, others = rows[0], [r for r in rows[1:] if r.summary.n > 0]
    best.best = True
    raw = [inference.mann_whitney_p(list(best.seeds.values()), list(r.seeds.values())) for r in others]
    for row, p_raw, p in zip(others, raw, inference.holm(raw), strict=True):
        row.p_raw, row.p_vs_best, row.tied_with_best = p_raw, p, p >= inference.ALPHA


def rank_metric(
    configs: list[Config], metric: str, higher: bool | None, options: Options, protocol: dict[str, Any]
) -> MetricTable:
    """The table of ``metric`` over ``configs``: statistics clipped to the declared range, sorted by the
    mean in the metric's direction; with a direction, tests against the best and probability of
    improvement over ``options.baseline``."""
    runs = [r for c in configs for r in c.runs]
    low, high = declared_range(runs, metric)
    rows = [
        Row(c, c.by_seed(metric), inference.summarise(c.values(metric), options.ci, low, high))
        for c in configs
    ]
    rows.sort(key=lambda r: _sort_key(r, higher))
    table = MetricTable(metric, higher, low, high, protocol, rows)
    if higher is None or not rows or rows[0].summary.n == 0:
        return table
    _test_against_best(rows)
    baseline = next((r for r in rows if r.name == options.baseline), None)
    for row in rows if baseline is not None else []:
        row.prob_improvement = inference.prob_improvement(row.seeds, baseline.seeds, higher)
    table.warnings = _warnings(table, options, baseline is not None)
    return table


def _test_floor_warnings(table: MetricTable) -> list[str]:
    """Where the seed counts alone decide the test: the exact two-sided Mann-Whitney U cannot go below
    ``2 / C(n + m, n)``, and Holm multiplies the smallest of ``k`` p-values by ``k``."""
    best = table.rows[0]
    floors = [(r, inference.min_exact_p(best.summary.n, r.summary.n)) for r in table.rows[1:] if r.summary.n]
    blind = [
        f"{r.name} ({best.summary.n} vs {r.summary.n}: min p = {p:.3g})"
        for r, p in floors
        if p >= inference.ALPHA
    ]
    if blind:
        return [
            "the exact two-sided Mann-Whitney U test cannot reach p < 0.05 with these seed counts, whatever "
            f"the values: {', '.join(blind)}. 'Tied with the best' there means 'too few seeds to tell'; "
            "4 seeds per configuration are the fewest at which it can."
        ]
    holm_floor = len(floors) * min((p for _, p in floors), default=1.0)
    if holm_floor >= inference.ALPHA:
        return [
            f"with {len(floors)} configurations compared against the best, Holm multiplies the smallest "
            f"p-value by {len(floors)}: at these seed counts no corrected p can fall below {holm_floor:.3g}, "
            "so none can be separated from the best, whatever the values. Fewer configurations or more "
            "seeds are needed."
        ]
    return []


def _warnings(table: MetricTable, options: Options, has_baseline: bool) -> list[str]:
    """Few seeds, a test that cannot separate anything, a baseline that is not there."""
    warnings = []
    few = [f"{r.name} (n={r.summary.n})" for r in table.rows if 0 < r.summary.n < MIN_SEEDS]
    if few:
        warnings.append(
            f"fewer than {MIN_SEEDS} seeds: {', '.join(few)}; their intervals and tests are unreliable."
        )
    warnings += _test_floor_warnings(table)
    if options.baseline is not None and not has_baseline:
        warnings.append(f"baseline {options.baseline!r} has no value here: no probability of improvement.")
    return warnings


def seeds_hint(table: MetricTable) -> str | None:
    """How many seeds would separate the top two configurations at the observed spread."""
    ranked = [r for r in table.rows if r.summary.n > 0]
    if len(ranked) < 2:
        return None
    first, second = ranked[0], ranked[1]
    if not second.tied_with_best:
        return f"{first.name} is already separated from {second.name} (Holm p = {second.p_vs_best:.3g})."
    needed = inference.seeds_to_separate(list(first.seeds.values()), list(second.seeds.values()))
    if needed is None:
        return f"{first.name} vs {second.name}: equal means or under 2 seeds each; no seed count to suggest."
    return (
        f"About {needed} seeds per configuration would separate {first.name} from {second.name} at the "
        "observed means and spread (two-sided Mann-Whitney U at 5%, 80% power; see the definitions)."
    )


def _protocol_key(run: Run, metric: str) -> str:
    return json.dumps(run.protocol(metric), sort_keys=True, default=str)


def split_by_protocol(runs: list[Run], metric: str) -> list[tuple[dict[str, Any], list[Run]]]:
    """The runs grouped by the protocol of ``metric``; runs that recorded none (failed before the first
    evaluation) join the largest group, so that they count among their configuration's failures."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        if run.protocol(metric):
            groups.setdefault(_protocol_key(run, metric), []).append(run)
    if not groups:
        return [({}, runs)]
    largest = max(groups, key=lambda k: len(groups[k]))
    groups[largest] += [r for r in runs if not r.protocol(metric)]
    return [(json.loads(k), sorted(v, key=runs.index)) for k, v in groups.items()]


def budget_curves(
    configs: list[Config], table: MetricTable, family: str | None
) -> dict[str, inference.BudgetCurve]:
    """Per value of the ``family`` axis with more than one configuration: the expected best mean score
    against the number of its configurations tried."""
    if family is None or table.higher is None:
        return {}
    scores: dict[str, list[float]] = {}
    for row in table.rows:
        if row.summary.mean is not None and family in row.config.params:
            scores.setdefault(row.config.params[family], []).append(row.summary.mean)
    return {
        f"{family}={value}": inference.budget_curve(values, table.higher)
        for value, values in scores.items()
        if len(values) > 1
    }


def environment(
    key: dict[str, str],
    runs: list[Run],
    params: list[str],
    metrics: list[str],
    options: Options,
    protocol: dict[str, Any],
) -> Environment:
    """One environment: its configurations, the ranking, every other metric's table, budget curves."""
    configs = group(runs, params)
    ranking = rank_metric(configs, options.metric, options.higher, options, protocol)
    others = [
        rank_metric(group(part, params), metric, higher_is_better(part, metric), options, proto)
        for metric in metrics
        if metric != options.metric
        for proto, part in split_by_protocol(runs, metric)
        if any(metric in r.metrics for r in part)
    ]
    warnings = list(ranking.warnings)
    for metric in {t.metric for t in others if sum(o.metric == t.metric for o in others) > 1}:
        warnings.append(f"{metric} was computed under different protocols here: one table per protocol.")
    budget = budget_curves(configs, ranking, options.family)
    return Environment(key, runs, configs, ranking, others, budget, seeds_hint(ranking), warnings)


def environments(
    runs: list[Run], params: list[str], metrics: list[str], options: Options
) -> list[Environment]:
    """The runs split by the values of ``options.by`` and then by the ranking metric's protocol; the
    configurations are named by the swept parameters other than the seed and the ``by`` axes."""
    named = [p for p in params if p != SEED and p not in options.by]
    split: dict[tuple[str, ...], list[Run]] = {}
    for run in runs:
        split.setdefault(tuple(run.axis(k) for k in options.by), []).append(run)
    found = []
    for values, part in split.items():
        key = dict(zip(options.by, values, strict=True))
        parts = split_by_protocol(part, options.metric)
        for protocol, same in parts:
            env = environment(key, same, named, metrics, options, protocol)
            if len(parts) > 1:
                env.warnings.append(
                    f"{options.metric} was computed under {len(parts)} different protocols for {key}: each "
                    "protocol is reported apart, never ranked together."
                )
            found.append(env)
    return found


def failures(config: Config) -> dict[str, Any]:
    """Divergence and collapse counts of a configuration with Wilson intervals, and the generator step
    at which each diverged run stopped (summary.json's ``diverged_at``)."""
    n = len(config.runs)
    diverged = [r for r in config.runs if r.status == "diverged"]
    collapsed = sum(is_collapsed(r) is True for r in config.runs)
    return {
        "diverged": len(diverged),
        "collapsed": collapsed,
        "n": n,
        "diverged_ci": inference.wilson(len(diverged), n),
        "collapsed_ci": inference.wilson(collapsed, n),
        "diverged_at": [r.summary.get("diverged_at") for r in diverged],
    }


def mean_of(config: Config, field_name: str) -> float | None:
    """The mean of a numeric summary.json field (``wall_s``, ``g_steps``) over the runs that finished."""
    values = [
        float(v)
        for r in config.runs
        if r.status in ("completed", "diverged") and isinstance(v := r.summary.get(field_name), int | float)
    ]
    return float(np.mean(values)) if values else None
