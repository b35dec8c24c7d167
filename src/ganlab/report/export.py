"""``report.json``: every number of the report, for scripts (``scripts/demo.py`` reads it).

The keys of the contract (sweep, by, baseline, environments[key, metric, direction, range, protocol,
configurations[name, n, seeds, values, mean, median, iqm, std, ci, ci_method, best, tied_with_best,
p_vs_best, prob_improvement_vs_baseline, wall_s_mean, g_steps_mean, failures], winner, tied_with_winner,
warnings], damaged) are kept exactly; everything else is added beside them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ganlab.report.analysis import Environment, MetricTable, Options, Row, failures, mean_of
from ganlab.report.collect import Run


def _row(row: Row) -> dict[str, Any]:
    s = row.summary
    return {
        "name": row.name,
        "params": row.config.params,
        "n": s.n,
        "seeds": list(row.seeds),
        "values": list(row.seeds.values()),
        "mean": s.mean,
        "median": s.median,
        "iqm": s.iqm,
        "std": s.std,
        "ci": list(s.ci) if s.ci else None,
        "ci_method": s.ci_method,
        "best": row.best,
        "tied_with_best": row.tied_with_best,
        "p_vs_best": row.p_vs_best,
        "p_vs_best_uncorrected": row.p_raw,
        "prob_improvement_vs_baseline": row.prob_improvement,
        "wall_s_mean": mean_of(row.config, "wall_s"),
        "g_steps_mean": mean_of(row.config, "g_steps"),
        "failures": failures(row.config),
        "runs": [r.name for r in row.config.runs],
    }


def _table(table: MetricTable) -> dict[str, Any]:
    return {
        "metric": table.metric,
        "direction": table.direction,
        "range": [table.low, table.high],
        "protocol": table.protocol,
        "configurations": [_row(r) for r in table.rows],
        "warnings": table.warnings,
    }


def _environment(env: Environment) -> dict[str, Any]:
    ranking = _table(env.ranking)
    best = next((r for r in env.ranking.rows if r.best), None)
    return {
        "key": env.key,
        **{k: ranking[k] for k in ("metric", "direction", "range", "protocol", "configurations")},
        "winner": best.name if best else None,
        "tied_with_winner": [r.name for r in env.ranking.rows if r.tied_with_best],
        "warnings": env.warnings,
        "seeds_hint": env.seeds_hint,
        "budget": {name: vars(curve) for name, curve in env.budget.items()},
        "other_metrics": [_table(t) for t in env.others],
    }


def _finite(value: Any) -> Any:
    """NaN and infinities as null (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def report_json(sweep: Path, options: Options, envs: list[Environment], runs: list[Run]) -> dict[str, Any]:
    """The whole report as one JSON-able dict."""
    return _finite(
        {
            "sweep": str(sweep),
            "by": options.by,
            "baseline": options.baseline,
            "ci": options.ci,
            "family": options.family,
            "environments": [_environment(e) for e in envs],
            "damaged": [{"run": r.name, "reason": r.damage} for r in runs if r.damage],
        }
    )


def write_json(data: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
